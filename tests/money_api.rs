//! Recording money through the admin API: partial and full receipts, the household's SMS
//! receipt, cancellations, money without a pledge, partners' matching — and every refusal.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

async fn pledge(
    pool: &PgPool,
    project: i64,
    household: i64,
    phone: &str,
    amount: &str,
    key: &str,
) -> i64 {
    sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, $4::numeric, 'TJS', 'ussd', $5) returning id",
    )
    .bind(project)
    .bind(household)
    .bind(phone)
    .bind(amount)
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("pledge")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn receipts_cancellations_and_matching(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (_, _, token) = hashar::api::auth::add_coordinator(
        &pool,
        "Coordinator",
        "+992900000201",
        &["anzob".into()],
        false,
    )
    .await
    .expect("coordinator");
    let ru_household: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("h");
    let p = pledge(&pool, seed.bridge, ru_household, PHONE_RU, "1000", "k1").await;

    // part of it
    let (status, r) = call(&app, "POST", &format!("/api/v1/pledges/{p}/receipts"),
        json!({"amount": "400", "received_on": "2026-11-20", "method": "cash", "receipt_no": "A-17"}), &token).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(r["amount"], "400.00");
    assert_eq!(
        r["recorded_by"]
            .as_str()
            .map(|s| s.starts_with("coordinator:")),
        Some(true)
    );
    let (_, h) = call(
        &app,
        "GET",
        &format!("/api/v1/pledges/{p}"),
        Value::Null,
        &token,
    )
    .await;
    assert_eq!(
        (h["pledge"]["status"].as_str(), h["outstanding"].as_str()),
        (Some("pledged"), Some("600.00")),
        "{h}"
    );
    // the household's SMS receipt, in Russian, with the new matched total (400 + 400 matched)
    let (body, kind): (String, String) =
        sqlx::query_as("select body, kind from outbox where phone = $1")
            .bind(PHONE_RU)
            .fetch_one(&pool)
            .await
            .expect("receipt sms");
    assert_eq!(kind, "receipt");
    assert!(
        body.starts_with(
            "Получено 400 TJS для Мост, спасибо! Квитанция A-17. Собрано 800 из 10000 TJS (8%)"
        ),
        "{body}"
    );

    // more than is outstanding: refused with the reason, nothing stored
    let (status, e) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{p}/receipts"),
        json!({"amount": "600.01", "received_on": "2026-11-21", "method": "cash"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("exceed"),
        "{e}"
    );
    // the rest (amount left out = what is outstanding)
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{p}/receipts"),
        json!({"received_on": "2026-11-22", "method": "mobile_money"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, h) = call(
        &app,
        "GET",
        &format!("/api/v1/pledges/{p}"),
        Value::Null,
        &token,
    )
    .await;
    assert_eq!(h["pledge"]["status"], "received");
    assert_eq!(h["receipts"].as_array().map(Vec::len), Some(2));
    // received money cannot be cancelled
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{p}/cancel"),
        json!({"reason": "x"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // cancel another pledge; then it receives nothing
    let q = pledge(&pool, seed.bridge, seed.household, PHONE_TG, "50", "k2").await;
    let (status, c) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{q}/cancel"),
        json!({"reason": "moved to Dushanbe"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["pledge"]["status"], "cancelled");
    assert_eq!(c["cancellation"]["reason"], "moved to Dushanbe");
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{q}/cancel"),
        json!({"reason": "again"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{q}/receipts"),
        json!({"amount": "1", "received_on": "2026-11-21", "method": "cash"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // money without a pledge, and bad fields named
    let (status, r) = call(&app, "POST", "/api/v1/receipts",
        json!({"project_id": seed.bridge, "amount": "250.25", "received_on": "2026-11-23", "method": "bank"}), &token).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    for (body, field) in [
        (
            json!({"project_id": seed.bridge, "amount": "0", "received_on": "2026-11-23", "method": "bank"}),
            "amount",
        ),
        (
            json!({"project_id": seed.bridge, "amount": "1.001", "received_on": "2026-11-23", "method": "bank"}),
            "amount",
        ),
        (
            json!({"project_id": seed.bridge, "amount": "1", "received_on": "2026-11-23", "method": "goats"}),
            "method",
        ),
    ] {
        let (status, e) = call(&app, "POST", "/api/v1/receipts", body, &token).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{e}"
        );
    }

    // matching: 1:1, received 1250.25 → 1250.25 due
    let uri = format!("/api/v1/projects/{}/disbursements", seed.bridge);
    let (status, _) = call(
        &app,
        "POST",
        &uri,
        json!({"amount": "1000", "disbursed_on": "2026-11-24", "partner": "Partner"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, e) = call(
        &app,
        "POST",
        &uri,
        json!({"amount": "250.26", "disbursed_on": "2026-11-24", "partner": "Partner"}),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let (due, disbursed): (rust_decimal::Decimal, rust_decimal::Decimal) =
        sqlx::query_as("select match_due, disbursed from project_totals where project_id = $1")
            .bind(seed.bridge)
            .fetch_one(&pool)
            .await
            .expect("totals");
    assert_eq!(
        (due.to_string(), disbursed.to_string()),
        ("250.25".into(), "1000.00".into())
    );
}
