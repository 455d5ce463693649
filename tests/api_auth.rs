//! Every admin API route, from the OpenAPI document itself: without a token → 401; a
//! coordinator of another community → 403 or 404 and never data; the community's own
//! coordinator and an admin → success. A route missing from the table below fails the test,
//! so no route can be added without being covered.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::*;
use sqlx::PgPool;

/// Builds the request (path and JSON body) that reaches community A through one route.
type MakeRequest = Box<dyn FnMut() -> (String, Option<serde_json::Value>)>;

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn every_route_checks_who_is_calling(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let (status, spec) = app.api("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let a = seed.community;
    let project = seed.bridge;
    // How to reach community A's data through each route.
    let mut n = 0;
    let mut table: BTreeMap<String, MakeRequest> = BTreeMap::new();
    table.insert(
        "get /api/v1/communities".into(),
        Box::new(move || ("/api/v1/communities".into(), None)),
    );
    table.insert(
        "get /api/v1/communities/{id}".into(),
        Box::new(move || (format!("/api/v1/communities/{a}"), None)),
    );
    table.insert(
        "get /api/v1/projects".into(),
        Box::new(move || (format!("/api/v1/projects?community={a}"), None)),
    );
    table.insert(
        "post /api/v1/projects".into(),
        Box::new(move || {
            n += 1;
            let code = format!("NEW{n}");
            (
                "/api/v1/projects".into(),
                Some(serde_json::json!({"community_id": a, "code": code, "kind": "infrastructure", "name_tg": "Мактаб",
                    "name_ru": "Школа", "name_en": "School", "target": "50000", "match_ratio": "1", "match_cap": "20000"})),
            )
        }),
    );
    table.insert(
        "get /api/v1/projects/{id}".into(),
        Box::new(move || (format!("/api/v1/projects/{project}"), None)),
    );
    table.insert(
        "post /api/v1/projects/{id}/updates".into(),
        Box::new(move || {
            (
                format!("/api/v1/projects/{project}/updates"),
                Some(
                    serde_json::json!({"texts": {"tg": "Пул тайёр аст", "ru": "Мост готов",
                    "en": "The bridge is finished"}}),
                ),
            )
        }),
    );
    table.insert(
        "patch /api/v1/projects/{id}".into(),
        Box::new(move || {
            (
                format!("/api/v1/projects/{project}"),
                Some(serde_json::json!({"target": "12000.50"})),
            )
        }),
    );
    // money: pledges in community A to receive and cancel, and money on the bridge to match
    let mut pledges = Vec::new();
    for i in 0..5 {
        let id: i64 = sqlx::query_scalar(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
             values ($1, $2, $3, 1000, 'TJS', 'api', $4) returning id",
        )
        .bind(project)
        .bind(seed.household)
        .bind(PHONE_TG)
        .bind(format!("auth-{i}"))
        .fetch_one(&pool)
        .await
        .expect("pledge");
        pledges.push(id);
    }
    receive(&pool, project, "5000").await;
    let first = pledges[0];
    table.insert(
        "get /api/v1/pledges/{id}".into(),
        Box::new(move || (format!("/api/v1/pledges/{first}"), None)),
    );
    // (receipt numbers are unique per community since issue 8: one per call)
    let mut receipt_no = 0;
    table.insert(
        "post /api/v1/pledges/{id}/receipts".into(),
        Box::new(move || {
            receipt_no += 1;
            (
                format!("/api/v1/pledges/{first}/receipts"),
                Some(serde_json::json!({"amount": "10", "received_on": "2026-11-20", "method": "cash", "receipt_no": format!("R-{receipt_no}")})),
            )
        }),
    );
    let mut next = 1;
    table.insert(
        "post /api/v1/pledges/{id}/cancel".into(),
        Box::new(move || {
            // each call a pledge of its own, so that the own coordinator and the admin both succeed
            let id = pledges[next.min(4)];
            next += 1;
            (
                format!("/api/v1/pledges/{id}/cancel"),
                Some(serde_json::json!({"reason": "moved to Dushanbe"})),
            )
        }),
    );
    table.insert(
        "post /api/v1/receipts".into(),
        Box::new(move || {
            (
                "/api/v1/receipts".into(),
                Some(serde_json::json!({"project_id": project, "amount": "25.50", "received_on": "2026-11-20", "method": "bank"})),
            )
        }),
    );
    table.insert(
        "post /api/v1/projects/{id}/disbursements".into(),
        Box::new(move || {
            (
                format!("/api/v1/projects/{project}/disbursements"),
                Some(serde_json::json!({"amount": "100", "disbursed_on": "2026-11-21", "partner": "Aga Khan Foundation"})),
            )
        }),
    );
    table.insert(
        "get /api/v1/pledges".into(),
        Box::new(move || (format!("/api/v1/pledges?community={a}"), None)),
    );
    table.insert(
        "get /api/v1/exports/pledges.csv".into(),
        Box::new(move || (format!("/api/v1/exports/pledges.csv?community={a}"), None)),
    );
    table.insert(
        "get /api/v1/exports/project-totals.csv".into(),
        Box::new(move || {
            (
                format!("/api/v1/exports/project-totals.csv?community={a}"),
                None,
            )
        }),
    );
    table.insert(
        "get /api/v1/exports/households.csv".into(),
        Box::new(move || {
            (
                format!("/api/v1/exports/households.csv?community={a}"),
                None,
            )
        }),
    );

    // households: community A's seeded household, with spare numbers to unlink
    let household = seed.household;
    table.insert(
        "get /api/v1/households".into(),
        Box::new(move || (format!("/api/v1/households?community={a}"), None)),
    );
    let mut registered = 0;
    table.insert(
        "post /api/v1/households".into(),
        Box::new(move || {
            registered += 1;
            (
                "/api/v1/households".into(),
                Some(
                    serde_json::json!({"community_id": a, "name": "Rahimov", "language": "tg",
                    "phones": [format!("+99290555000{registered}")]}),
                ),
            )
        }),
    );
    table.insert(
        "get /api/v1/households/{id}".into(),
        Box::new(move || (format!("/api/v1/households/{household}"), None)),
    );
    table.insert(
        "patch /api/v1/households/{id}".into(),
        Box::new(move || {
            (
                format!("/api/v1/households/{household}"),
                Some(serde_json::json!({"name": "Karimov", "language": "ru"})),
            )
        }),
    );
    let mut linked = 0;
    table.insert(
        "post /api/v1/households/{id}/phones".into(),
        Box::new(move || {
            linked += 1;
            (
                format!("/api/v1/households/{household}/phones"),
                Some(serde_json::json!({"phone": format!("+7916555000{linked}")})),
            )
        }),
    );
    // codes sent for numbers to link (as `POST …/phones` would have sent them), one per
    // call, all `123456`
    for i in 1..=5 {
        sqlx::query(
            "insert into phone_link_codes (household_id, phone, code_salt, code_sha256, created_by, created_at, expires_at)
             select $1, $2, salt, sha256(salt || convert_to('123456', 'UTF8')), (select min(id) from coordinators),
                    timestamptz '2026-11-28 09:00Z', timestamptz '2026-11-28 09:15Z'
             from (select gen_random_bytes(16) as salt) s",
        )
        .bind(household)
        .bind(format!("+7916666000{i}"))
        .execute(&pool)
        .await
        .expect("pending code");
    }
    let mut confirmed = 0;
    table.insert(
        "post /api/v1/households/{id}/phones/confirm".into(),
        Box::new(move || {
            confirmed += 1;
            (
                format!("/api/v1/households/{household}/phones/confirm"),
                Some(serde_json::json!({"phone": format!("+7916666000{confirmed}"), "code": "123456"})),
            )
        }),
    );
    for i in 1..=3 {
        sqlx::query("insert into phones (phone, household_id) values ($1, $2)")
            .bind(format!("+99291777000{i}"))
            .bind(household)
            .execute(&pool)
            .await
            .expect("spare phone");
    }
    let mut unlinked = 0;
    table.insert(
        "delete /api/v1/households/{id}/phones/{phone}".into(),
        Box::new(move || {
            // each call a number of its own, so that the own coordinator and the admin both succeed
            unlinked += 1;
            (
                format!("/api/v1/households/{household}/phones/%2B99291777000{unlinked}"),
                None,
            )
        }),
    );
    table.insert(
        "put /api/v1/phones/{phone}/opt-out".into(),
        Box::new(move || {
            (
                format!("/api/v1/phones/{}/opt-out", PHONE_TG.replace('+', "%2B")),
                Some(serde_json::json!({"opted_out": true})),
            )
        }),
    );
    // a number's time zone for quiet hours (issue 11 point 9): scoped like its household
    table.insert(
        "put /api/v1/phones/{phone}/timezone".into(),
        Box::new(move || {
            (
                format!("/api/v1/phones/{}/timezone", PHONE_TG.replace('+', "%2B")),
                Some(serde_json::json!({"timezone": "Europe/Moscow"})),
            )
        }),
    );
    // tips and exchange rates: global data, read by all, written by admins only
    let tip: i64 = sqlx::query_scalar(
        "insert into tips (code, position, text_tg, text_ru, text_en)
         values ('auth-tip', 1, 'Маслиҳат', 'Совет', 'Tip') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("tip");
    table.insert(
        "get /api/v1/tips".into(),
        Box::new(move || ("/api/v1/tips".into(), None)),
    );
    let mut tips = 0;
    table.insert(
        "post /api/v1/tips".into(),
        Box::new(move || {
            tips += 1;
            (
                "/api/v1/tips".into(),
                Some(serde_json::json!({"code": format!("new-tip-{tips}"), "text_tg": "Пасандоз кунед",
                    "text_ru": "Копите", "text_en": "Save"})),
            )
        }),
    );
    table.insert(
        "patch /api/v1/tips/{id}".into(),
        Box::new(move || {
            (
                format!("/api/v1/tips/{tip}"),
                Some(serde_json::json!({"active": false})),
            )
        }),
    );
    table.insert(
        "get /api/v1/exchange-rates".into(),
        Box::new(move || ("/api/v1/exchange-rates?base=RUB".into(), None)),
    );
    let mut rates = 0;
    table.insert(
        "post /api/v1/exchange-rates".into(),
        Box::new(move || {
            rates += 1;
            (
                "/api/v1/exchange-rates".into(),
                Some(
                    serde_json::json!({"base": "RUB", "quote": "TJS", "rate": "0.1234",
                    "valid_from": format!("2026-11-{:02}", rates)}),
                ),
            )
        }),
    );
    // broadcasts: one per call that changes its state, so each succeeds for its caller
    let mut drafts = Vec::new();
    for _ in 0..8 {
        let id: i64 = sqlx::query_scalar(
            "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, created_at)
             values ('test', array[$1::bigint], 'Ҷаласа', 'Собрание', 'Meeting', now()) returning id",
        )
        .bind(a)
        .fetch_one(&pool)
        .await
        .expect("broadcast");
        drafts.push(id);
    }
    let shown = drafts[0];
    table.insert(
        "post /api/v1/broadcasts".into(),
        Box::new(move || {
            (
                "/api/v1/broadcasts".into(),
                Some(serde_json::json!({"communities": [a], "texts": {"tg": "Ҷаласа {date}", "ru": "Собрание {date}",
                    "en": "Meeting {date}"}, "vars": {"date": "1.12"}})),
            )
        }),
    );
    table.insert(
        "get /api/v1/broadcasts/{id}".into(),
        Box::new(move || (format!("/api/v1/broadcasts/{shown}"), None)),
    );
    table.insert(
        "get /api/v1/broadcasts/{id}/rsvps".into(),
        Box::new(move || (format!("/api/v1/broadcasts/{shown}/rsvps"), None)),
    );
    // a meeting an hour after the test's clock (attendance is recorded from two hours before)
    let meeting: i64 = sqlx::query_scalar(
        "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, created_at,
                                 meeting_at, place, topics)
         values ('test', array[$1::bigint], 'Ҷаласа', 'Собрание', 'Meeting', now(),
                 timestamptz '2026-11-28 10:00Z', 'School', array['hiv']) returning id",
    )
    .bind(a)
    .fetch_one(&pool)
    .await
    .expect("meeting");
    let household = seed.household;
    table.insert(
        "get /api/v1/broadcasts/{id}/attendance".into(),
        Box::new(move || (format!("/api/v1/broadcasts/{meeting}/attendance"), None)),
    );
    table.insert(
        "put /api/v1/broadcasts/{id}/attendance".into(),
        Box::new(move || {
            (
                format!("/api/v1/broadcasts/{meeting}/attendance"),
                Some(serde_json::json!({"households": [{"household_id": household, "attended": true}]})),
            )
        }),
    );
    let (send_ids, cancel_ids) = (drafts[1..4].to_vec(), drafts[4..7].to_vec());
    let mut s = 0;
    table.insert(
        "post /api/v1/broadcasts/{id}/send".into(),
        Box::new(move || {
            let id = send_ids[s.min(2)];
            s += 1;
            (
                format!("/api/v1/broadcasts/{id}/send"),
                Some(serde_json::json!({})),
            )
        }),
    );
    let mut c = 0;
    table.insert(
        "post /api/v1/broadcasts/{id}/cancel".into(),
        Box::new(move || {
            let id = cancel_ids[c.min(2)];
            c += 1;
            (format!("/api/v1/broadcasts/{id}/cancel"), None)
        }),
    );
    let mut new_community = 0;
    table.insert(
        "post /api/v1/communities".into(),
        Box::new(move || {
            new_community += 1;
            (
                "/api/v1/communities".into(),
                Some(
                    serde_json::json!({"code": format!("new-{new_community}"), "district": "Ayni",
                    "name_tg": "Деҳа", "name_ru": "Село", "name_en": "Village"}),
                ),
            )
        }),
    );
    table.insert(
        "patch /api/v1/communities/{id}".into(),
        Box::new(move || {
            (
                format!("/api/v1/communities/{a}"),
                Some(serde_json::json!({"name_en": "Anzob village"})),
            )
        }),
    );
    table.insert(
        "get /api/v1/exports/broadcasts.csv".into(),
        Box::new(move || {
            (
                format!("/api/v1/exports/broadcasts.csv?community={a}"),
                None,
            )
        }),
    );
    // Reversals (admins only): a receipt and a disbursement of community A to reverse.
    receive(&pool, project, "1000").await;
    receive(&pool, project, "1").await;
    let receipt: i64 = sqlx::query_scalar("select max(id) from receipts")
        .fetch_one(&pool)
        .await
        .expect("receipt");
    let disbursement: i64 = sqlx::query_scalar(
        "insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, recorded_by)
         values ($1, 1, 'TJS', '2026-11-21', 'Partner', 'test') returning id",
    )
    .bind(project)
    .fetch_one(&pool)
    .await
    .expect("disbursement");
    table.insert(
        "post /api/v1/receipts/{id}/reversal".into(),
        Box::new(move || {
            (
                format!("/api/v1/receipts/{receipt}/reversal"),
                Some(serde_json::json!({"reason": "recorded twice"})),
            )
        }),
    );
    table.insert(
        "post /api/v1/disbursements/{id}/reversal".into(),
        Box::new(move || {
            (
                format!("/api/v1/disbursements/{disbursement}/reversal"),
                Some(serde_json::json!({"reason": "wrong project"})),
            )
        }),
    );
    // The counsellors' callback queue (counsellors and admins only): one request the admin
    // takes, one the admin already holds to record on.
    let callback = |key: &'static str, taken_by_admin: bool| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "insert into callback_requests (phone, language, channel, idempotency_key, taken_by, taken_at)
                 select $1, 'tg', 'ussd', $2, c.id, case when $3 then now() end
                 from (select case when $3 then id end as id from coordinators where phone = '+992900000301') c
                 returning id",
            )
            .bind(PHONE_TG)
            .bind(key)
            .bind(taken_by_admin)
            .fetch_one(&pool)
            .await
            .expect("a callback request")
        }
    };
    let to_take = callback("auth-take", false).await;
    let to_record = callback("auth-record", true).await;
    let to_release = callback("auth-release", true).await;
    table.insert(
        "get /api/v1/callbacks".into(),
        Box::new(move || ("/api/v1/callbacks".into(), None)),
    );
    table.insert(
        "post /api/v1/callbacks/{id}/take".into(),
        Box::new(move || (format!("/api/v1/callbacks/{to_take}/take"), None)),
    );
    table.insert(
        "post /api/v1/callbacks/{id}/release".into(),
        Box::new(move || (format!("/api/v1/callbacks/{to_release}/release"), None)),
    );
    table.insert(
        "post /api/v1/callbacks/{id}/outcome".into(),
        Box::new(move || {
            (
                format!("/api/v1/callbacks/{to_record}/outcome"),
                Some(serde_json::json!({"outcome": "no_answer"})),
            )
        }),
    );
    // The public holidays of the queue's working days: counsellors and admins read them,
    // admins change them.
    let holiday: i64 = sqlx::query_scalar(
        "insert into public_holidays (year, month, day, name) values (2027, 3, 10, 'Idi Ramazon') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("a holiday");
    table.insert(
        "get /api/v1/holidays".into(),
        Box::new(move || ("/api/v1/holidays".into(), None)),
    );
    table.insert(
        "post /api/v1/holidays".into(),
        Box::new(move || {
            (
                "/api/v1/holidays".into(),
                Some(serde_json::json!({"date": "2027-05-17", "name": "Idi Qurbon"})),
            )
        }),
    );
    table.insert(
        "delete /api/v1/holidays/{id}".into(),
        Box::new(move || (format!("/api/v1/holidays/{holiday}"), None)),
    );
    // Outreach (issue 11 point 6): counts every role reads in its own scope; targets are
    // set by admins only.
    table.insert(
        "get /api/v1/outreach".into(),
        Box::new(move || ("/api/v1/outreach".into(), None)),
    );
    table.insert(
        "post /api/v1/outreach/targets".into(),
        Box::new(move || {
            (
                "/api/v1/outreach/targets".into(),
                Some(serde_json::json!({"community": a, "target": 300})),
            )
        }),
    );
    table.insert(
        "get /api/v1/exports/outreach.csv".into(),
        Box::new(move || (format!("/api/v1/exports/outreach.csv?community={a}"), None)),
    );
    // Global data (the same for every community): any coordinator reads it.
    let global_reads = ["get /api/v1/tips", "get /api/v1/exchange-rates"];
    // Global data written by admins only: a community's own coordinator gets 403 too.
    let admin_only = [
        "post /api/v1/communities",
        "patch /api/v1/communities/{id}",
        "post /api/v1/tips",
        "patch /api/v1/tips/{id}",
        "post /api/v1/exchange-rates",
        "post /api/v1/receipts/{id}/reversal",
        "post /api/v1/disbursements/{id}/reversal",
        // the callback queue is for counsellors and admins: a coordinator gets 403
        "get /api/v1/callbacks",
        "post /api/v1/callbacks/{id}/take",
        "post /api/v1/callbacks/{id}/outcome",
        "post /api/v1/callbacks/{id}/release",
        "get /api/v1/holidays",
        "post /api/v1/holidays",
        "delete /api/v1/holidays/{id}",
        "post /api/v1/outreach/targets",
    ];

    let paths = spec["paths"].as_object().expect("paths in the spec");
    let mut covered = 0;
    for (path, ops) in paths {
        for (method, _) in ops.as_object().expect("operations") {
            let key = format!("{method} {path}");
            let make = table
                .get_mut(&key)
                .unwrap_or_else(|| panic!("route {key} is not in the authorisation table"));
            let upper = method.to_uppercase();
            let (uri, body) = make();
            let (status, json) = app.api(&upper, &uri, body.as_ref(), None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{key} without a token");
            assert_eq!(json["error"]["code"], "unauthorized", "{key}");
            let (status, json) = app
                .api(&upper, &uri, body.as_ref(), Some("hsr_not-a-token"))
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{key} with a bad token");
            assert!(json.get("error").is_some());
            let (status, json) = app.api(&upper, &uri, body.as_ref(), Some(&t.other)).await;
            if key == "get /api/v1/communities" {
                // a list without a filter: only the caller's own community, never A
                assert_eq!(status, StatusCode::OK);
                let ids: Vec<i64> = json
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|c| c["id"].as_i64().unwrap_or(0))
                    .collect();
                assert_eq!(ids, vec![seed.other_community], "{key}");
            } else if key == "get /api/v1/outreach" {
                // counts of the caller's own community only, never A's
                assert_eq!(status, StatusCode::OK, "{key}: {json}");
                let ids: Vec<i64> = json["communities"]
                    .as_array()
                    .expect("communities")
                    .iter()
                    .map(|c| c["id"].as_i64().unwrap_or(0))
                    .collect();
                assert_eq!(ids, vec![seed.other_community], "{key}");
                assert_eq!(json["programme"], false, "{key}");
            } else if global_reads.contains(&key.as_str()) {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{key} by another community's coordinator"
                );
                assert!(json.is_array(), "{key}: {json}");
            } else {
                assert!(
                    status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
                    "{key} by another community's coordinator: {status} {json}"
                );
                assert!(
                    json.get("error").is_some() && json.as_object().map(|o| o.len()) == Some(1),
                    "{key}: no data, only an error: {json}"
                );
            }
            for (who, token) in [("own coordinator", &t.own), ("admin", &t.admin)] {
                let (uri, body) = make();
                let (status, json) = app.api(&upper, &uri, body.as_ref(), Some(token)).await;
                if who == "own coordinator" && admin_only.contains(&key.as_str()) {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{key} by {who}: {json}");
                    continue;
                }
                assert!(status.is_success(), "{key} by {who}: {status} {json}");
            }
            covered += 1;
        }
    }
    assert_eq!(
        covered,
        table.len(),
        "every route in the table exists in the spec"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_revoked_token_no_longer_works(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let (_, token_id, token) = hashar::api::auth::add_coordinator(
        &pool,
        "Temp",
        "+992900000104",
        &["anzob".into()],
        false,
    )
    .await
    .expect("coordinator");
    assert_eq!(
        app.api("GET", "/api/v1/communities", None, Some(&token))
            .await
            .0,
        StatusCode::OK
    );
    hashar::api::auth::revoke_token(&pool, token_id)
        .await
        .expect("revoke");
    assert_eq!(
        app.api("GET", "/api/v1/communities", None, Some(&token))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let stored: String = sqlx::query_scalar("select token_sha256 from api_tokens where id = $1")
        .bind(token_id)
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_ne!(stored, token, "only the hash is stored");
    assert!(
        hashar::api::auth::add_coordinator(&pool, "Nobody", "+992900000105", &[], false)
            .await
            .is_err(),
        "a coordinator needs a scope"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn projects_are_validated_field_by_field_and_totals_are_exact(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let base = serde_json::json!({"community_id": seed.community, "code": "CANAL", "kind": "infrastructure", "name_tg": "Ҷӯй",
        "name_ru": "Арык", "name_en": "Canal", "target": "80000", "match_ratio": "0.5"});
    let cases = [
        ("code", serde_json::json!("X"), "code"),
        ("kind", serde_json::json!("party"), "kind"),
        ("target", serde_json::json!("0"), "target"),
        ("target", serde_json::json!("10.123"), "target"),
        ("match_ratio", serde_json::json!("-1"), "match_ratio"),
        (
            "name_en",
            serde_json::json!("A very long project name indeed"),
            "name_en",
        ),
        ("currency", serde_json::json!("RUBLES"), "currency"),
    ];
    for (field, value, want) in cases {
        let mut body = base.clone();
        body[field] = value;
        let (status, json) = app
            .api("POST", "/api/v1/projects", Some(&body), Some(&t.own))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {json}");
        assert_eq!(json["error"]["field"], want, "{json}");
    }
    let (status, created) = app
        .api("POST", "/api/v1/projects", Some(&base), Some(&t.own))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["matched_total"], "0.00");
    let (status, _) = app
        .api("POST", "/api/v1/projects", Some(&base), Some(&t.own))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "same code twice in one community"
    );
    // a cap, then removing it
    receive(&pool, seed.roof, "5000").await;
    let uri = format!("/api/v1/projects/{}", seed.roof);
    let (_, p) = app.api("GET", &uri, None, Some(&t.own)).await;
    assert_eq!(
        (
            p["received"].as_str(),
            p["matched"].as_str(),
            p["matched_total"].as_str()
        ),
        (Some("5000.00"), Some("3000.00"), Some("8000.00"))
    );
    let (_, p) = app
        .api(
            "PATCH",
            &uri,
            Some(&serde_json::json!({"match_cap": null})),
            Some(&t.own),
        )
        .await;
    assert_eq!(p["matched"], "10000.00", "2:1 without a cap: {p}");
    let (_, p) = app
        .api(
            "PATCH",
            &uri,
            Some(&serde_json::json!({"status": "closed"})),
            Some(&t.own),
        )
        .await;
    assert_eq!(p["status"], "closed");
    let (status, json) = app
        .api(
            "PATCH",
            &uri,
            Some(&serde_json::json!({"colour": "red"})),
            Some(&t.own),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    assert_eq!(
        (
            json["error"]["code"].as_str(),
            json["error"]["field"].as_str()
        ),
        (Some("invalid"), Some("body")),
        "{json}"
    );
    let (status, json) = app
        .api("GET", "/api/v1/projects/abc", None, Some(&t.own))
        .await;
    assert_eq!(
        (status, json["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("path")),
        "{json}"
    );
    let (status, json) = app
        .api("GET", "/api/v1/pledges?limit=many", None, Some(&t.own))
        .await;
    assert_eq!(
        (status, json["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("query")),
        "{json}"
    );
}
