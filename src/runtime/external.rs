//! Job types run by an external command, so work in any language plugs in.
//!
//! The protocol: the command gets the job object (with its `parameters`) as
//! JSON on stdin and `JOBD_JOB_ID` in its environment. Each line it prints
//! to stdout that is a JSON object may carry `progress` (0 to 1),
//! `items_processed`, `total_items` and `result`. Exit 0 completes the job
//! with the last `result`; any other exit fails it with the tail of stderr,
//! retried by the job type's rule unless a line said otherwise:
//! `"retry": false` (fail for good) or `"retry_after_seconds": N`.
//! Every stderr line, and every stdout line that is not a JSON object,
//! goes to the job's log (`stderr`, `stdout`), whether the job succeeds or
//! fails.
//!
//! The command runs in its own process group, so a cancel reaches every
//! process it started: SIGTERM at once, SIGKILL when the worker drops the
//! attempt after the grace period. On Linux it also gets SIGKILL if the
//! worker process dies, so a recovered job never runs twice at once.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::handler::{JobContext, JobFailure, JobHandler, Retry};
use super::job_log::LogBuffer;
use crate::model::{Progress, now_millis};
use crate::store::{LogStream, MAX_LOG_LINE_BYTES};

/// Bytes of stderr kept for the error message.
const STDERR_TAIL_BYTES: usize = 4096;

/// How long the command's stderr may stay open after it exited (a child
/// it left behind may hold it) before its reader is abandoned.
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// Longest `retry_after_seconds` honoured (a day).
const MAX_RETRY_AFTER_SECONDS: f64 = 86_400.0;

/// Runs a job by running a command.
pub(crate) struct ExternalCommand {
    argv: Vec<String>,
}

impl ExternalCommand {
    /// A handler running `argv` (program, then arguments).
    pub(crate) fn new(argv: Vec<String>) -> ExternalCommand {
        ExternalCommand { argv }
    }
}

/// Signals the command's whole process group; SIGKILL on drop unless the
/// command already exited.
struct ProcessGroup {
    pgid: Option<i32>,
}

impl ProcessGroup {
    fn signal(&self, signal: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg has no memory-safety preconditions.
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}

#[async_trait]
impl JobHandler for ExternalCommand {
    async fn run(&self, ctx: JobContext) -> anyhow::Result<Value> {
        let Some((program, args)) = self.argv.split_first() else {
            anyhow::bail!("job type has an empty command");
        };
        let job = ctx.job();
        let mut command = Command::new(program);
        command
            .args(args)
            .env("JOBD_JOB_ID", job.id.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {program}: {e}"))?;
        let mut group = ProcessGroup {
            pgid: child.id().and_then(|pid| i32::try_from(pid).ok()),
        };

        let input = serde_json::to_vec(&job.view(now_millis()))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A command that does not read its input must not block us.
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
            });
        }
        let log = ctx.log_buffer();
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(read_stderr(s, log)));
        let mut lines = child.stdout.take().map(|s| BufReader::new(s).lines());

        let mut said = Said::default();
        let mut terminated = false;
        while let Some(reader) = lines.as_mut() {
            tokio::select! {
                line = reader.next_line() => match line {
                    Ok(Some(line)) => apply_line(&ctx, &line, &mut said),
                    _ => lines = None,
                },
                _ = ctx.cancelled(), if !terminated => {
                    group.signal(libc::SIGTERM);
                    terminated = true;
                }
            }
        }
        let status = tokio::select! {
            status = child.wait() => status?,
            _ = ctx.cancelled(), if !terminated => {
                group.signal(libc::SIGTERM);
                child.wait().await?
            }
        };
        group.pgid = None;
        // Its last stderr lines reach the log before the attempt ends.
        let tail = match stderr {
            Some(task) => tokio::time::timeout(STDERR_DRAIN, task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        if status.success() {
            return Ok(said.result);
        }
        let tail = tail.trim();
        let message = if tail.is_empty() {
            format!("command exited with {status}")
        } else {
            format!("command exited with {status}: {tail}")
        };
        Err(match said.retry {
            Some(Retry::Never) => JobFailure::permanent(message).into(),
            Some(Retry::At(at)) => JobFailure::retry_at(message, at).into(),
            Some(Retry::After(delay)) => JobFailure::retry_after(message, delay).into(),
            None => anyhow::anyhow!(message),
        })
    }
}

/// What the command's stdout lines have said so far.
#[derive(Default)]
struct Said {
    /// The last `result`.
    result: Value,
    /// How a failure is retried, if a line said (`retry`,
    /// `retry_after_seconds`).
    retry: Option<Retry>,
}

/// Applies one stdout line of the protocol; other lines go to the job's
/// log.
fn apply_line(ctx: &JobContext, line: &str, said: &mut Said) {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
        ctx.log_to(LogStream::Stdout, line);
        return;
    };
    if let Some(value) = fields.get("result") {
        said.result = value.clone();
    }
    if fields.get("retry") == Some(&Value::Bool(false)) {
        said.retry = Some(Retry::Never);
    }
    if let Some(seconds) = fields
        .get("retry_after_seconds")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
    {
        let delay = Duration::from_secs_f64(seconds.min(MAX_RETRY_AFTER_SECONDS));
        said.retry = Some(Retry::After(delay));
    }
    let fraction = fields.get("progress").and_then(Value::as_f64);
    let items_processed = fields.get("items_processed").and_then(Value::as_u64);
    let total_items = fields.get("total_items").and_then(Value::as_u64);
    if fraction.is_some() || items_processed.is_some() || total_items.is_some() {
        let fraction = fraction.unwrap_or_else(|| match (items_processed, total_items) {
            (Some(done), Some(total)) if total > 0 => done as f64 / total as f64,
            _ => ctx.job().progress.fraction,
        });
        ctx.report(Progress {
            fraction,
            items_processed,
            total_items,
        });
    }
}

/// Reads stderr to its end: each line to the job's log (cut to the
/// longest line kept; the rest of a longer line is read past), and the
/// last [`STDERR_TAIL_BYTES`] kept for the error message.
async fn read_stderr(stream: impl AsyncRead + Unpin, log: Option<Arc<LogBuffer>>) -> String {
    let mut reader = BufReader::new(stream);
    let mut tail = Vec::new();
    let mut line = Vec::new();
    let keep = |bytes: &[u8], tail: &mut Vec<u8>| {
        tail.extend_from_slice(bytes);
        if tail.len() > STDERR_TAIL_BYTES {
            tail.drain(..tail.len() - STDERR_TAIL_BYTES);
        }
    };
    loop {
        line.clear();
        let limit = MAX_LOG_LINE_BYTES as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        keep(&line, &mut tail);
        if let Some(log) = &log {
            log.push(LogStream::Stderr, String::from_utf8_lossy(&line));
        }
        // An overlong line: the rest of it goes to the tail only.
        let mut rest = Vec::new();
        while !line.ends_with(b"\n") && line.len() > MAX_LOG_LINE_BYTES {
            rest.clear();
            match (&mut reader)
                .take(64 * 1024)
                .read_until(b'\n', &mut rest)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => keep(&rest, &mut tail),
            }
            if rest.ends_with(b"\n") {
                break;
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}
