//! The console's Households pages (`/console/households`) through the real router over a
//! real database: search by name, phone digits and join code with the community filter;
//! a household's page with its numbers, pledges, timeline (messages in and out with their
//! delivery state; a link code's text never shown) and callback requests; registering
//! (303 with a one-time flash; a refused form keeps what was typed; a number of a household
//! in scope links to it); editing; scope (another community's household is 404); roles
//! (counsellors see no money, officers change nothing); and a POST without its CSRF token.

mod common;

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Request, StatusCode},
    response::Response,
};
use common::{Seed, TestApp};
use hashar::{domain::Phone, store::staff::Role};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";
const SARAZM_PHONE: &str = "+992935550001";
const ABROAD: &str = "+79161234567";

async fn send(app: &TestApp, req: Request<Body>) -> (Response, String) {
    let resp = app.router.clone().oneshot(req).await.expect("an answer");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
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

fn location(resp: &Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn get(app: &TestApp, uri: &str, cookie: &str) -> (Response, String) {
    let req = Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

async fn get_htmx(app: &TestApp, uri: &str, cookie: &str) -> (Response, String) {
    let req = Request::get(uri)
        .header("cookie", cookie)
        .header("hx-request", "true")
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

/// The session's CSRF token, from any signed-in page.
async fn csrf(app: &TestApp, cookie: &str) -> String {
    let (_, body) = get(app, "/console/households", cookie).await;
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .or_else(|| body.split("\"X-CSRF-Token\": \"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf token")
        .to_owned()
}

async fn post(
    app: &TestApp,
    uri: &str,
    cookie: &str,
    pairs: &[(&str, &str)],
) -> (Response, String) {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(common::form(pairs)))
        .expect("request");
    send(app, req).await
}

/// A member of staff with `role` and `communities`, signed in (English); the session cookie.
async fn signed_in(app: &TestApp, phone: &str, role: Role, communities: &[i64], ip: u8) -> String {
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
        .insert(ConnectInfo(SocketAddr::from(([10, 0, 1, ip], 40000))));
    let (resp, body) = send(app, req).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{body}");
    cookie_of(&resp, "__Host-hashar").expect("a session cookie")
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.expect(sql);
}

/// The seed (Anzob: four households, the first named Karimov with a number abroad and a
/// pledge of 1 500 TJS, 500 received; Sarazm: one household, Rahimov) and Sarazm's id.
async fn programme(app: &TestApp) -> (Seed, i64) {
    let pool = &app.pool;
    let seed = common::seed(pool).await;
    let sarazm = common::add_household(pool, seed.other_community, Some("tg"), SARAZM_PHONE).await;
    exec(
        pool,
        &format!(
            "update households set name = 'Karimov', join_code = '482173' where id = {}",
            seed.household
        ),
    )
    .await;
    exec(
        pool,
        &format!("update households set name = 'Rahimov' where id = {sarazm}"),
    )
    .await;
    exec(
        pool,
        &format!(
            "insert into phones (phone, household_id) values ('{ABROAD}', {})",
            seed.household
        ),
    )
    .await;
    let pledge: i64 = sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
         values ($1, $2, $3, 1500, 'TJS', 'ussd', 'k1', '2026-11-27 08:00Z') returning id",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(common::PHONE_TG)
    .fetch_one(pool)
    .await
    .expect("a pledge");
    exec(
        pool,
        &format!(
            "insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
             values ({}, {pledge}, 500, 'TJS', '2026-11-27', 'cash', 'test')",
            seed.bridge
        ),
    )
    .await;
    (seed, sarazm)
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn search_finds_by_name_digits_and_join_code_in_scope(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000101",
        Role::Coordinator,
        &[seed.community],
        1,
    )
    .await;

    let (resp, body) = get(&app, "/console/households", &anzob).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(body.contains("Karimov"), "{body}");
    assert!(
        !body.contains("Rahimov"),
        "another community's household: {body}"
    );
    // masked numbers in the list, never the full one
    assert!(!body.contains(common::PHONE_TG), "{body}");
    assert!(body.contains("+99290*****33"), "{body}");
    assert!(
        body.contains("Pledged 1,500.00\u{a0}TJS · received 500.00\u{a0}TJS"),
        "{body}"
    );
    assert!(body.contains("id=\"register\""), "{body}");

    for q in ["kari", "1112233", "482173"] {
        let (_, body) = get(&app, &format!("/console/households?q={q}"), &anzob).await;
        assert!(body.contains("Karimov"), "{q}: {body}");
    }
    let (_, body) = get(&app, "/console/households?q=rahim", &anzob).await;
    assert!(body.contains("id=\"households-empty\""), "{body}");
    assert!(body.contains("No households found"), "{body}");
    // a community out of scope in the filter
    let (resp, _) = get(
        &app,
        &format!("/console/households?community={}", seed.other_community),
        &anzob,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // a counsellor: every community, no money
    let counsellor = signed_in(&app, "+992900000102", Role::Counsellor, &[], 2).await;
    let (_, body) = get(&app, "/console/households", &counsellor).await;
    assert!(
        body.contains("Karimov") && body.contains("Rahimov"),
        "{body}"
    );
    assert!(!body.contains("Pledged"), "{body}");
    let (_, body) = get(
        &app,
        &format!("/console/households?community={}", seed.other_community),
        &counsellor,
    )
    .await;
    assert!(
        body.contains("Rahimov") && !body.contains("Karimov"),
        "{body}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_list_pages_with_show_more(pool: PgPool) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    for i in 0..35 {
        common::add_household(&app.pool, seed.community, None, &format!("+9929300{i:05}")).await;
    }
    let admin = signed_in(&app, "+992900000103", Role::Admin, &[], 3).await;
    let (_, body) = get(&app, "/console/households", &admin).await;
    assert_eq!(body.matches("data-household=").count(), 30);
    let more = body
        .split("hx-get=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a show-more link")
        .replace("&amp;", "&");
    let (resp, fragment) = get_htmx(&app, &more, &admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!fragment.contains("<html"), "a fragment: {fragment}");
    assert_eq!(
        fragment.matches("data-household=").count(),
        9,
        "{more} {fragment}"
    );
    assert!(!fragment.contains("id=\"more\""), "{fragment}");
    // the same URL without htmx is a whole page
    let (_, page) = get(&app, &more, &admin).await;
    assert!(page.contains("<html"), "{page}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_household_page_shows_numbers_pledges_timeline_and_callbacks(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let pool = &app.pool;
    exec(
        pool,
        &format!(
            "insert into outbox (phone, body, encoding, segments, provider, kind, status, next_attempt_at,
                                 created_at, sent_at, delivered_at, failed_at, last_error, updated_at)
             values
             ('{tg}', 'Received 500 TJS', 'gsm7', 1, 'console', 'receipt', 'delivered', '2026-11-27 09:00Z',
              '2026-11-27 09:00Z', '2026-11-27 09:00Z', '2026-11-27 09:01Z', null, null, '2026-11-27 09:01Z'),
             ('{abroad}', 'Meeting on Friday', 'gsm7', 1, 'console', 'broadcast', 'failed', '2026-11-27 10:00Z',
              '2026-11-27 10:00Z', null, null, '2026-11-27 10:02Z', 'absent subscriber', '2026-11-27 10:02Z'),
             ('{abroad}', 'Your code 604217', 'gsm7', 1, 'console', 'link_code', 'sent', '2026-11-27 11:00Z',
              '2026-11-27 11:00Z', '2026-11-27 11:00Z', null, null, null, '2026-11-27 11:00Z')",
            tg = common::PHONE_TG,
            abroad = ABROAD
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "insert into inbound_messages (provider, kind, provider_msg_id, sender, sender_e164, raw, text, received_at, handled_at, outcome)
             values ('console', 'sms', 'm1', '{tg}', '{tg}', '{{}}', 'STOP please', '2026-11-27 12:00Z', '2026-11-27 12:00Z', 'stop')",
            tg = common::PHONE_TG
        ),
    )
    .await;
    exec(
        pool,
        &format!(
            "insert into callback_requests (phone, household_id, language, channel, idempotency_key, created_at)
             values ('{}', {}, 'tg', 'ussd', 'cb1', '2026-11-27 13:00Z')",
            common::PHONE_TG,
            seed.household
        ),
    )
    .await;
    let anzob = signed_in(
        &app,
        "+992900000104",
        Role::Coordinator,
        &[seed.community],
        4,
    )
    .await;
    let (resp, body) = get(
        &app,
        &format!("/console/households/{}", seed.household),
        &anzob,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(
        body.contains("<h1 id=\"household-title\">Karimov</h1>"),
        "{body}"
    );
    // full numbers as tel: links, the one abroad apart
    assert!(
        body.contains(&format!("href=\"tel:{}\"", common::PHONE_TG)),
        "{body}"
    );
    let abroad = body.split("id=\"abroad\"").nth(1).expect("numbers abroad");
    assert!(abroad.contains(&format!("tel:{ABROAD}")), "{abroad}");
    // the pledge with what was received
    assert!(
        body.contains("Bridge")
            && body.contains("1,500.00\u{a0}TJS")
            && body.contains("500.00\u{a0}TJS"),
        "{body}"
    );
    // the timeline, newest first: in, link code (hidden), failed broadcast, delivered receipt
    let timeline = body.split("id=\"timeline\"").nth(1).expect("a timeline");
    let stop = timeline.find("STOP please").expect("the text received");
    let code = timeline
        .find("A link code (not shown)")
        .expect("the link code, hidden");
    let failed = timeline.find("Meeting on Friday").expect("the broadcast");
    let receipt = timeline.find("Received 500 TJS").expect("the receipt");
    assert!(
        stop < code && code < failed && failed < receipt,
        "{timeline}"
    );
    assert!(
        !body.contains("604217"),
        "a link code is never shown: {body}"
    );
    assert!(
        timeline.contains("Failed") && timeline.contains("absent subscriber"),
        "{timeline}"
    );
    assert!(
        timeline.contains("Delivered</span> · 27 Nov 2026 14:01"),
        "{timeline}"
    );
    // the callback request
    let callbacks = body.split("id=\"callbacks\"").nth(1).expect("callbacks");
    assert!(
        callbacks.contains("Open") && callbacks.contains("USSD"),
        "{callbacks}"
    );

    // a counsellor sees the household, not its pledges
    let counsellor = signed_in(&app, "+992900000105", Role::Counsellor, &[], 5).await;
    let (resp, body) = get(
        &app,
        &format!("/console/households/{}", seed.household),
        &counsellor,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!body.contains("id=\"pledges\""), "{body}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_coordinator_gets_404_for_another_communitys_household(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, sarazm) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000106",
        Role::Coordinator,
        &[seed.community],
        6,
    )
    .await;
    for uri in [
        format!("/console/households/{sarazm}"),
        format!("/console/households/{sarazm}/edit"),
        "/console/households/999999".to_owned(),
    ] {
        let (resp, body) = get(&app, &uri, &anzob).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(body.contains("Household not found"), "{body}");
        assert!(!body.contains("Rahimov"), "{body}");
    }
    let token = csrf(&app, &anzob).await;
    let (resp, _) = post(
        &app,
        &format!("/console/households/{sarazm}"),
        &anzob,
        &[
            ("csrf", &token),
            ("community", &seed.community.to_string()),
            ("name", "Mine"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let name: Option<String> =
        sqlx::query_scalar(&format!("select name from households where id = {sarazm}"))
            .fetch_one(&app.pool)
            .await
            .expect("name");
    assert_eq!(name.as_deref(), Some("Rahimov"));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn registering_answers_303_with_a_flash_and_keeps_a_refused_form(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000107",
        Role::Coordinator,
        &[seed.community],
        7,
    )
    .await;
    let (resp, body) = get(&app, "/console/households/new", &anzob).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body.contains("name=\"phones\""), "{body}");
    let token = csrf(&app, &anzob).await;
    let community = seed.community.to_string();

    // a wrong number: 422, what was typed kept, the error beside the field
    let (resp, body) = post(
        &app,
        "/console/households",
        &anzob,
        &[
            ("csrf", &token),
            ("community", &community),
            ("name", "Saidov"),
            ("phones", "12ab"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("value=\"Saidov\"") && body.contains(">12ab</textarea>"),
        "{body}"
    );
    assert!(body.contains("This is not a phone number"), "{body}");
    // a number of a household in scope: 409, a link to it
    let (resp, body) = post(
        &app,
        "/console/households",
        &anzob,
        &[
            ("csrf", &token),
            ("community", &community),
            ("phones", common::PHONE_TG),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(
        body.contains(&format!(
            "href=\"/console/households/{}\" id=\"owner\"",
            seed.household
        )),
        "{body}"
    );

    let (resp, _) = post(
        &app,
        "/console/households",
        &anzob,
        &[
            ("csrf", &token),
            ("community", &community),
            ("name", "Saidov"),
            ("language", "ru"),
            ("phones", "+992 90 555 1234\n+7 916 555 1234"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(&resp);
    let id: i64 = to
        .strip_prefix("/console/households/")
        .and_then(|s| s.parse().ok())
        .expect("the new household's page");
    let (_, body) = get(&app, &to, &anzob).await;
    assert!(
        body.contains("id=\"flash\">Registered: Saidov.</p>"),
        "{body}"
    );
    assert!(
        body.contains("tel:+79165551234") && body.contains("Russian"),
        "{body}"
    );
    // one time only
    let (_, body) = get(&app, &to, &anzob).await;
    assert!(!body.contains("id=\"flash\""), "{body}");
    let audited = common::count(
        &app.pool,
        &format!("select count(*) from audit_log where action = 'household.register' and subject_id = {id}"),
    )
    .await;
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn editing_saves_name_language_and_community_where_allowed(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000108",
        Role::Coordinator,
        &[seed.community],
        8,
    )
    .await;
    let uri = format!("/console/households/{}", seed.household);
    let (resp, body) = get(&app, &format!("{uri}/edit"), &anzob).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body.contains("value=\"Karimov\""), "{body}");
    let token = csrf(&app, &anzob).await;
    let community = seed.community.to_string();
    let (resp, _) = post(
        &app,
        &uri,
        &anzob,
        &[
            ("csrf", &token),
            ("community", &community),
            ("name", "Karimova"),
            ("language", "en"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), uri);
    let (_, body) = get(&app, &uri, &anzob).await;
    assert!(
        body.contains("Saved: Karimova.") && body.contains(">English<"),
        "{body}"
    );
    let audited = common::count(
        &app.pool,
        "select count(*) from audit_log where action = 'household.update'",
    )
    .await;
    assert_eq!(audited, 1);
    // moving it to a community out of scope: refused (404, as out of scope), nothing changed
    let (resp, _) = post(
        &app,
        &uri,
        &anzob,
        &[
            ("csrf", &token),
            ("community", &seed.other_community.to_string()),
            ("name", "X"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // an empty name is no name
    let (resp, _) = post(
        &app,
        &uri,
        &anzob,
        &[("csrf", &token), ("community", &community)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, body) = get(&app, &uri, &anzob).await;
    assert!(
        body.contains(&format!("Household {}", seed.household)),
        "{body}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_post_without_its_csrf_token_is_refused(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000109",
        Role::Coordinator,
        &[seed.community],
        9,
    )
    .await;
    let before = common::count(&app.pool, "select count(*) from households").await;
    let (resp, _) = post(
        &app,
        "/console/households",
        &anzob,
        &[
            ("community", &seed.community.to_string()),
            ("phones", "+992905551111"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (resp, _) = post(
        &app,
        "/console/households",
        &anzob,
        &[
            ("csrf", "0000"),
            ("community", &seed.community.to_string()),
            ("phones", "+992905551111"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        common::count(&app.pool, "select count(*) from households").await,
        before
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_officer_reads_but_changes_nothing(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, sarazm) = programme(&app).await;
    let officer = signed_in(&app, "+992900000110", Role::Officer, &[seed.community], 10).await;
    let (resp, body) = get(&app, "/console/households", &officer).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        body.contains("Karimov") && !body.contains("id=\"register\""),
        "{body}"
    );
    let (resp, body) = get(
        &app,
        &format!("/console/households/{}", seed.household),
        &officer,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!body.contains("id=\"edit\""), "{body}");
    let (resp, _) = get(&app, &format!("/console/households/{sarazm}"), &officer).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let (resp, _) = get(&app, "/console/households/new", &officer).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let token = csrf(&app, &officer).await;
    let (resp, _) = post(
        &app,
        "/console/households",
        &officer,
        &[
            ("csrf", &token),
            ("community", &seed.community.to_string()),
            ("phones", "+992905552222"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn without_a_session_the_pages_send_to_sign_in(pool: PgPool) {
    let app = common::app(pool).await;
    for uri in [
        "/console/households",
        "/console/households/1",
        "/console/households/new",
    ] {
        let (resp, _) = get(&app, uri, "").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(location(&resp), "/console/login");
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_empty_state_says_how_households_register_by_ussd(pool: PgPool) {
    let app = common::app(pool).await;
    exec(
        &app.pool,
        "insert into communities (code, district, name_tg, name_ru, name_en) values ('anzob', 'Ayni', 'Анзоб', 'Анзоб', 'Anzob')",
    )
    .await;
    let admin = signed_in(&app, "+992900000111", Role::Admin, &[], 11).await;
    let (_, body) = get(&app, "/console/households", &admin).await;
    assert!(
        body.contains("Households can also register by dialling the USSD code."),
        "{body}"
    );
    let (_, body) = get(&app, "/console/households?lang=ru", &admin).await;
    assert!(body.contains("USSD-код"), "{body}");
}

/// The first run of six digits in `text` (a link code in its SMS).
fn six_digits(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(6)
        .enumerate()
        .find(|(i, w)| {
            w.iter().all(char::is_ascii_digit)
                && !chars.get(i + 6).is_some_and(char::is_ascii_digit)
                && (*i == 0 || !chars[i - 1].is_ascii_digit())
        })
        .map(|(_, w)| w.iter().collect())
        .expect("a 6-digit code")
}

/// A coordinator links a migrant's +7 number as the API does: the number gets an SMS with a
/// code, a wrong code is refused in words, the right one links it (listed abroad, audited);
/// an admin links at once.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_coordinator_links_a_number_abroad_with_the_code_it_got_by_sms(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000101",
        Role::Coordinator,
        &[seed.community],
        1,
    )
    .await;
    let token = csrf(&app, &anzob).await;
    let href = format!("/console/households/{}", seed.household);
    let (_, page) = get(&app, &href, &anzob).await;
    assert!(page.contains("id=\"link-phone\""), "{page}");

    // not a number: back to the page with the reason and what was typed
    let (resp, _) = post(
        &app,
        &format!("{href}/phones"),
        &anzob,
        &[("csrf", &token), ("phone", "12")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), format!("{href}?phone=12#link-phone"));
    let (_, page) = get(&app, &format!("{href}?phone=12"), &anzob).await;
    assert!(page.contains("id=\"phone-error\""), "{page}");
    assert!(page.contains("value=\"12\""));

    let (resp, _) = post(
        &app,
        &format!("{href}/phones"),
        &anzob,
        &[("csrf", &token), ("phone", "+7 926 555-12-34")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let confirm = format!("{href}/phones/confirm?phone=%2B79265551234");
    assert_eq!(location(&resp), confirm);
    let body: String = sqlx::query_scalar(
        "select body from outbox where phone = '+79265551234' and kind = 'link_code'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the link code's SMS");
    let code = six_digits(&body);
    let (resp, page) = get(&app, &confirm, &anzob).await;
    assert_eq!(resp.status(), StatusCode::OK, "{page}");
    assert!(page.contains("+79265551234"));
    assert!(page.contains("name=\"code\""));
    assert!(!page.contains(&code), "the code is not on the page");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (resp, _) = post(
        &app,
        &format!("{href}/phones/confirm"),
        &anzob,
        &[("csrf", &token), ("phone", "+79265551234"), ("code", wrong)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), confirm);
    let (_, page) = get(&app, &confirm, &anzob).await;
    assert!(page.contains("The code is not right."), "{page}");

    let (resp, _) = post(
        &app,
        &format!("{href}/phones/confirm"),
        &anzob,
        &[("csrf", &token), ("phone", "+79265551234"), ("code", &code)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), href);
    let (_, page) = get(&app, &href, &anzob).await;
    assert!(page.contains("Linked +79265551234."), "{page}");
    let abroad = page
        .split("id=\"abroad\"")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap_or("");
    assert!(abroad.contains("+79265551234"), "{abroad}");
    let owner: i64 =
        sqlx::query_scalar("select household_id from phones where phone = '+79265551234'")
            .fetch_one(&app.pool)
            .await
            .expect("linked");
    assert_eq!(owner, seed.household);
    let audit: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'household.phone_confirm'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audit, 1);

    // an admin links at once, without a code
    let admin = signed_in(&app, "+992900000102", Role::Admin, &[], 2).await;
    let admin_token = csrf(&app, &admin).await;
    let (resp, _) = post(
        &app,
        &format!("{href}/phones"),
        &admin,
        &[("csrf", &admin_token), ("phone", "+79265551235")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), href);
    let (_, page) = get(&app, &href, &admin).await;
    assert!(page.contains("Linked +79265551235."), "{page}");
}

/// Unlinking a number and recording STOP and START each go through a confirm page; the
/// household's last number cannot be unlinked; counsellors and officers see no such forms
/// and get 404 for them, as does another community's coordinator.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn unlinking_and_stop_start_go_through_a_confirm_page(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, sarazm) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000101",
        Role::Coordinator,
        &[seed.community],
        1,
    )
    .await;
    let token = csrf(&app, &anzob).await;
    let href = format!("/console/households/{}", seed.household);
    let (_, page) = get(&app, &href, &anzob).await;
    let abroad = "%2B79161234567";
    assert!(
        page.contains(&format!("{href}/phones/unlink?phone={abroad}")),
        "{page}"
    );
    let (resp, page) = get(
        &app,
        &format!("{href}/phones/unlink?phone={abroad}"),
        &anzob,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{page}");
    assert!(page.contains("Unlink +79161234567 from Karimov?"), "{page}");
    let (resp, _) = post(
        &app,
        &format!("{href}/phones/unlink"),
        &anzob,
        &[("csrf", &token), ("phone", ABROAD)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), href);
    let (_, page) = get(&app, &href, &anzob).await;
    assert!(page.contains("Unlinked +79161234567."), "{page}");
    let left: i64 = sqlx::query_scalar("select count(*) from phones where household_id = $1")
        .bind(seed.household)
        .fetch_one(&app.pool)
        .await
        .expect("phones");
    assert_eq!(left, 1);
    // the only number: said, and no button
    assert!(!page.contains("/phones/unlink?"), "{page}");
    let tg = "%2B992901112233";
    let (resp, page) = get(&app, &format!("{href}/phones/unlink?phone={tg}"), &anzob).await;
    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert!(page.contains("only number"), "{page}");
    assert!(!page.contains("id=\"confirm\""));

    // STOP, then START
    let (resp, page) = get(
        &app,
        &format!("{href}/phones/opt-out?phone={tg}&stop=true"),
        &anzob,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK, "{page}");
    assert!(
        page.contains("Record STOP for +992901112233 (Karimov)?"),
        "{page}"
    );
    let (resp, _) = post(
        &app,
        &format!("{href}/phones/opt-out"),
        &anzob,
        &[
            ("csrf", &token),
            ("phone", common::PHONE_TG),
            ("stop", "true"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stopped: bool = sqlx::query_scalar(
        "select exists(select 1 from sms_optouts where phone = '+992901112233' and opted_out_at is not null)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the number");
    assert!(stopped);
    let (_, page) = get(&app, &href, &anzob).await;
    assert!(page.contains("STOP recorded for +992901112233."), "{page}");
    assert!(page.contains("Opted out (STOP)"));
    assert!(page.contains(&format!("{href}/phones/opt-out?phone={tg}&amp;stop=false")));
    let (resp, _) = post(
        &app,
        &format!("{href}/phones/opt-out"),
        &anzob,
        &[
            ("csrf", &token),
            ("phone", common::PHONE_TG),
            ("stop", "false"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stopped: bool = sqlx::query_scalar(
        "select exists(select 1 from sms_optouts where phone = '+992901112233' and opted_out_at is not null)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the number");
    assert!(!stopped);
    let audit: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'household.opt_out'")
            .fetch_one(&app.pool)
            .await
            .expect("audit");
    assert_eq!(audit, 2);

    // read only for counsellors and officers; another community's household is 404
    for (phone, role, communities, ip) in [
        ("+992900000103", Role::Counsellor, vec![], 3),
        ("+992900000104", Role::Officer, vec![seed.community], 4),
    ] {
        let who = signed_in(&app, phone, role, &communities, ip).await;
        let (_, page) = get(&app, &href, &who).await;
        assert!(!page.contains("id=\"link-phone\""), "{role}");
        assert!(!page.contains("/phones/opt-out?"), "{role}");
        let (resp, _) = get(&app, &format!("{href}/phones/opt-out?phone={tg}"), &who).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{role}");
    }
    let (resp, _) = get(
        &app,
        &format!("/console/households/{sarazm}/phones/unlink?phone=%2B992935550001"),
        &anzob,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Issue 11, point 9: the number abroad is timed in Moscow (its country's zone) until a
/// coordinator names another one on the household's page; a name that is no zone is refused
/// in words; the change is audited; a programme officer sees the zone but no form.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_number_abroad_has_a_time_zone_to_set(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let anzob = signed_in(
        &app,
        "+992900000120",
        Role::Coordinator,
        &[seed.community],
        20,
    )
    .await;
    let page = format!("/console/households/{}", seed.household);
    let (_, body) = get(&app, &page, &anzob).await;
    assert!(
        body.contains("Moscow time (Europe/Moscow, the number&#x27;s country)")
            || body.contains("Moscow time (Europe/Moscow, the number&#39;s country)"),
        "{body}"
    );
    assert!(body.contains("id=\"zone-names\""), "{body}");
    let token = csrf(&app, &anzob).await;
    let action = format!("{page}/timezone");
    // not a zone: refused, nothing recorded
    let (resp, _) = post(
        &app,
        &action,
        &anzob,
        &[
            ("csrf", &token),
            ("phone", ABROAD),
            ("timezone", "Novosibirsk"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, body) = get(&app, &page, &anzob).await;
    assert!(body.contains("Not a time zone"), "{body}");
    // a zone: recorded, shown, audited
    let (resp, _) = post(
        &app,
        &action,
        &anzob,
        &[
            ("csrf", &token),
            ("phone", ABROAD),
            ("timezone", " Asia/Novosibirsk "),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&resp), page);
    let (_, body) = get(&app, &page, &anzob).await;
    assert!(
        body.contains(&format!("{ABROAD} is now timed in Novosibirsk.")),
        "{body}"
    );
    assert!(
        body.contains("Novosibirsk time (Asia/Novosibirsk, set for this number)"),
        "{body}"
    );
    assert!(body.contains("value=\"Asia/Novosibirsk\""), "{body}");
    let stored: Option<String> = sqlx::query_scalar("select timezone from phones where phone = $1")
        .bind(ABROAD)
        .fetch_one(&app.pool)
        .await
        .expect("phone");
    assert_eq!(stored.as_deref(), Some("Asia/Novosibirsk"));
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'household.timezone' and subject_id = $1",
    )
    .bind(seed.household)
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
    // empty: the country's again
    let (resp, _) = post(
        &app,
        &action,
        &anzob,
        &[("csrf", &token), ("phone", ABROAD), ("timezone", "")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let stored: Option<String> = sqlx::query_scalar("select timezone from phones where phone = $1")
        .bind(ABROAD)
        .fetch_one(&app.pool)
        .await
        .expect("phone");
    assert_eq!(stored, None);
    // without the CSRF token: refused
    let (resp, _) = post(
        &app,
        &action,
        &anzob,
        &[("phone", ABROAD), ("timezone", "Asia/Omsk")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // a coordinator of Sarazm only: not found
    let sarazm = signed_in(
        &app,
        "+992900000121",
        Role::Coordinator,
        &[seed.other_community],
        21,
    )
    .await;
    let token = csrf(&app, &sarazm).await;
    let (resp, _) = post(
        &app,
        &action,
        &sarazm,
        &[
            ("csrf", &token),
            ("phone", ABROAD),
            ("timezone", "Asia/Omsk"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // a programme officer reads the zone, with no form
    let officer = signed_in(&app, "+992900000122", Role::Officer, &[seed.community], 22).await;
    let (_, body) = get(&app, &page, &officer).await;
    assert!(body.contains("Moscow time"), "{body}");
    assert!(!body.contains("zone-names"), "{body}");
}
