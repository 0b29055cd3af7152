//! The Lua scripts, one file per operation, each with `common.lua`
//! prepended (and `exchange.lua` with the two function files it calls). `redis::Script` calls them by SHA (EVALSHA) and loads a script
//! the first time a server does not know it.

use redis::Script;

/// One script per store operation.
pub(super) struct Scripts {
    /// `submit.lua`.
    pub submit: Script,
    /// `exchange.lua`: finish attempts and claim jobs.
    pub exchange: Script,
    /// `progress.lua`.
    pub progress: Script,
    /// `release.lua`.
    pub release: Script,
    /// `cancel.lua`.
    pub cancel: Script,
    /// `restart.lua`.
    pub restart: Script,
    /// `heartbeat.lua`.
    pub heartbeat: Script,
    /// `promote.lua`.
    pub promote: Script,
    /// `expire.lua`.
    pub expire: Script,
    /// `recover.lua`.
    pub recover: Script,
    /// `cleanup.lua`.
    pub cleanup: Script,
    /// `cleanup_finish.lua`.
    pub cleanup_finish: Script,
    /// `list.lua`.
    pub list: Script,
    /// `workers.lua`.
    pub workers: Script,
    /// `watch.lua`.
    pub watch: Script,
    /// `append_log.lua`.
    pub append_log: Script,
    /// `read_log.lua`.
    pub read_log: Script,
    /// `revoke_token.lua`.
    pub revoke_token: Script,
    /// `cleanup_tokens.lua`.
    pub cleanup_tokens: Script,
    /// `put_schedule.lua`.
    pub put_schedule: Script,
    /// `pause_schedule.lua`.
    pub pause_schedule: Script,
}

const COMMON: &str = include_str!("scripts/common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

fn exchange() -> Script {
    script(
        &[
            include_str!("scripts/finish_attempts.lua"),
            include_str!("scripts/claim_jobs.lua"),
            include_str!("scripts/exchange.lua"),
        ]
        .join("\n"),
    )
}

impl Scripts {
    /// Builds every script (no I/O).
    pub(super) fn new() -> Scripts {
        Scripts {
            submit: script(include_str!("scripts/submit.lua")),
            exchange: exchange(),
            progress: script(include_str!("scripts/progress.lua")),
            release: script(include_str!("scripts/release.lua")),
            cancel: script(include_str!("scripts/cancel.lua")),
            restart: script(include_str!("scripts/restart.lua")),
            heartbeat: script(include_str!("scripts/heartbeat.lua")),
            promote: script(include_str!("scripts/promote.lua")),
            expire: script(include_str!("scripts/expire.lua")),
            recover: script(include_str!("scripts/recover.lua")),
            cleanup: script(include_str!("scripts/cleanup.lua")),
            cleanup_finish: script(include_str!("scripts/cleanup_finish.lua")),
            list: script(include_str!("scripts/list.lua")),
            workers: script(include_str!("scripts/workers.lua")),
            watch: script(include_str!("scripts/watch.lua")),
            append_log: script(include_str!("scripts/append_log.lua")),
            read_log: script(include_str!("scripts/read_log.lua")),
            revoke_token: script(include_str!("scripts/revoke_token.lua")),
            cleanup_tokens: script(include_str!("scripts/cleanup_tokens.lua")),
            put_schedule: script(include_str!("scripts/put_schedule.lua")),
            pause_schedule: script(include_str!("scripts/pause_schedule.lua")),
        }
    }
}
