//! The console's Exports page (`/console/exports`) through the real router over a real
//! database: the page lists the four files with filters in the person's scope; a download
//! is the admin API's file (headers, CSV, byte-order mark), narrowed to the person's
//! communities, masked for a programme officer and written to the audit log; a community
//! outside the scope is 403 and writes nothing.

mod common;

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Request, StatusCode},
    response::Response,
};
use common::{TestApp, PHONE_TG};
use hashar::{domain::Phone, store::staff::Role};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const SARAZM_PHONE: &str = "+992935550002";

async fn send(app: &TestApp, req: Request<Body>) -> (Response, Vec<u8>) {
    let resp = app.router.clone().oneshot(req).await.expect("an answer");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (Response::from_parts(parts, Body::empty()), bytes.to_vec())
}

fn cookie_of(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

fn header_of(resp: &Response, name: header::HeaderName) -> &str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn get(app: &TestApp, uri: &str, cookie: &str) -> (Response, Vec<u8>) {
    let req = Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

async fn page(app: &TestApp, uri: &str, cookie: &str) -> (StatusCode, String) {
    let (resp, body) = get(app, uri, cookie).await;
    (resp.status(), String::from_utf8(body).expect("UTF-8"))
}

/// A member of staff with `role` and `communities` signs in (from their own address, so
/// that the throttle never counts); returns the session cookie and their id.
async fn signed_in(
    app: &TestApp,
    phone: &str,
    role: Role,
    communities: &[i64],
    ip: u8,
) -> (String, i64) {
    let parsed = Phone::parse(phone).expect("a phone");
    let mut conn = app.pool.acquire().await.expect("a connection");
    let id = hashar::store::staff::upsert_coordinator(&mut conn, "Nodira", &parsed, Some(role))
        .await
        .expect("staff");
    for c in communities {
        hashar::store::staff::grant_community(&mut conn, id, hashar::store::CommunityId(*c))
            .await
            .expect("a community");
    }
    drop(conn);
    hashar::console::auth::set_password(&app.pool, &parsed, PASSWORD)
        .await
        .expect("a password");
    let (resp, body) = get(app, "/console/login?lang=en", "").await;
    let body = String::from_utf8(body).expect("UTF-8");
    let pre = cookie_of(&resp, "__Host-hashar-csrf").expect("a pre-session cookie");
    let token = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    let form = common::form(&[("csrf", &token), ("phone", phone), ("password", PASSWORD)]);
    let mut req = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", format!("{pre}; hashar-lang=en"))
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(form))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, ip], 40000))));
    let (resp, _) = send(app, req).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    (
        cookie_of(&resp, "__Host-hashar").expect("a session cookie"),
        id.0,
    )
}

async fn pledge(pool: &PgPool, project: i64, phone: &str, amount: &str, key: &str, at: &str) {
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at, code)
         select $1, household_id, $2, $3::numeric, 'TJS', 'ussd', $4, $5::timestamptz, '4821735'
           from phones where phone = $2",
    )
    .bind(project)
    .bind(phone)
    .bind(amount)
    .bind(key)
    .bind(at)
    .execute(pool)
    .await
    .expect("a pledge");
}

/// The seed, a pledge in Anzob (Bridge, by `PHONE_TG`) and a household with a pledge in
/// Sarazm; returns the seed.
async fn programme(pool: &PgPool) -> common::Seed {
    let seed = common::seed(pool).await;
    pledge(
        pool,
        seed.bridge,
        PHONE_TG,
        "1500.50",
        "k1",
        "2026-11-20 08:30:00+00",
    )
    .await;
    common::add_household(pool, seed.other_community, Some("ru"), SARAZM_PHONE).await;
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(pool)
        .await
        .expect("water");
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         select $1, household_id, $2, 700, 'TJS', 'sms', 'k2' from phones where phone = $2",
    )
    .bind(water)
    .bind(SARAZM_PHONE)
    .execute(pool)
    .await
    .expect("a Sarazm pledge");
    seed
}

async fn audit_rows(pool: &PgPool) -> Vec<(String, String, i64, Option<i64>, serde_json::Value)> {
    sqlx::query_as(
        "select actor, action, subject_id, community_id, detail from audit_log
          where action = 'export.download' order by id",
    )
    .fetch_all(pool)
    .await
    .expect("audit rows")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_coordinator_downloads_the_apis_file_for_their_communities(pool: PgPool) {
    let seed = programme(&pool).await;
    let app = common::app(pool.clone()).await;
    let (cookie, id) = signed_in(
        &app,
        "+992935550001",
        Role::Coordinator,
        &[seed.community],
        1,
    )
    .await;

    // the page: five files, filters of the person's scope only
    let (status, html) = page(&app, "/console/exports", &cookie).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for file in [
        "pledges",
        "project-totals",
        "households",
        "broadcasts",
        "outreach",
    ] {
        assert!(
            html.contains(&format!("action=\"/console/exports/{file}.csv\"")),
            "{file}: {html}"
        );
    }
    assert!(html.contains(">Anzob</option>"), "{html}");
    assert!(!html.contains("Sarazm"), "{html}");
    assert!(html.contains("Bridge (Anzob)"), "{html}");
    assert!(!html.contains("Water"), "{html}");
    assert!(html.contains("Excel on Windows"), "{html}");
    assert!(
        html.contains("href=\"/console/exports\" aria-current=\"page\"")
            || html.contains("aria-current=\"page\" href=\"/console/exports\""),
        "the menu marks the page: {html}"
    );

    // a download, as the page's form sends it (empty fields, the box ticked)
    let (resp, body) = get(
        &app,
        "/console/exports/pledges.csv?community=&project=&from=&to=&bom=true",
        &cookie,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        header_of(&resp, header::CONTENT_TYPE),
        "text/csv; charset=utf-8"
    );
    let disposition = header_of(&resp, header::CONTENT_DISPOSITION);
    assert!(
        disposition.starts_with("attachment; filename=\"pledges-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert_eq!(header_of(&resp, header::CACHE_CONTROL), "no-store");
    assert_eq!(&body[..3], b"\xEF\xBB\xBF", "the byte-order mark first");
    let text = String::from_utf8(body[3..].to_vec()).expect("UTF-8");
    let pledge_id: i64 = sqlx::query_scalar("select id from pledges where idempotency_key = 'k1'")
        .fetch_one(&pool)
        .await
        .expect("the pledge");
    assert_eq!(
        text,
        format!(
            "id,created_at,community,project,household_id,phone,amount,currency,said_amount,said_currency,rate,channel,status,received,last_received_on,cancelled_at,cancel_reason,code\r\n\
             {pledge_id},2026-11-20T08:30:00Z,anzob,BRIDGE,{},'+992901112233,1500.50,TJS,,,,ussd,pledged,0.00,,,,4821735\r\n",
            seed.household
        )
    );

    // without the box: no byte-order mark; narrowed to the community, by days
    let (resp, body) = get(
        &app,
        &format!(
            "/console/exports/pledges.csv?community={}&from=2026-11-21&to=2026-11-30",
            seed.community
        ),
        &cookie,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body.starts_with(b"id,created_at,"), "no BOM");
    assert_eq!(
        body.iter().filter(|b| **b == b'\n').count(),
        1,
        "the header only"
    );

    // each download is in the audit log: who, which file, the filters
    let rows = audit_rows(&pool).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (actor, action, subject, community, detail) = &rows[0];
    assert_eq!(
        (actor.as_str(), action.as_str(), *subject, *community),
        (
            format!("coordinator:{id}").as_str(),
            "export.download",
            id,
            None
        )
    );
    assert_eq!(
        detail["after"],
        serde_json::json!({"file": "pledges", "community": null, "project": null, "from": null,
                           "to": null, "bom": true, "masked": false, "rows": 1})
    );
    let (.., community, detail) = &rows[1];
    assert_eq!(*community, Some(seed.community));
    assert_eq!(detail["after"]["from"], "2026-11-21");
    assert_eq!(detail["after"]["to"], "2026-11-30");
    assert_eq!(detail["after"]["rows"], 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn out_of_scope_is_403_and_a_wrong_filter_says_so(pool: PgPool) {
    let seed = programme(&pool).await;
    let app = common::app(pool.clone()).await;
    let (cookie, _) = signed_in(
        &app,
        "+992935550001",
        Role::Coordinator,
        &[seed.community],
        2,
    )
    .await;

    let (status, html) = page(
        &app,
        &format!(
            "/console/exports/households.csv?community={}",
            seed.other_community
        ),
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        html.contains("That community is not one of yours"),
        "{html}"
    );
    assert!(html.contains("href=\"/console/exports\""), "{html}");

    // the last day before the first: the page again, the error beside the field, kept
    let (status, html) = page(
        &app,
        "/console/exports/pledges.csv?from=2026-11-30&to=2026-11-01&bom=true",
        &cookie,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("id=\"pledges-to-error\""), "{html}");
    assert!(
        html.contains("The last day is on or after the first day."),
        "{html}"
    );
    assert!(html.contains("value=\"2026-11-30\""), "{html}");
    assert!(
        html.contains("id=\"pledges-bom\" name=\"bom\" type=\"checkbox\" value=\"true\" checked"),
        "{html}"
    );

    let (status, _) = page(&app, "/console/exports/pledges.csv?community=abc", &cookie).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = page(&app, "/console/exports/secrets.csv", &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(audit_rows(&pool).await.is_empty(), "refusals write nothing");

    // no session: the sign-in page
    for uri in ["/console/exports", "/console/exports/pledges.csv"] {
        let (resp, _) = get(&app, uri, "").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(header_of(&resp, header::LOCATION), "/console/login");
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_officers_files_mask_numbers(pool: PgPool) {
    let seed = programme(&pool).await;
    let app = common::app(pool.clone()).await;
    let (cookie, _) = signed_in(&app, "+992935550003", Role::Officer, &[seed.community], 3).await;

    let (status, html) = page(&app, "/console/exports", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"exports-masked\""), "{html}");

    let (resp, body) = get(&app, "/console/exports/households.csv", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(body).expect("UTF-8");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("household_id,community,name,language,join_code,phones,opted_out_phones")
    );
    let first = lines.next().expect("a household");
    assert_eq!(
        first,
        format!("{},anzob,,tg,,'+99290*****33,", seed.household)
    );
    assert!(!text.contains("+992901112233"), "{text}");
    assert!(!text.contains("sarazm"), "{text}");

    let (_, body) = get(&app, "/console/exports/pledges.csv", &cookie).await;
    let text = String::from_utf8(body).expect("UTF-8");
    assert!(text.contains(",'+99290*****33,"), "{text}");
    assert!(!text.contains("+992901112233"), "{text}");

    let rows = audit_rows(&pool).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].4["after"]["masked"], true);
    assert_eq!(rows[0].4["after"]["file"], "households");
}
