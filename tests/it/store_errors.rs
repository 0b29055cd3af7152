//! How store failures reach API clients: data the store cannot decode is a
//! fault on the server's side (500 `InternalError`), not an outage to retry
//! (503 `StoreUnavailableError`).

use jobd::config::StoreConfig;
use serde_json::{Value, json};

use crate::app::{App, Logs};
use crate::support::StoreKind;

/// Overwrites job `id`'s stored parameters with text that is not JSON,
/// behind the store's back (as a bad disk or a hand edit would).
fn corrupt_parameters(app: &App, id: &str) {
    const GARBAGE: &str = "{not json";
    match &app.state.settings.store {
        StoreConfig::Sqlite => {
            let path = app.state.settings.data_dir.join("jobd.sqlite3");
            let conn = rusqlite::Connection::open(path).unwrap();
            let changed = conn
                .execute(
                    "UPDATE jobs SET parameters = ?1 WHERE id = ?2",
                    rusqlite::params![GARBAGE, id],
                )
                .unwrap();
            assert_eq!(changed, 1);
        }
        StoreConfig::Redis { url, prefix } => {
            let mut conn = ::redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: () = ::redis::cmd("HSET")
                .arg(format!("{{{prefix}}}:job:{id}"))
                .arg("parameters")
                .arg(GARBAGE)
                .query(&mut conn)
                .unwrap();
        }
    }
}

/// A job whose stored JSON is garbage reads as 500 `InternalError`, with
/// the fixed message; the cause (the operation and the decoder's words)
/// goes to the log at ERROR.
async fn a_corrupt_job_is_an_internal_error_not_an_outage(kind: StoreKind) {
    let Some(app) = App::on(kind).await else {
        return;
    };
    let job = app.submit(json!({"job_type": "noop"})).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    corrupt_parameters(&app, &id);

    let logs = Logs::capture();
    let (status, body) = app.get(&format!("/api/v1/jobs/status/{id}")).await;
    assert_eq!(
        (status, &body["error"]),
        (500, &Value::from("InternalError")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "Internal error; the request was not completed"
    );
    let logged = logs.matching(&["ERROR", "InternalError", "corrupt stored data in get"]);
    assert_eq!(logged.len(), 1, "{:?}", logs.lines());

    // A summary listing does not read the parameters, so it answers; a
    // listing that includes them meets the same row.
    let (status, body) = app.get("/api/v1/jobs").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"][0]["job_id"], json!(id));
    let (status, body) = app.get("/api/v1/jobs?include=parameters").await;
    assert_eq!(
        (status, &body["error"]),
        (500, &Value::from("InternalError")),
        "{body}"
    );
}

crate::for_each_store!(a_corrupt_job_is_an_internal_error_not_an_outage);
