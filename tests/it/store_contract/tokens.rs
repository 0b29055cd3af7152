//! API tokens: stored as given, read back by id from any handle, listed
//! newest first, revoked once (a second revocation keeps the first time).

use jobd::model::{ApiToken, Role};

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
