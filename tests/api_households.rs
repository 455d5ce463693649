//! Households, their numbers and STOP states, tips and exchange rates through the admin API:
//! registering, searching, moving between communities, linking and unlinking numbers,
//! opt-outs the outbox honours, admin-only tips and rates — and every refusal.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use sqlx::PgPool;

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .map(|a| a.iter().filter_map(|h| h["id"].as_i64()).collect())
        .unwrap_or_default()
}

fn numbers(household: &Value) -> Vec<String> {
    household["phones"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["phone"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn enc(phone: &str) -> String {
    phone.replace('+', "%2B")
}

const MIGRANT: &str = "+79161234567";

/// The body of the last link-code SMS queued to `phone`, and the code in it.
async fn last_code(pool: &PgPool, phone: &str) -> (String, String) {
    let body: String = sqlx::query_scalar(
        "select body from outbox where phone = $1 and kind = 'link_code' order by id desc limit 1",
    )
    .bind(phone)
    .fetch_one(pool)
    .await
    .expect("a link code SMS");
    let code = body
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("6 digits in the SMS")
        .to_owned();
    (body, code)
}

async fn link_codes_to(pool: &PgPool, phone: &str) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where phone = $1 and kind = 'link_code'")
        .bind(phone)
        .fetch_one(pool)
        .await
        .expect("count")
}

async fn confirm(
    app: &TestApp,
    token: &str,
    household: i64,
    phone: &str,
    code: &str,
) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        &format!("/api/v1/households/{household}/phones/confirm"),
        json!({"phone": phone, "code": code}),
        token,
    )
    .await
}

/// A coordinator links a number: asks for a code (202), reads it from the SMS queued to the
/// number (as the person would tell it) and confirms it; the confirmation's answer.
async fn link_with_code(
    app: &TestApp,
    pool: &PgPool,
    token: &str,
    household: i64,
    phone: &str,
) -> (StatusCode, Value) {
    let (status, sent) = call(
        app,
        "POST",
        &format!("/api/v1/households/{household}/phones"),
        json!({ "phone": phone }),
        token,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let e164 = sent["phone"].as_str().expect("the number").to_owned();
    let (_, code) = last_code(pool, &e164).await;
    confirm(app, token, household, &e164, &code).await
}

/// Another code than `code` (the next one).
fn wrong(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().expect("digits") + 1) % 1_000_000
    )
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn register_list_and_filter(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let body = json!({"community_id": seed.community, "name": "  Nazarov family ", "language": "tg",
        "phones": ["90 123 4500", "+7 916 123-45-67"]});
    let (status, h) = call(&app, "POST", "/api/v1/households", body, &t.own).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert_eq!(
        numbers(&h),
        vec!["+992901234500".to_owned(), MIGRANT.to_owned()],
        "stored as E.164: {h}"
    );
    assert_eq!(h["name"], "Nazarov family");
    assert_eq!(h["language"], "tg");
    assert_eq!(h["registered_via"], "coordinator");
    assert_eq!(h["community_id"], seed.community);
    assert_eq!(h["phones"][1]["opted_out"], false);
    let join_code = h["join_code"].as_str().unwrap_or("").to_owned();
    assert!(
        join_code.len() == 6 && join_code.chars().all(|c| c.is_ascii_digit()),
        "{h}"
    );
    let id = h["id"].as_i64().unwrap_or(0);

    // the whole community: the four seeded households and the new one
    let uri = format!("/api/v1/households?community={}", seed.community);
    let (status, list) = call(&app, "GET", &uri, Value::Null, &t.own).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(ids(&list).len(), 5);
    assert!(ids(&list).contains(&seed.household));
    // by part of the name, any case; by digits of a number; by the join code
    for q in ["nazarov", "916123", join_code.as_str(), "%2B79161234567"] {
        let (status, list) = call(
            &app,
            "GET",
            &format!("/api/v1/households?q={q}"),
            Value::Null,
            &t.own,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(ids(&list), vec![id], "q={q}: {list}");
    }
    // `%` is a character, not a wildcard
    let (_, list) = call(&app, "GET", "/api/v1/households?q=%25", Value::Null, &t.own).await;
    assert_eq!(ids(&list), Vec::<i64>::new(), "{list}");
    // paging
    let (_, page) = call(
        &app,
        "GET",
        &format!("{uri}&limit=2&offset=4"),
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(ids(&page), vec![id]);
    for (query, field) in [("limit=0", "limit"), ("offset=-1", "offset")] {
        let (status, e) = call(
            &app,
            "GET",
            &format!("/api/v1/households?{query}"),
            Value::Null,
            &t.own,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], field);
    }
    let long = "x".repeat(101);
    let (status, e) = call(
        &app,
        "GET",
        &format!("/api/v1/households?q={long}"),
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("q"))
    );

    // another community's coordinator: 403 on the filter, nothing of A in the plain list,
    // 404 on the household
    let (status, _) = call(&app, "GET", &uri, Value::Null, &t.other).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = call(&app, "GET", "/api/v1/households", Value::Null, &t.other).await;
    assert_eq!(ids(&list), Vec::<i64>::new());
    let (status, _) = call(
        &app,
        "GET",
        &format!("/api/v1/households/{id}"),
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, one) = call(
        &app,
        "GET",
        &format!("/api/v1/households/{id}"),
        Value::Null,
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(numbers(&one), numbers(&h));
    // registering in another community
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/households",
        json!({"community_id": seed.community, "phones": ["+992905550001"]}),
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn registration_is_validated_field_by_field(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let base = json!({"community_id": seed.community, "name": "Saidov", "language": "ru",
        "phones": ["+992905550001"]});
    let cases = [
        ("phones", json!(["hello"]), "phones"),
        ("phones", json!(["+9921"]), "phones"),
        ("phones", json!([]), "phones"),
        ("phones", json!(["+992905550001", "905550001"]), "phones"),
        ("name", json!("   "), "name"),
        ("name", json!("N".repeat(121)), "name"),
        ("language", json!("de"), "language"),
        ("community_id", json!(999_999), "community_id"),
    ];
    for (field, value, want) in cases {
        let mut body = base.clone();
        body[field] = value;
        let (status, json) = call(&app, "POST", "/api/v1/households", body, &t.admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {json}");
        assert_eq!(json["error"]["field"], want, "{json}");
    }
    // a number that is another household's: 409 naming the number and the household
    let mut body = base.clone();
    body["phones"] = json!(["+992905550002", PHONE_RU]);
    let before = count(&pool, "select count(*) from households").await;
    let (status, e) = call(&app, "POST", "/api/v1/households", body, &t.own).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    let message = e["error"]["message"].as_str().unwrap_or("");
    let owner: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("owner");
    assert!(
        message.contains(PHONE_RU) && message.contains(&format!("household {owner}")),
        "{e}"
    );
    assert_eq!(
        count(&pool, "select count(*) from households").await,
        before,
        "nothing registered"
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from phones where phone = '+992905550002'"
        )
        .await,
        0
    );
    // the same seen from another community: the number, not the household it belongs to
    let mut body = base.clone();
    body["community_id"] = json!(seed.other_community);
    body["phones"] = json!([PHONE_RU]);
    let (status, e) = call(&app, "POST", "/api/v1/households", body, &t.other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        e["error"]["message"],
        format!("{PHONE_RU} is already registered to another household")
    );
    // without a name or language is fine
    let (status, h) = call(
        &app,
        "POST",
        "/api/v1/households",
        json!({"community_id": seed.community, "phones": ["+992905550003"]}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert!(h["name"].is_null() && h["language"].is_null(), "{h}");
    // unknown fields are refused
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/households",
        json!({"community_id": seed.community, "phones": ["+992905550004"], "colour": "red"}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn move_rename_link_and_unlink(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let (_, h) = call(
        &app,
        "POST",
        "/api/v1/households",
        json!({"community_id": seed.community, "name": "Rahimov", "phones": ["+992905551000"]}),
        &t.own,
    )
    .await;
    let id = h["id"].as_i64().unwrap_or(0);
    let uri = format!("/api/v1/households/{id}");

    // rename and set the language; null clears the language
    let (status, h) = call(
        &app,
        "PATCH",
        &uri,
        json!({"name": "Rahimovs", "language": "en"}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(
        (h["name"].as_str(), h["language"].as_str()),
        (Some("Rahimovs"), Some("en"))
    );
    let (_, h) = call(&app, "PATCH", &uri, json!({"language": null}), &t.own).await;
    assert!(h["language"].is_null() && h["name"] == "Rahimovs", "{h}");
    for (body, field) in [
        (json!({"language": "fr"}), "language"),
        (json!({"name": ""}), "name"),
    ] {
        let (status, e) = call(&app, "PATCH", &uri, body, &t.own).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], field);
    }

    // link the migrant's number (with the code it gets by SMS); again is a no-op; a bad one
    // names the field
    let phones = format!("{uri}/phones");
    let (status, h) = link_with_code(&app, &pool, &t.own, id, "+7 916 123 45 67").await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert_eq!(
        numbers(&h),
        vec!["+992905551000".to_owned(), MIGRANT.to_owned()]
    );
    let (status, h) = call(&app, "POST", &phones, json!({"phone": MIGRANT}), &t.own).await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(numbers(&h).len(), 2);
    let (status, e) = call(&app, "POST", &phones, json!({"phone": "12"}), &t.own).await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone"))
    );
    // a number that belongs elsewhere: 409, and it stays where it was
    let (status, e) = call(&app, "POST", &phones, json!({"phone": PHONE_EN}), &t.own).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(PHONE_EN),
        "{e}"
    );
    let en_owner: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(PHONE_EN)
        .fetch_one(&pool)
        .await
        .expect("owner");
    assert_ne!(en_owner, id);
    // another community's coordinator cannot see the household at all
    let (status, _) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": "+79031234567"}),
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // moving: refused to a coordinator of one community, allowed to one of both
    let (status, e) = call(
        &app,
        "PATCH",
        &uri,
        json!({"community_id": seed.other_community}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, _) = call(
        &app,
        "PATCH",
        &uri,
        json!({"community_id": seed.community}),
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not Sarazm's household");
    let (status, h) = call(
        &app,
        "PATCH",
        &uri,
        json!({"community_id": seed.other_community}),
        &t.both,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h["community_id"], seed.other_community);
    assert_eq!(numbers(&h).len(), 2, "the numbers move with it");
    let (status, _) = call(&app, "GET", &uri, Value::Null, &t.own).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no longer Anzob's");
    let (status, _) = call(&app, "GET", &uri, Value::Null, &t.other).await;
    assert_eq!(status, StatusCode::OK, "now Sarazm's");
    let (status, e) = call(
        &app,
        "PATCH",
        &uri,
        json!({"community_id": 999_999}),
        &t.admin,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("community_id"))
    );

    // unlinking: a number not on the household is 404; the last number stays (409)
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("{phones}/{}", enc(PHONE_EN)),
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, e) = call(
        &app,
        "DELETE",
        &format!("{phones}/garbage"),
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone"))
    );
    let (status, h) = call(
        &app,
        "DELETE",
        &format!("{phones}/{}", enc(MIGRANT)),
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(numbers(&h), vec!["+992905551000".to_owned()]);
    let (status, e) = call(
        &app,
        "DELETE",
        &format!("{phones}/{}", enc("+992905551000")),
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from phones where household_id = {id}")
        )
        .await,
        1
    );
    // the freed number can join another household
    let (status, h) = link_with_code(&app, &pool, &t.own, seed.household, MIGRANT).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
}

async fn outbox_status(pool: &PgPool, phone: &str, body: &str) -> String {
    let phone = hashar::domain::Phone::parse(phone).expect("phone");
    let mut conn = pool.acquire().await.expect("connection");
    let id = hashar::outbox::enqueue(
        &mut conn,
        &hashar::outbox::NewMessage {
            to: &phone,
            body,
            kind: hashar::outbox::Kind::Broadcast,
            inbound_id: None,
        },
        "test",
        3,
        chrono::Utc::now(),
    )
    .await
    .expect("enqueue");
    sqlx::query_scalar("select status from outbox where id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("status")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn opt_out_is_visible_and_honoured(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let uri = format!("/api/v1/phones/{}/opt-out", enc(PHONE_TG));
    let (status, o) = call(&app, "PUT", &uri, json!({"opted_out": true}), &t.own).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(o["opted_out"], true);
    assert_eq!(o["household_id"], seed.household);
    assert_eq!(o["phone"], PHONE_TG);
    assert!(o["opted_out_at"].is_string(), "{o}");
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from sms_optouts where phone = '{PHONE_TG}'")
        )
        .await,
        1
    );
    // again: unchanged, the first time kept
    let (status, again) = call(&app, "PUT", &uri, json!({"opted_out": true}), &t.own).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["opted_out_at"], o["opted_out_at"]);
    // visible on the household and in the list
    let (_, h) = call(
        &app,
        "GET",
        &format!("/api/v1/households/{}", seed.household),
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(h["phones"][0]["phone"], PHONE_TG);
    assert_eq!(h["phones"][0]["opted_out"], true, "{h}");
    let (_, list) = call(
        &app,
        "GET",
        &format!("/api/v1/households?community={}", seed.community),
        Value::Null,
        &t.own,
    )
    .await;
    let opted: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["phones"].as_array().into_iter().flatten())
        .filter(|p| p["opted_out"] == true)
        .filter_map(|p| p["phone"].as_str())
        .collect();
    assert_eq!(opted, vec![PHONE_TG]);
    // honoured: a message to the number is suppressed, others are queued
    assert_eq!(
        outbox_status(&pool, PHONE_TG, "Jamoat meeting").await,
        "suppressed"
    );
    assert_eq!(
        outbox_status(&pool, PHONE_RU, "Jamoat meeting").await,
        "queued"
    );
    // cleared (START)
    let (status, o) = call(&app, "PUT", &uri, json!({"opted_out": false}), &t.own).await;
    assert_eq!(status, StatusCode::OK, "{o}");
    assert_eq!(
        (o["opted_out"].as_bool(), o["opted_out_at"].is_null()),
        (Some(false), true)
    );
    assert_eq!(count(&pool, "select count(*) from sms_optouts").await, 0);
    assert_eq!(
        outbox_status(&pool, PHONE_TG, "Jamoat meeting").await,
        "queued"
    );
    // another community's number, an unknown number, and a bad one
    let (status, _) = call(&app, "PUT", &uri, json!({"opted_out": true}), &t.other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        "PUT",
        &format!("/api/v1/phones/{}/opt-out", enc("+992909999999")),
        json!({"opted_out": true}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, e) = call(
        &app,
        "PUT",
        "/api/v1/phones/not-a-number/opt-out",
        json!({"opted_out": true}),
        &t.admin,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("phone"))
    );
    assert_eq!(
        count(&pool, "select count(*) from sms_optouts").await,
        0,
        "nothing stored by the refusals"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn tips_are_read_by_all_and_written_by_admins(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let tip = json!({"code": "save-share", "text_tg": "Аввал пасандоз кунед.",
        "text_ru": "Сначала отложите.", "text_en": "Save first."});
    let (status, e) = call(&app, "POST", "/api/v1/tips", tip.clone(), &t.own).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    assert_eq!(e["error"]["code"], "forbidden");
    let (status, first) = call(&app, "POST", "/api/v1/tips", tip.clone(), &t.admin).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (first["position"].as_i64(), first["active"].as_bool()),
        (Some(0), Some(true))
    );
    let (status, _) = call(&app, "POST", "/api/v1/tips", tip.clone(), &t.admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "same code twice");
    // 300 characters (Cyrillic) fit; 301 do not
    let mut second = tip.clone();
    second["code"] = json!("emergency-fund");
    second["text_ru"] = json!("Ж".repeat(300));
    second["active"] = json!(false);
    let (status, s) = call(&app, "POST", "/api/v1/tips", second, &t.admin).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    assert_eq!(s["position"], 1, "after the last one");
    let cases = [
        ("text_ru", json!("Ж".repeat(301)), "text_ru"),
        ("text_tg", json!("  "), "text_tg"),
        ("text_en", json!(""), "text_en"),
        ("code", json!("Save Share"), "code"),
        ("code", json!("x"), "code"),
        ("code", json!("-dash"), "code"),
    ];
    for (field, value, want) in cases {
        let mut body = tip.clone();
        body["code"] = json!("another");
        body[field] = value;
        let (status, e) = call(&app, "POST", "/api/v1/tips", body, &t.admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {e}");
        assert_eq!(e["error"]["field"], want, "{e}");
    }
    // every coordinator reads them, in order; filtered by active
    let (status, list) = call(&app, "GET", "/api/v1/tips", Value::Null, &t.other).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids(&list),
        vec![
            first["id"].as_i64().unwrap_or(0),
            s["id"].as_i64().unwrap_or(0)
        ]
    );
    let (_, active) = call(&app, "GET", "/api/v1/tips?active=true", Value::Null, &t.own).await;
    assert_eq!(ids(&active), vec![first["id"].as_i64().unwrap_or(0)]);
    // edits: admins only; the code never changes
    let uri = format!("/api/v1/tips/{}", first["id"]);
    let (status, _) = call(&app, "PATCH", &uri, json!({"active": false}), &t.own).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = call(
        &app,
        "PATCH",
        &uri,
        json!({"active": false, "text_en": " Save a share first. ", "position": 5}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(
        (
            p["active"].as_bool(),
            p["text_en"].as_str(),
            p["position"].as_i64(),
            p["text_tg"].as_str()
        ),
        (
            Some(false),
            Some("Save a share first."),
            Some(5),
            Some("Аввал пасандоз кунед.")
        )
    );
    let (status, e) = call(
        &app,
        "PATCH",
        &uri,
        json!({"text_tg": "Ж".repeat(301)}),
        &t.admin,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("text_tg"))
    );
    let (status, _) = call(&app, "PATCH", &uri, json!({"code": "renamed"}), &t.admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(
        &app,
        "PATCH",
        "/api/v1/tips/999999",
        json!({"active": true}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn exchange_rates_are_read_by_all_and_written_by_admins(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let rate =
        json!({"base": "rub", "quote": "TJS", "rate": "0.12345678", "valid_from": "2026-11-01"});
    let (status, e) = call(&app, "POST", "/api/v1/exchange-rates", rate.clone(), &t.own).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{e}");
    let (status, r) = call(
        &app,
        "POST",
        "/api/v1/exchange-rates",
        rate.clone(),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    assert_eq!(
        (
            r["base"].as_str(),
            r["quote"].as_str(),
            r["rate"].as_str(),
            r["valid_from"].as_str()
        ),
        (
            Some("RUB"),
            Some("TJS"),
            Some("0.12345678"),
            Some("2026-11-01")
        )
    );
    let (status, e) = call(
        &app,
        "POST",
        "/api/v1/exchange-rates",
        rate.clone(),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("2026-11-01"),
        "{e}"
    );
    let mut later = rate.clone();
    later["valid_from"] = json!("2026-11-15");
    later["rate"] = json!("0.125");
    let (status, _) = call(&app, "POST", "/api/v1/exchange-rates", later, &t.admin).await;
    assert_eq!(status, StatusCode::CREATED);
    let cases = [
        ("rate", json!("0"), "rate"),
        ("rate", json!("-1.5"), "rate"),
        ("rate", json!("0.123456789"), "rate"),
        ("base", json!("RUBL"), "base"),
        ("base", json!("R1B"), "base"),
        ("quote", json!("rub"), "quote"),
    ];
    for (field, value, want) in cases {
        let mut body = rate.clone();
        body["valid_from"] = json!("2026-12-01");
        body[field] = value;
        let (status, e) = call(&app, "POST", "/api/v1/exchange-rates", body, &t.admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {e}");
        assert_eq!(e["error"]["field"], want, "{e}");
    }
    // read by any coordinator, newest first, filtered by pair
    let (status, list) = call(
        &app,
        "GET",
        "/api/v1/exchange-rates?base=RUB&quote=tjs",
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let got: Vec<(&str, &str)> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["valid_from"].as_str()?, r["rate"].as_str()?)))
        .collect();
    assert_eq!(
        got,
        vec![("2026-11-15", "0.125"), ("2026-11-01", "0.12345678")]
    );
    let (_, none) = call(
        &app,
        "GET",
        "/api/v1/exchange-rates?base=USD",
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(none, json!([]));
    let (status, e) = call(
        &app,
        "GET",
        "/api/v1/exchange-rates?quote=T1",
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("quote"))
    );
}

/// A number of a household in Sarazm (community B): Anzob's coordinator cannot see it.
const SARAZM_NUMBER: &str = "+992935550001";
/// A number of no household.
const FREE_NUMBER: &str = "+992935550002";

/// The answer with the values that differ between two numbers (the number itself and the
/// time the code expires) blanked.
fn shape(v: &Value) -> Value {
    let mut v = v.clone();
    for field in ["phone", "expires_at"] {
        if v.get(field).is_some() {
            v[field] = json!("…");
        }
    }
    v
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn linking_a_number_tells_nothing_about_other_communities(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let sarazm = add_household(&pool, seed.other_community, Some("ru"), SARAZM_NUMBER).await;
    let phones = format!("/api/v1/households/{}/phones", seed.household);

    // the same status and the same body for a free number and for one registered in Sarazm
    let (s_free, free) = call(&app, "POST", &phones, json!({"phone": FREE_NUMBER}), &t.own).await;
    let (s_taken, taken) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": SARAZM_NUMBER}),
        &t.own,
    )
    .await;
    assert_eq!(
        (s_free, s_taken),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
        "{free} {taken}"
    );
    assert_eq!(shape(&free), shape(&taken));
    assert_eq!(
        shape(&free),
        json!({"status": "code_sent", "phone": "…", "expires_at": "…"})
    );
    assert_eq!(
        (free["phone"].as_str(), taken["phone"].as_str()),
        (Some(FREE_NUMBER), Some(SARAZM_NUMBER))
    );
    assert_eq!(free["expires_at"], "2026-11-28T09:15:00Z", "15 minutes");
    assert_eq!(free["expires_at"], taken["expires_at"]);

    // both numbers get an SMS with a code, in their language: the Sarazm household's
    // (Russian), and for a stranger's Tajik number the default (Tajik); both name Anzob
    let (free_sms, free_code) = last_code(&pool, FREE_NUMBER).await;
    let (taken_sms, taken_code) = last_code(&pool, SARAZM_NUMBER).await;
    assert!(
        free_sms.starts_with(&format!("Рамзи {free_code} ")) && free_sms.contains("Анзоб"),
        "{free_sms}"
    );
    assert!(
        taken_sms.starts_with(&format!("Код {taken_code} ")) && taken_sms.contains("Анзоб"),
        "{taken_sms}"
    );
    let queued = count(
        &pool,
        "select count(*) from outbox where kind = 'link_code' and status = 'queued'",
    )
    .await;
    assert_eq!(queued, 2);
    // the requests are stored with a salted hash of the code, never the code
    let stored: Vec<(String, bool)> = sqlx::query_as(
        "select phone, code_sha256 = sha256(code_salt || convert_to(case phone when $1 then $2 else $3 end, 'UTF8'))
         from phone_link_codes order by id",
    )
    .bind(FREE_NUMBER)
    .bind(&free_code)
    .bind(&taken_code)
    .fetch_all(&pool)
    .await
    .expect("requests");
    assert_eq!(
        stored,
        vec![
            (FREE_NUMBER.to_owned(), true),
            (SARAZM_NUMBER.to_owned(), true)
        ]
    );
    let plain = count(
        &pool,
        &format!(
            "select count(*) from phone_link_codes t where strpos(t::text, '{free_code}') > 0 or strpos(t::text, '{taken_code}') > 0"
        ),
    )
    .await;
    assert_eq!(plain, 0, "no code in clear");

    // the right code links the free number
    let (status, h) = confirm(&app, &t.own, seed.household, FREE_NUMBER, &free_code).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert_eq!(
        numbers(&h),
        vec![PHONE_TG.to_owned(), FREE_NUMBER.to_owned()]
    );
    // confirming again: it is this household's already
    let (status, _) = confirm(&app, &t.own, seed.household, FREE_NUMBER, &free_code).await;
    assert_eq!(status, StatusCode::OK);
    // … and asking again is the old no-op
    let (status, h) = call(&app, "POST", &phones, json!({"phone": FREE_NUMBER}), &t.own).await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(link_codes_to(&pool, FREE_NUMBER).await, 1);

    // the right code for the Sarazm number: taken, without naming Sarazm's household
    let (status, e) = confirm(&app, &t.own, seed.household, SARAZM_NUMBER, &taken_code).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        e["error"]["message"],
        format!(
            "{SARAZM_NUMBER} is registered to another household; it must be unlinked there first"
        )
    );
    assert!(
        !e.to_string().contains(&format!("household {sarazm}")),
        "{e}"
    );
    let owner: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(SARAZM_NUMBER)
        .fetch_one(&pool)
        .await
        .expect("owner");
    assert_eq!(owner, sarazm, "it stays where it was");
    // unlinked there (Sarazm's coordinator links another number first), the same code links it
    let (status, _) = call(
        &app,
        "POST",
        &format!("/api/v1/households/{sarazm}/phones"),
        json!({"phone": "+992935550003"}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/api/v1/households/{sarazm}/phones/{}", enc(SARAZM_NUMBER)),
        Value::Null,
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, h) = confirm(&app, &t.own, seed.household, SARAZM_NUMBER, &taken_code).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert!(numbers(&h).contains(&SARAZM_NUMBER.to_owned()), "{h}");

    // another community's coordinator: 404 for Anzob's household, before anything else
    let (status, e) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": "+992935550004"}),
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    let (status, e) = confirm(&app, &t.other, seed.household, FREE_NUMBER, &free_code).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");
    assert_eq!(link_codes_to(&pool, "+992935550004").await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn wrong_expired_and_replaced_codes(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let id = seed.household;
    let phones = format!("/api/v1/households/{id}/phones");
    let ask = || call(&app, "POST", &phones, json!({"phone": FREE_NUMBER}), &t.own);
    let tries = || async {
        sqlx::query_as::<_, (i32, String)>(
            "select wrong_tries, state from phone_link_codes order by id desc limit 1",
        )
        .fetch_one(&pool)
        .await
        .expect("request")
    };

    // nothing asked for yet: 404
    let (status, e) = confirm(&app, &t.own, id, FREE_NUMBER, "123456").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{e}");

    // wrong codes: 422, counted; a malformed one is not counted; the 5th voids the request
    let (status, _) = ask().await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, code) = last_code(&pool, FREE_NUMBER).await;
    let (status, e) = confirm(&app, &t.own, id, FREE_NUMBER, &wrong(&code)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["field"], "code");
    assert_eq!(
        e["error"]["message"],
        "the code is not right (4 tries left)"
    );
    assert_eq!(tries().await, (1, "pending".to_owned()));
    for bad in ["12345", "12a456", ""] {
        let (status, e) = confirm(&app, &t.own, id, FREE_NUMBER, bad).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("code")),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        tries().await,
        (1, "pending".to_owned()),
        "malformed codes are not counted"
    );
    for left in (0..4).rev() {
        let (status, e) = confirm(&app, &t.own, id, FREE_NUMBER, &wrong(&code)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        if left == 0 {
            assert_eq!(
                e["error"]["message"],
                "the code is not right, and that was the last try: ask for a new code"
            );
        }
    }
    assert_eq!(tries().await, (5, "void".to_owned()));
    // void: even the right code is refused (410), and nothing is linked
    let (status, e) = confirm(&app, &t.own, id, FREE_NUMBER, &code).await;
    assert_eq!(status, StatusCode::GONE, "{e}");
    assert_eq!(e["error"]["code"], "gone");
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from phones where phone = '{FREE_NUMBER}'")
        )
        .await,
        0
    );

    // a new code replaces the pending one: the older code no longer links
    let (status, _) = ask().await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, older) = last_code(&pool, FREE_NUMBER).await;
    let (status, _) = ask().await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, newer) = last_code(&pool, FREE_NUMBER).await;
    let states: Vec<String> = sqlx::query_scalar("select state from phone_link_codes order by id")
        .fetch_all(&pool)
        .await
        .expect("states");
    assert_eq!(states, vec!["void", "replaced", "pending"]);
    if older != newer {
        let (status, _) = confirm(&app, &t.own, id, FREE_NUMBER, &older).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // expired after 15 minutes: 410
    app.clock.advance(chrono::Duration::minutes(15));
    let (status, e) = confirm(&app, &t.own, id, FREE_NUMBER, &newer).await;
    assert_eq!(status, StatusCode::GONE, "{e}");
    assert_eq!(
        e["error"]["message"],
        "the code has expired: ask for a new one"
    );

    // a number gets at most 3 codes an hour (the void, the replaced, the expired one)
    let (status, e) = ask().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{e}");
    assert_eq!(e["error"]["code"], "too_many_requests");
    assert_eq!(
        link_codes_to(&pool, FREE_NUMBER).await,
        3,
        "the refusal sent nothing"
    );
    // an hour after the first one, it may get a code again
    app.clock.advance(chrono::Duration::minutes(45));
    let (status, _) = ask().await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, code) = last_code(&pool, FREE_NUMBER).await;
    let (status, h) = confirm(&app, &t.own, id, FREE_NUMBER, &code).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    // requests are kept for audit, and pruned 7 days after they expired
    assert_eq!(
        count(&pool, "select count(*) from phone_link_codes").await,
        4
    );
    app.clock.advance(chrono::Duration::days(8));
    let (status, _) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": "+992935550009"}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        count(&pool, "select count(*) from phone_link_codes").await,
        1
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn link_codes_are_limited_per_coordinator_and_per_number_under_concurrency(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    // 12 households of Anzob, each asking for a code for a number of its own, all at once:
    // exactly 10 codes are sent for the coordinator
    let mut households = Vec::new();
    for i in 0..12 {
        households
            .push(add_household(&pool, seed.community, None, &format!("+99293444{i:04}")).await);
    }
    let asks = households.iter().enumerate().map(|(i, h)| {
        let uri = format!("/api/v1/households/{h}/phones");
        let body = json!({"phone": format!("+99293555{i:04}")});
        let token = t.own.clone();
        let app = &app;
        async move { call(app, "POST", &uri, body, &token).await }
    });
    let answers = futures_util::future::join_all(asks).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::ACCEPTED)
            .count(),
        10,
        "{answers:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{answers:?}"
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from outbox where kind = 'link_code'"
        )
        .await,
        10
    );
    // another coordinator has a budget of their own; five households ask for one number at
    // once: it gets exactly 3 codes
    let asks = households[..5].iter().map(|h| {
        let uri = format!("/api/v1/households/{h}/phones");
        let token = t.both.clone();
        let app = &app;
        async move { call(app, "POST", &uri, json!({"phone": MIGRANT}), &token).await }
    });
    let answers = futures_util::future::join_all(asks).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    let limited: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .map(|(_, e)| e)
        .collect();
    assert_eq!((accepted, limited.len()), (3, 2), "{answers:?}");
    assert_eq!(
        limited[0]["error"]["message"],
        "at most 3 codes an hour may be sent to one number; try again later"
    );
    assert_eq!(link_codes_to(&pool, MIGRANT).await, 3);
    // an hour later the coordinator may ask again
    let uri = format!("/api/v1/households/{}/phones", households[11]);
    let (status, e) = call(
        &app,
        "POST",
        &uri,
        json!({"phone": "+992935559999"}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{e}");
    assert_eq!(
        e["error"]["message"],
        "at most 10 codes an hour may be sent for one coordinator; try again later"
    );
    app.clock.advance(chrono::Duration::minutes(61));
    let (status, _) = call(
        &app,
        "POST",
        &uri,
        json!({"phone": "+992935559999"}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn admins_link_at_once(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let sarazm = add_household(&pool, seed.other_community, None, SARAZM_NUMBER).await;
    let phones = format!("/api/v1/households/{}/phones", seed.household);
    let (status, h) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": FREE_NUMBER}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
    assert!(numbers(&h).contains(&FREE_NUMBER.to_owned()), "{h}");
    let (status, e) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": SARAZM_NUMBER}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        e["error"]["message"],
        format!("{SARAZM_NUMBER} is already registered to household {sarazm}")
    );
    // a coordinator of both communities sees the Sarazm household too: 409 at once
    let (status, e) = call(
        &app,
        "POST",
        &phones,
        json!({"phone": SARAZM_NUMBER}),
        &t.both,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert_eq!(
        count(
            &pool,
            "select count(*) from outbox where kind = 'link_code'"
        )
        .await,
        0
    );
    assert_eq!(
        count(&pool, "select count(*) from phone_link_codes").await,
        0
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn registering_numbers_of_other_communities_is_capped(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let register = |phone: String| {
        let app = &app;
        let token = t.own.clone();
        let body = json!({"community_id": seed.community, "phones": [phone]});
        async move { call(app, "POST", "/api/v1/households", body, &token).await }
    };
    // a number of a household the coordinator may see: named, and not counted
    let (status, e) = register(PHONE_RU.to_owned()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("household "),
        "{e}"
    );
    assert_eq!(
        count(&pool, "select count(*) from taken_number_answers").await,
        0
    );
    // eight Sarazm numbers at once: five answers "another household" (not named), then 429
    let mut sarazm = Vec::new();
    for i in 0..8 {
        let phone = format!("+99293666{i:04}");
        add_household(&pool, seed.other_community, None, &phone).await;
        sarazm.push(phone);
    }
    let answers = futures_util::future::join_all(sarazm.iter().cloned().map(register)).await;
    let conflicts: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CONFLICT)
        .map(|(_, e)| e)
        .collect();
    let limited = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((conflicts.len(), limited), (5, 3), "{answers:?}");
    for e in conflicts {
        let message = e["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.ends_with("is already registered to another household"),
            "{e}"
        );
    }
    assert_eq!(
        count(&pool, "select count(*) from taken_number_answers").await,
        5
    );
    // now paused whatever the numbers (a free one too), for 24 hours after the first
    let before = count(&pool, "select count(*) from households").await;
    let (status, e) = register(FREE_NUMBER.to_owned()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{e}");
    assert_eq!(e["error"]["code"], "too_many_requests");
    assert_eq!(
        count(&pool, "select count(*) from households").await,
        before,
        "nothing registered"
    );
    // other coordinators and admins are not paused
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/households",
        json!({"community_id": seed.community, "phones": [FREE_NUMBER]}),
        &t.admin,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    app.clock.advance(chrono::Duration::hours(24));
    let (status, h) = register("+992935550007".to_owned()).await;
    assert_eq!(status, StatusCode::CREATED, "{h}");
}
