//! The console's overview (`GET /console`) through the real router over a real database:
//! the figures per project, community and scope (from `project_totals`), pledges per week
//! in the programme's time zone, households by channel and this week's messages; scope by
//! role (a coordinator never sees another community's project, a counsellor sees no
//! money); the empty state; and a database error that gives a retry page, not part of the
//! totals.

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

async fn get(app: &TestApp, uri: &str, cookie: &str) -> (Response, String) {
    let req = Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

/// A member of staff with `role`, `communities` (by id) and a password; signs in (from
/// its own address, so that the throttle never counts) and returns the session cookie.
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
        .insert(ConnectInfo(SocketAddr::from(([10, 0, 0, ip], 40000))));
    let (resp, body) = send(app, req).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{body}");
    cookie_of(&resp, "__Host-hashar").expect("a session cookie")
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.expect(sql);
}

async fn pledge(
    pool: &PgPool,
    project: i64,
    phone: &str,
    amount: &str,
    key: &str,
    at: &str,
) -> i64 {
    sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
         select $1, household_id, $2, $3::numeric, 'TJS', 'ussd', $4, $5::timestamptz
           from phones where phone = $2
         returning id",
    )
    .bind(project)
    .bind(phone)
    .bind(amount)
    .bind(key)
    .bind(at)
    .fetch_one(pool)
    .await
    .expect("a pledge")
}

async fn message(pool: &PgPool, phone: &str, status: &str, sent_at: &str) {
    sqlx::query(
        "insert into outbox (phone, body, encoding, segments, provider, status, next_attempt_at,
                             created_at, sent_at, delivered_at, updated_at)
         values ($1, 'x', 'gsm7', 1, 'console', $2, $3::timestamptz, $3::timestamptz, $3::timestamptz,
                 case when $2 = 'delivered' then $3::timestamptz end, $3::timestamptz)",
    )
    .bind(phone)
    .bind(status)
    .bind(sent_at)
    .execute(pool)
    .await
    .expect("a message");
}

/// The seed's programme with money and messages. Anzob: Bridge (target 10,000, ratio 1)
/// pledged 3,000 this week and 2,000 last week, 1,500 received; School roof (20,000, ratio
/// 2, cap 3,000) 2,000 received; Old (closed, 5,000). Sarazm: Water (8,000, ratio 1)
/// pledged 700 on Monday 01:00 in Dushanbe (Sunday in UTC), 400 received. A cancelled
/// pledge counts nowhere. The clock: Saturday 28 Nov 2026 09:00 UTC (14:00 in Dushanbe).
async fn programme(app: &TestApp) -> (Seed, i64) {
    let pool = &app.pool;
    let seed = common::seed(pool).await;
    common::add_household(pool, seed.other_community, Some("tg"), SARAZM_PHONE).await;
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(pool)
        .await
        .expect("water");
    pledge(
        pool,
        seed.bridge,
        common::PHONE_TG,
        "3000",
        "a",
        "2026-11-26 10:00Z",
    )
    .await;
    pledge(
        pool,
        seed.bridge,
        common::PHONE_RU,
        "2000",
        "b",
        "2026-11-17 10:00Z",
    )
    .await;
    pledge(pool, water, SARAZM_PHONE, "700", "c", "2026-11-22 20:00Z").await;
    let cancelled = pledge(
        pool,
        seed.bridge,
        common::PHONE_EN,
        "999",
        "d",
        "2026-11-25 10:00Z",
    )
    .await;
    exec(
        pool,
        &format!("insert into pledge_cancellations (pledge_id, reason, cancelled_by) values ({cancelled}, 'test', 'test')"),
    )
    .await;
    common::receive(pool, seed.bridge, "1500").await;
    common::receive(pool, seed.roof, "2000").await;
    common::receive(pool, water, "400").await;
    // this week: two to Anzob (one delivered), one to Sarazm (delivered); one last week
    message(pool, common::PHONE_TG, "delivered", "2026-11-27 10:00Z").await;
    message(pool, common::PHONE_RU, "sent", "2026-11-24 10:00Z").await;
    message(pool, SARAZM_PHONE, "delivered", "2026-11-26 10:00Z").await;
    message(pool, common::PHONE_TG, "delivered", "2026-11-20 10:00Z").await;
    (seed, water)
}

const NBSP: &str = "\u{a0}";

fn tjs(amount: &str) -> String {
    format!("{amount}{NBSP}TJS")
}

/// The text of the element with `id` (up to its first tag's end).
fn by_id<'a>(body: &'a str, id: &str) -> &'a str {
    body.split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .map(|(_, rest)| rest.split('<').next().unwrap_or(""))
        .unwrap_or_else(|| panic!("no #{id} in {body}"))
}

/// The chart's `aria-label`.
fn chart_label(body: &str) -> &str {
    body.split("<svg class=\"chart\" role=\"img\" aria-label=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the chart")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_admin_sees_every_project_and_the_programme_totals(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let cookie = signed_in(&app, "+992900000701", Role::Admin, &[], 1).await;
    let (resp, body) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    // each project's name links to its page
    let bridge_link = format!("<a href=\"/console/projects/{}\">Bridge</a>", seed.bridge);
    assert!(body.contains(&bridge_link), "{body}");
    for name in ["Bridge", "School roof", "Old", "Water", "Anzob", "Sarazm"] {
        assert!(body.contains(name), "{name}");
    }
    // Bridge: target, pledged (the cancelled pledge not counted), received, matched,
    // matched total, percent
    let bridge = body
        .split("\">Bridge</a></th>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("Bridge's row");
    for figure in [
        tjs("10,000.00"),
        tjs("5,000.00"),
        tjs("1,500.00"),
        tjs("3,000.00"),
        "30.0%".to_owned(),
    ] {
        assert!(bridge.contains(&figure), "{figure} in {bridge}");
    }
    // School roof: matched at the cap
    let roof = body
        .split("\">School roof</a></th>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .expect("the roof's row");
    assert!(
        roof.contains(&tjs("5,000.00")) && roof.contains("25.0%"),
        "{roof}"
    );
    // the programme: 3,900 received + 4,900 matched of 43,000
    let total = body
        .split("<tfoot>")
        .nth(1)
        .and_then(|rest| rest.split("</tfoot>").next())
        .expect("the totals row");
    for figure in [
        tjs("43,000.00"),
        tjs("5,700.00"),
        tjs("3,900.00"),
        tjs("4,900.00"),
        tjs("8,800.00"),
        "20.5%".to_owned(),
    ] {
        assert!(total.contains(&figure), "{figure} in {total}");
    }
    assert!(body.contains(&format!(
        "<span class=\"ov-amount\">{}</span> <span class=\"ov-percent\">20.5%</span>",
        tjs("8,800.00")
    )));
    assert!(body.contains(&format!("Target: {}", tjs("43,000.00"))));
    // a community's card: its matched total of its target
    assert!(body.contains(&format!("{} of {}", tjs("8,000.00"), tjs("35,000.00"))));
    // pledges per week, in Dushanbe's weeks: the Sarazm pledge (Sunday in UTC) is this week's
    assert_eq!(
        chart_label(&body),
        "Pledges per week from the week of 7 Sep 2026 to the week of 23 Nov 2026: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2"
    );
    assert!(body.contains(&format!(
        "<title>Week of 23 Nov 2026: 2 pledges, {}</title>",
        tjs("3,700.00")
    )));
    // the health strip: five households; three messages this week, two delivered
    assert_eq!(by_id(&body, "households"), "5 households registered");
    assert_eq!(by_id(&body, "messages"), "3 messages sent this week");
    assert_eq!(by_id(&body, "delivered"), "66.7% delivered");
    assert_eq!(by_id(&body, "as-of"), "As of 14:00, 28 Nov 2026");
    // bars are SVG with their figures for screen readers
    assert!(body.contains("<svg class=\"progress\" role=\"img\" aria-label=\"Bridge: "));
    assert!(body.contains("<title>Matched by the donor: 3,000.00"));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_coordinator_sees_their_community_only(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let cookie = signed_in(
        &app,
        "+992900000702",
        Role::Coordinator,
        &[seed.community],
        2,
    )
    .await;
    let (resp, body) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(body.contains("Bridge") && body.contains("School roof"));
    assert!(!body.contains("Water"), "another community's project");
    assert!(!body.contains("Sarazm"), "another community");
    // Anzob: 3,500 received + 4,500 matched = 8,000 of 35,000
    let total = body
        .split("<tfoot>")
        .nth(1)
        .and_then(|rest| rest.split("</tfoot>").next())
        .expect("the totals row");
    assert!(
        total.contains(&tjs("8,000.00")) && total.contains("22.9%"),
        "{total}"
    );
    assert!(!body.contains(&tjs("8,800.00")));
    assert!(chart_label(&body).ends_with(": 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1"));
    assert_eq!(by_id(&body, "households"), "4 households registered");
    assert_eq!(by_id(&body, "messages"), "2 messages sent this week");
    assert_eq!(by_id(&body, "delivered"), "50.0% delivered");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_officer_reads_their_communities_figures(pool: PgPool) {
    let app = common::app(pool).await;
    let (seed, _) = programme(&app).await;
    let cookie = signed_in(
        &app,
        "+992900000703",
        Role::Officer,
        &[seed.other_community],
        3,
    )
    .await;
    let (resp, body) = get(&app, "/console?lang=ru", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(body.contains("Вода") && !body.contains("Мост"), "{body}");
    // Russian separators: 400 + 400 of 8 000
    assert!(body.contains(&format!(
        "{} из {}",
        tjs("800,00"),
        tjs(&format!("8{NBSP}000,00"))
    )));
    assert!(body.contains(&format!("10,0{NBSP}%")));
    assert_eq!(by_id(&body, "households"), "1 семья зарегистрирована");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_counsellor_sees_households_and_messages_but_no_money(pool: PgPool) {
    let app = common::app(pool).await;
    programme(&app).await;
    let cookie = signed_in(&app, "+992900000704", Role::Counsellor, &[], 4).await;
    let (resp, body) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(!body.contains("TJS"), "money for a counsellor: {body}");
    assert!(!body.contains("overview-table") && !body.contains("class=\"chart\""));
    assert!(!body.contains("Bridge"));
    assert_eq!(by_id(&body, "households"), "5 households registered");
    assert_eq!(by_id(&body, "messages"), "3 messages sent this week");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn without_projects_the_page_says_so(pool: PgPool) {
    let app = common::app(pool).await;
    let cookie = signed_in(&app, "+992900000705", Role::Admin, &[], 5).await;
    let (resp, body) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert!(body.contains("No projects yet"), "{body}");
    assert!(!body.contains("overview-table"));
    assert_eq!(by_id(&body, "messages"), "0 messages sent this week");
    assert!(
        !body.contains("id=\"delivered\""),
        "no rate without messages"
    );
    // a coordinator of no community sees the same, in their own words
    let cookie = signed_in(&app, "+992900000706", Role::Coordinator, &[], 6).await;
    let (_, body) = get(&app, "/console?lang=tg", &cookie).await;
    assert!(body.contains("Ҳоло лоиҳа нест"), "{body}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_database_error_gives_a_retry_page_and_no_figures(pool: PgPool) {
    let app = common::app(pool).await;
    programme(&app).await;
    let cookie = signed_in(&app, "+992900000707", Role::Admin, &[], 7).await;
    // the totals view goes away under the running server
    exec(
        &app.pool,
        "alter view project_totals rename to project_totals_gone",
    )
    .await;
    let (resp, body) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("The overview could not be loaded"), "{body}");
    assert!(body.contains("<a class=\"button\" href=\"/console\">Try again</a>"));
    assert!(!body.contains("TJS") && !body.contains("households registered"));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_overview_needs_a_session(pool: PgPool) {
    let app = common::app(pool).await;
    let (resp, _) = get(&app, "/console", "").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/console/login")
    );
}

/// The chart's weeks, read from the trigger-kept week and hour sums, are exactly a direct
/// sum over `pledges` (not cancelled) for the programme's weeks in several time zones:
/// UTC+5 (Dushanbe), UTC, New York with its clock changes, UTC+14 and UTC−11; for the whole
/// programme and one community's scope; with pledges on and around the weeks' bounds, in
/// two currencies, some cancelled.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pledges_per_week_equal_a_direct_sum_in_every_time_zone(pool: PgPool) {
    use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
    let seed = common::seed(&pool).await;
    let usd: i64 = sqlx::query_scalar(
        "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, currency)
         values ($1, 'USD1', 'business', 'a', 'b', 'c', 1000, 1, 'USD') returning id",
    )
    .bind(seed.community)
    .fetch_one(&pool)
    .await
    .expect("a USD project");
    // 600 pledges from 2026-08-01 over about 16 weeks, every 4 h 37 min (so they meet every
    // hour of the week), plus one at each whole hour around each Sunday evening and Monday
    let start = Utc
        .with_ymd_and_hms(2026, 8, 1, 0, 7, 0)
        .single()
        .expect("a time");
    let mut times: Vec<chrono::DateTime<Utc>> = (0..600)
        .map(|i| start + Duration::minutes(277 * i))
        .collect();
    let mut day = NaiveDate::from_ymd_opt(2026, 8, 2).expect("a Sunday");
    while day < NaiveDate::from_ymd_opt(2026, 11, 30).expect("a day") {
        for h in [-12i64, -11, -6, -5, -4, -1, 0, 4, 5, 10, 11] {
            let midnight = Utc.from_utc_datetime(
                &(day + Duration::days(1))
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight"),
            );
            times.push(midnight + Duration::hours(h));
            times.push(midnight + Duration::hours(h) - Duration::seconds(1));
        }
        day += Duration::weeks(1);
    }
    for (n, at) in times.iter().enumerate() {
        let (project, currency) = match n % 3 {
            0 => (seed.bridge, "TJS"),
            1 => (seed.roof, "TJS"),
            _ => (usd, "USD"),
        };
        sqlx::query(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
             values ($1, $2, $3, $4, $5, 'ussd', $6, $7)",
        )
        .bind(project)
        .bind(seed.household)
        .bind(common::PHONE_TG)
        .bind(rust_decimal::Decimal::new(1000 + (n as i64 * 7919) % 50_000, 2))
        .bind(currency)
        .bind(format!("w{n}"))
        .bind(at)
        .execute(&pool)
        .await
        .expect("a pledge");
    }
    exec(
        &pool,
        "insert into pledge_cancellations (pledge_id, reason, cancelled_by)
         select id, 'test', 't' from pledges where id % 11 = 0",
    )
    .await;
    for zone in [
        "Asia/Dushanbe",
        "UTC",
        "America/New_York",
        "Pacific/Kiritimati",
        "Pacific/Pago_Pago",
    ] {
        let tz: chrono_tz::Tz = zone.parse().expect("a zone");
        // 12 weeks of Mondays, local midnight as instants, ending after 30 Nov 2026
        let first = NaiveDate::from_ymd_opt(2026, 9, 7).expect("a Monday");
        assert_eq!(first.weekday(), chrono::Weekday::Mon);
        let bounds: Vec<chrono::DateTime<Utc>> = (0..=12)
            .map(|i| {
                let day = first + Duration::weeks(i);
                tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"))
                    .earliest()
                    .expect("a local midnight")
                    .with_timezone(&Utc)
            })
            .collect();
        for scope in [
            None,
            Some(vec![seed.community]),
            Some(vec![seed.other_community]),
        ] {
            let kept = hashar::store::overview::pledges_by_week(&pool, scope.as_deref(), &bounds)
                .await
                .expect("the chart's rows");
            let kept: Vec<(i64, String, i64, rust_decimal::Decimal)> = kept
                .into_iter()
                .map(|w| (w.week as i64, w.currency, w.pledges, w.amount))
                .collect();
            let direct: Vec<(i64, String, i64, rust_decimal::Decimal)> = sqlx::query_as(
                "select (width_bucket(pl.created_at, $1) - 1)::bigint, pl.currency, count(*), sum(pl.amount)
                   from pledges pl join projects p on p.id = pl.project_id
                  where pl.status <> 'cancelled' and width_bucket(pl.created_at, $1) between 1 and 12
                    and ($2::bigint[] is null or p.community_id = any($2))
                  group by 1, 2 order by 1, 2",
            )
            .bind(&bounds)
            .bind(scope.as_deref())
            .fetch_all(&pool)
            .await
            .expect("a direct sum");
            assert_eq!(kept, direct, "{zone}, scope {scope:?}");
            if scope.is_none() {
                assert!(direct.len() >= 24, "{zone}: {direct:?}");
            }
        }
    }
}
