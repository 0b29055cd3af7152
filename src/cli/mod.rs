//! The client commands of the `jobd` binary. They talk to a server over
//! HTTP only (`--url`, env `JOBD_URL`), so they work against a remote one.
//!
//! Exit codes: 0 success; 1 the server answered with an error or could not
//! be reached; 2 bad local input (or a download that cannot be written);
//! 3 a watched job (or pipeline stage) failed; 4 it was cancelled.

pub mod client;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Map, Value, json};

use self::client::{Client, ClientError};
use crate::pipeline;

/// Exit code of `watch` for a failed job.
pub const EXIT_FAILED: u8 = 3;
/// Exit code of `watch` for a cancelled job.
pub const EXIT_CANCELLED: u8 = 4;

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Submit a job and print it.
    Submit {
        /// The job type.
        job_type: String,
        /// A parameter as KEY=VALUE; VALUE is read as JSON when it parses, else as text.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// All parameters as one JSON object (merged under --param).
        #[arg(long, value_name = "JSON")]
        params_json: Option<String>,
        /// The job's user (default: the server's default_user).
        #[arg(long)]
        user: Option<String>,
        /// Priority within the user's queue; higher runs first.
        #[arg(long)]
        priority: Option<i32>,
        /// Run after this many seconds.
        #[arg(long)]
        delay: Option<f64>,
        /// Attempts allowed.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Per-attempt time limit in seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// An idempotency key: run again with the same key and arguments,
        /// the command prints the job the first run stored.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Cancel the job as expired unless it starts within this many seconds.
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<f64>,
        /// A debounce key: submissions with it collapse into one waiting job.
        #[arg(long, requires = "debounce_period")]
        debounce_key: Option<String>,
        /// With --debounce-key: start this many seconds after the last submission...
        #[arg(long, value_name = "SECONDS", requires = "debounce_key")]
        debounce_period: Option<f64>,
        /// ... but no later than this many seconds after the first.
        #[arg(long, value_name = "SECONDS", requires = "debounce_key")]
        debounce_max_wait: Option<f64>,
    },
    /// Print a job.
    Status {
        /// The job id.
        job_id: String,
    },
    /// Follow a job's progress until it ends; exits 3 if it failed, 4 if cancelled.
    Watch {
        /// The job id.
        job_id: String,
    },
    /// Cancel a job.
    Cancel {
        /// The job id.
        job_id: String,
    },
    /// Restart a failed or cancelled job.
    Restart {
        /// The job id.
        job_id: String,
        /// Fresh parameters, a JSON object.
        #[arg(long, value_name = "JSON")]
        params_json: Option<String>,
    },
    /// Run the document pipeline (processing, taxonomy, extraction, dataset)
    /// on files, following every stage; prints the dataset's download URLs,
    /// or with --out downloads it.
    Pipeline {
        /// Text, Markdown or HTML files, sent inline.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The jobs' user.
        #[arg(long)]
        user: Option<String>,
        /// Download the dataset's files (train.jsonl, ...) into this
        /// directory, created if missing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Submit many jobs in one call, all or none: FILE (or `-` for stdin)
    /// holds one submission per line, as `submit`'s JSON body; a line's
    /// `depends_on` may name an earlier line by its position from 0.
    Batch {
        /// JSON Lines of submissions.
        file: PathBuf,
    },
    /// Print the download URLs of a job's artifacts, or with --out
    /// download them.
    Artifacts {
        /// The job id.
        job_id: String,
        /// Download them into this directory, created if missing.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print queue statistics.
    Stats,
    /// Manage API tokens (an admin token in JOBD_TOKEN).
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// List jobs, newest first.
    List {
        /// Only jobs in this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this user's jobs.
        #[arg(long)]
        user: Option<String>,
        /// Only this job type.
        #[arg(long = "type")]
        job_type: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

/// `jobd token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (its secret is shown only now).
    Create {
        /// The user it acts as.
        #[arg(long)]
        user: Option<String>,
        /// admin, user, viewer or worker.
        #[arg(long)]
        role: Option<String>,
        /// Seconds until it stops working (default: never; a job token 900).
        #[arg(long)]
        expires_in: Option<f64>,
        /// Limit it to following this job.
        #[arg(long)]
        job: Option<String>,
    },
    /// List tokens, without secrets.
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        token_id: String,
    },
}

/// Runs a client command against the server at `url`, with `token`.
pub async fn run(url: &str, token: Option<String>, command: ClientCommand) -> ExitCode {
    let client = Client::new(url).with_token(token);
    match execute(&client, command).await {
        Ok(code) => code,
        Err(e @ ClientError::Save { .. }) => {
            eprintln!("jobd: {e}");
            ExitCode::from(2)
        }
        Err(message) => {
            eprintln!("jobd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn parse_object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("{what} must be a JSON object")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

/// `jobd token create|list|revoke`: the token API's answer.
async fn token(client: &Client, action: TokenCommand) -> Result<Value, ClientError> {
    match action {
        TokenCommand::Create {
            user,
            role,
            expires_in,
            job,
        } => {
            let mut body = json!({});
            for (key, value) in [
                ("user_id", user.map(Value::from)),
                ("role", role.map(Value::from)),
                ("expires_in_seconds", expires_in.map(Value::from)),
                ("job_id", job.map(Value::from)),
            ] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            client
                .call(Method::POST, "/api/v1/tokens", Some(&body))
                .await
        }
        TokenCommand::List => client.call(Method::GET, "/api/v1/tokens", None).await,
        TokenCommand::Revoke { token_id } => {
            client
                .call(Method::DELETE, &format!("/api/v1/tokens/{token_id}"), None)
                .await
        }
    }
}

/// Builds the parameters of `submit` from --params-json and --param pairs.
fn build_parameters(params_json: Option<&str>, pairs: &[String]) -> Result<Value, String> {
    let mut parameters = match params_json {
        Some(text) => parse_object(text, "--params-json")?,
        None => Map::new(),
    };
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--param '{pair}' is not KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        parameters.insert(key.to_owned(), value);
    }
    Ok(Value::Object(parameters))
}

async fn execute(client: &Client, command: ClientCommand) -> Result<ExitCode, ClientError> {
    let value = match command {
        ClientCommand::Submit {
            job_type,
            params,
            params_json,
            user,
            priority,
            delay,
            max_attempts,
            timeout,
            idempotency_key,
            expires_in,
            debounce_key,
            debounce_period,
            debounce_max_wait,
        } => {
            let parameters = match build_parameters(params_json.as_deref(), &params) {
                Ok(p) => p,
                Err(message) => {
                    eprintln!("jobd: {message}");
                    return Ok(ExitCode::from(2));
                }
            };
            let mut body = json!({ "job_type": job_type, "parameters": parameters });
            for (key, value) in [
                ("user_id", user.map(Value::from)),
                ("priority", priority.map(Value::from)),
                ("delay_seconds", delay.map(Value::from)),
                ("max_attempts", max_attempts.map(Value::from)),
                ("timeout_seconds", timeout.map(Value::from)),
                ("idempotency_key", idempotency_key.map(Value::from)),
                ("expires_in_seconds", expires_in.map(Value::from)),
                (
                    "debounce",
                    debounce_key.map(|key| {
                        json!({"key": key, "period_seconds": debounce_period,
                               "max_wait_seconds": debounce_max_wait})
                    }),
                ),
            ] {
                if let Some(value) = value {
                    body[key] = value;
                }
            }
            client
                .call(Method::POST, "/api/v1/jobs", Some(&body))
                .await?
        }
        ClientCommand::Status { job_id } => {
            client
                .call(Method::GET, &format!("/api/v1/jobs/status/{job_id}"), None)
                .await?
        }
        ClientCommand::Watch { job_id } => return watch(client, &job_id).await,
        ClientCommand::Pipeline { files, user, out } => {
            return pipeline(client, &files, user, out.as_deref()).await;
        }
        ClientCommand::Batch { file } => {
            let jobs = match read_submissions(&file) {
                Ok(jobs) => jobs,
                Err(message) => {
                    eprintln!("jobd: {message}");
                    return Ok(ExitCode::from(2));
                }
            };
            client
                .call(
                    Method::POST,
                    "/api/v1/jobs/batch",
                    Some(&json!({ "jobs": jobs })),
                )
                .await?
        }
        ClientCommand::Artifacts { job_id, out } => {
            artifacts(client, &job_id, out.as_deref()).await?;
            return Ok(ExitCode::SUCCESS);
        }
        ClientCommand::Cancel { job_id } => {
            client
                .call(Method::POST, &format!("/api/v1/jobs/cancel/{job_id}"), None)
                .await?
        }
        ClientCommand::Restart {
            job_id,
            params_json,
        } => {
            let body = match params_json
                .as_deref()
                .map(|t| parse_object(t, "--params-json"))
            {
                Some(Ok(parameters)) => Some(json!({ "parameters": parameters })),
                Some(Err(message)) => {
                    eprintln!("jobd: {message}");
                    return Ok(ExitCode::from(2));
                }
                None => None,
            };
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/jobs/restart/{job_id}"),
                    body.as_ref(),
                )
                .await?
        }
        ClientCommand::Stats => {
            client
                .call(Method::GET, "/api/v1/jobs/queue/stats", None)
                .await?
        }
        ClientCommand::Token { action } => token(client, action).await?,
        ClientCommand::List {
            status,
            user,
            job_type,
            limit,
        } => {
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            for (key, value) in [
                ("status", status.as_deref()),
                ("user_id", user.as_deref()),
                ("job_type", job_type.as_deref()),
            ] {
                if let Some(value) = value {
                    query.push((key, value));
                }
            }
            client.get("/api/v1/jobs", &query).await?
        }
    };
    print_json(&value);
    Ok(ExitCode::SUCCESS)
}

/// A progress bar in jobd's style, labelled.
fn progress_bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:<20} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Follows a job's stream onto `bar` until it ends; returns the job as it
/// ended (or as last seen, if the stream broke off).
async fn follow_job(
    client: &Client,
    job_id: &str,
    bar: &ProgressBar,
) -> Result<Value, ClientError> {
    let mut last = Value::Null;
    client
        .follow(
            &format!("/api/v1/jobs/status/{job_id}/stream"),
            |event, data| {
                let progress = data["progress"].as_f64().unwrap_or(0.0);
                bar.set_position((progress * 1000.0) as u64);
                let items = match (
                    data["metrics"]["items_processed"].as_u64(),
                    data["metrics"]["total_items"].as_u64(),
                ) {
                    (Some(done), Some(total)) => format!(" ({done}/{total} items)"),
                    _ => String::new(),
                };
                bar.set_message(format!("{}{items}", data["status"].as_str().unwrap_or("?")));
                last = data.clone();
                event != "job_complete"
            },
        )
        .await?;
    bar.finish();
    Ok(last)
}

/// Reports how a job ended and the exit code that says so.
fn report_end(job_id: &str, job: &Value) -> ExitCode {
    match job["status"].as_str().unwrap_or("unknown") {
        "completed" => ExitCode::SUCCESS,
        "failed" => {
            eprintln!(
                "job {job_id} failed: {}",
                job["error"].as_str().unwrap_or("")
            );
            ExitCode::from(EXIT_FAILED)
        }
        "cancelled" => {
            eprintln!(
                "job {job_id} was cancelled{}",
                job["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            ExitCode::from(EXIT_CANCELLED)
        }
        other => {
            eprintln!("job {job_id}: stream ended while {other}");
            ExitCode::FAILURE
        }
    }
}

/// Follows a job's stream with a progress bar; the exit code tells how it ended.
async fn watch(client: &Client, job_id: &str) -> Result<ExitCode, ClientError> {
    let bar = progress_bar("job");
    let job = follow_job(client, job_id, &bar).await?;
    bar.finish_and_clear();
    if job["status"] == "completed" {
        println!("job {job_id} completed");
        print_json(&job["result"]);
    }
    Ok(report_end(job_id, &job))
}

/// Creates the download directory `dir` and any missing parents.
async fn create_out_dir(dir: &Path) -> Result<(), ClientError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|source| ClientError::Save {
            path: dir.to_owned(),
            source,
        })
}

/// Prints the absolute download URL of each of a job's artifacts, one a
/// line; or, with `out`, downloads each into `out` (created if missing)
/// and prints its path and size. Over HTTP only, so it works wherever the
/// server keeps its artifacts.
async fn artifacts(client: &Client, job_id: &str, out: Option<&Path>) -> Result<(), ClientError> {
    let listed = client
        .call(
            Method::GET,
            &format!("/api/v1/jobs/status/{job_id}/artifacts"),
            None,
        )
        .await?;
    let Some(items) = listed["artifacts"].as_array() else {
        return Err(client.unexpected(format!("no artifact list in {listed}")));
    };
    if let Some(dir) = out {
        create_out_dir(dir).await?;
    }
    for item in items {
        let (Some(name), Some(url)) = (item["name"].as_str(), item["url"].as_str()) else {
            return Err(client.unexpected(format!("an artifact without name or url: {item}")));
        };
        match out {
            Some(dir) => {
                let (path, size) = client.download(url, dir, name).await?;
                println!("{} ({size} bytes)", path.display());
            }
            None => println!("{}", client.url(url)),
        }
    }
    Ok(())
}

/// Submits the document pipeline for `files` (their content inline, so it
/// works against a remote server), follows every stage, prints the
/// dataset's result and its download URLs, or with `out` downloads its
/// files there. Exits 3 or 4 when a stage failed or was cancelled.
async fn pipeline(
    client: &Client,
    files: &[PathBuf],
    user: Option<String>,
    out: Option<&Path>,
) -> Result<ExitCode, ClientError> {
    let mut documents = Vec::new();
    for file in files {
        match std::fs::read_to_string(file) {
            Ok(text) => documents.push(json!({ "name": file.display().to_string(), "text": text })),
            Err(e) => {
                eprintln!("jobd: cannot read {}: {e}", file.display());
                return Ok(ExitCode::from(2));
            }
        }
    }
    // An --out that cannot be made fails now, not after the whole run.
    if let Some(dir) = out {
        create_out_dir(dir).await?;
    }
    let mut body = json!({ "documents": documents });
    if let Some(user) = user {
        body["user_id"] = Value::from(user);
    }
    let submitted = client
        .call(Method::POST, "/api/v1/jobs/pipeline", Some(&body))
        .await?;
    let bars = indicatif::MultiProgress::new();
    let stages: Vec<(&str, String, ProgressBar)> = pipeline::STAGES
        .iter()
        .filter_map(|stage| {
            let id = submitted["jobs"][stage].as_str()?.to_owned();
            Some((*stage, id, bars.add(progress_bar(stage))))
        })
        .collect();
    let ends = futures::future::join_all(
        stages
            .iter()
            .map(|(_, id, bar)| follow_job(client, id, bar)),
    )
    .await;
    let mut code = ExitCode::SUCCESS;
    for ((stage, id, _), end) in stages.iter().zip(ends) {
        let job = end?;
        if job["status"] != "completed" {
            eprintln!("stage {stage} did not complete");
            if code == ExitCode::SUCCESS {
                code = report_end(id, &job);
            }
        } else if *stage == pipeline::STAGES[3] {
            println!("dataset ready:");
            print_json(&job["result"]);
            match out {
                Some(dir) => println!("downloading to {}:", dir.display()),
                None => println!("download:"),
            }
            artifacts(client, id, out).await?;
        }
    }
    Ok(code)
}

/// The submissions of a JSON Lines file (`-`: stdin), blank lines skipped.
fn read_submissions(file: &Path) -> Result<Vec<Value>, String> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(number, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: {e}", file.display(), number + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_merge_json_and_pairs() {
        let p = build_parameters(
            Some(r#"{"a": 1, "b": "x"}"#),
            &["b=2".into(), "c=hello".into()],
        )
        .unwrap();
        assert_eq!(p, json!({"a": 1, "b": 2, "c": "hello"}));
        assert!(build_parameters(Some("[1]"), &[]).is_err());
        assert!(build_parameters(None, &["novalue".into()]).is_err());
    }
}
