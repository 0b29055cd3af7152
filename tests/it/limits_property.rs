//! A randomized property test of the limits of issue 17 under load and
//! crashes: many jobs over many keys and users, with global, per-user,
//! per-key, per-type and rate limits, three worker processes of which one
//! is killed with SIGKILL every few seconds (and started again), and the
//! running set sampled throughout. Holds: no sample over any limit, every
//! job completed in its one attempt (none lost, none failed), a job seen
//! running on a second worker only once the first was killed (no job
//! runs twice at once, to the sampling's resolution), and no stretch of
//! the rate's window with more than twice its starts.
//!
//! `JOBD_LIMITS_PROPERTY_JOBS` sets the job count (default 200,000 on
//! Redis; SQLite runs a twentieth of it).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind};

const GLOBAL: usize = 48;
const PER_USER: usize = 6;
const PER_KEY: usize = 2;
const TYPE_MAX: usize = 40;
const RATE_COUNT: usize = 50;
const RATE_MS: u64 = 500;
const USERS: u64 = 50;
const KEYS: u64 = 1000;

/// A small seeded generator (SplitMix64): the same jobs every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn job_count(kind: StoreKind) -> usize {
    let count = std::env::var("JOBD_LIMITS_PROPERTY_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    match kind {
        StoreKind::Redis => count,
        StoreKind::Sqlite => (count / 20).max(100),
    }
}

/// One random submission: mostly `sleep` jobs of 2 to 10 ms on a key
/// (a third of them on ten hot keys, so the per-key limit binds), some
/// rate-limited `noop` jobs.
fn random_job(rng: &mut Rng) -> Value {
    let user = format!("u{}", rng.below(USERS));
    if rng.below(100) < 2 {
        return json!({"job_type": "noop", "user_id": user});
    }
    let key = if rng.below(3) == 0 {
        rng.below(10)
    } else {
        rng.below(KEYS)
    };
    let seconds = 0.002 + rng.below(9) as f64 / 1000.0;
    json!({
        "job_type": "sleep",
        "user_id": user,
        "priority": rng.below(3),
        "parameters": {"seconds": seconds, "steps": 1, "doc": format!("d{key}")},
    })
}

/// Checks one sample of the running set against every limit; returns how
/// many jobs ran.
fn check_sample(running: &[Value]) -> usize {
    assert!(running.len() <= GLOBAL, "global: {} running", running.len());
    let mut users: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<&str, usize> = HashMap::new();
    let mut sleeping = 0;
    for job in running {
        *users
            .entry(job["user_id"].as_str().unwrap_or(""))
            .or_default() += 1;
        if job["job_type"] == "sleep" {
            sleeping += 1;
            let key = job["concurrency_key"]
                .as_str()
                .expect("a sleep job has a key");
            *keys.entry(key).or_default() += 1;
        }
    }
    for (user, n) in users {
        assert!(n <= PER_USER, "per-user: {user} has {n} running");
    }
    for (key, n) in keys {
        assert!(n <= PER_KEY, "per-key: {key} has {n} running");
    }
    assert!(
        sleeping <= TYPE_MAX,
        "per-type: {sleeping} sleep jobs running"
    );
    running.len()
}

async fn limits_hold_under_load_and_crashes(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let jobs = job_count(kind);
    let config = scratch.write(
        "jobd.toml",
        &format!(
            "global_max_concurrent_jobs = {GLOBAL}\nper_user_max_concurrent_jobs = {PER_USER}\n\
             [job_types.sleep]\nconcurrency_key = \"/doc\"\nmax_concurrent_per_key = {PER_KEY}\n\
             max_concurrent = {TYPE_MAX}\n\
             [job_types.noop]\nrate_limit = {{ count = {RATE_COUNT}, per_seconds = {} }}\n\
             [users.u0]\nweight = 3\n",
            RATE_MS as f64 / 1000.0
        ),
    );
    let args = |workers: &str| {
        vec![
            "--config".to_string(),
            config.display().to_string(),
            "--workers".into(),
            workers.into(),
        ]
    };
    let server = Server::serve(&scratch, &args("0"));
    let mut workers: Vec<Server> = (0..3)
        .map(|_| Server::worker(&scratch, &args("20")))
        .collect();
    let started = Instant::now();

    // Submissions, 1,000 a call, while the workers run.
    let submitter = {
        let http = server.http.clone();
        let url = server.at("/api/v1/jobs/batch");
        tokio::spawn(async move {
            let mut rng = Rng(17);
            let mut left = jobs;
            while left > 0 {
                let n = left.min(1000);
                let batch: Vec<Value> = (0..n).map(|_| random_job(&mut rng)).collect();
                let response = http
                    .post(&url)
                    .json(&json!({ "jobs": batch }))
                    .send()
                    .await
                    .expect("batch");
                assert_eq!(response.status(), 201, "{:?}", response.text().await);
                left -= n;
            }
        })
    };

    let mut rng = Rng(4);
    let mut last_kill = Instant::now();
    let mut kills = 0;
    let mut samples = 0;
    let mut busiest = 0;
    let mut holders: HashMap<String, String> = HashMap::new();
    let mut killed: HashSet<String> = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let (status, page) = server.get("/api/v1/jobs?status=running&limit=1000").await;
        assert_eq!(status, 200, "{page}");
        let running = page["jobs"].as_array().cloned().unwrap_or_default();
        busiest = busiest.max(check_sample(&running));
        // A job seen on a second worker: the first one was killed.
        for job in &running {
            let (Some(id), Some(worker)) = (job["job_id"].as_str(), job["worker_id"].as_str())
            else {
                continue;
            };
            if let Some(before) = holders.insert(id.to_owned(), worker.to_owned())
                && before != worker
            {
                assert!(
                    killed.contains(pid_of(&before)),
                    "job {id} ran on {worker} while {before}, still alive, held it"
                );
            }
        }
        samples += 1;
        if last_kill.elapsed() >= Duration::from_secs(3) {
            let victim = rng.below(3) as usize;
            let victim = workers.remove(victim);
            killed.insert(victim.pid().to_string());
            victim.kill9();
            workers.push(Server::worker(&scratch, &args("20")));
            kills += 1;
            last_kill = Instant::now();
        }
        let stats = server.stats().await;
        assert_eq!(stats["failed_jobs"], 0, "{stats}");
        if submitter.is_finished() && stats["completed_jobs"].as_u64() == Some(jobs as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "the jobs did not drain: {stats}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    submitter.await.expect("the submissions");
    let elapsed = started.elapsed();

    // Every job completed, in the one attempt it was allowed.
    let mut seen = 0;
    let mut noop_starts = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut path = "/api/v1/jobs?status=completed&limit=1000".to_owned();
        if let Some(cursor) = &before {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for job in page["jobs"].as_array().cloned().unwrap_or_default() {
            // An interruption gives its attempt back: one attempt counted.
            assert_eq!(job["attempts"], 1, "{job}");
            if job["job_type"] == "noop"
                && let Some(at) = job["started_at"].as_str()
            {
                noop_starts.push(at.to_owned());
            }
            seen += 1;
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => before = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, jobs, "every job listed as completed");
    check_rate(&noop_starts);
    eprintln!(
        "limits property ({kind:?}): {jobs} jobs in {:.1} s, {samples} samples (up to \
         {busiest} running), {kills} workers killed",
        elapsed.as_secs_f64()
    );
}

/// The process id in a worker id (`host:pid:suffix`).
fn pid_of(worker_id: &str) -> &str {
    worker_id.rsplit(':').nth(1).unwrap_or("")
}

/// No stretch of the rate's window holds more than twice its count of
/// starts (windows are fixed: one may end just as the next begins).
fn check_rate(starts: &[String]) {
    let mut millis: Vec<i64> = starts
        .iter()
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
        .collect();
    millis.sort_unstable();
    let mut first = 0;
    for (last, at) in millis.iter().enumerate() {
        while *at - millis[first] >= RATE_MS as i64 {
            first += 1;
        }
        assert!(
            last - first < 2 * RATE_COUNT,
            "{} starts within {RATE_MS} ms",
            last - first + 1
        );
    }
}

crate::for_each_store!(limits_hold_under_load_and_crashes);
