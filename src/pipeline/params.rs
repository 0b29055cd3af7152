//! Reading job parameters with clear errors: a parameter that is present but
//! of the wrong type or out of range fails the job rather than being ignored.

use std::ops::RangeInclusive;

use serde_json::Value;

/// The integer parameter `name`, `default` when absent; an error when it is
/// not an integer within `range`.
pub(crate) fn usize_param(
    params: &Value,
    name: &str,
    default: usize,
    range: RangeInclusive<usize>,
) -> anyhow::Result<usize> {
    let Some(value) = params.get(name).filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "parameter {name} must be an integer from {} to {}, got {value}",
                range.start(),
                range.end()
            )
        })
}

/// The number parameter `name`, `default` when absent; an error when it is
/// not a number within `range`.
pub(crate) fn f64_param(
    params: &Value,
    name: &str,
    default: f64,
    range: RangeInclusive<f64>,
) -> anyhow::Result<f64> {
    let Some(value) = params.get(name).filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    value.as_f64().filter(|n| range.contains(n)).ok_or_else(|| {
        anyhow::anyhow!(
            "parameter {name} must be a number from {} to {}, got {value}",
            range.start(),
            range.end()
        )
    })
}

/// The unsigned 64-bit parameter `name` (such as a seed), `default` when absent.
pub(crate) fn u64_param(params: &Value, name: &str, default: u64) -> anyhow::Result<u64> {
    let Some(value) = params.get(name).filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    value.as_u64().ok_or_else(|| {
        anyhow::anyhow!("parameter {name} must be a non-negative integer, got {value}")
    })
}

/// The string parameter `name`, if present; an error when it is not a string.
pub(crate) fn str_param<'a>(params: &'a Value, name: &str) -> anyhow::Result<Option<&'a str>> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => anyhow::bail!("parameter {name} must be a string, got {other}"),
    }
}

/// The boolean parameter `name`, `default` when absent.
pub(crate) fn bool_param(params: &Value, name: &str, default: bool) -> anyhow::Result<bool> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => anyhow::bail!("parameter {name} must be true or false, got {other}"),
    }
}

/// The array parameter `name`, if present; an error when it is not an array.
pub(crate) fn array_param<'a>(
    params: &'a Value,
    name: &str,
) -> anyhow::Result<Option<&'a Vec<Value>>> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => anyhow::bail!("parameter {name} must be an array, got {other}"),
    }
}
