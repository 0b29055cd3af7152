//! The [`Registry`]: which handler runs each job type, with its options.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::external::ExternalCommand;
use super::handler::JobHandler;
use crate::config::{JobTypeConfig, Settings};

/// A job type as workers run it: its handler and its options.
#[derive(Clone)]
pub struct JobType {
    /// The code that runs it here; `None` for a remote type, which only
    /// remote workers run (built-in workers never claim its jobs).
    pub handler: Option<Arc<dyn JobHandler>>,
    /// Per-attempt time limit, unless the job sets its own.
    pub timeout: Option<Duration>,
    /// Attempts allowed, unless the job sets its own.
    pub max_attempts: u32,
    /// Base of the exponential retry backoff.
    pub retry_backoff: Duration,
    /// Default deadline to start by, from submission, unless the job sets
    /// its own `expires_in_seconds`.
    pub expires_in: Option<Duration>,
}

/// The known job types: built-ins, overridden or joined by the configured ones.
#[derive(Clone, Default)]
pub struct Registry {
    types: BTreeMap<String, JobType>,
}

impl JobType {
    /// Whether remote workers run it (it has no handler here).
    pub fn is_remote(&self) -> bool {
        self.handler.is_none()
    }
}

impl Registry {
    /// The `builtins` (compiled-in handlers by name) plus the types of
    /// `settings.job_types`; a configured type with a `command` replaces a
    /// built-in of the same name, one without only sets the built-in's
    /// options, and one declared `remote` has no handler here (a built-in
    /// of its name is set aside: remote workers run it).
    pub fn from_settings(
        settings: &Settings,
        builtins: impl IntoIterator<Item = (&'static str, Arc<dyn JobHandler>)>,
    ) -> anyhow::Result<Registry> {
        let mut builtins: BTreeMap<String, Arc<dyn JobHandler>> = builtins
            .into_iter()
            .map(|(name, handler)| (name.to_owned(), handler))
            .collect();
        let mut configured = settings.job_types.clone();
        for name in builtins.keys() {
            configured.entry(name.clone()).or_default();
        }
        let mut registry = Registry::default();
        for (name, config) in configured {
            let builtin = builtins.remove(&name);
            let handler: Option<Arc<dyn JobHandler>> = match (&config.command, builtin) {
                _ if config.is_remote() => None,
                (Some(command), _) => Some(Arc::new(ExternalCommand::new(command.clone()))),
                (None, Some(builtin)) => Some(builtin),
                (None, None) => anyhow::bail!(
                    "job type {name} has no command, is not a built-in type and is not remote"
                ),
            };
            registry.insert(name, handler, &config, settings);
        }
        Ok(registry)
    }

    /// Adds (or replaces) a job type; without a handler, a remote one.
    pub fn insert(
        &mut self,
        name: String,
        handler: Option<Arc<dyn JobHandler>>,
        config: &JobTypeConfig,
        settings: &Settings,
    ) {
        let job_type = JobType {
            handler,
            timeout: config.timeout_seconds.map(Duration::from_secs_f64),
            max_attempts: config.max_attempts.unwrap_or(settings.default_max_attempts),
            retry_backoff: config
                .retry_backoff_seconds
                .map(Duration::from_secs_f64)
                .unwrap_or(settings.retry_backoff),
            expires_in: config.expires_in_seconds.map(Duration::from_secs_f64),
        };
        self.types.insert(name, job_type);
    }

    /// The job type of this name.
    pub fn get(&self, name: &str) -> Option<&JobType> {
        self.types.get(name)
    }

    /// The names of all job types, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.types.keys().map(String::as_str).collect()
    }

    /// The names of the remote job types, sorted.
    pub fn remote_names(&self) -> Vec<&str> {
        self.types
            .iter()
            .filter(|(_, job_type)| job_type.is_remote())
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{JobTypeConfig, Settings};
    use crate::runtime::builtin;

    #[test]
    fn a_remote_type_has_no_handler_here_even_a_built_in_one() {
        let mut settings = Settings::default();
        let remote = JobTypeConfig {
            remote: Some(true),
            max_attempts: Some(3),
            ..JobTypeConfig::default()
        };
        settings.job_types.insert("gpu".into(), remote.clone());
        settings.job_types.insert("sleep".into(), remote);
        let registry = Registry::from_settings(&settings, builtin::handlers()).unwrap();
        assert_eq!(registry.names(), ["gpu", "noop", "sleep"]);
        assert_eq!(registry.remote_names(), ["gpu", "sleep"]);
        let gpu = registry.get("gpu").unwrap();
        assert!(gpu.is_remote() && gpu.handler.is_none());
        assert_eq!(gpu.max_attempts, 3);
        assert!(registry.get("sleep").unwrap().is_remote());
        assert!(!registry.get("noop").unwrap().is_remote());
    }
}
