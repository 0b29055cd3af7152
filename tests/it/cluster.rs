//! Many processes on one Redis: API nodes and workers sharing one queue,
//! a worker killed mid-run, a paused worker fenced off, key growth (with
//! remote jobs beside built-in ones), and a Redis restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jobd::cli::client::Client;
use serde_json::{Value, json};

use crate::support::{RedisServer, Scratch, Server, StoreKind, wait_until};

/// A job that records `start`/`stop` lines (job id, worker pid, time in µs)
/// to a shared log, sleeping `seconds` (a parameter) in between.
const RECORDING_JOB: &str = r#"#!/bin/bash
# Forks nothing but sleep: stdin by `read`, time by $EPOCHREALTIME (µs).
IFS= read -r -d '' input
[[ $input =~ \"seconds\":([0-9.]+) ]] && seconds=${BASH_REMATCH[1]}
echo "start $JOBD_JOB_ID $PPID ${EPOCHREALTIME/./}" >> "$JOB_LOG"
sleep "${seconds:-0.05}"
echo "stop $JOBD_JOB_ID $PPID ${EPOCHREALTIME/./}" >> "$JOB_LOG"
"#;

/// A config with the `record` job type and the given limits.
fn recording_config(scratch: &Scratch, global: usize, per_user: usize) -> Vec<String> {
    let script = scratch.write("record.sh", RECORDING_JOB);
    let config = scratch.write(
        "jobd.toml",
        &format!(
            "global_max_concurrent_jobs = {global}\nper_user_max_concurrent_jobs = {per_user}\n\n\
             [job_types.record]\ncommand = [\"bash\", \"{}\"]\n",
            script.display()
        ),
    );
    vec!["--config".into(), config.display().to_string()]
}

fn log_path(scratch: &Scratch) -> PathBuf {
    scratch.path().join("jobs.log")
}

/// One run of a job as the log tells it.
#[derive(Debug, Clone)]
struct Run {
    job: String,
    worker_pid: String,
    start: u128,
    stop: Option<u128>,
}

fn read_runs(log: &Path) -> Vec<Run> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut runs: Vec<Run> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [kind, job, pid, at] = parts[..] else {
            continue;
        };
        let at: u128 = at.parse().unwrap();
        match kind {
            "start" => runs.push(Run {
                job: job.into(),
                worker_pid: pid.into(),
                start: at,
                stop: None,
            }),
            _ => {
                if let Some(run) = runs
                    .iter_mut()
                    .rev()
                    .find(|r| r.job == job && r.worker_pid == pid && r.stop.is_none())
                {
                    run.stop = Some(at);
                }
            }
        }
    }
    runs
}

fn now_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// The most runs that overlap at any instant, overall and per key.
fn max_overlap<'a>(
    runs: impl Iterator<Item = (&'a str, u128, u128)>,
) -> (usize, HashMap<String, usize>) {
    let mut events: Vec<(u128, i32, String)> = Vec::new();
    for (key, start, stop) in runs {
        events.push((start, 1, key.to_owned()));
        events.push((stop, -1, key.to_owned()));
    }
    // Ends before starts at the same instant.
    events.sort_by_key(|e| (e.0, e.1));
    let (mut now, mut max) = (0i64, 0usize);
    let mut per_key: HashMap<String, i64> = HashMap::new();
    let mut max_per_key: HashMap<String, usize> = HashMap::new();
    for (_, delta, key) in events {
        now += delta as i64;
        max = max.max(now as usize);
        let n = per_key.entry(key.clone()).or_default();
        *n += delta as i64;
        let m = max_per_key.entry(key).or_default();
        *m = (*m).max(*n as usize);
    }
    (max, max_per_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_nodes_and_three_workers_share_one_queue_through_a_worker_crash() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    const GLOBAL: usize = 6;
    const PER_USER: usize = 2;
    let config = recording_config(&scratch, GLOBAL, PER_USER);
    let log = log_path(&scratch);
    let envs = [("JOB_LOG", log.to_str().unwrap())];
    let with = |extra: &[&str]| {
        let mut args = config.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let node_a = Server::serve_env(&scratch, &with(&["--workers", "0"]), &envs);
    let node_b = Server::serve_env(&scratch, &with(&["--workers", "2"]), &envs);
    let workers: Vec<Server> = (0..3)
        .map(|_| Server::worker_env(&scratch, &with(&["--workers", "3"]), &envs))
        .collect();

    // A stream on node A for a job that a worker elsewhere will run.
    let watched = node_a
        .submit(json!({"job_type": "record", "user_id": "u0", "parameters": {"seconds": 0.3}}))
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = {
        let url = node_a.url.clone();
        let id = watched.clone();
        tokio::spawn(async move {
            let mut events: Vec<(String, Value)> = Vec::new();
            let _ = Client::new(&url)
                .follow(&format!("/api/v1/jobs/status/{id}/stream"), |name, data| {
                    events.push((name.to_owned(), data.clone()));
                    true
                })
                .await;
            events
        })
    };

    let mut users: HashMap<String, String> = HashMap::new();
    users.insert(watched.clone(), "u0".into());
    for i in 0..999 {
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        let user = format!("u{}", i % 7);
        let job = node
            .submit(json!({"job_type": "record", "user_id": user, "parameters": {"seconds": 0.02}}))
            .await;
        users.insert(job["job_id"].as_str().unwrap().to_owned(), user);
    }

    // Kill one worker process mid-run, once it has run something: the
    // first of the three seen in the run log (which process wins the first
    // claims is a race; waiting for a chosen one could outlast the run).
    let worker_pids: Vec<String> = workers.iter().map(|w| w.pid().to_string()).collect();
    let victim = wait_until(
        "a worker process to run jobs",
        Duration::from_secs(60),
        || async {
            read_runs(&log)
                .iter()
                .find(|r| worker_pids.contains(&r.worker_pid))
                .map(|r| r.worker_pid.clone())
        },
    )
    .await;
    let mut workers = workers;
    let index = worker_pids
        .iter()
        .position(|pid| *pid == victim)
        .expect("the victim is one of the workers");
    workers.remove(index).kill9();
    let killed_at = now_us();

    // The limits are sampled from /queue/stats until the end (the handlers'
    // own records below check them over the whole run).
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stats = node_b.stats().await;
        assert!(
            stats["running_jobs"].as_u64().unwrap() <= GLOBAL as u64,
            "{stats}"
        );
        if stats["completed_jobs"] == 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "not all jobs completed: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = node_a.stats().await;
    assert_eq!(stats["failed_jobs"], 0);
    assert_eq!(stats["pending_jobs"], 0);

    // Every job ran to completion; none ran twice at once; limits held.
    let runs = read_runs(&log);
    let mut by_job: HashMap<&str, Vec<&Run>> = HashMap::new();
    for run in &runs {
        by_job.entry(run.job.as_str()).or_default().push(run);
    }
    assert_eq!(by_job.len(), 1000, "every job ran");
    let end = |run: &Run| run.stop.unwrap_or(killed_at);
    for (job, runs) in &by_job {
        assert!(
            runs.iter().any(|r| r.stop.is_some()),
            "job {job} never finished a run"
        );
        let (overlap, _) = max_overlap(runs.iter().map(|r| ("job", r.start, end(r))));
        assert_eq!(overlap, 1, "job {job} ran twice at once: {runs:?}");
        for run in runs.iter().filter(|r| r.stop.is_none()) {
            assert_eq!(
                run.worker_pid, victim,
                "only the killed worker left runs unfinished"
            );
        }
    }
    let (global, per_user) = max_overlap(
        runs.iter()
            .map(|r| (users[&r.job].as_str(), r.start, end(r))),
    );
    assert!(
        global <= GLOBAL,
        "global limit exceeded by the handlers: {global}"
    );
    for (user, n) in per_user {
        assert!(n <= PER_USER, "per-user limit exceeded for {user}: {n}");
    }

    // Node A's stream saw the job complete, run by a worker elsewhere.
    let events = tokio::time::timeout(Duration::from_secs(30), stream)
        .await
        .unwrap()
        .unwrap();
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "job_complete");
    assert_eq!(data["status"], "completed");
    let ran_on = events
        .iter()
        .find_map(|(_, d)| d["worker_id"].as_str().map(str::to_owned))
        .or_else(|| {
            runs.iter()
                .find(|r| r.job == watched)
                .map(|r| r.worker_pid.clone())
        })
        .unwrap();
    assert!(
        !ran_on.contains(&format!(":{}:", node_a.pid())),
        "node A runs no jobs"
    );
    drop(node_b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_cannot_complete_a_job_it_lost() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let config = recording_config(&scratch, 4, 4);
    let log = log_path(&scratch);
    let envs = [("JOB_LOG", log.to_str().unwrap())];
    let api = Server::serve_env(
        &scratch,
        &[config.clone(), vec!["--workers".into(), "0".into()]].concat(),
        &envs,
    );
    let paused = Server::worker_env(
        &scratch,
        &[config.clone(), vec!["--workers".into(), "1".into()]].concat(),
        &envs,
    );
    let id = api
        .submit(json!({"job_type": "record", "parameters": {"seconds": 1.0}}))
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.wait_for_status(&id, "running", Duration::from_secs(10))
        .await;
    paused.signal(libc::SIGSTOP);
    let stopped_at = Instant::now();

    // Its lease (3 s) expires; another worker recovers and completes the job.
    let rescuer = Server::worker_env(
        &scratch,
        &[config.clone(), vec!["--workers".into(), "1".into()]].concat(),
        &envs,
    );
    let done = api
        .wait_for_status(&id, "completed", Duration::from_secs(30))
        .await;
    assert!(
        stopped_at.elapsed() >= Duration::from_secs(3),
        "recovered only after the lease"
    );
    assert_eq!(done["interruptions"], 1);
    assert_eq!(done["attempts"], 1);

    // The paused worker comes back and finishes its (stale) attempt.
    paused.signal(libc::SIGCONT);
    let resumed = Instant::now();
    wait_until(
        "the paused worker to heartbeat again",
        Duration::from_secs(20),
        || async {
            let (_, workers) = api.get("/api/v1/jobs/workers").await;
            let me = workers["workers"]
                .as_array()?
                .iter()
                .find(|w| w["pid"] == paused.pid())?
                .clone();
            let last = chrono::DateTime::parse_from_rfc3339(me["last_heartbeat"].as_str()?).ok()?;
            let resumed_at =
                chrono::Utc::now() - chrono::Duration::from_std(resumed.elapsed()).ok()?;
            (last > resumed_at).then_some(())
        },
    )
    .await;
    // Its stale attempt ends (the script finishes or is stopped) and is
    // reaped by the worker, which then tries to record it; nothing moves.
    wait_until(
        "the stale attempt's process to be gone",
        Duration::from_secs(10),
        || async { (children_of(paused.pid()) == 0).then_some(()) },
    )
    .await;
    let after = api.job(&id).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(
        after["updated_at"], done["updated_at"],
        "the fenced worker changed nothing"
    );
    let runs = read_runs(&log);
    let pids: Vec<&str> = runs.iter().map(|r| r.worker_pid.as_str()).collect();
    assert!(
        pids.contains(&rescuer.pid().to_string().as_str()),
        "{runs:?}"
    );
}

/// How many processes (zombies included) have `pid` as their parent.
fn children_of(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter(|stat| {
            // The fields after the command name, which ends in ')'.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(pid.to_string().as_str())
        })
        .count()
}

/// Keys of a prefix, by SCAN.
async fn keys_of(redis: &RedisServer, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{prefix}}}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Runs the remote jobs of `job_type` on `store` as a remote worker would
/// (claim, complete, claim again in one call) until `stop` fires.
async fn remote_worker(
    store: std::sync::Arc<dyn jobd::store::Store>,
    job_type: &str,
    stop: tokio_util::sync::CancellationToken,
) -> usize {
    use jobd::store::{ClaimParams, Finish, Outcome, Serves};
    let params = ClaimParams {
        worker_id: "remote-test-worker".into(),
        serves: Serves::Remote(vec![job_type.to_owned()]),
        max_jobs: 16,
        global_max: 50,
        per_user_max: 50,
        limits: Default::default(),
        lease: Duration::from_secs(60),
    };
    let mut held = Vec::new();
    let mut done = 0;
    while !stop.is_cancelled() {
        let finish: Vec<Finish> = held
            .drain(..)
            .map(|claim| Finish {
                claim,
                outcome: Outcome::Completed {
                    result: json!(null),
                },
            })
            .collect();
        done += finish.len();
        let exchanged = store
            .finish_and_claim(&finish, Some(&params))
            .await
            .unwrap();
        for claimed in &exchanged.claimed {
            assert!(claimed.job.remote && claimed.job.job_type == job_type);
        }
        held.extend(exchanged.claimed.iter().map(|c| c.claim));
        if held.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
    done
}

/// 10,000 jobs, a quarter of them of a remote type run by a remote worker
/// beside the server's built-in workers, leave no key of a job or of a
/// queue behind once cleanup has removed them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_leave_no_job_keys_after_cleanup() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let prefix = "growth";
    let scratch = Scratch::new(StoreKind::Sqlite).unwrap();
    let config = scratch.write("jobd.toml", "[job_types.gpu]\nremote = true\n");
    let args: Vec<String> = [
        "--store",
        &redis.url,
        "--redis-prefix",
        prefix,
        "--completed-retention-seconds",
        "1",
        "--cleanup-interval-seconds",
        "1",
        "--global-max-concurrent-jobs",
        "50",
        "--per-user-max-concurrent-jobs",
        "50",
        "--config",
        &config.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let server = Server::serve(&scratch, &args);
    let baseline = keys_of(&redis, prefix).await.len();
    let remote_store = jobd::store::redis::RedisStore::open(
        &redis.url,
        prefix,
        jobd::events::EventBus::new(),
        Duration::from_secs(600),
        jobd::model::Clock::system(),
        None,
    )
    .await
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let remote = tokio::spawn(remote_worker(remote_store, "gpu", stop.clone()));

    let mut tasks = Vec::new();
    for t in 0..8 {
        let http = server.http.clone();
        let url = server.at("/api/v1/jobs");
        tasks.push(tokio::spawn(async move {
            for i in 0..1250 {
                let job_type = if i % 4 == 0 { "gpu" } else { "noop" };
                let response = http
                    .post(&url)
                    .json(&json!({"job_type": job_type, "user_id": format!("u{}", (t + i) % 10)}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_until(
        "all jobs to complete and be cleaned up",
        Duration::from_secs(120),
        || async {
            let stats = server.stats().await;
            (stats["total_jobs"] == 0).then_some(())
        },
    )
    .await;
    stop.cancel();
    let gpu_jobs = 8 * (0..1250).step_by(4).count();
    assert_eq!(
        remote.await.unwrap(),
        gpu_jobs,
        "the remote worker ran the gpu jobs"
    );
    let keys = keys_of(&redis, prefix).await;
    let job_keys: Vec<&String> = keys
        .iter()
        .filter(|k| k.contains(":job:") || k.contains(":pending") || k.contains('@'))
        .collect();
    assert!(
        job_keys.is_empty(),
        "job or queue keys left behind: {:?}",
        &job_keys[..job_keys.len().min(5)]
    );
    assert!(
        keys.len() <= baseline + 8,
        "keys grew from {baseline} to {}: {keys:?}",
        keys.len()
    );
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for index in [
        "jobs",
        "done:completed",
        "done:failed",
        "running",
        "scheduled",
        "ready",
        "ready@gpu",
    ] {
        let n: usize = redis::cmd("ZCARD")
            .arg(format!("{{{prefix}}}:{index}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 0, "index {index} still holds {n} entries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_is_reported_and_survived_without_losing_jobs() {
    let Some(mut redis) = RedisServer::start_persistent() else {
        return;
    };
    let scratch = Scratch::new(StoreKind::Sqlite).unwrap();
    let args: Vec<String> = ["--store", &redis.url, "--redis-prefix", "restart"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let server = Server::serve(
        &scratch,
        &[args.clone(), vec!["--workers".into(), "0".into()]].concat(),
    );
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(server.submit_id("noop", json!({})).await);
    }
    redis.kill9();
    wait_until(
        "the outage to show in /health",
        Duration::from_secs(20),
        || async {
            let (status, body) = server.get("/health").await;
            (status == 503 && body["error"] == "StoreUnavailableError").then_some(())
        },
    )
    .await;
    let (status, stats) = server.get("/api/v1/jobs/queue/stats").await;
    assert_eq!(status, 503, "{stats}");
    assert_eq!(stats["worker_health_status"], "store_unavailable");

    redis.restart();
    wait_until("the node to reconnect", Duration::from_secs(30), || async {
        (server.get("/health").await.0 == 200).then_some(())
    })
    .await;
    // A worker started now drains every job acknowledged before the outage.
    let _worker = Server::worker(
        &scratch,
        &[args, vec!["--workers".into(), "4".into()]].concat(),
    );
    for id in &ids {
        server
            .wait_for_status(id, "completed", Duration::from_secs(30))
            .await;
    }
}
