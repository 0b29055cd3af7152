//! What a burst leaves behind: a poll or stream of a job that does not
//! exist leaves no watch, neither in the process nor in Redis.

use axum::body::Body;
use axum::http::Request;
use serde_json::json;

use crate::app::App;
use crate::support::StoreKind;

async fn a_watch_of_an_unknown_job_leaves_nothing(kind: StoreKind) {
    let Some(mut app) = App::on(kind).await else {
        return;
    };
    let unknown = uuid::Uuid::new_v4();
    for path in [
        format!("/api/v1/jobs/status/{unknown}/poll?timeout=0"),
        format!("/api/v1/jobs/status/{unknown}/poll?current_status=pending&timeout=1"),
        format!("/api/v1/jobs/status/{unknown}/stream"),
    ] {
        let request = Request::get(&path).body(Body::empty()).expect("request");
        let response = app.send(request).await;
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(
        app.state.bus.cache_size(),
        0,
        "nothing watched in the process"
    );
    if kind == StoreKind::Redis {
        let (mut conn, prefix) = app.raw_redis().await;
        let watched: usize = ::redis::cmd("ZCARD")
            .arg(format!("{{{prefix}}}:watched"))
            .query_async(&mut conn)
            .await
            .expect("ZCARD");
        assert_eq!(watched, 0, "an unknown job is not announced as watched");
    }
    // A job that exists is still watched while polled, and let go after.
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().expect("job_id");
    let (status, _) = app
        .get(&format!("/api/v1/jobs/status/{id}/poll?timeout=0"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        app.state.bus.cache_size(),
        0,
        "the poll's watch ended with it"
    );
    if kind == StoreKind::Redis {
        let (mut conn, prefix) = app.raw_redis().await;
        let score: Option<f64> = ::redis::cmd("ZSCORE")
            .arg(format!("{{{prefix}}}:watched"))
            .arg(id)
            .query_async(&mut conn)
            .await
            .expect("ZSCORE");
        assert!(score.is_some(), "a job that exists is announced");
    }
}

crate::for_each_store!(a_watch_of_an_unknown_job_leaves_nothing);
