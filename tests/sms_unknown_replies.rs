//! SMS pumping: texts "from" numbers nobody registered get a few replies an hour at most,
//! counted exactly even when they arrive together.

mod common;

use axum::http::StatusCode;
use common::*;
use sqlx::PgPool;

const STRANGER: &str = "+79161230001";
const CAP: u32 = 3;

async fn replies_to(pool: &PgPool, phone: &str) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where phone = $1")
        .bind(phone)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn capped_app(pool: PgPool) -> TestApp {
    let mut config = test_config();
    config.sms_unknown_replies_per_hour = CAP;
    app_with(pool, config).await
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_unregistered_number_gets_a_few_replies_an_hour(pool: PgPool) {
    seed(&pool).await;
    let app = capped_app(pool.clone()).await;
    for i in 0..7 {
        assert_eq!(
            app.text(&format!("ATXid_s{i}"), STRANGER, "HELP").await,
            StatusCode::OK
        );
    }
    assert_eq!(replies_to(&pool, STRANGER).await, i64::from(CAP));
    // every text is kept, the unanswered ones say why
    let outcomes: Vec<String> = sqlx::query_scalar(
        "select outcome from inbound_messages where sender_e164 = $1 order by id",
    )
    .bind(STRANGER)
    .fetch_all(&pool)
    .await
    .expect("inbound");
    assert_eq!(outcomes.len(), 7);
    assert!(
        outcomes[..3].iter().all(|o| !o.contains("cap")),
        "{outcomes:?}"
    );
    assert!(
        outcomes[3..].iter().all(|o| o.contains("reply cap")),
        "{outcomes:?}"
    );
    // an hour after the window began, a new one
    app.clock.advance(chrono::Duration::hours(1));
    assert_eq!(app.text("ATXid_s7", STRANGER, "HELP").await, StatusCode::OK);
    assert_eq!(replies_to(&pool, STRANGER).await, i64::from(CAP) + 1);
    // 59 minutes later that window is still full after two more
    app.clock.advance(chrono::Duration::minutes(59));
    for i in 8..12 {
        app.text(&format!("ATXid_s{i}"), STRANGER, "HELP").await;
    }
    assert_eq!(replies_to(&pool, STRANGER).await, 2 * i64::from(CAP));
    // a household's number is not capped
    for i in 0..7 {
        app.text(&format!("ATXid_h{i}"), PHONE_RU, "HELP").await;
    }
    assert_eq!(replies_to(&pool, PHONE_RU).await, 7);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn concurrent_texts_from_one_unregistered_number_are_counted_exactly(pool: PgPool) {
    seed(&pool).await;
    let app = capped_app(pool.clone()).await;
    let texts = (0..20).map(|i| {
        let app = &app;
        async move { app.text(&format!("ATXid_c{i}"), STRANGER, "HELP").await }
    });
    let answers = futures_util::future::join_all(texts).await;
    assert!(answers.iter().all(|s| *s == StatusCode::OK), "{answers:?}");
    assert_eq!(replies_to(&pool, STRANGER).await, i64::from(CAP));
    let stored: i64 =
        sqlx::query_scalar("select count(*) from inbound_messages where sender_e164 = $1")
            .bind(STRANGER)
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(stored, 20);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_cap_of_zero_answers_no_unregistered_number(pool: PgPool) {
    seed(&pool).await;
    let mut config = test_config();
    config.sms_unknown_replies_per_hour = 0;
    let app = app_with(pool.clone(), config).await;
    assert_eq!(app.text("ATXid_z", STRANGER, "HELP").await, StatusCode::OK);
    assert_eq!(replies_to(&pool, STRANGER).await, 0);
    app.text("ATXid_zh", PHONE_RU, "HELP").await;
    assert_eq!(replies_to(&pool, PHONE_RU).await, 1);
}
