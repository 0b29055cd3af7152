//! API tokens: stored as given, read back by id from any handle, listed
//! newest first, revoked once (a second revocation keeps the first time).

use jobd::model::{ApiToken, Role};
use jobd::store::CleanupParams;

use super::*;

fn token(id: &str, role: Role, created_at: i64) -> ApiToken {
    ApiToken {
        id: id.to_owned(),
        secret_hash: format!("hash-of-{id}"),
        user_id: format!("user-{id}"),
        role,
        job_id: None,
        created_at,
        expires_at: None,
        revoked_at: None,
    }
}

pub async fn tokens_are_stored_listed_and_revoked_once(backend: &dyn Backend) {
    let store = backend.open().await;
    let other = backend.open().await;
    assert_eq!(store.token("nope").await.unwrap(), None);

    let mut scoped = token("b", Role::User, 2_000);
    scoped.job_id = Some(jobd::model::new_job_id());
    scoped.expires_at = Some(9_000);
    let plain = token("a", Role::Viewer, 1_000);
    store.create_token(&plain).await.unwrap();
    store.create_token(&scoped).await.unwrap();

    assert_eq!(other.token("b").await.unwrap(), Some(scoped.clone()));
    assert_eq!(other.token("a").await.unwrap(), Some(plain.clone()));
    let listed: Vec<ApiToken> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.id == "a" || t.id == "b")
        .collect();
    assert_eq!(listed, vec![scoped.clone(), plain.clone()], "newest first");

    let now = store.clock().now();
    let revoked = store.revoke_token("a").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(now));
    assert!(!revoked.live_at(now));
    backend.advance(5_000);
    let again = other.revoke_token("a").await.unwrap().unwrap();
    assert_eq!(
        again.revoked_at,
        Some(now),
        "the first revocation's time stays"
    );
    assert_eq!(store.revoke_token("nope").await.unwrap(), None);
    assert_eq!(other.token("b").await.unwrap().unwrap().revoked_at, None);
}

pub async fn cleanup_deletes_tokens_that_ended_long_enough_ago(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let now = store.clock().now();
    let mut expired = token("gone-expired", Role::User, now - 10 * HOUR);
    expired.expires_at = Some(now - 5 * HOUR);
    let revoked = token("gone-revoked", Role::Admin, now - 10 * HOUR);
    let mut recent = token("recently-expired", Role::Viewer, now - 10 * HOUR);
    recent.expires_at = Some(now + 3 * HOUR / 2);
    let mut live = token("live", Role::User, now);
    live.expires_at = Some(now + 3 * HOUR);
    let forever = token("forever", Role::Worker, now);
    for t in [&expired, &revoked, &recent, &live, &forever] {
        store.create_token(t).await.unwrap();
    }
    store.revoke_token("gone-revoked").await.unwrap();
    backend.advance(2 * HOUR);

    let report = store
        .cleanup(&CleanupParams {
            completed_retention: span(HOUR),
            failed_retention: span(HOUR),
            audit_retention: std::time::Duration::MAX,
        })
        .await
        .unwrap();
    assert_eq!(report.tokens_deleted, 2);
    let mut left: Vec<String> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    left.sort();
    assert_eq!(left, ["forever", "live", "recently-expired"]);
    assert_eq!(store.token("gone-expired").await.unwrap(), None);
}
