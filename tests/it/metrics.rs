//! `/metrics`: valid Prometheus text format, counters and histograms that
//! move with the jobs run, gauges read from the store, HTTP durations by
//! route template, and running jobs per user capped at the top users.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::support::{Scratch, Server, StoreKind, wait_until};

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(text: &str) -> bool {
    is_name(text) && !text.contains(':')
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// Parses `{k="v",...}` (with `\\`, `\"` and `\n` escapes); returns the
/// labels and the rest of the line.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text
        .strip_prefix('{')
        .ok_or_else(|| format!("expected '{{' in {text}"))?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without '='")?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("bad label name '{name}'"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value without quote")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("duplicate label '{name}'"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected ',' or '}}' at {rest}"));
        }
    }
}

/// Parses the text format strictly: each line is blank, `# HELP name text`,
/// `# TYPE name type`, or `name{labels} value`; every sample belongs to a
/// family whose TYPE came before it; a family's TYPE appears once; no
/// sample (name and labels) twice.
fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut seen = HashSet::new();
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: String| format!("line {}: {why}: {line}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !is_name(name) {
                return Err(fail("bad HELP name".into()));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let parts: Vec<&str> = rest.split(' ').collect();
            let [name, kind] = parts[..] else {
                return Err(fail("TYPE needs a name and a type".into()));
            };
            if !is_name(name)
                || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
            {
                return Err(fail("bad TYPE".into()));
            }
            if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(fail("second TYPE for a family".into()));
            }
            continue;
        }
        if line.starts_with('#') {
            continue; // a comment
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| fail("no value".into()))?;
        let name = &line[..name_end];
        if !is_name(name) {
            return Err(fail("bad metric name".into()));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(fail)?
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let mut fields = rest.trim_start().split(' ');
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| fail("bad value".into()))?;
        if let Some(timestamp) = fields.next()
            && timestamp.parse::<i64>().is_err()
        {
            return Err(fail("bad timestamp".into()));
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        if !types.contains_key(family) {
            return Err(fail(format!("sample of '{family}' before its TYPE")));
        }
        if types[family] == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(fail("bucket without le".into()));
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(fail("duplicate sample".into()));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

#[test]
fn the_parser_rejects_what_prometheus_rejects() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"2\"} 3\n\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n";
    let samples = parse_exposition(good).unwrap();
    assert_eq!(samples[0].labels["x"], "1\"2");
    for bad in [
        "a 1\n",                              // no TYPE
        "# TYPE a counter\na{x=1} 1\n",       // unquoted label
        "# TYPE a counter\na one\n",          // bad value
        "# TYPE a counter\n# TYPE a gauge\n", // two TYPEs
        "# TYPE a counter\na 1\na 2\n",       // duplicate sample
        "# TYPE 1a counter\n",                // bad name
        "# TYPE a counter\na{x=\"1\"\n",      // unterminated labels
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted: {bad:?}");
    }
}

/// One scrape's samples, parsed strictly.
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Scrapes the server's `/metrics`.
    pub async fn take(server: &Server) -> Scrape {
        Scrape::at(&server.http, &server.at("/metrics")).await
    }

    /// Scrapes `url` (valid text format, 200, the 0.0.4 content type).
    pub async fn at(http: &reqwest::Client, url: &str) -> Scrape {
        let response = http.get(url).send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "content type {content_type}"
        );
        let text = response.text().await.expect("body");
        match parse_exposition(&text) {
            Ok(samples) => Scrape(samples),
            Err(e) => panic!("/metrics is not valid text format: {e}\n{text}"),
        }
    }

    /// The value of the sample with exactly these labels (0 if absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map_or(0.0, |s| s.value)
    }

    /// Every sample of `name`, whatever its labels.
    pub fn all(&self, name: &str) -> Vec<&Sample> {
        self.0.iter().filter(|s| s.name == name).collect()
    }
}

/// Scrapes until `check` holds, with a deadline (the counters are fed
/// asynchronously from the event bus).
async fn scrape_until(server: &Server, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    wait_until(what, Duration::from_secs(20), || async {
        let scrape = Scrape::take(server).await;
        check(&scrape).then_some(scrape)
    })
    .await
}

async fn counters_move_with_the_jobs_run(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(&scratch, &[]);
    let before = Scrape::take(&server).await;
    let noop = [("job_type", "noop")];
    assert_eq!(before.value("jobd_jobs_submitted_total", &noop), 0.0);
    assert!(
        before.all("jobd_jobs_submitted_total").iter().any(|s| s
            .labels
            .get("job_type")
            .map(String::as_str)
            == Some("sleep")),
        "counters of every job type start at zero"
    );

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(server.submit_id("noop", json!({})).await);
    }
    let failing = server
        .submit_id(
            "sleep",
            json!({"seconds": 0.01, "steps": 1, "fail_with": "boom"}),
        )
        .await;
    for id in &ids {
        server
            .wait_for_status(id, "completed", Duration::from_secs(20))
            .await;
    }
    server
        .wait_for_status(&failing, "failed", Duration::from_secs(20))
        .await;
    let long = server
        .submit(json!({"job_type": "sleep", "parameters": {"seconds": 60, "steps": 60}, "user_id": "metrics-user"}))
        .await;
    let long = long["job_id"].as_str().unwrap().to_owned();
    server
        .wait_for_status(&long, "running", Duration::from_secs(20))
        .await;
    let scrape = scrape_until(&server, "a running job per user", |s| {
        s.value("jobd_running_jobs_by_user", &[("user", "metrics-user")]) == 1.0
    })
    .await;
    assert_eq!(
        scrape.value("jobd_queue_jobs", &[("status", "running")]),
        1.0
    );
    assert_eq!(scrape.value("jobd_workers", &[("state", "active")]), 1.0);
    assert_eq!(scrape.value("jobd_store_up", &[]), 1.0);
    assert_eq!(
        scrape.value("jobd_limit_jobs", &[("limit", "global")]),
        10.0
    );
    let (status, _) = server
        .post(&format!("/api/v1/jobs/cancel/{long}"), None)
        .await;
    assert_eq!(status, 200);

    let sleep = [("job_type", "sleep")];
    let after = scrape_until(&server, "the counters to count every job", |s| {
        s.value("jobd_jobs_submitted_total", &noop) == 3.0
            && s.value("jobd_jobs_completed_total", &[]) == 3.0
            && s.value("jobd_jobs_submitted_total", &sleep) == 2.0
            && s.value("jobd_jobs_failed_total", &[]) == 1.0
            && s.value("jobd_jobs_cancelled_total", &[]) == 1.0
    })
    .await;
    // The finished totals are the store's, one unlabelled series each (per
    // job type they are in the duration histogram's counts).
    for name in [
        "jobd_jobs_completed_total",
        "jobd_jobs_failed_total",
        "jobd_jobs_cancelled_total",
    ] {
        assert_eq!(after.all(name).len(), 1, "{name}");
    }
    // At least one start per job; a job recovered from an expired lease
    // (3 s in these tests, on a loaded machine) starts once more.
    assert!(after.value("jobd_jobs_started_total", &noop) >= 3.0);
    assert!(after.value("jobd_jobs_started_total", &sleep) >= 2.0);
    assert_eq!(
        after.value(
            "jobd_job_duration_seconds_count",
            &[("job_type", "noop"), ("status", "completed")]
        ),
        3.0
    );
    assert_eq!(
        after.value(
            "jobd_job_duration_seconds_count",
            &[("job_type", "sleep"), ("status", "failed")]
        ),
        1.0
    );
    assert!(after.value("jobd_job_queue_wait_seconds_count", &noop) >= 3.0);
    assert_eq!(
        after.value("jobd_queue_jobs", &[("status", "completed")]),
        3.0
    );
    assert_eq!(after.value("jobd_queue_jobs", &[("status", "failed")]), 1.0);
    assert_eq!(
        after.value("jobd_queue_jobs", &[("status", "cancelled")]),
        1.0
    );
    assert_eq!(
        after.value("jobd_running_jobs_by_user", &[("user", "other")]),
        0.0
    );

    // HTTP durations are labelled by route template, never by raw path.
    let submits = after.value(
        "jobd_http_request_duration_seconds_count",
        &[
            ("method", "POST"),
            ("route", "/api/v1/jobs"),
            ("status", "201"),
        ],
    );
    assert!(submits >= 5.0, "{submits} submissions recorded");
    let routes: HashSet<&str> = after
        .all("jobd_http_request_duration_seconds_count")
        .iter()
        .filter_map(|s| s.labels.get("route").map(String::as_str))
        .collect();
    assert!(
        routes.contains("/api/v1/jobs/status/{job_id}"),
        "{routes:?}"
    );
    assert!(
        routes.contains("/api/v1/jobs/cancel/{job_id}"),
        "{routes:?}"
    );
    for id in ids.iter().chain([&long, &failing]) {
        assert!(
            routes.iter().all(|r| !r.contains(id.as_str())),
            "a raw path became a label: {routes:?}"
        );
    }
    server.get("/no/such/route").await;
    let unmatched = scrape_until(&server, "the unmatched route label", |s| {
        s.value(
            "jobd_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "unmatched"), ("status", "404")],
        ) >= 1.0
    })
    .await;
    assert!(!unmatched.0.is_empty());
}

async fn running_by_user_names_the_top_users_and_sums_the_rest(kind: StoreKind) {
    let Some(scratch) = Scratch::new(kind) else {
        return;
    };
    let server = Server::serve(
        &scratch,
        &[
            "--global-max-concurrent-jobs".into(),
            "14".into(),
            "--workers".into(),
            "14".into(),
        ],
    );
    let mut ids = Vec::new();
    // User u00 runs 3 jobs, u01 2, and u02..u12 one each: 13 users, 16 jobs,
    // of which 14 run.
    for (user, count) in (0..13).map(|i| (format!("u{i:02}"), [3, 2].get(i).copied().unwrap_or(1)))
    {
        for _ in 0..count {
            let job = server
                .submit(json!({"job_type": "sleep", "parameters": {"seconds": 60, "steps": 60}, "user_id": user}))
                .await;
            ids.push(job["job_id"].as_str().unwrap().to_owned());
        }
    }
    let scrape = scrape_until(&server, "14 running jobs", |s| {
        s.value("jobd_queue_jobs", &[("status", "running")]) == 14.0
    })
    .await;
    let by_user = scrape.all("jobd_running_jobs_by_user");
    let named: Vec<_> = by_user
        .iter()
        .filter(|s| s.labels["user"] != "other")
        .collect();
    assert!(named.len() <= 10, "{} users named", named.len());
    let total: f64 = by_user.iter().map(|s| s.value).sum();
    assert_eq!(
        total, 14.0,
        "named users plus other sum to the running jobs"
    );
    assert!(scrape.value("jobd_running_jobs_by_user", &[("user", "other")]) >= 1.0);
    for id in &ids {
        server
            .post(&format!("/api/v1/jobs/cancel/{id}"), None)
            .await;
    }
}

crate::for_each_store!(
    counters_move_with_the_jobs_run,
    running_by_user_names_the_top_users_and_sums_the_rest
);
