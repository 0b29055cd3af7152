//! The Redis key layout. Every key starts with the deployment's prefix in a
//! hash tag (`{jobd}:` by default), so one deployment's keys share a Redis
//! Cluster slot and every script can touch all of them. The scripts are
//! given only the prefix as `KEYS[1]` and build the other keys from it
//! (they cannot know a job's dependents, say, before reading them); that
//! is safe on Redis Cluster only because of the hash tag, which puts every
//! key a script builds in the slot of the key it was given.
//!
//! | key | type | owner and lifetime |
//! |---|---|---|
//! | `job:<id>` | hash | the job; created by submit, deleted by cleanup after retention |
//! | `jobs` | zset (score 0, by id) | listing index of every job; entries removed with the job |
//! | `pending:<user>` | zset | a user's queue of built-in jobs (score -priority, member `<queued_at><seq>:<id>`: by the time the job became claimable, then FIFO); emptied by claim and cancel |
//! | `ready` | zset | users with built-in jobs pending, scored by last service (round-robin); a user leaves when their queue empties |
//! | `pending@<type>:<user>`, `ready@<type>` | zset | the same for the remote jobs of remote type `<type>` (a job hash with `remote` = 1), so a built-in claim never reads them and a remote claim reads only its types'; `<type>` is a configured name of `[A-Za-z0-9_.-]` |
//! | `remote_queues` | set | the suffixes `@<type>` of the remote types with a rotation (`ready@<type>` or `idle_served@<type>`); added when a user joins one, removed by cleanup once both are empty |
//! | `running` | zset | running job ids scored by lease expiry (the processing locks); claim adds, finish/cancel/recover remove |
//! | `idle_served`, `idle_served@<type>` | hash | the rotation place of a user whose queue (built-in, or of remote type `<type>`) ran empty, for when it queues again; pruned by cleanup once it runs nothing |
//! | `user_scheduled` | hash | scheduled jobs per user (delayed, retrying or waiting for dependencies); with the sizes of the user's pending queues, the user's queued jobs for the quota, so the claim path keeps no count of its own; a user's field is deleted at 0 |
//! | `user_running` | hash | running jobs per user, built-in and remote alike (the per-user limit); a user's field is deleted at 0 |
//! | `type_running`, `key_running` | hash | running jobs per limited job type and per type and concurrency key (`<type>\31<key>`), the limits of `[job_types]`; claim adds, a stop frees (`free_slot_counts`); a field is deleted at 0; `key_running` also holds the field `''` (not a slot), whose long value keeps it a hash table (O(1) lookups) |
//! | `parked:<scope>` | zset | pending jobs a claim found over the limit of `<scope>` (`type:<T>`, `key:<T>\31<K>`, `rate:<T>[\31<K>]`), scored and named as in their queue; a stop of the scope, or its look (`parked_check`), puts them back |
//! | `parked_count` | hash | jobs in each `parked:<scope>`, so a stop reads in one command which of the scopes it frees have any; a field is deleted at 0, set again by each look |
//! | `parked_check` | zset | scopes with parked jobs, scored by when a claim next looks at them (a rate window's opening, else a second on) |
//! | `user_parked` | hash | parked jobs per user (the quota's count); a user's field is deleted at 0 |
//! | `rate:<scope>` | hash | a rate window: when it `closes` and its `started` count; expires after it closes |
//! | `expiring` | zset | jobs with a deadline to start by (`expires_at`), scored by it; submit adds, the expiry pass (and every claim) removes entries as their deadline passes, cancelling those still pending or scheduled and never started |
//! | `scheduled` | zset | delayed jobs and retries by due time; promotion removes |
//! | `done:completed`, `done:failed` | zset | terminal jobs by finish time, for retention cleanup |
//! | `log:<id>` | list | job `<id>`'s log lines, oldest first (`append_log.lua`); created by its first line, cut to the cap by each append, deleted with the job |
//! | `log_meta:<id>` | hash | the log's last line number (`seq`) and bytes of text (`bytes`); deleted with the job |
//! | `audit` | zset (score 0, by text) | the audit log: members `<entry id>\t<entry as JSON>`, in time order since ids are UUID v7 (`audit.rs`); added by the API's audit flusher, removed by cleanup after `audit_retention_seconds` |
//! | `debounce:<sha1>` | hash | a debounce key (SHA-1 of user, job type and key): the `job` its first submission stored and `first_at`; replaced when a submission stores a new job; expires a minute after its job is due (each collapse moves that) |
//! | `dependents:<id>` | set | jobs waiting for job `<id>`; created by a dependent's submit, deleted with job `<id>` |
//! | `counts` | hash | jobs per status (exact, O(1) stats) |
//! | `retired` | hash | jobs that left a terminal status (cleanup, restart), per status; with `counts`, the finished totals; permanent |
//! | `workers` | zset | worker ids by last heartbeat; stale ones removed by recover |
//! | `worker:<id>` | hash | a worker's registration (`serves`: '' for a built-in worker, else the JSON array of its remote types); removed with it |
//! | `watched` | zset | job ids some process watches, scored by expiry; added only for a job that exists (`watch.lua`), refreshed by watchers, pruned by cleanup |
//! | `queue_seq`, `served_seq` | string | FIFO and round-robin sequences (`served_seq` numbers the turns of every rotation, so a claim for several remote types orders their users by it); permanent, one each |
//! | `schedule:<name>` | hash | a schedule: its `definition` (JSON), `origin`, `paused`, `revision` (bumped by every change), `created_at`, `active_since` (stored or last resumed), `updated_at`, and the last tick fired (`last_tick_at`) with its job (`last_job_id`); written by put_schedule.lua and pause_schedule.lua, a tick claimed by submit.lua |
//! | `schedules` | set | the names of the schedules |
//! | `token:<id>` | hash | an API token: the SHA-256 of its secret, user, role, job, creation, expiry and revocation times; created by token create, deleted by cleanup once it has been expired or revoked for `failed_retention_seconds` |
//! | `tokens` | zset | token ids by creation time, for listing |
//! | `tokens_ending` | zset | ids of tokens with an end, scored by when they stop working (expiry, or an earlier revocation); cleanup deletes those ended longer than `failed_retention_seconds` ago (`cleanup_tokens.lua`) |
//! | `meta` | hash | `last_cleanup`; permanent |
//! | `lock:cleanup` | string | one cleanup pass at a time; given up by compare-and-delete, expires by itself |
//! | `changes`, `work` | channels | job change ids and "work available", published by the scripts |

use crate::model::JobId;

/// Key names of one deployment.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `{name}:`.
    pub(crate) fn new(name: &str) -> Keys {
        Keys {
            prefix: format!("{{{name}}}:"),
        }
    }

    /// The prefix, passed to every script as KEYS[1].
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A job's hash.
    pub(crate) fn job(&self, id: JobId) -> String {
        format!("{}job:{id}", self.prefix)
    }

    /// A schedule's hash.
    pub(crate) fn schedule(&self, name: &str) -> String {
        format!("{}schedule:{name}", self.prefix)
    }

    /// An API token's hash.
    pub(crate) fn token(&self, id: &str) -> String {
        format!("{}token:{id}", self.prefix)
    }

    /// Any other key or channel by its suffix.
    pub(crate) fn named(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }
}
