//! The audit log: appends (a retried one stores nothing twice), pages
//! newest first by cursor, filters, and retention by age in the cleanup
//! pass, as the store's clock moves.

use jobd::model::audit::{Actor, AuditAction, AuditEntry, AuditIds};
use jobd::store::{AuditQuery, CleanupParams, Store};

use super::*;

fn entry(
    ids: &AuditIds,
    store: &dyn Store,
    user: &str,
    action: AuditAction,
    target: &str,
) -> AuditEntry {
    AuditEntry::new(
        ids,
        store.clock().now(),
        Actor {
            user_id: Some(user.to_owned()),
            token_id: None,
            role: None,
        },
        action,
        Some(target.to_owned()),
        Some("127.0.0.1:5555".to_owned()),
        200,
    )
}

/// Every entry `query` reaches, following the cursor; and the pages' sizes.
async fn all_pages(store: &dyn Store, mut query: AuditQuery) -> (Vec<AuditEntry>, Vec<usize>) {
    let mut entries = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = store.list_audit(&query).await.unwrap();
        sizes.push(page.entries.len());
        entries.extend(page.entries);
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => return (entries, sizes),
        }
        assert!(sizes.len() < 100, "the cursor never ends");
    }
}

pub async fn audit_entries_are_listed_newest_first_in_pages(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let ids = AuditIds::new();
    let mut made = Vec::new();
    // Two appends, some entries within one millisecond, some apart.
    for round in 0..2 {
        let batch: Vec<AuditEntry> = (0..3)
            .map(|i| {
                entry(
                    &ids,
                    store.as_ref(),
                    "alice",
                    AuditAction::JobSubmit,
                    &format!("job-{round}-{i}"),
                )
            })
            .collect();
        store.append_audit(&batch).await.unwrap();
        made.extend(batch);
        backend.advance(SECOND);
    }
    // A retried append stores nothing twice.
    store.append_audit(&made[3..]).await.unwrap();

    let (entries, sizes) = all_pages(
        store.as_ref(),
        AuditQuery {
            limit: 4,
            ..AuditQuery::default()
        },
    )
    .await;
    let newest_first: Vec<AuditEntry> = made.iter().rev().cloned().collect();
    assert_eq!(
        entries, newest_first,
        "every entry once, newest first, as stored"
    );
    assert_eq!(sizes[0], 4);
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    assert!(entries.windows(2).all(|w| w[0].at >= w[1].at));
}

pub async fn audit_listing_filters_by_actor_action_and_target(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let ids = AuditIds::new();
    let s = store.as_ref();
    let made = vec![
        entry(&ids, s, "alice", AuditAction::JobSubmit, "j1"),
        entry(&ids, s, "bob", AuditAction::JobSubmit, "j2"),
        entry(&ids, s, "alice", AuditAction::JobCancel, "j1"),
        entry(&ids, s, "bob", AuditAction::JobRestart, "j1"),
        entry(&ids, s, "carol", AuditAction::TokenCreate, "t1"),
    ];
    store.append_audit(&made).await.unwrap();
    let targets = |entries: Vec<AuditEntry>| -> Vec<(String, AuditAction, String)> {
        entries
            .into_iter()
            .map(|e| (e.actor.user_id.unwrap(), e.action, e.target.unwrap()))
            .collect()
    };
    let by = |query: AuditQuery| async move { targets(all_pages(s, query).await.0) };

    let alice = by(AuditQuery {
        user_id: Some("alice".into()),
        limit: 1,
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(
        alice,
        vec![
            ("alice".into(), AuditAction::JobCancel, "j1".into()),
            ("alice".into(), AuditAction::JobSubmit, "j1".into()),
        ]
    );
    let submits = by(AuditQuery {
        action: Some(AuditAction::JobSubmit),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(
        submits,
        vec![
            ("bob".into(), AuditAction::JobSubmit, "j2".into()),
            ("alice".into(), AuditAction::JobSubmit, "j1".into()),
        ]
    );
    let about_j1_by_bob = by(AuditQuery {
        user_id: Some("bob".into()),
        target: Some("j1".into()),
        ..AuditQuery::default()
    })
    .await;
    assert_eq!(
        about_j1_by_bob,
        vec![("bob".into(), AuditAction::JobRestart, "j1".into())]
    );
    let none = by(AuditQuery {
        user_id: Some("dave".into()),
        ..AuditQuery::default()
    })
    .await;
    assert!(none.is_empty());
}

pub async fn audit_retention_deletes_old_entries_as_the_clock_moves(backend: &dyn Backend) {
    let store = backend.fresh().await.store;
    let ids = AuditIds::new();
    let old: Vec<AuditEntry> = (0..3)
        .map(|i| {
            entry(
                &ids,
                store.as_ref(),
                "u",
                AuditAction::JobSubmit,
                &format!("old{i}"),
            )
        })
        .collect();
    store.append_audit(&old).await.unwrap();
    let job = store.submit(new_job("u")).await.unwrap();
    backend.advance(2 * HOUR);
    let young = vec![entry(
        &ids,
        store.as_ref(),
        "u",
        AuditAction::JobCancel,
        "young",
    )];
    store.append_audit(&young).await.unwrap();
    let retention = CleanupParams {
        completed_retention: span(HOUR),
        failed_retention: span(HOUR),
        audit_retention: span(HOUR),
    };

    let report = store.cleanup(&retention).await.unwrap();
    assert_eq!(report.audit_deleted, 3);
    let page = store.list_audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(page.entries, young);
    assert!(
        store.get(job.id).await.is_ok(),
        "a pending job is not audit"
    );

    // Not yet past retention: kept; once past it: gone.
    backend.advance(HOUR - SECOND);
    assert_eq!(store.cleanup(&retention).await.unwrap().audit_deleted, 0);
    backend.advance(2 * SECOND);
    assert_eq!(store.cleanup(&retention).await.unwrap().audit_deleted, 1);
    let page = store.list_audit(&AuditQuery::default()).await.unwrap();
    assert!(page.entries.is_empty());
}
