//! Delivery reports move a message only once it has been sent (issue 8, point 11): a report
//! naming a queued message changes nothing, one that beats the dispatcher's record of the
//! send waits and is applied after it, one naming no message by our id is refused, and
//! reports still waiting after 7 days are pruned.

mod common;

use axum::http::StatusCode;
use chrono::Duration;
use common::*;
use hashar::{
    channels::{DeliveryReport, DeliveryState, MessageRef},
    clock::Clock,
    config::SmsProvider,
    domain::Phone,
    outbox::{self, Kind, NewMessage},
};
use sqlx::PgPool;

const MIGRANT: &str = "+79161234567";

async fn kannel_app(pool: &PgPool) -> TestApp {
    app_with(pool.clone(), test_config_with_provider(SmsProvider::Kannel)).await
}

async fn queued(app: &TestApp, provider: &str) -> i64 {
    let phone = Phone::parse(MIGRANT).expect("phone");
    let mut conn = app.pool.acquire().await.expect("conn");
    let msg = NewMessage {
        to: &phone,
        body: "hello",
        kind: Kind::Reply,
        inbound_id: None,
    };
    outbox::enqueue(&mut conn, &msg, provider, 3, app.clock.now())
        .await
        .expect("enqueue")
}

async fn kannel_report(app: &TestApp, id: i64, kind: u8) -> StatusCode {
    app.get(&format!(
        "/webhooks/kannel/delivery?msg={id}&type={kind}&reply=ACK%2F&smsc=FAKE&ts=1"
    ))
    .await
    .0
}

async fn state(pool: &PgPool, id: i64) -> (String, i32, Option<String>) {
    sqlx::query_as("select status, attempts, provider_status from outbox where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("row")
}

async fn waiting(pool: &PgPool) -> i64 {
    count(
        pool,
        "select count(*) from early_delivery_reports where applied_at is null",
    )
    .await
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_report_naming_a_queued_message_changes_nothing(pool: PgPool) {
    seed(&pool).await;
    let app = kannel_app(&pool).await;
    let id = queued(&app, "kannel").await;
    // "delivered" (type 1) for a message nobody has sent: answered (the provider must not
    // retry it forever), but the message stays queued and will still be sent
    assert_eq!(kannel_report(&app, id, 1).await, StatusCode::OK);
    assert_eq!(state(&pool, id).await, ("queued".to_owned(), 0, None));
    assert_eq!(waiting(&pool).await, 0, "not kept for later either");
    // and once it has been sent, the real report applies
    sqlx::query("update outbox set status = 'sent', sent_at = now() where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("sent");
    assert_eq!(kannel_report(&app, id, 1).await, StatusCode::OK);
    assert_eq!(state(&pool, id).await.0, "delivered");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_report_that_beats_the_record_of_the_send_is_applied_after_it(pool: PgPool) {
    seed(&pool).await;
    let app = kannel_app(&pool).await;
    let id = queued(&app, "kannel").await;
    // the dispatcher has claimed it and the operator reports before the send is recorded
    sqlx::query(
        "update outbox set status = 'sending', attempts = 1, lease_owner = 'd1',
                lease_until = now() + interval '1 minute'
          where id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("sending");
    assert_eq!(kannel_report(&app, id, 1).await, StatusCode::OK);
    assert_eq!(
        state(&pool, id).await.0,
        "sending",
        "not moved while sending"
    );
    assert_eq!(waiting(&pool).await, 1);
    // nothing to apply while it is still being sent
    assert_eq!(
        outbox::apply_early_reports(&pool, app.clock.now())
            .await
            .expect("apply"),
        0
    );
    sqlx::query(
        "update outbox set status = 'sent', sent_at = now(), lease_until = null where id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .expect("sent");
    assert_eq!(
        outbox::apply_early_reports(&pool, app.clock.now())
            .await
            .expect("apply"),
        1
    );
    assert_eq!(
        state(&pool, id).await,
        ("delivered".to_owned(), 1, Some("1".to_owned()))
    );
    assert_eq!(waiting(&pool).await, 0);
}

/// The webhook's two statements (apply the report; else keep it for later) each see what is
/// committed when they start. When the dispatcher records the send between them, the first
/// finds the message still `sending` and the second finds it `sent`: the report is kept (and
/// applied by the next pass), not refused and lost. Found by the Kannel end-to-end test under
/// load; this replays the interleaving statement by statement.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_report_whose_send_is_recorded_between_apply_and_keep_is_not_lost(pool: PgPool) {
    seed(&pool).await;
    let app = kannel_app(&pool).await;
    let id = queued(&app, "kannel").await;
    sqlx::query("update outbox set status = 'sending', attempts = 1 where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("sending");
    let now = app.clock.now();
    let report = DeliveryReport {
        provider: "kannel",
        message: MessageRef::Ours(id),
        state: DeliveryState::Delivered,
        provider_status: "1".to_owned(),
        reason: None,
    };
    let mut tx = pool.begin().await.expect("begin");
    let inbound = hashar::store::inbox::insert_delivery(
        &mut tx,
        "kannel",
        &format!("ours:{id}:1"),
        &serde_json::json!({"type": "1"}),
        "delivered",
        now,
    )
    .await
    .expect("store")
    .expect("fresh");
    let applied = outbox::apply_delivery(&mut tx, &report, now)
        .await
        .expect("apply");
    assert!(!applied, "still sending: nothing to apply yet");
    // the dispatcher records the send, on its own connection
    sqlx::query("update outbox set status = 'sent', sent_at = now() where id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .expect("sent");
    let kept = outbox::keep_early_report(&mut tx, inbound, &report, now)
        .await
        .expect("keep");
    assert!(kept, "the report is kept, not refused");
    tx.commit().await.expect("commit");
    assert_eq!(
        outbox::apply_early_reports(&pool, now)
            .await
            .expect("apply"),
        1
    );
    assert_eq!(state(&pool, id).await.0, "delivered");
    assert_eq!(waiting(&pool).await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn reports_that_never_find_their_message_are_pruned_after_seven_days(pool: PgPool) {
    seed(&pool).await;
    let app = app_with(
        pool.clone(),
        test_config_with_provider(SmsProvider::AfricasTalking),
    )
    .await;
    // a provider id no message has (yet): it waits for its message, for 7 days at most
    let dlr = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("id", "ATXid_nobody"),
            ("status", "Success"),
            ("phoneNumber", MIGRANT),
        ])
        .finish();
    let (status, _) = app
        .post_form("/webhooks/africastalking/delivery", dlr)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(waiting(&pool).await, 1);
    let now = app.clock.now();
    outbox::apply_early_reports(&pool, now + Duration::days(6))
        .await
        .expect("apply");
    assert_eq!(waiting(&pool).await, 1, "kept for 7 days");
    outbox::apply_early_reports(&pool, now + Duration::days(8))
        .await
        .expect("apply");
    assert_eq!(waiting(&pool).await, 0, "pruned after 7 days");
    assert_eq!(
        count(&pool, "select count(*) from early_delivery_reports").await,
        0
    );
    // by our id, a report naming no message at all is refused outright (nothing stored)
    let kannel = kannel_app(&pool).await;
    assert_eq!(kannel_report(&kannel, 999_999, 1).await, StatusCode::OK);
    assert_eq!(waiting(&pool).await, 0);
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where provider = 'kannel'"
        )
        .await,
        0
    );
}

fn test_config_with_provider(provider: SmsProvider) -> hashar::config::Config {
    let mut config = test_config();
    config.sms_provider = provider;
    config
}
