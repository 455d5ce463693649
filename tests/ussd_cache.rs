//! Issue 12: the hop cache of each process stays right with two application states on one
//! database (two server processes, as far as the cache can tell: each has its own memory
//! and its own listening connection). A project closed, a household registered, a
//! language changed or a number moved on one is seen by the other; a lost notification
//! (the listening connection killed) makes the cache start over instead of serving what it
//! had; and the screens are the same with the cache and without it.
//!
//! "Seen" is checked after [`hashar::cache::Cache::sync`], a barrier that returns once every
//! change committed before it has been handled (every request of `TestApp` passes it), not
//! by timing: in a server the notification is handled within milliseconds of the commit.

mod common;

use std::time::Duration;

use common::*;
use hashar::clock::Clock;
use sqlx::PgPool;

const WAIT: Duration = Duration::from_secs(30);

/// Two servers on the test's database, both serving from memory.
async fn two_apps(pool: &PgPool) -> (TestApp, TestApp) {
    let a = app(pool.clone()).await;
    let b = app(pool.clone()).await;
    assert!(a.cache.live() && b.cache.live(), "both caches serve");
    (a, b)
}

/// The totals list of a household, as the first screen after "2".
async fn totals(app: &TestApp, session: &str, phone: &str) -> String {
    app.session(session, phone, &["2"]).await
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_project_closed_or_opened_through_one_is_seen_by_the_other(pool: PgPool) {
    let seed = seed(&pool).await;
    let (a, b) = two_apps(&pool).await;
    // both have read the lists (and so keep them)
    let before = b.session("p1", PHONE_EN, &["1"]).await;
    assert!(
        before.contains("1 Bridge") && before.contains("2 School roof"),
        "{before}"
    );
    a.session("p0", PHONE_EN, &["1"]).await;

    // closed through the admin API of the first: once no session that saw it open can
    // still be running, the second no longer offers it for pledges
    let tokens = tokens(&pool).await;
    let (status, body) = call(
        &a,
        "PATCH",
        &format!("/api/v1/projects/{}", seed.roof),
        serde_json::json!({"status": "closed"}),
        &tokens.admin,
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    // (the trigger stamps `closed_at` with the database's time, days after the test clock's)
    b.clock.advance(chrono::Duration::days(10));
    let after = b.session("p2", PHONE_EN, &["1"]).await;
    assert!(
        after.contains("1 Bridge") && !after.contains("School roof"),
        "{after}"
    );
    // and its totals list marks it closed
    let list = totals(&b, "p3", PHONE_EN).await;
    assert!(list.contains("School roof"), "{list}");

    // a new project of the household's community, made directly in the database
    sqlx::query(
        "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio)
         values ($1, 'WELL', 'infrastructure', 'Чоҳ', 'Колодец', 'Well', 1000, 1)",
    )
    .bind(seed.community)
    .execute(&pool)
    .await
    .expect("project");
    let list = b.session("p4", PHONE_EN, &["1"]).await;
    assert!(list.contains("Well"), "{list}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_household_registered_on_one_is_known_to_the_other(pool: PgPool) {
    seed(&pool).await;
    let (a, b) = two_apps(&pool).await;
    let phone = "+992935556677";
    // the second has seen the number as unknown (and keeps that)
    let (_, first) = b.hop("r0", phone, "").await;
    assert!(first.contains("3 English"), "{first}");
    // registered through the first: English, Anzob
    let main = a.session("r1", phone, &["3", "1", "1"]).await;
    assert!(main.starts_with("CON Hashar"), "{main}");
    // a new session on the second goes straight to the main menu, in English
    let (_, again) = b.hop("r2", phone, "").await;
    assert!(again.starts_with("CON Hashar"), "{again}");
    let list = b.session("r3", phone, &["1"]).await;
    assert!(list.contains("1 Bridge"), "{list}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_language_changed_on_one_is_spoken_by_the_other(pool: PgPool) {
    seed(&pool).await;
    let (a, b) = two_apps(&pool).await;
    let (_, en) = b.hop("l0", PHONE_EN, "").await;
    assert!(en.starts_with("CON Hashar"), "{en}");
    // changed to Russian from the main menu of the first
    let ru = a.session("l1", PHONE_EN, &["5", "2"]).await;
    assert!(ru.contains("Хашар"), "{ru}");
    let (_, again) = b.hop("l2", PHONE_EN, "").await;
    assert!(again.starts_with("CON Хашар"), "{again}");
    // and changed by a coordinator in the database, for the whole household
    for sql in [
        "update phones set language = null where phone = $1",
        "update households set language = 'tg' where id = (select household_id from phones where phone = $1)",
    ] {
        sqlx::query(sql)
            .bind(PHONE_EN)
            .execute(&pool)
            .await
            .expect("language");
    }
    let (_, tg) = b.hop("l3", PHONE_EN, "").await;
    assert!(tg.starts_with("CON Ҳашар"), "{tg}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_number_moved_to_another_household_lists_that_community(pool: PgPool) {
    let seed = seed(&pool).await;
    let (_a, b) = two_apps(&pool).await;
    let list = b.session("m0", PHONE_EN, &["1"]).await;
    assert!(list.contains("1 Bridge"), "{list}");
    let other = add_household(&pool, seed.other_community, Some("en"), "+992900000999").await;
    sqlx::query("update phones set household_id = $2 where phone = $1")
        .bind(PHONE_EN)
        .bind(other)
        .execute(&pool)
        .await
        .expect("move");
    let list = b.session("m1", PHONE_EN, &["1"]).await;
    assert!(
        list.contains("1 Water") && !list.contains("Bridge"),
        "{list}"
    );
    // removed: the number is unknown again
    sqlx::query("delete from phones where phone = $1")
        .bind(PHONE_EN)
        .execute(&pool)
        .await
        .expect("remove");
    let (_, first) = b.hop("m2", PHONE_EN, "").await;
    assert!(
        first.contains("3 English") && first.contains("1 Тоҷикӣ"),
        "{first}"
    );
}

/// A pledge made through one; the aggregator's retry of the confirming hop reaches the
/// other: the same screen and code, one pledge.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_session_with_an_effect_on_one_is_read_by_the_other(pool: PgPool) {
    seed(&pool).await;
    let (a, b) = two_apps(&pool).await;
    let done = a.session("s1", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert!(done.starts_with("END Bridge: pledged 500 TJS."), "{done}");
    // The pledge's statement left the session's notification to its process (its commit
    // takes no notification lock), which sent it after the commit: the other knows the
    // session has a row and reads it.
    let key: String = sqlx::query_scalar("select session_key from ussd_sessions")
        .fetch_one(&pool)
        .await
        .expect("the session's row");
    assert!(a.cache.announces(), "the process announces its sessions");
    b.cache.sync(&pool, WAIT).await.expect("barrier");
    assert!(b.cache.session_recorded(&key), "announced to the other");
    let (_, retry) = b.hop("s1", PHONE_EN, "1*1*500*1").await;
    assert_eq!(retry, done);
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
}

/// The listening connection is killed (its notifications lost with it) and a project
/// closes before it is back: the cache starts over, and what it serves then is the
/// database's, not what it had.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_lost_connection_makes_the_cache_start_over(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let list = app.session("k0", PHONE_EN, &["1"]).await;
    assert!(list.contains("2 School roof"), "{list}");
    let starts = app.cache.starts();
    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
         where datname = current_database() and application_name = $1) t",
    )
    .bind(hashar::cache::APPLICATION_NAME)
    .fetch_one(&pool)
    .await
    .expect("terminate");
    assert_eq!(killed, 1, "one listening connection");
    close_project(
        &pool,
        seed.roof,
        app.clock.now() - chrono::Duration::hours(1),
    )
    .await;
    assert!(
        app.cache.started_after(starts, WAIT).await,
        "the cache started over"
    );
    let list = app.session("k1", PHONE_EN, &["1"]).await;
    assert!(!list.contains("School roof"), "{list}");
}

/// The same walks give the same screens with the cache and without it (every hop reading
/// the database), registering, pledging, changing language and reading totals.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_screens_are_the_same_with_and_without_the_cache(pool: PgPool) {
    seed(&pool).await;
    let cached = app(pool.clone()).await;
    let mut config = test_config();
    config.ussd_cache = false;
    let uncached = app_with(pool.clone(), config).await;
    assert!(cached.cache.live() && !uncached.cache.live());
    let walks: &[(&str, &[&str])] = &[
        (PHONE_EN, &["1", "2", "300"]),
        (PHONE_RU, &["2", "1"]),
        (PHONE_TG, &["4"]),
        (PHONE_NO_LANGUAGE, &[]),
        ("+992935550001", &["3", "2"]),
    ];
    for (i, (phone, inputs)) in walks.iter().enumerate() {
        let (_, first_a) = cached.hop(&format!("a{i}"), phone, "").await;
        let (_, first_b) = uncached.hop(&format!("b{i}"), phone, "").await;
        assert_eq!(first_a, first_b, "{phone}: first screen");
        for n in 1..=inputs.len() {
            let text = inputs[..n].join("*");
            let (_, a) = cached.hop(&format!("a{i}"), phone, &text).await;
            let (_, b) = uncached.hop(&format!("b{i}"), phone, &text).await;
            assert_eq!(a, b, "{phone} {text}");
        }
    }
    // effects: a pledge on each, then the language changed on each
    let a = cached
        .session("pa", PHONE_EN, &["1", "1", "500", "1"])
        .await;
    let b = uncached
        .session("pb", PHONE_RU, &["1", "1", "500", "1"])
        .await;
    assert!(a.starts_with("END Bridge: pledged 500 TJS."), "{a}");
    assert!(b.starts_with("END Мост: обещано 500 TJS."), "{b}");
    let a = cached.session("la", PHONE_EN, &["5", "2"]).await;
    let b = uncached.session("lb", PHONE_RU, &["5", "2"]).await;
    assert_eq!(a, b);
}

/// A process stopping while a pledge is under way: its cache's task has stopped and sent
/// what was queued, then the pledge's session is queued. The pledge sends it itself
/// (`announce_session` sends the queue itself), so the other processes still learn of the session.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_session_queued_after_the_announcer_stopped_is_still_announced(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .expect("listener");
    listener
        .listen(hashar::cache::CHANNEL)
        .await
        .expect("listen");
    let cache = hashar::cache::Cache::default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = cache.follow(
        pool.clone(),
        std::sync::Arc::new(hashar::clock::SystemClock),
        Duration::from_secs(300),
        async move {
            let _ = stopped.await;
        },
    );
    assert!(cache.announces(), "announcing while it follows");
    cache.announce_session("before-stop", &pool).await;
    let _ = stop.send(());
    task.await.expect("the cache's task ends");
    assert!(!cache.announces(), "stopped");
    cache.announce_session("after-stop", &pool).await;
    assert!(cache.announced(WAIT).await, "everything queued was sent");
    let mut seen = std::collections::HashSet::new();
    while !(seen.contains("session:before-stop") && seen.contains("session:after-stop")) {
        let n = tokio::time::timeout(WAIT, listener.recv())
            .await
            .expect("a notification within the wait")
            .expect("listener");
        seen.insert(n.payload().to_owned());
    }
}
