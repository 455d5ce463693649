//! The fault suite: real `hashar serve` processes (the binary this crate builds), each test
//! on its own fresh database, against a mock provider, with the faults of issue 8 —
//! PostgreSQL cut under load, SIGKILL in the middle of a broadcast, two instances on one
//! database, and a provider that fails at random (seeded). (SIGTERM with a hop in flight:
//! `tests/serve_process.rs`.)
//! Each process is killed when its test ends, also when the test fails.

mod fault_kit;

use std::{collections::HashMap, time::Duration};

use fault_kit::*;
use serde_json::json;
use sqlx::PgPool;

fn serve_options(pool: &PgPool, name: &str) -> ServeOptions {
    let (host, port, db) = database_of(pool);
    ServeOptions::new(name, database_url(&host, port, &db))
}

async fn send_broadcast(
    serve: &Serve,
    token: &str,
    id: i64,
    at: Option<String>,
) -> (u16, serde_json::Value) {
    let body = match at {
        Some(at) => json!({ "at": at }),
        None => json!({}),
    };
    api(
        serve,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        token,
        body,
    )
    .await
}

/// Sends per number: numbers never accepted, and the extra sends.
fn missed_and_duplicates(provider: &Provider, phones: &[String]) -> (Vec<String>, usize) {
    let per = provider.accepted();
    let missed: Vec<String> = phones
        .iter()
        .filter(|p| !per.contains_key(p.trim_start_matches('+')))
        .cloned()
        .collect();
    let duplicates = per.values().map(|n| n - 1).sum();
    (missed, duplicates)
}

async fn not_yet_sent(pool: &PgPool) -> i64 {
    count(
        pool,
        "select count(*) from outbox where status not in ('sent', 'delivered', 'failed', 'suppressed')",
    )
    .await
}

/// SIGKILL of `serve` in the middle of a 2,000-recipient broadcast, then a restart: no
/// recipient is missed, and the only duplicates are the messages in flight at the kill
/// (at most one dispatcher batch).
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn sigkill_in_the_middle_of_a_broadcast_misses_no_one(pool: PgPool) {
    const RECIPIENTS: usize = 2000;
    const BATCH: usize = 50;
    let (community, _, phones) = community_with(&pool, RECIPIENTS).await;
    let token = admin_token(&pool).await;
    let provider = Provider::start().await;
    let opts = |name: &str| {
        serve_options(&pool, name)
            .infobip(&provider.url())
            .set("HASHAR_SMS_RATE", 400)
            .set("HASHAR_SMS_BATCH", BATCH)
            .set("HASHAR_DISPATCHERS", 1)
    };
    let mut first = Serve::start(&opts("kill-first")).await;
    let id = draft_broadcast(&first, &token, community).await;
    let (status, body) = send_broadcast(&first, &token, id, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queued"], RECIPIENTS);
    eventually(
        "a quarter of the broadcast sent",
        Duration::from_secs(60),
        || async { (provider.accepted_total() >= RECIPIENTS / 4).then_some(()) },
    )
    .await;
    first.kill();
    let at_kill = provider.accepted_total();
    assert!(
        at_kill < RECIPIENTS,
        "the broadcast was over before the kill"
    );

    let _second = Serve::start(&opts("kill-second")).await;
    eventually(
        "every message sent after the restart",
        Duration::from_secs(90),
        || async { (not_yet_sent(&pool).await == 0).then_some(()) },
    )
    .await;
    let (missed, duplicates) = missed_and_duplicates(&provider, &phones);
    println!(
        "SIGKILL after {at_kill} of {RECIPIENTS} accepted: {} sends in all, {duplicates} duplicate(s) \
         (bound: one batch of {BATCH}), {} missed",
        provider.accepted_total(),
        missed.len()
    );
    assert!(
        missed.is_empty(),
        "{} recipients never got the message",
        missed.len()
    );
    assert!(
        duplicates <= BATCH,
        "{duplicates} duplicates: more than the one batch in flight at the kill"
    );
    assert_eq!(
        count(&pool, "select count(*) from outbox where status = 'sent'").await,
        RECIPIENTS as i64
    );
}

/// The provider answers 500, 429 with `Retry-After`, and too late (a timeout), at random
/// from a fixed seed: every message is accepted exactly once, none is failed, and no
/// message is tried again before the `Retry-After` it got.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_failing_provider_gets_every_message_once_and_retry_after_is_respected(pool: PgPool) {
    const RECIPIENTS: usize = 200;
    const SEED: u64 = 0x4a5a_8e11;
    const RETRY_AFTER_SECS: u64 = 1;
    let (community, _, phones) = community_with(&pool, RECIPIENTS).await;
    let token = admin_token(&pool).await;
    let provider = Provider::scripted(
        random_faults(SEED, 3, RETRY_AFTER_SECS),
        Duration::from_millis(1500),
    )
    .await;
    // retries after 50 ms (doubling): without Retry-After a 429 would be retried long
    // before the second it asked for
    let serve = Serve::start(
        &serve_options(&pool, "flaky")
            .infobip(&provider.url())
            .set("HASHAR_SMS_RATE", 200)
            .set("HASHAR_SMS_HTTP_TIMEOUT_MS", 400)
            .set("HASHAR_SMS_LEASE_SECS", 10),
    )
    .await;
    let id = draft_broadcast(&serve, &token, community).await;
    let (status, body) = send_broadcast(&serve, &token, id, None).await;
    assert_eq!(status, 200, "{body}");
    eventually("every message sent", Duration::from_secs(120), || async {
        (not_yet_sent(&pool).await == 0).then_some(())
    })
    .await;
    let hits = provider.hits();
    let tally = |a: fn(&Answer) -> bool| hits.iter().filter(|h| a(&h.answer)).count();
    let (errors, throttled, late) = (
        tally(|a| *a == Answer::ServerError),
        tally(|a| matches!(a, Answer::TooMany(_))),
        tally(|a| *a == Answer::Late),
    );
    let (missed, duplicates) = missed_and_duplicates(&provider, &phones);
    // every 429's next request for that number came after its Retry-After
    let mut by_number: HashMap<&str, Vec<&Hit>> = HashMap::new();
    for h in &hits {
        by_number.entry(&h.to).or_default().push(h);
    }
    let mut too_early = Vec::new();
    let mut shortest = Duration::MAX;
    for list in by_number.values() {
        for pair in list.windows(2) {
            if let Answer::TooMany(secs) = pair[0].answer {
                let gap = pair[1].at.duration_since(pair[0].at);
                shortest = shortest.min(gap);
                if gap < Duration::from_secs(secs) {
                    too_early.push((pair[0].to.clone(), gap));
                }
            }
        }
    }
    println!(
        "seed {SEED:#x}: {} requests for {RECIPIENTS} messages: {errors} × 500, {throttled} × 429 \
         (Retry-After {RETRY_AFTER_SECS} s; shortest wait after one {shortest:?}), {late} timeouts; \
         {duplicates} duplicate(s), {} missed",
        hits.len(),
        missed.len()
    );
    assert!(
        errors > 0 && throttled > 0 && late > 0,
        "the seed must give every fault"
    );
    assert!(missed.is_empty(), "missed: {missed:?}");
    assert_eq!(duplicates, 0);
    assert!(
        too_early.is_empty(),
        "retried before Retry-After: {too_early:?}"
    );
    assert_eq!(
        count(&pool, "select count(*) from outbox where status = 'sent'").await,
        RECIPIENTS as i64
    );
    drop(serve);
}
/// Two `serve` processes on one database, each with two dispatchers and the broadcast
/// scheduler: a broadcast sent through both at once and scheduled as well (a double click
/// across instances, and the schedulers racing the API), and claims that would take longer
/// to send at each instance's rate share than the lease: every message reaches the provider
/// exactly once.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn two_instances_send_every_message_exactly_once(pool: PgPool) {
    const RECIPIENTS: usize = 600;
    let (community, _, phones) = community_with(&pool, RECIPIENTS).await;
    let token = admin_token(&pool).await;
    let provider = Provider::start().await;
    // a batch of 200 at a share of 50/s would take 4 s: twice the 2 s lease
    let opts = |name: &str| {
        serve_options(&pool, name)
            .infobip(&provider.url())
            .set("HASHAR_SMS_RATE", 100)
            .set("HASHAR_SMS_BATCH", 200)
            .set("HASHAR_DISPATCHERS", 2)
    };
    let a = Serve::start(&opts("twin-a")).await;
    let b = Serve::start(&opts("twin-b")).await;
    let id = draft_broadcast(&a, &token, community).await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let (x, y, z) = tokio::join!(
        send_broadcast(&a, &token, id, None),
        send_broadcast(&b, &token, id, None),
        send_broadcast(&a, &token, id, Some(soon)),
    );
    println!(
        "two instances: the three sends answered {} {} {}",
        x.0, y.0, z.0
    );
    assert!(
        [&x, &y, &z].iter().any(|(s, _)| *s == 200),
        "no send accepted: {x:?} {y:?} {z:?}"
    );
    // bounded: until everything queued is sent, or 90 s (then the counts below say why)
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        let queued = count(&pool, "select count(*) from outbox").await;
        if queued >= RECIPIENTS as i64 && not_yet_sent(&pool).await == 0 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let (missed, duplicates) = missed_and_duplicates(&provider, &phones);
    let rows = count(&pool, "select count(*) from outbox").await;
    let waiting = not_yet_sent(&pool).await;
    println!(
        "two instances: {} sends for {RECIPIENTS} recipients, {duplicates} duplicate(s), {} missed, \
         {rows} outbox rows, {waiting} not sent",
        provider.accepted_total(),
        missed.len()
    );
    assert_eq!(rows, RECIPIENTS as i64, "one outbox row per recipient");
    assert_eq!(duplicates, 0, "messages sent more than once");
    assert!(missed.is_empty(), "{} recipients missed", missed.len());
    assert_eq!(waiting, 0, "messages still waiting after 90 s");
    drop((a, b));
}
