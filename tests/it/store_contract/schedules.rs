//! Schedules (`Store::put_schedule`, `schedules`, `pause_schedule`,
//! `delete_schedule`, `fire_schedule`): definitions stored, replaced only
//! when asked and only if changed, paused and resumed; a tick fired once,
//! from the revision it was computed from, whatever the number of racing
//! processes.

use jobd::model::{Schedule, ScheduleOrigin, ScheduleSpec, ScheduleTick};

use super::*;

fn spec(cron: &str) -> ScheduleSpec {
    ScheduleSpec {
        cron: cron.to_owned(),
        timezone: "UTC".to_owned(),
        job_type: "noop".to_owned(),
        parameters: Some(json!({"report": "daily"})),
        user_id: Some("ops".to_owned()),
        priority: None,
        max_attempts: None,
        timeout_seconds: None,
        expires_in_seconds: None,
    }
}

fn tick(name: &str, at: Millis) -> ScheduleTick {
    ScheduleTick {
        name: name.to_owned(),
        tick: at,
    }
}

async fn only(store: &dyn Store, name: &str) -> Schedule {
    let all = store.schedules().await.unwrap();
    all.into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no schedule {name}"))
}

pub async fn schedules_are_stored_replaced_only_when_changed_and_deleted(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let t0 = store.clock().now();
    let (nightly, created) = store
        .put_schedule("nightly", &spec("0 3 * * *"), ScheduleOrigin::Config, true)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(nightly.spec, spec("0 3 * * *"));
    assert_eq!(nightly.origin, ScheduleOrigin::Config);
    assert!(!nightly.paused);
    assert_eq!(
        (nightly.created_at, nightly.active_since, nightly.updated_at),
        (t0, t0, t0)
    );
    assert_eq!((nightly.last_tick_at, nightly.last_job_id), (None, None));

    backend.advance(SECOND);
    let (kept, created) = store
        .put_schedule("nightly", &spec("* * * * *"), ScheduleOrigin::Api, false)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(kept, nightly, "without replace, a stored schedule stays");
    let (same, _) = store
        .put_schedule("nightly", &spec("0 3 * * *"), ScheduleOrigin::Config, true)
        .await
        .unwrap();
    assert_eq!(same, nightly, "the same definition again changes nothing");
    let (changed, created) = store
        .put_schedule("nightly", &spec("0 4 * * *"), ScheduleOrigin::Config, true)
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(changed.spec.cron, "0 4 * * *");
    assert_eq!(changed.revision, nightly.revision + 1);
    assert_eq!(changed.updated_at, t0 + SECOND);
    assert_eq!(changed.active_since, t0, "a new definition keeps its ticks");

    store
        .put_schedule("hourly", &spec("0 * * * *"), ScheduleOrigin::Api, false)
        .await
        .unwrap();
    let names: Vec<String> = store
        .schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"], "by name");
    assert!(store.delete_schedule("hourly").await.unwrap());
    assert!(!store.delete_schedule("hourly").await.unwrap());
    assert_eq!(store.schedules().await.unwrap().len(), 1);
}

pub async fn a_tick_fires_once_from_its_revision(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let (schedule, _) = store
        .put_schedule("every", &spec("* * * * * *"), ScheduleOrigin::Api, false)
        .await
        .unwrap();
    let t = store.clock().now() + SECOND;
    let mut feed = handle.bus.subscribe_all();
    let job = store
        .fire_schedule(&tick("every", t), schedule.revision, new_job("ops"))
        .await
        .unwrap()
        .expect("the tick is owed");
    assert_eq!(job.schedule, Some(tick("every", t)));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(store.get(job.id).await.unwrap(), job);
    let heard = feed.try_recv().expect("the new job's event");
    assert_eq!(*heard, job, "the event carries the schedule's tick too");
    let fired = only(store, "every").await;
    assert_eq!(
        (fired.last_tick_at, fired.last_job_id),
        (Some(t), Some(job.id))
    );

    for (again, revision) in [(t, schedule.revision), (t - SECOND, schedule.revision)] {
        assert!(
            store
                .fire_schedule(&tick("every", again), revision, new_job("ops"))
                .await
                .unwrap()
                .is_none(),
            "a tick at or before the last fired one"
        );
    }
    assert!(
        store
            .fire_schedule(
                &tick("every", t + SECOND),
                schedule.revision + 1,
                new_job("ops")
            )
            .await
            .unwrap()
            .is_none(),
        "another revision's tick"
    );
    assert!(
        store
            .fire_schedule(&tick("nobody", t), 1, new_job("ops"))
            .await
            .unwrap()
            .is_none(),
        "no schedule, no job"
    );
    let next = store
        .fire_schedule(
            &tick("every", t + SECOND),
            schedule.revision,
            new_job("ops"),
        )
        .await
        .unwrap();
    assert!(next.is_some(), "the next tick");
    assert_eq!(count(store, JobStatus::Pending).await, 2);
}

pub async fn a_paused_schedule_fires_nothing_and_resumes_from_now(backend: &dyn Backend) {
    let handle = backend.fresh().await;
    let store = handle.store.as_ref();
    let (schedule, _) = store
        .put_schedule("every", &spec("* * * * * *"), ScheduleOrigin::Api, false)
        .await
        .unwrap();
    let paused = store.pause_schedule("every", true).await.unwrap().unwrap();
    assert!(paused.paused);
    assert_eq!(paused.revision, schedule.revision + 1);
    let t = store.clock().now() + SECOND;
    for revision in [schedule.revision, paused.revision] {
        assert!(
            store
                .fire_schedule(&tick("every", t), revision, new_job("ops"))
                .await
                .unwrap()
                .is_none()
        );
    }
    let again = store.pause_schedule("every", true).await.unwrap().unwrap();
    assert_eq!(again, paused, "pausing a paused schedule changes nothing");

    backend.advance(HOUR);
    let resumed = store.pause_schedule("every", false).await.unwrap().unwrap();
    assert!(!resumed.paused);
    assert_eq!(resumed.active_since, store.clock().now(), "active from now");
    assert!(
        store
            .fire_schedule(&tick("every", t + HOUR), resumed.revision, new_job("ops"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .pause_schedule("nobody", true)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn racing_fires_of_one_tick_store_one_job(backend: &dyn Backend) {
    let (one, two) = backend.fresh_with_quota(1_000_000).await;
    let (schedule, _) = one
        .store
        .put_schedule("every", &spec("* * * * * *"), ScheduleOrigin::Api, false)
        .await
        .unwrap();
    let t = one.store.clock().now();
    let fires = (0..100).map(|i| {
        let store = if i % 2 == 0 {
            one.store.clone()
        } else {
            two.store.clone()
        };
        let revision = schedule.revision;
        async move {
            store
                .fire_schedule(&tick("every", t), revision, new_job("ops"))
                .await
        }
    });
    let fired: Vec<Job> = futures::future::join_all(fires)
        .await
        .into_iter()
        .filter_map(|result| result.unwrap())
        .collect();
    assert_eq!(fired.len(), 1, "exactly one fire stores a job");
    assert_eq!(count(one.store.as_ref(), JobStatus::Pending).await, 1);
    let stored = only(two.store.as_ref(), "every").await;
    assert_eq!(stored.last_job_id, Some(fired[0].id));
}
