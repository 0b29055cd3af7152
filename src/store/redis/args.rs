//! Building the scripts' ARGV: each operation's values in the order its
//! script's header documents.

use uuid::Uuid;

use super::decode;
use crate::model::{
    Debounce, IdempotencyKey, JobId, JobStatus, Millis, NewJob, Progress, ScheduleTick,
    duration_millis,
};
use crate::store::{ClaimLimits, ClaimParams, ClaimRef, ListQuery, Outcome, Serves, WorkerInfo};

/// An optional value as an argument: `''` for none.
pub(super) fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// `submit.lua`'s arguments for `jobs`, submitted at `now`.
pub(super) fn submit(jobs: &[NewJob], quota: Option<u64>, now: Millis) -> Vec<String> {
    let mut args = vec![now.to_string(), jobs.len().to_string(), opt(quota)];
    for new in jobs {
        args.extend([
            new.id.to_string(),
            new.job_type.clone(),
            new.user_id.clone(),
            new.priority.to_string(),
            new.parameters.to_string(),
            new.max_attempts.to_string(),
            opt(new.timeout_seconds),
            opt(new.run_at.filter(|at| *at > now)),
            if new.remote { "1" } else { "" }.to_owned(),
            opt(new.expires_in.map(|after| now.saturating_add(after))),
            new.concurrency_key.clone().unwrap_or_default(),
            new.depends_on.len().to_string(),
        ]);
        args.extend(new.depends_on.iter().map(JobId::to_string));
    }
    args
}

/// `submit.lua`'s arguments for one job under an idempotency key.
pub(super) fn submit_once(
    job: &NewJob,
    key: &IdempotencyKey,
    quota: Option<u64>,
    now: Millis,
) -> Vec<String> {
    let mut args = submit(std::slice::from_ref(job), quota, now);
    args.extend([
        "idem".to_owned(),
        key.key.clone(),
        key.fingerprint.clone(),
        key.ttl_millis.max(1).to_string(),
    ]);
    args
}

/// `submit.lua`'s arguments for one job under a debounce key: the job
/// due at its first due time, should the call store it.
pub(super) fn submit_debounced(
    job: &NewJob,
    debounce: &Debounce,
    quota: Option<u64>,
    now: Millis,
) -> Vec<String> {
    let first = NewJob {
        run_at: Some(debounce.first_due(now)),
        ..job.clone()
    };
    let mut args = submit(std::slice::from_ref(&first), quota, now);
    args.extend([
        "debounce".to_owned(),
        debounce.key.clone(),
        debounce.period_millis.max(0).to_string(),
        debounce.max_wait_millis.max(0).to_string(),
    ]);
    args
}

/// `submit.lua`'s arguments for a schedule's job for `tick`, fired only
/// from `revision`.
pub(super) fn fire_schedule(
    job: &NewJob,
    tick: &ScheduleTick,
    revision: i64,
    quota: Option<u64>,
    now: Millis,
) -> Vec<String> {
    let mut args = submit(std::slice::from_ref(job), quota, now);
    args.extend([
        "schedule".to_owned(),
        tick.name.clone(),
        revision.to_string(),
        tick.tick.to_string(),
    ]);
    args
}

/// `exchange.lua`'s arguments: `attempts` to end (`compact`: the caller
/// holds every one's job and needs only a completion's revision back),
/// then the claim (if any) with one fresh token per job it may claim.
/// Returns the arguments and the tokens.
pub(super) fn exchange(
    attempts: &[(ClaimRef, &Outcome)],
    compact: bool,
    now: Millis,
    claim: Option<&ClaimParams>,
) -> (Vec<String>, Vec<Uuid>) {
    let reply = if compact { "compact" } else { "full" };
    let mut args = vec![
        now.to_string(),
        reply.to_owned(),
        attempts.len().to_string(),
    ];
    for (claim, outcome) in attempts {
        push_finish(&mut args, *claim, outcome);
    }
    args.push(decode::JOB_FIELDS.len().to_string());
    args.extend(decode::JOB_FIELDS.map(String::from));
    let tokens: Vec<Uuid> = match claim {
        Some(params) => {
            args.extend([
                params.worker_id.clone(),
                params.max_jobs.to_string(),
                params.global_max.to_string(),
                params.per_user_max.to_string(),
                now.saturating_add(duration_millis(params.lease))
                    .to_string(),
            ]);
            match &params.serves {
                Serves::BuiltIn => args.push(String::new()),
                Serves::Remote(types) => {
                    args.push(types.len().to_string());
                    args.extend(types.iter().cloned());
                }
            }
            push_limits(&mut args, &params.limits);
            args.push(decode::CLAIMED_FIELDS.len().to_string());
            args.extend(decode::CLAIMED_FIELDS.map(String::from));
            (0..params.max_jobs).map(|_| Uuid::new_v4()).collect()
        }
        None => {
            args.extend(["", "0", "0", "0", "0"].map(String::from));
            Vec::new()
        }
    };
    args.extend(tokens.iter().map(Uuid::to_string));
    (args, tokens)
}

/// `exchange.lua`'s limits and weights of a claim.
fn push_limits(args: &mut Vec<String>, limits: &ClaimLimits) {
    args.push(limits.types.len().to_string());
    for (job_type, l) in &limits.types {
        args.extend([
            job_type.clone(),
            opt(l.per_key_max),
            opt(l.type_max),
            opt(l.rate.map(|r| r.count)),
            opt(l.rate.map(|r| duration_millis(r.per).max(1))),
            if l.rate.is_some_and(|r| r.per_key) {
                "1"
            } else {
                ""
            }
            .to_owned(),
        ]);
    }
    args.push(limits.user_weights.len().to_string());
    for (user, weight) in &limits.user_weights {
        args.extend([user.clone(), weight.max(&1).to_string()]);
    }
}

/// The six `finish_attempts.lua` values of one attempt.
fn push_finish(args: &mut Vec<String>, claim: ClaimRef, outcome: &Outcome) {
    let (status, result, error, scheduled_for) = match outcome {
        Outcome::Completed { result } => (
            JobStatus::Completed,
            result.to_string(),
            String::new(),
            None,
        ),
        Outcome::Failed {
            error,
            retry_at: Some(at),
        } => (
            JobStatus::Scheduled,
            String::new(),
            error.clone(),
            Some(*at),
        ),
        Outcome::Failed {
            error,
            retry_at: None,
        } => (JobStatus::Failed, String::new(), error.clone(), None),
    };
    args.extend([
        claim.job_id.to_string(),
        claim.token.to_string(),
        status.as_str().into(),
        result,
        error,
        opt(scheduled_for),
    ]);
}

/// `progress.lua`'s arguments.
pub(super) fn progress(claim: ClaimRef, progress: &Progress, now: Millis) -> Vec<String> {
    vec![
        claim.job_id.to_string(),
        claim.token.to_string(),
        progress.fraction.to_string(),
        opt(progress.items_processed),
        opt(progress.total_items),
        now.to_string(),
    ]
}

/// `list.lua`'s arguments, scanning at most `max_scan` ids and reading
/// `fields` of each job.
pub(super) fn list(
    query: &ListQuery,
    max_scan: usize,
    fields: &[&str],
    big_fields: usize,
) -> Vec<String> {
    let mut args = vec![
        opt(query.before),
        query.limit.to_string(),
        opt(query.status.map(JobStatus::as_str)),
        opt(query.user_id.as_ref()),
        opt(query.job_type.as_ref()),
        max_scan.to_string(),
        // Lua reads numbers as doubles: no bound is a very large one.
        query.max_bytes.min(1 << 52).to_string(),
        big_fields.to_string(),
    ];
    args.extend(fields.iter().map(|f| (*f).to_owned()));
    args
}

/// `release.lua`'s arguments.
pub(super) fn release(claims: &[ClaimRef], now: Millis) -> Vec<String> {
    let mut args = vec![now.to_string()];
    for claim in claims {
        args.push(claim.job_id.to_string());
        args.push(claim.token.to_string());
    }
    args
}

/// `heartbeat.lua`'s arguments.
pub(super) fn heartbeat(
    worker: &WorkerInfo,
    held: &[ClaimRef],
    lease_until: Millis,
    now: Millis,
) -> Vec<String> {
    let mut args = vec![
        worker.worker_id.clone(),
        worker.host.clone(),
        worker.pid.to_string(),
        worker.started_at.to_string(),
        worker.concurrency.to_string(),
        lease_until.to_string(),
        now.to_string(),
        decode::serves_text(&worker.serves),
    ];
    for claim in held {
        args.push(claim.job_id.to_string());
        args.push(claim.token.to_string());
    }
    args
}
