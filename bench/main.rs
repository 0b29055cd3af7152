//! `jobd-bench`: measures jobd end to end on this machine, per store.
//!
//! For each store it starts what it needs (a throw-away `redis-server` on a
//! free port unless `--redis-url` names one, a `jobd serve` API node and
//! `jobd worker` processes from the same build), then reports: HTTP submit
//! and status latency (idle and while a backlog drains), end-to-end and
//! steady-drain throughput of no-op jobs from a backlog (with and without a
//! per-user limit across 100 users), worker and server peak RSS, idle
//! worker RSS, Redis CPU time and commands per job, server RSS with 1,000
//! open SSE streams, and the wake-up latency from a job's completion to the
//! waiting stream's event, and what `auth = "token"` costs submissions and
//! status reads against `auth = "none"` (two nodes on one store, measured in
//! alternating rounds). Results go to stdout as a table and, with
//! `--json`, to a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(name = "jobd-bench", about = "Benchmarks jobd on this machine")]
struct Args {
    /// Stores to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,redis")]
    stores: Vec<String>,
    /// Backlog of no-op jobs drained in the throughput runs.
    #[arg(long, default_value_t = 100_000)]
    backlog: usize,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Requests per client in each latency run.
    #[arg(long, default_value_t = 500)]
    requests: usize,
    /// Jobs one worker process runs at once.
    #[arg(long, default_value_t = 64)]
    worker_concurrency: usize,
    /// Use this (throw-away!) Redis instead of starting one; it is flushed.
    #[arg(long)]
    redis_url: Option<String>,
    /// The jobd binary (default: the `jobd` of the same build profile).
    #[arg(long)]
    jobd: Option<PathBuf>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Measurements to run (default: all): latency, idle, drain,
    /// drain_per_user_limit, drain_key_limits, drain_under_load, sse,
    /// wakeup, auth, batch.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    fn runs(&self, measurement: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|m| m == measurement)
    }
}

/// Requests per client in each latency run made while a backlog drains.
const LOAD_REQUESTS: usize = 200;

/// A child process killed on drop.
struct Proc {
    child: Child,
    first_line: String,
}

impl Proc {
    fn start(program: &Path, args: &[String]) -> anyhow::Result<Proc> {
        Proc::start_env(program, args, &[])
    }

    fn start_env(program: &Path, args: &[String], envs: &[(&str, &str)]) -> anyhow::Result<Proc> {
        use std::io::BufRead;
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "error")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first_line = lines.next().and_then(Result::ok).unwrap_or_default();
        std::thread::spawn(move || for _ in lines {});
        Ok(Proc { child, first_line })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak and current resident memory in MiB (VmHWM, VmRSS).
    fn memory_mib(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user and system) process `pid` has used, from
/// `/proc/PID/stat` (clock ticks of 1/100 s); 0 if it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, fields 14 and 15 of stat (the first after ')' is 3).
    (ticks(11) + ticks(12)) / 100.0
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A throw-away redis-server, or the one named by --redis-url.
struct Redis {
    url: String,
    _proc: Option<Proc>,
}

impl Redis {
    async fn start(url: Option<&str>) -> anyhow::Result<Redis> {
        if let Some(url) = url {
            return Ok(Redis {
                url: url.to_owned(),
                _proc: None,
            });
        }
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("jobd-bench-redis-{port}"));
        std::fs::create_dir_all(&dir)?;
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let proc = Proc::start(Path::new("redis-server"), &args)?;
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_info(&url).await.is_err() {
            if Instant::now() > deadline {
                bail!("redis-server did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Redis {
            url,
            _proc: Some(proc),
        })
    }
}

/// Redis INFO: (CPU seconds used, commands processed).
async fn redis_info(url: &str) -> anyhow::Result<(f64, u64)> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").query_async(&mut conn).await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok((
        field("used_cpu_sys:") + field("used_cpu_user:"),
        field("total_commands_processed:") as u64,
    ))
}

async fn redis_flush(url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await?;
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(mut samples: Vec<f64>) -> Value {
    samples.sort_by(f64::total_cmp);
    json!({
        "p50_ms": (percentile(&samples, 0.50) * 1000.0).round() / 1000.0,
        "p99_ms": (percentile(&samples, 0.99) * 1000.0).round() / 1000.0,
        "n": samples.len(),
    })
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Scratch> {
        let path = std::env::temp_dir().join(format!("jobd-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One store's deployment under test: an API node without workers, to
/// which worker processes (or, for SQLite, a node with workers) are added.
struct Deployment {
    jobd: PathBuf,
    store_args: Vec<String>,
    node: Proc,
    api: Api,
    data: Scratch,
}

impl Deployment {
    fn start(
        jobd: &Path,
        store_args: Vec<String>,
        data: Scratch,
        extra: &[&str],
    ) -> anyhow::Result<Deployment> {
        let (node, api) = serve(jobd, &store_args, 0, extra)?;
        Ok(Deployment {
            jobd: jobd.to_owned(),
            store_args,
            node,
            api,
            data,
        })
    }

    /// A `jobd worker` process.
    fn worker(&self, concurrency: usize, extra: &[&str]) -> anyhow::Result<Proc> {
        let mut args = vec![
            "worker".to_string(),
            "--workers".into(),
            concurrency.to_string(),
        ];
        args.extend(self.store_args.iter().cloned());
        args.extend(extra.iter().map(|s| s.to_string()));
        Proc::start(&self.jobd, &args)
    }

    /// Another `jobd serve` node, running `workers` jobs at once itself.
    fn node(&self, workers: usize, extra: &[&str]) -> anyhow::Result<(Proc, Api)> {
        serve(&self.jobd, &self.store_args, workers, extra)
    }
}

/// Starts `jobd serve` on a free port.
fn serve(
    jobd: &Path,
    store_args: &[String],
    workers: usize,
    extra: &[&str],
) -> anyhow::Result<(Proc, Api)> {
    serve_env(jobd, store_args, workers, extra, &[])
}

/// [`serve`] with extra environment variables.
fn serve_env(
    jobd: &Path,
    store_args: &[String],
    workers: usize,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> anyhow::Result<(Proc, Api)> {
    let mut args = vec![
        "serve".to_string(),
        "--bind".into(),
        "127.0.0.1:0".into(),
        "--workers".into(),
        workers.to_string(),
    ];
    args.extend(store_args.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    let node = Proc::start_env(jobd, &args, envs)?;
    let url = node
        .first_line
        .strip_prefix("jobd listening on ")
        .context("jobd serve did not start")?
        .to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    Ok((
        node,
        Api {
            url,
            http,
            token: None,
        },
    ))
}

/// One API node, and the calls the benchmark makes to it.
#[derive(Clone)]
struct Api {
    url: String,
    http: reqwest::Client,
    /// The bearer token sent, for a node with `auth = "token"`.
    token: Option<String>,
}

impl Api {
    /// A request with the token, if any.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn submit(&self, user: &str) -> anyhow::Result<String> {
        self.submit_keyed(user, None).await
    }

    /// A no-op job, with a concurrency key if given.
    async fn submit_keyed(&self, user: &str, key: Option<String>) -> anyhow::Result<String> {
        let mut body = json!({"job_type": "noop", "user_id": user});
        if let Some(key) = key {
            body["concurrency_key"] = json!(key);
        }
        let job: Value = self
            .request(reqwest::Method::POST, "/api/v1/jobs")
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        job["job_id"]
            .as_str()
            .map(str::to_owned)
            .context("no job_id")
    }

    async fn status(&self, id: &str) -> anyhow::Result<()> {
        self.request(reqwest::Method::GET, &format!("/api/v1/jobs/status/{id}"))
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok(())
    }

    async fn stats(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/api/v1/jobs/queue/stats", self.url))
            .send()
            .await?
            .json()
            .await?)
    }
}

/// Submissions and status reads through a node with `auth = "none"` and
/// one with `auth = "token"` (a user token) on the same store, in
/// alternating rounds (which mode goes first alternates too): per mode, the
/// median over rounds of throughput (calls a second, all clients) and of
/// each round's p50, and token over none.
async fn auth_overhead(deployment: &Deployment, args: &Args) -> anyhow::Result<Value> {
    const ROUNDS: usize = 7;
    const ADMIN: &str = "jobd-bench-admin-token-0123456789abcdef";
    let (open_node, open) = deployment.node(0, &[])?;
    let (guarded_node, mut guarded) = serve_env(
        &deployment.jobd,
        &deployment.store_args,
        0,
        &["--auth", "token"],
        &[("JOBD_ADMIN_TOKEN", ADMIN)],
    )?;
    guarded.token = Some(ADMIN.to_owned());
    let made: Value = guarded
        .request(reqwest::Method::POST, "/api/v1/tokens")
        .json(&json!({"user_id": "bench", "role": "user"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    guarded.token = Some(made["token"].as_str().context("no token")?.to_owned());
    // Both read the token's own user's jobs (another user's would be 404s).
    let mut own = Vec::new();
    for _ in 0..200 {
        own.push(guarded.submit("bench").await?);
    }
    let own = Arc::new(own);
    let pids = [open_node.pid(), guarded_node.pid()];
    let mut rounds: [Vec<(f64, f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    // The serving node's CPU seconds over every call of each mode.
    let mut cpu = [0.0f64; 2];
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for mode in order {
            let api = if mode == 0 {
                open.clone()
            } else {
                guarded.clone()
            };
            let reads = own.clone();
            let calls = (args.clients * args.requests) as f64;
            let cpu_before = cpu_seconds(pids[mode]);
            let started = Instant::now();
            let a = api.clone();
            let submit = timed(args.clients, args.requests, move |_| {
                let a = a.clone();
                async move { a.submit("bench").await.map(drop) }
            })
            .await?;
            let submit_rate = calls / started.elapsed().as_secs_f64();
            let started = Instant::now();
            let status = timed(args.clients, args.requests, move |i| {
                let api = api.clone();
                let reads = reads.clone();
                async move { api.status(&reads[i % reads.len()]).await }
            })
            .await?;
            let status_rate = calls / started.elapsed().as_secs_f64();
            cpu[mode] += cpu_seconds(pids[mode]) - cpu_before;
            let p50 = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                percentile(&v, 0.5)
            };
            rounds[mode].push((submit_rate, p50(submit), status_rate, p50(status)));
        }
    }
    let median = |mode: usize, pick: fn(&(f64, f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = rounds[mode].iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let calls_per_mode = (2 * ROUNDS * args.clients * args.requests) as f64;
    let cpu_us = |mode: usize| cpu[mode] / calls_per_mode * 1e6;
    let side = |mode: usize| {
        json!({
            "node_cpu_us_per_call": cpu_us(mode),
            "submit_per_s": median(mode, |r| r.0),
            "submit_p50_ms": median(mode, |r| r.1),
            "status_per_s": median(mode, |r| r.2),
            "status_p50_ms": median(mode, |r| r.3),
        })
    };
    let ratio = |pick: fn(&(f64, f64, f64, f64)) -> f64| median(1, pick) / median(0, pick);
    Ok(json!({
        "rounds": ROUNDS,
        "none": side(0),
        "token": side(1),
        "token_over_none": {
            "node_cpu_us_per_call": cpu_us(1) / cpu_us(0),
            "submit_per_s": ratio(|r| r.0),
            "submit_p50_ms": ratio(|r| r.1),
            "status_per_s": ratio(|r| r.2),
            "status_p50_ms": ratio(|r| r.3),
        },
    }))
}

/// `clients` tasks each running `per_client` timed calls of `call`.
async fn timed<F, Fut>(clients: usize, per_client: usize, call: F) -> anyhow::Result<Vec<f64>>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let call = Arc::new(call);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let started = Instant::now();
                call(client * per_client + i).await?;
                samples.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

/// Submits `n` jobs over `clients` connections, users round-robin.
async fn fill(
    deployment: &Arc<Deployment>,
    n: usize,
    clients: usize,
    users: usize,
) -> anyhow::Result<Vec<String>> {
    fill_keyed(deployment, n, clients, users, 0).await
}

/// [`fill`], the k-th job with concurrency key `k % keys` (none when
/// `keys` is 0).
async fn fill_keyed(
    deployment: &Arc<Deployment>,
    n: usize,
    clients: usize,
    users: usize,
    keys: usize,
) -> anyhow::Result<Vec<String>> {
    let per = n.div_ceil(clients);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let api = deployment.api.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..per {
                let k = client * per + i;
                if k >= n {
                    break;
                }
                let key = (keys > 0).then(|| format!("key{}", k % keys));
                ids.push(api.submit_keyed(&format!("user{}", k % users), key).await?);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    Ok(ids)
}

/// Drains a backlog with one worker process (with Redis) or one node
/// running API and workers together (SQLite, whose writes are best made by
/// one process); returns the run's figures. The latency runs go to the
/// node beside the workers.
async fn drain(
    deployment: &Arc<Deployment>,
    args: &Args,
    redis: Option<&Redis>,
    users: usize,
    limit_args: &[&str],
    under_load: bool,
) -> anyhow::Result<Value> {
    drain_keyed(deployment, args, redis, users, 0, limit_args, under_load).await
}

/// [`drain`] of jobs over `keys` concurrency keys (0: none).
async fn drain_keyed(
    deployment: &Arc<Deployment>,
    args: &Args,
    redis: Option<&Redis>,
    users: usize,
    keys: usize,
    limit_args: &[&str],
    under_load: bool,
) -> anyhow::Result<Value> {
    let baseline = deployment.api.stats().await?["completed_jobs"]
        .as_u64()
        .unwrap_or(0);
    let enqueue_started = Instant::now();
    let ids = Arc::new(fill_keyed(deployment, args.backlog, args.clients, users, keys).await?);
    let enqueue_s = enqueue_started.elapsed().as_secs_f64();
    let before = match redis {
        Some(r) => Some(redis_info(&r.url).await?),
        None => None,
    };
    let (worker, api) = match redis {
        Some(_) => (
            deployment.worker(args.worker_concurrency, limit_args)?,
            deployment.api.clone(),
        ),
        None => deployment.node(args.worker_concurrency, limit_args)?,
    };
    let spawned = Instant::now();
    // With `under_load`, latency while draining, from `clients` concurrent
    // clients: status reads, then submissions (whose jobs join the drain).
    let load = under_load.then(|| {
        let d = api.clone();
        let under_load_ids = ids.clone();
        let clients = args.clients;
        tokio::spawn(async move {
            let status = {
                let d = d.clone();
                timed(clients, LOAD_REQUESTS, move |i| {
                    let d = d.clone();
                    let ids = under_load_ids.clone();
                    async move { d.status(&ids[(i * 7919) % ids.len()]).await }
                })
                .await?
            };
            let submit = timed(clients, LOAD_REQUESTS, move |i| {
                let d = d.clone();
                async move { d.submit(&format!("user{}", i % users)).await.map(drop) }
            })
            .await?;
            anyhow::Ok((status, submit))
        })
    });
    let jobs = args.backlog + usize::from(under_load) * args.clients * LOAD_REQUESTS;
    let target = baseline + jobs as u64;
    let (mut first, mut done) = (None, 0);
    let deadline = Instant::now() + Duration::from_secs(600);
    while done < target {
        done = api.stats().await?["completed_jobs"].as_u64().unwrap_or(0);
        if first.is_none() && done > baseline {
            first = Some(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("drain did not finish: {done} of {target}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let finished = spawned.elapsed().as_secs_f64();
    let first = first.map_or(0.0, |f| f.duration_since(spawned).as_secs_f64());
    let latency = match load {
        Some(load) => Some(load.await??),
        None => None,
    };
    let (worker_peak, _) = worker.memory_mib();
    let mut result = json!({
        "jobs": jobs,
        "users": users,
        "enqueue_jobs_per_s": (args.backlog as f64 / enqueue_s).round(),
        "end_to_end_jobs_per_s": (jobs as f64 / (enqueue_s + finished)).round(),
        "drain_jobs_per_s": (jobs as f64 / finished).round(),
        "steady_jobs_per_s": ((jobs - 1) as f64 / (finished - first).max(1e-9)).round(),
        "worker_peak_rss_mib": (worker_peak * 10.0).round() / 10.0,
    });
    if let Some((status, submit)) = latency {
        result["status_under_load"] = summary(status);
        result["submit_under_load"] = summary(submit);
    }
    if let (Some(r), Some((cpu0, cmds0))) = (redis, before) {
        let (cpu1, cmds1) = redis_info(&r.url).await?;
        result["redis_cpu_us_per_job"] = json!(((cpu1 - cpu0) * 1e6 / jobs as f64).round());
        result["redis_commands_per_job"] =
            json!((((cmds1 - cmds0) as f64) / jobs as f64 * 10.0).round() / 10.0);
    }
    drop(worker);
    Ok(result)
}

/// Active concurrency keys in [`drain_key_limits`].
const KEY_VALUES: usize = 10_000;

/// The drain of the same backlog over [`KEY_VALUES`] concurrency keys
/// with a per-key limit of 1 (`[job_types.noop] max_concurrent_per_key`,
/// the workers' configuration), then without key limits, in turn; the
/// ratio of their steady rates (issue 17: at least 0.8).
async fn drain_key_limits(
    deployment: &Arc<Deployment>,
    args: &Args,
    redis: Option<&Redis>,
) -> anyhow::Result<Value> {
    let config = deployment.data.0.join("key-limits.toml");
    std::fs::write(&config, "[job_types.noop]\nmax_concurrent_per_key = 1\n")?;
    let config = config.display().to_string();
    let wide = [
        "--global-max-concurrent-jobs",
        "1000",
        "--per-user-max-concurrent-jobs",
        "1000",
    ];
    let mut keyed_args = wide.to_vec();
    keyed_args.extend(["--config", config.as_str()]);
    let limited = drain_keyed(deployment, args, redis, 10, KEY_VALUES, &keyed_args, false).await?;
    let plain = drain(deployment, args, redis, 10, &wide, false).await?;
    let rate = |r: &Value| r["steady_jobs_per_s"].as_f64().unwrap_or(0.0);
    let ratio = rate(&limited) / rate(&plain).max(1e-9);
    Ok(json!({
        "keys": KEY_VALUES,
        "per_key_max": 1,
        "with_key_limits": limited,
        "without": plain,
        "ratio": (ratio * 1000.0).round() / 1000.0,
    }))
}

/// Opens `n` SSE streams on pending jobs; returns the server's RSS then.
async fn streams_rss(deployment: &Arc<Deployment>, n: usize) -> anyhow::Result<Value> {
    let ids = fill(deployment, n, 16, 10).await?;
    let (_, before) = deployment.node.memory_mib();
    let mut streams = Vec::new();
    let client = reqwest::Client::new();
    for id in &ids {
        let response = client
            .get(format!(
                "{}/api/v1/jobs/status/{id}/stream",
                deployment.api.url
            ))
            .send()
            .await?;
        streams.push(response);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while deployment.api.stats().await?["cache_size"]
        .as_u64()
        .unwrap_or(0)
        < n as u64
    {
        if Instant::now() > deadline {
            bail!("streams did not open");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, with_streams) = deployment.node.memory_mib();
    drop(streams);
    Ok(
        json!({"streams": n, "server_rss_before_mib": before, "server_rss_with_streams_mib": with_streams}),
    )
}

/// Time from a job's completion (its completed_at) to the stream event.
async fn wakeup(deployment: &Arc<Deployment>, jobs: usize) -> anyhow::Result<Value> {
    let worker = deployment.worker(4, &[])?;
    let mut samples = Vec::new();
    for _ in 0..jobs {
        let job: Value = deployment
            .api
            .http
            .post(format!("{}/api/v1/jobs", deployment.api.url))
            .json(&json!({"job_type": "sleep", "parameters": {"seconds": 0.02, "steps": 1}}))
            .send()
            .await?
            .json()
            .await?;
        let id = job["job_id"].as_str().context("job_id")?.to_owned();
        let response = deployment
            .api
            .http
            .get(format!(
                "{}/api/v1/jobs/status/{id}/stream",
                deployment.api.url
            ))
            .send()
            .await?;
        // The same SSE parser as the CLI's, so the latency measured is what
        // a client that decodes events correctly sees.
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event?;
            if event.event == "job_complete" {
                let received = chrono::Utc::now();
                let job: Value = serde_json::from_str(&event.data)?;
                let done = chrono::DateTime::parse_from_rfc3339(
                    job["completed_at"].as_str().context("completed_at")?,
                )?;
                samples.push(
                    (received - done.with_timezone(&chrono::Utc))
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1000.0,
                );
                break;
            }
        }
    }
    drop(worker);
    Ok(summary(samples))
}

async fn bench_store(args: &Args, jobd: &Path, store: &str) -> anyhow::Result<Value> {
    let redis = match store {
        "redis" => Some(Redis::start(args.redis_url.as_deref()).await?),
        "sqlite" => None,
        other => bail!("unknown store {other}"),
    };
    let data = Scratch::new(store)?;
    let store_args: Vec<String> = match &redis {
        Some(r) => {
            redis_flush(&r.url).await?;
            vec![
                "--store".into(),
                r.url.clone(),
                "--redis-prefix".into(),
                "bench".into(),
            ]
        }
        None => vec![
            "--data-dir".into(),
            data.0.display().to_string(),
            "--sqlite-synchronous".into(),
            "normal".into(),
        ],
    };
    let wide = [
        "--global-max-concurrent-jobs",
        "1000",
        "--per-user-max-concurrent-jobs",
        "1000",
    ];
    let deployment = Arc::new(Deployment::start(jobd, store_args, data, &wide)?);
    let mut out = json!({"store": store});

    if args.runs("latency") {
        let d = deployment.api.clone();
        let submit = timed(args.clients, args.requests, move |i| {
            let d = d.clone();
            async move { d.submit(&format!("user{}", i % 10)).await.map(drop) }
        })
        .await?;
        out["submit_latency"] = summary(submit);
        let ids = Arc::new(fill(&deployment, 1000, args.clients, 10).await?);
        let d = deployment.api.clone();
        let status = timed(args.clients, args.requests, move |i| {
            let d = d.clone();
            let ids = ids.clone();
            async move { d.status(&ids[i % ids.len()]).await }
        })
        .await?;
        out["status_latency"] = summary(status);
    }
    if args.runs("idle") {
        let idle = deployment.worker(args.worker_concurrency, &wide)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        out["idle_worker_rss_mib"] = json!(idle.memory_mib().1);
    }
    // Throughput: no limits binding, then a per-user limit across 100 users;
    // then latency while a backlog drains (its load takes CPU the drain
    // would use, so it gets a run of its own).
    if args.runs("drain") {
        out["drain"] = drain(&deployment, args, redis.as_ref(), 10, &wide, false).await?;
    }
    if args.runs("drain_key_limits") {
        out["drain_key_limits"] = drain_key_limits(&deployment, args, redis.as_ref()).await?;
    }
    if args.runs("drain_per_user_limit") {
        let limited = [
            "--global-max-concurrent-jobs",
            "1000",
            "--per-user-max-concurrent-jobs",
            "2",
        ];
        out["drain_per_user_limit"] =
            drain(&deployment, args, redis.as_ref(), 100, &limited, false).await?;
    }
    if args.runs("drain_under_load") {
        out["drain_under_load"] = drain(&deployment, args, redis.as_ref(), 10, &wide, true).await?;
    }
    out["server_peak_rss_mib"] = json!(deployment.node.memory_mib().0);
    if args.runs("sse") {
        out["sse"] = streams_rss(&deployment, 1000).await?;
    }
    if args.runs("wakeup") {
        out["wakeup_latency"] = wakeup(&deployment, 200).await?;
    }
    if args.runs("auth") {
        out["auth"] = auth_overhead(&deployment, args).await?;
    }
    if args.runs("batch") {
        out["batch"] = batch_against_single(&deployment, args).await?;
    }
    Ok(out)
}

/// Jobs submitted one a call in the first half of [`batch_against_single`].
const SINGLE_JOBS: usize = 20_000;
/// Calls of its batched half: enough that it lasts about as long as the
/// first (16 calls, as there were, took a third of a second, and the
/// ratio moved by half between runs).
const BATCH_CALLS: usize = 128;
/// Jobs per call of its batched half (the API's largest batch).
const BATCH_SIZE: usize = 1_000;

/// Submission throughput over HTTP: [`SINGLE_JOBS`] jobs one call each,
/// then [`BATCH_CALLS`] batches of [`BATCH_SIZE`], both from
/// `args.clients` concurrent clients against the API node (no workers take
/// them, so neither half competes with a drain). Jobs per second of each,
/// timed by the wall clock around all calls, and their ratio.
async fn batch_against_single(deployment: &Deployment, args: &Args) -> anyhow::Result<Value> {
    let clients = args.clients.max(1);
    let single_per_client = SINGLE_JOBS / clients;
    let api = Arc::new(deployment.api.clone());
    let started = Instant::now();
    let single_api = api.clone();
    timed(clients, single_per_client, move |i| {
        let api = single_api.clone();
        async move { api.submit(&format!("user{}", i % 10)).await.map(drop) }
    })
    .await?;
    let single = (single_per_client * clients) as f64 / started.elapsed().as_secs_f64();

    let batch_clients = clients.min(BATCH_CALLS);
    let per_client = BATCH_CALLS / batch_clients;
    let batch: Vec<Value> = (0..BATCH_SIZE)
        .map(|i| json!({"job_type": "noop", "user_id": format!("user{}", i % 10)}))
        .collect();
    let body = Arc::new(json!({ "jobs": batch }));
    let started = Instant::now();
    timed(batch_clients, per_client, move |_| {
        let api = api.clone();
        let body = body.clone();
        async move {
            api.request(reqwest::Method::POST, "/api/v1/jobs/batch")
                .json(&*body)
                .send()
                .await?
                .error_for_status()?;
            Ok(())
        }
    })
    .await?;
    let batched =
        (per_client * batch_clients * BATCH_SIZE) as f64 / started.elapsed().as_secs_f64();
    Ok(json!({
        "single_jobs_per_s": single.round(),
        "batch_jobs_per_s": batched.round(),
        "batch_size": BATCH_SIZE,
        "ratio": (batched / single * 10.0).round() / 10.0,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let jobd = match &args.jobd {
        Some(path) => path.clone(),
        // A bench target lives in `target/<profile>/deps/`, the binary one
        // level up.
        None => std::env::current_exe()?
            .ancestors()
            .nth(2)
            .context("no target dir")?
            .join("jobd"),
    };
    let mut results = Vec::new();
    for store in &args.stores {
        eprintln!("jobd-bench: measuring {store} ...");
        let result = bench_store(&args, &jobd, store).await?;
        println!("{}", serde_json::to_string_pretty(&result)?);
        results.push(result);
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    Ok(())
}
