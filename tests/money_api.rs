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

// ---- issue 8, point 10: money recorded once and correctable ----

async fn admin_and_own(pool: &PgPool) -> (String, String) {
    let t = tokens(pool).await;
    (t.admin, t.own)
}

async fn totals(pool: &PgPool, project: i64) -> (String, String, String) {
    let (received, matched_total, due): (
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
    ) = sqlx::query_as(
        "select received, matched_total, match_due from project_totals where project_id = $1",
    )
    .bind(project)
    .fetch_one(pool)
    .await
    .expect("totals");
    (
        format!("{received:.2}"),
        format!("{matched_total:.2}"),
        format!("{due:.2}"),
    )
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_retried_receipt_with_the_same_key_is_recorded_once(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (admin, own) = admin_and_own(&pool).await;
    let p = pledge(&pool, seed.bridge, seed.household, PHONE_TG, "1000", "k1").await;
    let uri = format!("/api/v1/pledges/{p}/receipts");
    let body = json!({"amount": "400", "received_on": "2026-11-20", "method": "cash"});

    let (s1, replayed1, r1) = app
        .api_keyed("POST", &uri, Some(&body), Some(&own), Some("retry-1"))
        .await;
    assert_eq!((s1, replayed1), (StatusCode::CREATED, false), "{r1}");
    // the client's retry (its first answer was lost): the same answer, nothing recorded again
    let (s2, replayed2, r2) = app
        .api_keyed("POST", &uri, Some(&body), Some(&own), Some("retry-1"))
        .await;
    assert_eq!((s2, replayed2), (StatusCode::CREATED, true), "{r2}");
    assert_eq!(r1, r2);
    assert_eq!(count(&pool, "select count(*) from receipts").await, 1);
    assert_eq!(
        count(&pool, "select count(*) from outbox where kind = 'receipt'").await,
        1
    );
    // the same key for a different request: refused, nothing recorded
    let other = json!({"amount": "500", "received_on": "2026-11-20", "method": "cash"});
    let (s3, _, e) = app
        .api_keyed("POST", &uri, Some(&other), Some(&own), Some("retry-1"))
        .await;
    assert_eq!(
        (s3, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")),
        "{e}"
    );
    assert_eq!(count(&pool, "select count(*) from receipts").await, 1);
    // keys are per token: another token's same key is its own request
    let (s4, replayed4, _) = app
        .api_keyed("POST", &uri, Some(&body), Some(&admin), Some("retry-1"))
        .await;
    assert_eq!((s4, replayed4), (StatusCode::CREATED, false));
    assert_eq!(count(&pool, "select count(*) from receipts").await, 2);
    // money routes require a key
    let (s5, _, e) = app
        .api_keyed("POST", &uri, Some(&body), Some(&own), None)
        .await;
    assert_eq!(
        (s5, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")),
        "{e}"
    );
    // an invalid key is named
    let (s6, _, e) = app
        .api_keyed(
            "POST",
            &uri,
            Some(&body),
            Some(&own),
            Some(&"k".repeat(201)),
        )
        .await;
    assert_eq!(
        (s6, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key"))
    );
    // a refusal is remembered as well (a retry does not suddenly succeed differently)...
    let big = json!({"amount": "700", "received_on": "2026-11-20", "method": "cash"});
    let (s7, _, _) = app
        .api_keyed("POST", &uri, Some(&big), Some(&own), Some("too-much"))
        .await;
    assert_eq!(s7, StatusCode::CONFLICT);
    let (s8, replayed8, _) = app
        .api_keyed("POST", &uri, Some(&big), Some(&own), Some("too-much"))
        .await;
    assert_eq!((s8, replayed8), (StatusCode::CONFLICT, true));
    // ...and keys expire after 24 hours: then the key is free again
    app.clock.advance(chrono::Duration::hours(25));
    let body3 = json!({"amount": "100", "received_on": "2026-11-20", "method": "cash"});
    let (s9, replayed9, _) = app
        .api_keyed("POST", &uri, Some(&body3), Some(&own), Some("retry-1"))
        .await;
    assert_eq!((s9, replayed9), (StatusCode::CREATED, false));
    assert_eq!(
        count(
            &pool,
            "select count(*) from api_idempotency where key = 'too-much'"
        )
        .await,
        0
    );
    // other POSTs take a key too (optional there): a retried cancellation answers the same
    let q = pledge(&pool, seed.bridge, seed.household, PHONE_TG, "50", "k2").await;
    let cancel = format!("/api/v1/pledges/{q}/cancel");
    let why = json!({"reason": "moved"});
    let (c1, _, a1) = app
        .api_keyed("POST", &cancel, Some(&why), Some(&own), Some("c-1"))
        .await;
    let (c2, replayed, a2) = app
        .api_keyed("POST", &cancel, Some(&why), Some(&own), Some("c-1"))
        .await;
    assert_eq!((c1, c2, replayed), (StatusCode::OK, StatusCode::OK, true));
    assert_eq!(a1, a2);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn concurrent_requests_with_one_key_record_once(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (_, own) = admin_and_own(&pool).await;
    let body = json!({"project_id": seed.bridge, "amount": "10", "received_on": "2026-11-20", "method": "cash"});
    let calls = (0..8).map(|_| {
        app.api_keyed(
            "POST",
            "/api/v1/receipts",
            Some(&body),
            Some(&own),
            Some("double-click"),
        )
    });
    let answers = futures_util::future::join_all(calls).await;
    let created = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .count();
    assert!(created >= 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, _, _)| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{answers:?}"
    );
    assert_eq!(count(&pool, "select count(*) from receipts").await, 1);
    assert_eq!(totals(&pool, seed.bridge).await.0, "10.00");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn receipt_numbers_are_unique_per_community(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (admin, own) = admin_and_own(&pool).await;
    let receipt = |project: i64, no: &str| json!({"project_id": project, "amount": "10", "received_on": "2026-11-20", "method": "cash", "receipt_no": no});
    let (s, first) = call(
        &app,
        "POST",
        "/api/v1/receipts",
        receipt(seed.bridge, "A-17"),
        &own,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    // the same paper number again, in another project of the community, any case
    let (s, e) = call(
        &app,
        "POST",
        "/api/v1/receipts",
        receipt(seed.roof, " a-17 "),
        &own,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("receipt number"),
        "{e}"
    );
    assert_eq!(count(&pool, "select count(*) from receipts").await, 1);
    // another community has its own receipt books
    let other_project: i64 =
        sqlx::query_scalar("select id from projects where community_id = $1 limit 1")
            .bind(seed.other_community)
            .fetch_one(&pool)
            .await
            .expect("project of the other community");
    let (s, e) = call(
        &app,
        "POST",
        "/api/v1/receipts",
        receipt(other_project, "A-17"),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    // a reversed receipt frees its number for the corrected entry
    let id = first["id"].as_i64().expect("id");
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/receipts/{id}/reversal"),
        json!({"reason": "wrong amount"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, e) = call(
        &app,
        "POST",
        "/api/v1/receipts",
        receipt(seed.bridge, "A-17"),
        &own,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn money_dates_and_texts_are_bounded(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (admin, own) = admin_and_own(&pool).await;
    // the test clock is 2026-11-28: tomorrow is the latest date, 2020-01-01 the earliest
    for (date, ok) in [
        ("9999-12-31", false),
        ("0001-01-01", false),
        ("2019-12-31", false),
        ("2026-11-30", false),
        ("2020-01-01", true),
        ("2026-11-29", true),
    ] {
        let (s, e) = call(&app, "POST", "/api/v1/receipts",
            json!({"project_id": seed.bridge, "amount": "1", "received_on": date, "method": "cash"}), &own).await;
        if ok {
            assert_eq!(s, StatusCode::CREATED, "{date}: {e}");
        } else {
            assert_eq!(
                (s, e["error"]["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("received_on")),
                "{date}: {e}"
            );
        }
        let (s, e) = call(
            &app,
            "POST",
            &format!("/api/v1/projects/{}/disbursements", seed.bridge),
            json!({"amount": "1", "disbursed_on": date, "partner": "Partner"}),
            &own,
        )
        .await;
        if ok {
            assert_eq!(s, StatusCode::CREATED, "{date}: {e}");
        } else {
            assert_eq!(
                (s, e["error"]["field"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("disbursed_on")),
                "{date}: {e}"
            );
        }
    }
    let p = pledge(&pool, seed.bridge, seed.household, PHONE_TG, "1000", "k1").await;
    let (s, e) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{p}/receipts"),
        json!({"received_on": "9999-12-31", "method": "cash"}),
        &own,
    )
    .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("received_on"))
    );

    // text fields: one character too many is refused and named
    let long = |n: usize| "x".repeat(n);
    let cases = [
        (
            "/api/v1/receipts".to_owned(),
            json!({"project_id": seed.bridge, "amount": "1", "received_on": "2026-11-20", "method": "cash", "receipt_no": long(51)}),
            "receipt_no",
        ),
        (
            format!("/api/v1/pledges/{p}/receipts"),
            json!({"received_on": "2026-11-20", "method": "cash", "receipt_no": long(51)}),
            "receipt_no",
        ),
        (
            format!("/api/v1/projects/{}/disbursements", seed.bridge),
            json!({"amount": "1", "disbursed_on": "2026-11-20", "partner": long(201)}),
            "partner",
        ),
        (
            format!("/api/v1/projects/{}/disbursements", seed.bridge),
            json!({"amount": "1", "disbursed_on": "2026-11-20", "partner": "P", "reference": long(201)}),
            "reference",
        ),
        (
            format!("/api/v1/pledges/{p}/cancel"),
            json!({"reason": long(501)}),
            "reason",
        ),
        (
            "/api/v1/receipts/1/reversal".to_owned(),
            json!({"reason": long(501)}),
            "reason",
        ),
        (
            "/api/v1/disbursements/1/reversal".to_owned(),
            json!({"reason": ""}),
            "reason",
        ),
    ];
    for (uri, body, field) in cases {
        let (s, e) = call(&app, "POST", &uri, body, &admin).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{uri}: {e}"
        );
    }
    // a megabyte of text anywhere: refused before it is read whole
    let mb = long(1 << 20);
    let (s, e) = call(&app, "POST", "/api/v1/receipts",
        json!({"project_id": seed.bridge, "amount": "1", "received_on": "2026-11-20", "method": "cash", "receipt_no": mb}), &own).await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("body")),
        "{e}"
    );
    let (s, _, e) = app
        .api_keyed("POST", "/api/v1/communities", Some(&json!({"code": "x", "district": mb, "name_tg": "a", "name_ru": "a", "name_en": "a"})), Some(&admin), None)
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("body")),
        "{e}"
    );
    // receipts recorded above: six good dates, nothing else
    assert_eq!(count(&pool, "select count(*) from receipts").await, 2);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn reversals_correct_mistakes_without_deleting_history(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (admin, own) = admin_and_own(&pool).await;
    let p = pledge(&pool, seed.bridge, seed.household, PHONE_TG, "1000", "k1").await;
    let (s, r) = call(
        &app,
        "POST",
        &format!("/api/v1/pledges/{p}/receipts"),
        json!({"received_on": "2026-11-20", "method": "cash", "receipt_no": "B-1"}),
        &own,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let receipt = r["id"].as_i64().expect("id");
    assert_eq!(
        totals(&pool, seed.bridge).await,
        ("1000.00".into(), "2000.00".into(), "1000.00".into())
    );
    // the partner paid part of the matching
    let (s, d) = call(
        &app,
        "POST",
        &format!("/api/v1/projects/{}/disbursements", seed.bridge),
        json!({"amount": "600", "disbursed_on": "2026-11-21", "partner": "Partner"}),
        &own,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let disbursement = d["id"].as_i64().expect("id");

    let reverse = format!("/api/v1/receipts/{receipt}/reversal");
    // coordinators cannot reverse; admins can
    let (s, _) = call(
        &app,
        "POST",
        &reverse,
        json!({"reason": "counted twice"}),
        &own,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // reversing the receipt would leave matching paid above what is due: the disbursement first
    let (s, e) = call(
        &app,
        "POST",
        &reverse,
        json!({"reason": "counted twice"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, dr) = call(
        &app,
        "POST",
        &format!("/api/v1/disbursements/{disbursement}/reversal"),
        json!({"reason": "paid to the wrong project"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{dr}");
    assert_eq!(
        (dr["amount"].as_str(), dr["reverses"].as_i64()),
        (Some("-600.00"), Some(disbursement))
    );
    assert_eq!(totals(&pool, seed.bridge).await.2, "1000.00");

    let (s, rev) = call(
        &app,
        "POST",
        &reverse,
        json!({"reason": "counted twice"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{rev}");
    assert_eq!(
        (
            rev["amount"].as_str(),
            rev["reverses"].as_i64(),
            rev["reason"].as_str()
        ),
        (Some("-1000.00"), Some(receipt), Some("counted twice"))
    );
    assert!(rev["recorded_by"]
        .as_str()
        .is_some_and(|w| w.starts_with("coordinator:")));
    // totals follow: back to nothing received, nothing matched
    assert_eq!(
        totals(&pool, seed.bridge).await,
        ("0.00".into(), "0.00".into(), "0.00".into())
    );
    let ussd_total: serde_json::Value = sqlx::query_scalar("select project_total_texts($1)")
        .bind(seed.bridge)
        .fetch_one(&pool)
        .await
        .expect("texts");
    assert_eq!(ussd_total["matched_total"], "0");
    // the pledge is outstanding again, with its whole history
    let (_, h) = call(
        &app,
        "GET",
        &format!("/api/v1/pledges/{p}"),
        Value::Null,
        &own,
    )
    .await;
    assert_eq!(
        (h["pledge"]["status"].as_str(), h["outstanding"].as_str()),
        (Some("pledged"), Some("1000.00")),
        "{h}"
    );
    assert_eq!(h["receipts"].as_array().map(Vec::len), Some(2));
    // a second reversal, and the reversal of a reversal, are refused
    let (s, e) = call(&app, "POST", &reverse, json!({"reason": "again"}), &admin).await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let rev_id = rev["id"].as_i64().expect("id");
    let (s, e) = call(
        &app,
        "POST",
        &format!("/api/v1/receipts/{rev_id}/reversal"),
        json!({"reason": "undo"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    let (s, _) = call(
        &app,
        "POST",
        &format!("/api/v1/disbursements/{disbursement}/reversal"),
        json!({"reason": "again"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = call(
        &app,
        "POST",
        "/api/v1/receipts/999999/reversal",
        json!({"reason": "x"}),
        &admin,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // the money can be recorded again, correctly
    let (s, r) = call(&app, "POST", &format!("/api/v1/pledges/{p}/receipts"),
        json!({"amount": "500", "received_on": "2026-11-20", "method": "cash", "receipt_no": "B-1"}), &own).await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(totals(&pool, seed.bridge).await.0, "500.00");
    // nothing was deleted
    assert_eq!(count(&pool, "select count(*) from receipts").await, 3);
    assert_eq!(
        count(&pool, "select count(*) from match_disbursements").await,
        2
    );
}
