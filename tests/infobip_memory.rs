//! One Infobip request cannot exhaust memory (issue 8, point 2): the largest body taken
//! keeps the server's memory growth under 32 MiB, each message is stored with its own JSON
//! (never the whole body once per message), and a body with too many messages is refused
//! before anything is stored.
//!
//! A test binary of its own with a single test, so that the counting allocator below sees
//! the server handling that request and nothing else of the suite. Allocated bytes are
//! counted (not the process RSS, which the allocator keeps high after a free and which
//! moves with whatever else the machine does).

mod common;

use axum::{body::Body, http::Request, http::StatusCode};
use common::*;
use hashar::channels::{JSON_BODY_LIMIT, MAX_MESSAGES_PER_REQUEST, MAX_TEXT_CHARS};
use http_body_util::BodyExt;
use peak_alloc::PeakAlloc;
use sqlx::PgPool;
use tower::ServiceExt;

#[global_allocator]
static ALLOCATED: PeakAlloc = PeakAlloc;

const LIMIT: usize = 32 * 1024 * 1024;

/// An Infobip forward of `n` messages from distinct numbers, each text `text` (already
/// JSON-escaped).
fn forward(prefix: &str, n: usize, text: &str) -> String {
    let messages: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"messageId":"{prefix}-{i}","from":"7916{i:07}","to":"4274","text":"{text}","receivedAt":"2026-11-28T09:28:39.220+0000","smsCount":10}}"#
            )
        })
        .collect();
    format!(
        r#"{{"results":[{}],"messageCount":{n},"pendingMessageCount":0}}"#,
        messages.join(",")
    )
}

/// Posts `body` and returns the status and how much more memory was allocated at the peak
/// than before the request.
async fn post_measured(app: &TestApp, body: String) -> (StatusCode, usize) {
    let req = Request::post("/webhooks/infobip/sms")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let router = app.router.clone();
    ALLOCATED.reset_peak_usage();
    let before = ALLOCATED.current_usage();
    let resp = router.oneshot(req).await.expect("answer");
    let status = resp.status();
    let _ = resp.into_body().collect().await.expect("body");
    (status, ALLOCATED.peak_usage().saturating_sub(before))
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_maximal_infobip_body_keeps_memory_growth_under_32_mib(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    // Warm up what the first request pays for once (statements, menus, the pool).
    let (status, _) = post_measured(&app, forward("warm", 2, "HELP")).await;
    assert_eq!(status, StatusCode::OK);

    // The largest body taken: the most messages, each with the longest text, every
    // character escaped (`\u0430`, Cyrillic а) as a JSON encoder that escapes non-ASCII
    // would send it.
    let longest = "\\u0430".repeat(MAX_TEXT_CHARS);
    let maximal = forward("max", MAX_MESSAGES_PER_REQUEST, &longest);
    assert!(
        maximal.len() <= JSON_BODY_LIMIT && maximal.len() > JSON_BODY_LIMIT * 9 / 10,
        "{} bytes",
        maximal.len()
    );
    let body_len = maximal.len();
    let (status, growth) = post_measured(&app, maximal).await;
    assert_eq!(status, StatusCode::OK);
    assert!(growth < LIMIT, "peak growth {growth} bytes");
    let (stored, bytes): (i64, i64) = sqlx::query_as(
        "select count(*), coalesce(sum(octet_length(raw::text)), 0)::bigint
         from inbound_messages where provider = 'infobip' and provider_msg_id like 'max-%'",
    )
    .fetch_one(&pool)
    .await
    .expect("stored");
    assert_eq!(stored, MAX_MESSAGES_PER_REQUEST as i64);
    // each message's own JSON: together no more than the body itself
    assert!(
        (bytes as usize) < body_len,
        "stored {bytes} bytes of raw JSON for a body of {body_len}"
    );
    let own: i64 = count(
        &pool,
        "select count(*) from inbound_messages
         where provider = 'infobip' and provider_msg_id like 'max-%' and raw->>'messageId' = provider_msg_id",
    )
    .await;
    assert_eq!(own, MAX_MESSAGES_PER_REQUEST as i64);

    // What was tried as an attack: 800 messages in 274 KB took the peak RSS to 1 GB.
    let many = forward("many", 800, &"x".repeat(200));
    let (status, growth) = post_measured(&app, many).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(growth < LIMIT, "peak growth {growth} bytes");
    // As many tiny messages as fit under the byte limit: refused as cheaply.
    let tiny = forward("tiny", 7000, "x");
    assert!(tiny.len() <= JSON_BODY_LIMIT);
    let (status, growth) = post_measured(&app, tiny).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(growth < LIMIT, "peak growth {growth} bytes");
    // More bytes than the limit: refused before the body is read whole.
    let huge = forward("huge", 90, &"x".repeat(20_000));
    assert!(huge.len() > JSON_BODY_LIMIT);
    let (status, growth) = post_measured(&app, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(growth < LIMIT, "peak growth {growth} bytes");
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages
             where provider_msg_id like 'many-%' or provider_msg_id like 'tiny-%' or provider_msg_id like 'huge-%'"
        )
        .await,
        0
    );
}
