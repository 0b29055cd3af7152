//! Schedules over HTTP: admins create, read, pause, resume and delete
//! them, with the seed's error shapes; a per-second schedule stores one
//! job per tick, each naming its schedule and tick, visible as the
//! schedule's last run and job; the configuration file's schedules are
//! stored by every server that starts; and, on Redis, three API nodes —
//! one killed with SIGKILL and restarted — store exactly one job for every
//! tick of a per-second schedule (`JOBD_SCHEDULE_SECONDS`, default 120).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Scratch, Server, StoreKind, wait_until};

fn millis(time: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

fn no_workers() -> Vec<String> {
    vec!["--workers".into(), "0".into()]
}

async fn delete(server: &Server, path: &str) -> u16 {
    reqwest::Client::new()
        .delete(server.at(path))
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

/// The jobs of `job_type` a schedule stored, by tick (ms), each tick's ids.
async fn jobs_by_tick(server: &Server, job_type: &str) -> BTreeMap<i64, Vec<String>> {
    let mut ticks: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/jobs?job_type={job_type}&limit=1000");
        if let Some(next) = &cursor {
            path.push_str(&format!("&cursor={next}"));
        }
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for job in page["jobs"].as_array().expect("jobs") {
            let tick = millis(&job["schedule_tick"]);
            ticks
                .entry(tick)
                .or_default()
                .push(job["job_id"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ticks,
        }
    }
}

async fn schedules_are_created_read_paused_resumed_and_deleted(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &no_workers());
    let body = json!({
        "name": "every-second",
        "cron": "* * * * * *",
        "job_type": "noop",
        "parameters": {"report": "daily"},
        "user_id": "ops",
    });
    let (status, created) = server.post("/api/v1/schedules", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["origin"], "api");
    assert_eq!(created["timezone"], "UTC");
    assert_eq!(created["paused"], false);
    assert!(created["next_run_at"].is_string(), "{created}");
    let (status, again) = server.post("/api/v1/schedules", Some(body)).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (409, Some("ScheduleExistsError"))
    );

    // Ticks store jobs that name their schedule and tick.
    let first = wait_until("a job of the schedule", Duration::from_secs(10), || async {
        let (_, page) = server
            .get("/api/v1/jobs?job_type=noop&include=parameters")
            .await;
        page["jobs"]
            .as_array()
            .and_then(|jobs| jobs.last().cloned())
    })
    .await;
    assert_eq!(first["schedule"], "every-second");
    assert_eq!(first["user_id"], "ops");
    assert_eq!(first["parameters"], json!({"report": "daily"}));
    assert_eq!(millis(&first["schedule_tick"]) % 1000, 0, "{first}");
    let (status, read) = server.get("/api/v1/schedules/every-second").await;
    assert_eq!(status, 200);
    assert!(read["last_run_at"].is_string(), "{read}");
    assert!(read["last_job_id"].is_string(), "{read}");
    assert_eq!(read["last_job_status"], "pending");

    // Paused, it stores nothing; resumed, it goes on from now.
    let (status, paused) = server
        .post("/api/v1/schedules/every-second/pause", None)
        .await;
    assert_eq!((status, &paused["paused"]), (200, &json!(true)), "{paused}");
    assert!(paused["next_run_at"].is_null());
    let at_pause = jobs_by_tick(&server, "noop").await.len();
    let (_, listed) = server.get("/api/v1/schedules").await;
    assert_eq!(listed["schedules"][0]["paused"], true, "{listed}");
    // Two ticks pass; at most the one in flight at the pause lands.
    let until = Instant::now() + Duration::from_millis(2_100);
    wait_until("two ticks", Duration::from_secs(5), || async {
        (Instant::now() > until).then_some(())
    })
    .await;
    assert!(jobs_by_tick(&server, "noop").await.len() <= at_pause + 1);
    let (status, resumed) = server
        .post("/api/v1/schedules/every-second/resume", None)
        .await;
    assert_eq!((status, &resumed["paused"]), (200, &json!(false)));
    let resumed_at = millis(&resumed["updated_at"]);
    wait_until(
        "a job after the resume",
        Duration::from_secs(10),
        || async {
            let ticks = jobs_by_tick(&server, "noop").await;
            ticks.keys().any(|tick| *tick > resumed_at).then_some(())
        },
    )
    .await;

    assert_eq!(delete(&server, "/api/v1/schedules/every-second").await, 204);
    assert_eq!(delete(&server, "/api/v1/schedules/every-second").await, 404);
    let (status, missing) = server.get("/api/v1/schedules/every-second").await;
    assert_eq!(
        (status, missing["error"].as_str()),
        (404, Some("ScheduleNotFoundError"))
    );
    let (status, _) = server.post("/api/v1/schedules/nope/pause", None).await;
    assert_eq!(status, 404);
}

async fn bad_schedules_are_refused_with_the_reason(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &no_workers());
    let base = json!({"name": "s", "cron": "0 3 * * *", "job_type": "noop"});
    let cases = [
        (
            json!({"cron": "0 3 * *"}),
            400,
            "ValidationError",
            "5 (minute",
        ),
        (
            json!({"cron": "0 0 3 * * * 2030"}),
            400,
            "ValidationError",
            "7 fields",
        ),
        (
            json!({"cron": "0 25 * * *"}),
            400,
            "ValidationError",
            "cron",
        ),
        (
            json!({"timezone": "Mars/Olympus"}),
            400,
            "ValidationError",
            "IANA",
        ),
        (
            json!({"name": "a b"}),
            400,
            "ValidationError",
            "schedule name",
        ),
        (
            json!({"job_type": "nope"}),
            400,
            "UnknownJobTypeError",
            "nope",
        ),
        (
            json!({"parameters": [1]}),
            400,
            "ValidationError",
            "parameters",
        ),
        (
            json!({"max_attempts": 0}),
            400,
            "ValidationError",
            "max_attempts",
        ),
        (json!({"every": "day"}), 400, "ValidationError", "every"),
    ];
    for (change, status, code, needle) in cases {
        let mut body = base.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let (got, error) = server.post("/api/v1/schedules", Some(body.clone())).await;
        assert_eq!(got, status, "{body} → {error}");
        assert_eq!(error["error"], code, "{body} → {error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{body} → {error}"
        );
    }
    let (_, listed) = server.get("/api/v1/schedules").await;
    assert_eq!(listed["schedules"], json!([]), "nothing stored");
}

async fn the_configuration_files_schedules_are_stored_and_fire(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let config = scratch.write(
        "jobd.toml",
        "[schedules.heartbeat]\ncron = \"*/2 * * * * *\"\ntimezone = \"Europe/Paris\"\n\
         job_type = \"noop\"\nparameters = { source = \"config\" }\nuser_id = \"ops\"\n",
    );
    let mut args = no_workers();
    args.extend(["--config".into(), config.display().to_string()]);
    let server = Server::serve(&scratch, &args);
    let (status, listed) = server.get("/api/v1/schedules").await;
    assert_eq!(status, 200);
    let heartbeat = &listed["schedules"][0];
    assert_eq!(heartbeat["name"], "heartbeat");
    assert_eq!(heartbeat["origin"], "config");
    assert_eq!(heartbeat["timezone"], "Europe/Paris");
    let job = wait_until(
        "a job of the configured schedule",
        Duration::from_secs(10),
        || async {
            let (_, page) = server
                .get("/api/v1/jobs?job_type=noop&include=parameters")
                .await;
            page["jobs"]
                .as_array()
                .and_then(|jobs| jobs.first().cloned())
        },
    )
    .await;
    assert_eq!(job["schedule"], "heartbeat");
    assert_eq!(job["parameters"], json!({"source": "config"}));
    assert_eq!(millis(&job["schedule_tick"]) % 2000, 0, "{job}");

    // A schedule whose job would be refused stops the server at start.
    let bad = scratch.write(
        "bad.toml",
        "[schedules.broken]\ncron = \"* * * * *\"\njob_type = \"nope\"\n",
    );
    let output = std::process::Command::new(crate::support::jobd_bin())
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "0"])
        .args(scratch.store_args())
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("schedule broken"), "{stderr}");
}

crate::for_each_store!(
    schedules_are_created_read_paused_resumed_and_deleted,
    bad_schedules_are_refused_with_the_reason,
    the_configuration_files_schedules_are_stored_and_fire,
);

/// How long the cluster run lasts.
fn cluster_seconds() -> u64 {
    std::env::var("JOBD_SCHEDULE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

#[tokio::test]
async fn three_redis_nodes_one_killed_and_restarted_store_one_job_per_tick() {
    let Some(scratch) = Scratch::new(StoreKind::Redis) else {
        return;
    };
    let config = scratch.write(
        "jobd.toml",
        "[schedules.pulse]\ncron = \"* * * * * *\"\njob_type = \"noop\"\nuser_id = \"ops\"\n",
    );
    let args = || {
        let mut args = no_workers();
        args.extend(["--config".into(), config.display().to_string()]);
        args
    };
    let mut nodes: Vec<Server> = (0..3).map(|_| Server::serve(&scratch, &args())).collect();
    let seconds = cluster_seconds();
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    // Every few seconds the third node is killed (SIGKILL) and restarted.
    let mut kills = 0;
    while Instant::now() < deadline {
        let pause = Instant::now() + Duration::from_secs(7);
        wait_until("the next kill", Duration::from_secs(10), || async {
            (Instant::now() > pause.min(deadline)).then_some(())
        })
        .await;
        if Instant::now() >= deadline {
            break;
        }
        if let Some(victim) = nodes.pop() {
            victim.kill9();
            kills += 1;
        }
        nodes.push(Server::serve(&scratch, &args()));
    }
    let ticks = jobs_by_tick(&nodes[0], "noop").await;
    let (Some(first), Some(last)) = (ticks.keys().next(), ticks.keys().last()) else {
        panic!("no job stored");
    };
    let twice: Vec<_> = ticks.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "ticks with more than one job: {twice:?}");
    let missing: Vec<i64> = (*first..=*last)
        .step_by(1000)
        .filter(|tick| !ticks.contains_key(tick))
        .collect();
    assert!(missing.is_empty(), "ticks without a job: {missing:?}");
    let span = (last - first) / 1000 + 1;
    assert!(
        span as u64 + 3 >= seconds,
        "{span} ticks with jobs in a {seconds} s run"
    );
    assert!(kills >= seconds / 10, "{kills} kills");
    eprintln!("{span} ticks, one job each; {kills} nodes killed and restarted");
}
