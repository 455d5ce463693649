//! The counsellors' callback queue through the admin API (issue 11 point 5): the list
//! (oldest first, due by two working days, overdue counted), Take (the household's SMS in
//! its language with the counsellor's number, "Taken by …" for another), outcomes (no answer
//! back in the queue 2 h later on the test's clock, three tries close it as unreachable;
//! reached with topics and a note), the audit rows, and who may use it (counsellors and
//! admins; coordinators and officers 403).

mod common;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use common::*;
use hashar::store::staff::Role;
use serde_json::{json, Value};
use sqlx::PgPool;

const DILNOZA: &str = "+992900000711";
const FARRUKH: &str = "+992900000712";
const OFFICER: &str = "+992900000713";

/// A callback request from `phone` (of `household`) in `language`, asked at `at` (UTC).
async fn request(
    pool: &PgPool,
    phone: &str,
    household: Option<i64>,
    language: &str,
    at: chrono::DateTime<Utc>,
) -> i64 {
    sqlx::query_scalar(
        "insert into callback_requests (phone, household_id, language, channel, idempotency_key, created_at)
         values ($1, $2, $3, 'ussd', gen_random_uuid()::text, $4) returning id",
    )
    .bind(phone)
    .bind(household)
    .bind(language)
    .bind(at)
    .fetch_one(pool)
    .await
    .expect("a callback request")
}

async fn household_of(pool: &PgPool, phone: &str) -> i64 {
    sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(phone)
        .fetch_one(pool)
        .await
        .expect("a household")
}

async fn staff_token(pool: &PgPool, name: &str, phone: &str, role: Role, codes: &[&str]) -> String {
    let codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
    hashar::api::auth::add_staff(pool, name, phone, &codes, Some(role))
        .await
        .expect("a member of staff")
        .2
}

/// The SMS queued to `phone` about a taken callback.
async fn callback_sms(pool: &PgPool, phone: &str) -> Vec<String> {
    sqlx::query_scalar("select body from outbox where phone = $1 and kind = 'callback' order by id")
        .bind(phone)
        .fetch_all(pool)
        .await
        .expect("outbox rows")
}

async fn audit(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_log where action = $1")
        .bind(action)
        .fetch_one(pool)
        .await
        .expect("audit rows")
}

fn ids(queue: &Value) -> Vec<i64> {
    queue["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_i64()).collect())
        .unwrap_or_default()
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn counsellors_take_call_and_close_requests(pool: PgPool) {
    let app = app(pool.clone()).await;
    let _seed = seed(&pool).await;
    let t = tokens(&pool).await;
    let dilnoza = staff_token(&pool, "Dilnoza", DILNOZA, Role::Counsellor, &[]).await;
    let farrukh = staff_token(&pool, "Farrukh", FARRUKH, Role::Counsellor, &[]).await;
    let officer = staff_token(&pool, "Officer", OFFICER, Role::Officer, &["anzob"]).await;
    let tg = household_of(&pool, PHONE_TG).await;
    let ru = household_of(&pool, PHONE_RU).await;
    // The clock is Saturday 28 Nov 2026 09:00 UTC (14:00 in Dushanbe).
    // Tuesday 24th (due Thursday 26th: overdue), Friday 27th (due Tuesday 1 Dec), a number
    // in no household today.
    let old = request(
        &pool,
        PHONE_TG,
        Some(tg),
        "tg",
        Utc.with_ymd_and_hms(2026, 11, 24, 5, 0, 0).unwrap(),
    )
    .await;
    let friday = request(
        &pool,
        PHONE_RU,
        Some(ru),
        "ru",
        Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap(),
    )
    .await;
    let stranger = request(
        &pool,
        "+992935550000",
        None,
        "en",
        Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).unwrap(),
    )
    .await;

    // who may see it
    let (status, _) = app.api("GET", "/api/v1/callbacks", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for token in [&t.own, &t.both, &officer] {
        let (status, json) = call(&app, "GET", "/api/v1/callbacks", Value::Null, token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
        let (status, _) = call(
            &app,
            "POST",
            &format!("/api/v1/callbacks/{old}/take"),
            Value::Null,
            token,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // the queue: oldest first, due by two working days, the overdue one counted
    let (status, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(ids(&queue), vec![old, friday, stranger]);
    assert_eq!(queue["open"], 3);
    assert_eq!(queue["overdue"], 1);
    let items = queue["items"].as_array().expect("items");
    assert_eq!(items[0]["due_by"], "2026-11-26");
    assert_eq!(items[0]["overdue"], true);
    assert_eq!(items[0]["community"]["en"], "Anzob");
    assert_eq!(items[0]["community"]["tg"], "Анзоб");
    assert_eq!(items[0]["phones"], json!([PHONE_TG]));
    assert_eq!(items[1]["due_by"], "2026-12-01");
    assert_eq!(items[1]["overdue"], false);
    assert_eq!(items[2]["household_id"], Value::Null);
    assert_eq!(items[2]["due_by"], "2026-12-01");
    for item in items {
        assert_eq!(item["stage"], "new");
        assert_eq!(item["takeable"], true);
    }
    let (_, russian) = call(
        &app,
        "GET",
        "/api/v1/callbacks?language=ru",
        Value::Null,
        &dilnoza,
    )
    .await;
    assert_eq!(ids(&russian), vec![friday]);
    assert_eq!(russian["open"], 1);
    assert_eq!(russian["overdue"], 0);
    for bad in [
        "?language=fr",
        "?limit=0",
        "?limit=501",
        "?offset=-1",
        "?status=lost",
    ] {
        let (status, json) = call(
            &app,
            "GET",
            &format!("/api/v1/callbacks{bad}"),
            Value::Null,
            &dilnoza,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {json}");
    }

    // Dilnoza takes the old one: the household hears in Tajik that she will call today
    let (status, taken) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/take"),
        Value::Null,
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken["stage"], "taken");
    assert_eq!(taken["taken_by"]["name"], "Dilnoza");
    assert_eq!(taken["takeable"], false);
    let sms = callback_sms(&pool, PHONE_TG).await;
    assert_eq!(sms.len(), 1);
    assert!(
        sms[0].contains(DILNOZA) && sms[0].contains("мушовир"),
        "{}",
        sms[0]
    );
    assert_eq!(audit(&pool, "callback.take").await, 1);
    // taking it again changes nothing and sends nothing
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/take"),
        Value::Null,
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(callback_sms(&pool, PHONE_TG).await.len(), 1);
    assert_eq!(audit(&pool, "callback.take").await, 1);
    // Farrukh may neither take it nor record on it
    let (status, json) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/take"),
        Value::Null,
        &farrukh,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(json["error"]["message"], "Taken by Dilnoza at 14:00");
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/outcome"),
        json!({"outcome": "reached"}),
        &farrukh,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // nor may anyone record on a request nobody took
    let (status, json) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{friday}/outcome"),
        json!({"outcome": "reached"}),
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    // bad outcomes, notes and topics
    for body in [
        json!({"outcome": "maybe"}),
        json!({"outcome": "unreachable"}),
        json!({"outcome": "reached", "note": "x".repeat(281)}),
        json!({"outcome": "reached", "topics": ["politics"]}),
    ] {
        let (status, json) = call(
            &app,
            "POST",
            &format!("/api/v1/callbacks/{old}/outcome"),
            body.clone(),
            &dilnoza,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {json}");
    }

    // no answer: back in the queue two hours later, for anyone
    let (status, rec) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/outcome"),
        json!({"outcome": "no_answer"}),
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["stage"], "no_answer");
    assert_eq!(rec["attempts"], 1);
    assert_eq!(rec["takeable"], false);
    assert_eq!(rec["next_try_at"], "2026-11-28T11:00:00Z");
    let (status, json) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/take"),
        Value::Null,
        &farrukh,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    app.clock.advance(Duration::hours(2));
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &farrukh).await;
    assert_eq!(queue["items"][0]["id"], old);
    assert_eq!(queue["items"][0]["takeable"], true);
    // two more tries nobody answers close it as unreachable
    for attempt in 2..=3 {
        let (status, json) = call(
            &app,
            "POST",
            &format!("/api/v1/callbacks/{old}/take"),
            Value::Null,
            &farrukh,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let (status, rec) = call(
            &app,
            "POST",
            &format!("/api/v1/callbacks/{old}/outcome"),
            json!({"outcome": "no_answer"}),
            &farrukh,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rec}");
        assert_eq!(rec["attempts"], attempt);
        app.clock.advance(Duration::hours(2));
    }
    let (_, closed) = call(
        &app,
        "GET",
        "/api/v1/callbacks?status=done",
        Value::Null,
        &farrukh,
    )
    .await;
    assert_eq!(ids(&closed), vec![old]);
    assert_eq!(closed["items"][0]["outcome"], "unreachable");
    assert_eq!(closed["items"][0]["stage"], "done");
    assert_eq!(closed["items"][0]["done_by"]["name"], "Farrukh");
    assert_eq!(callback_sms(&pool, PHONE_TG).await.len(), 3);
    // a done request is done
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{old}/take"),
        Value::Null,
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // an admin reaches the Russian household and notes what they talked about
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{friday}/take"),
        Value::Null,
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ru_sms = callback_sms(&pool, PHONE_RU).await;
    assert!(
        ru_sms[0].contains("консультант") && ru_sms[0].contains("+992900000301"),
        "{ru_sms:?}"
    );
    let (status, rec) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{friday}/outcome"),
        json!({"outcome": "reached", "note": "Son in Moscow; patent expires in January.", "topics": ["legal_stay", "hiv", "legal_stay"]}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["stage"], "done");
    assert_eq!(rec["topics"], json!(["legal_stay", "hiv"]));
    assert_eq!(rec["note"], "Son in Moscow; patent expires in January.");
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(ids(&queue), vec![stranger]);
    assert_eq!(queue["open"], 1);
    assert_eq!(queue["overdue"], 0);
    // the log has every change, and no note text
    assert_eq!(audit(&pool, "callback.take").await, 4);
    assert_eq!(audit(&pool, "callback.outcome").await, 4);
    let logged: i64 =
        sqlx::query_scalar("select count(*) from audit_log where detail::text like '%Moscow%'")
            .fetch_one(&pool)
            .await
            .expect("audit");
    assert_eq!(logged, 0);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/callbacks/999999/take",
        Value::Null,
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_programme_number_and_holidays_are_configurable(pool: PgPool) {
    let mut config = test_config();
    config.counsellor_number = Some("+992372210000".into());
    let app = app_with(pool.clone(), config).await;
    seed(&pool).await;
    let dilnoza = staff_token(&pool, "Dilnoza", DILNOZA, Role::Counsellor, &[]).await;
    let en = household_of(&pool, PHONE_EN).await;
    // Thursday 26 Nov: due Monday 30th; with the 30th a holiday, Tuesday 1 Dec
    let id = request(
        &pool,
        PHONE_EN,
        Some(en),
        "en",
        Utc.with_ymd_and_hms(2026, 11, 26, 5, 0, 0).unwrap(),
    )
    .await;
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(queue["items"][0]["due_by"], "2026-11-30");
    // admins add holidays; counsellors read them
    let t = tokens(&pool).await;
    let moved = json!({"date": "2026-11-30", "name": "Moved day off"});
    let (status, _) = call(&app, "POST", "/api/v1/holidays", moved.clone(), &dilnoza).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, added) = call(&app, "POST", "/api/v1/holidays", moved.clone(), &t.admin).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["every_year"], false);
    assert_eq!(added["year"], 2026);
    let (status, again) = call(&app, "POST", "/api/v1/holidays", moved, &t.admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    for bad in [
        json!({"date": "2026-11-31", "name": "No such day"}),
        json!({"date": "2019-12-31", "name": "Too early"}),
        json!({"date": "2027-01-02", "name": " "}),
        json!({"date": "2027-01-02", "name": "x".repeat(81)}),
        json!({"date": "2027-01-02", "name": "Tab\tin it"}),
        json!({"date": "2027-01-02"}),
    ] {
        let (status, json) = call(&app, "POST", "/api/v1/holidays", bad.clone(), &t.admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {json}");
    }
    let (status, list) = call(&app, "GET", "/api/v1/holidays", Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().expect("a list");
    // the Labour Code's every-year days first, then the added one
    assert_eq!(list[0]["every_year"], true);
    assert_eq!(list[0]["month"], 1);
    assert_eq!(
        list.last().map(|h| h["name"].clone()),
        Some(json!("Moved day off"))
    );
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(queue["items"][0]["due_by"], "2026-12-01");
    // removed, the day works again; added back for the rest of the test
    let path = format!("/api/v1/holidays/{}", added["id"]);
    let (status, _) = call(&app, "DELETE", &path, Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, removed) = call(&app, "DELETE", &path, Value::Null, &t.admin).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(removed["name"], "Moved day off");
    let (status, _) = call(&app, "DELETE", &path, Value::Null, &t.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(queue["items"][0]["due_by"], "2026-11-30");
    assert_eq!(audit(&pool, "holiday.add").await, 1);
    assert_eq!(audit(&pool, "holiday.remove").await, 1);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/holidays",
        json!({"date": "2026-11-30", "name": "Moved day off"}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(queue["items"][0]["due_by"], "2026-12-01");
    // three working days later (Wednesday 2 Dec) it is overdue
    app.clock.advance(Duration::days(4));
    let (_, queue) = call(&app, "GET", "/api/v1/callbacks", Value::Null, &dilnoza).await;
    assert_eq!(queue["items"][0]["overdue"], true);
    assert_eq!(queue["overdue"], 1);
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{id}/take"),
        Value::Null,
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sms = callback_sms(&pool, PHONE_EN).await;
    assert_eq!(sms, vec!["Hashar: a counsellor will call you today from +992372210000. Please keep your phone on.".to_owned()]);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_taken_request_goes_back_to_the_queue(pool: PgPool) {
    let app = app(pool.clone()).await;
    seed(&pool).await;
    let t = tokens(&pool).await;
    let dilnoza = staff_token(&pool, "Dilnoza", DILNOZA, Role::Counsellor, &[]).await;
    let farrukh = staff_token(&pool, "Farrukh", FARRUKH, Role::Counsellor, &[]).await;
    let tg = household_of(&pool, PHONE_TG).await;
    let id = request(
        &pool,
        PHONE_TG,
        Some(tg),
        "tg",
        Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap(),
    )
    .await;
    let take = format!("/api/v1/callbacks/{id}/take");
    let release = format!("/api/v1/callbacks/{id}/release");
    // nobody holds it: a release changes nothing and writes nothing
    let (status, same) = call(&app, "POST", &release, Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["stage"], "new");
    assert_eq!(audit(&pool, "callback.release").await, 0);
    let (status, _) = call(&app, "POST", &take, Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::OK);
    // another counsellor may not put Dilnoza's request back
    let (status, json) = call(&app, "POST", &release, Value::Null, &farrukh).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Dilnoza"),
        "{json}"
    );
    // she may: back in the queue, nobody holds it, Farrukh takes it
    let (status, back) = call(&app, "POST", &release, Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["stage"], "new");
    assert_eq!(back["taken_by"], Value::Null);
    assert_eq!(back["takeable"], true);
    let (status, taken) = call(&app, "POST", &take, Value::Null, &farrukh).await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken["taken_by"]["name"], "Farrukh");
    // an admin releases Farrukh's (he is away)
    let (status, back) = call(&app, "POST", &release, Value::Null, &t.admin).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["stage"], "new");
    assert_eq!(audit(&pool, "callback.release").await, 2);
    // the household heard once per Take, nothing for a release
    assert_eq!(callback_sms(&pool, PHONE_TG).await.len(), 2);
    // a coordinator never sees the queue
    let (status, _) = call(&app, "POST", &release, Value::Null, &t.own).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // done requests do not change
    let (status, _) = call(&app, "POST", &take, Value::Null, &dilnoza).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/callbacks/{id}/outcome"),
        json!({"outcome": "reached", "topics": ["hiv"]}),
        &dilnoza,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, json) = call(&app, "POST", &release, Value::Null, &t.admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{json}");
}
