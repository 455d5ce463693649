//! The phone simulator (`/console/phone`) through the real router, signed in, no browser:
//! it is 404 unless the SMS provider is the console, a POST without its CSRF token is
//! refused before anything is sent, a new number walks through USSD registration and a
//! pledge (the steps reach the real webhook, whose secret the page never carries), a
//! repeated step sends nothing twice, and a text's reply is read from the outbox.

mod common;
mod console_kit;

use axum::http::StatusCode;
use console_kit::{get, get_with, post, sign_in, staff, Answer, Signed};
use hashar::store::staff::Role;
use sqlx::PgPool;

use common::TestApp;

const ADMIN: &str = "+992900000951";
const COORDINATOR: &str = "+992900000952";
const OFFICER: &str = "+992900000953";
/// A number of no household.
const NEW_NUMBER: &str = "+992935550101";

async fn admin(app: &TestApp) -> Signed {
    staff(app, "Admin", ADMIN, Role::Admin, &[]).await;
    sign_in(app, ADMIN, [10, 8, 0, 1]).await
}

/// The value of the hidden `step` field of the handset's form.
fn step_of(page: &str) -> String {
    console_kit::field(page, "step")
}

/// The text between `<pre class="lcd-text" id="screen-text">` and `</pre>`, unescaped
/// enough for the menus' texts.
fn screen(page: &str) -> String {
    page.split("id=\"screen-text\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_else(|| panic!("no screen in {page}"))
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The USSD side of the page, after a POST (which answers 303 back to it).
async fn ussd_page(app: &TestApp, s: &Signed) -> String {
    let page = get(app, "/console/phone?tab=ussd", &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body
}

async fn send(app: &TestApp, s: &Signed, step: &str, reply: &str) -> Answer {
    let answer = post(
        app,
        "/console/phone/ussd",
        &s.cookie,
        &[
            ("csrf", &s.csrf),
            ("step", step),
            ("reply", reply),
            ("send", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    answer
}

/// Sends `reply` as the answer to the screen shown now; the new page.
async fn answer(app: &TestApp, s: &Signed, reply: &str) -> String {
    let before = ussd_page(app, s).await;
    send(app, s, &step_of(&before), reply).await;
    ussd_page(app, s).await
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_simulator_is_404_unless_the_sms_provider_is_the_console(pool: PgPool) {
    let mut config = common::test_config();
    config.sms_provider = hashar::config::SmsProvider::AfricasTalking;
    let app = common::app_with(pool.clone(), config).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;
    let page = get(&app, "/console/phone", &s.cookie).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let home = get(&app, "/console", &s.cookie).await;
    assert!(
        !home.body.contains("href=\"/console/phone\""),
        "no link to it"
    );
    let household = format!("{}.0", seed.household);
    for path in ["/console/phone/ussd", "/console/phone/sms"] {
        let answer = post(
            &app,
            path,
            &s.cookie,
            &[("csrf", &s.csrf), ("pick", "1"), ("household", &household)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_log where action = 'phone.simulate'"
        )
        .await,
        0
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_post_without_its_csrf_token_is_refused_and_sends_nothing(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    common::seed(&app.pool).await;
    let s = admin(&app).await;
    let answer = post(
        &app,
        "/console/phone/ussd",
        &s.cookie,
        &[("pick", "1"), ("number", NEW_NUMBER)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = post(
        &app,
        "/console/phone/ussd",
        &s.cookie,
        &[
            ("csrf", "0".repeat(64).as_str()),
            ("step", "dial"),
            ("send", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&pool, "select count(*) from ussd_sessions").await, 0);
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_log where action = 'phone.simulate'"
        )
        .await,
        0
    );
    // the page itself shows no number yet: "Pick a demo number"
    let page = ussd_page(&app, &s).await;
    assert!(page.contains("id=\"pick-empty\""), "{page}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_new_number_registers_and_pledges_screen_by_screen(pool: PgPool) {
    let mut config = common::test_config();
    let secret = "a-webhook-secret-of-32-characters";
    config.webhook_secret = Some(secret.into());
    let app = common::app_with(pool.clone(), config).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;

    // the aggregator's route refuses a request without the secret…
    let (status, _) = app.hop("direct", NEW_NUMBER, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // …the simulator's steps carry it, and the page never does
    let pick = post(
        &app,
        "/console/phone/ussd",
        &s.cookie,
        &[("csrf", &s.csrf), ("pick", "1"), ("number", NEW_NUMBER)],
    )
    .await;
    assert_eq!(pick.status, StatusCode::SEE_OTHER, "{}", pick.body);
    assert_eq!(pick.location(), "/console/phone?tab=ussd#handset");
    let page = ussd_page(&app, &s).await;
    assert!(page.contains("Now acting as +99293*****01"), "{page}");
    assert!(page.contains("id=\"screen-idle\""), "{page}");
    assert!(!page.contains(secret));
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_log where action = 'phone.simulate'
             and detail -> 'after' ->> 'phone' = '+99293*****01'"
        )
        .await,
        1
    );

    // dial: the language screen, measured as a handset counts it
    send(&app, &s, "dial", "").await;
    let page = ussd_page(&app, &s).await;
    let languages = screen(&page);
    assert!(languages.contains("1 Тоҷикӣ"), "{languages}");
    assert!(page.contains("UCS-2"), "{page}");
    assert!(page.contains(&format!("{} characters", languages.chars().count())));
    assert!(page.contains(&format!("Dialled {}", hashar::console::phone::SERVICE_CODE)));
    assert!(!page.contains(secret));

    // Tajik, the first village (Anzob), yes: registered by USSD
    let villages = screen(&answer(&app, &s, "1").await);
    assert!(villages.contains("1 Анзоб"), "{villages}");
    assert_eq!(
        count(
            &pool,
            "select count(*) from phones where phone = '+992935550101'"
        )
        .await,
        0
    );
    let confirm = screen(&answer(&app, &s, "1").await);
    assert!(confirm.contains("Анзоб"), "{confirm}");
    let page = answer(&app, &s, "1").await;
    assert!(screen(&page).contains("1 Саҳм\n"), "{}", screen(&page));
    let (community, via): (i64, String) = sqlx::query_as(
        "select h.community_id, h.registered_via from phones p join households h on h.id = p.household_id
         where p.phone = '+992935550101'",
    )
    .fetch_one(&pool)
    .await
    .expect("registered");
    assert_eq!((community, via.as_str()), (seed.community, "ussd"));
    assert!(
        page.contains("Household registered in Anzob (by USSD)"),
        "the log reads it back: {page}"
    );

    // pledge 300 to the first project
    let projects = screen(&answer(&app, &s, "1").await);
    assert!(projects.contains("1 Пул"), "{projects}");
    let amount = screen(&answer(&app, &s, "1").await);
    assert!(amount.contains("Пул"), "{amount}");
    let confirm = screen(&answer(&app, &s, "300").await);
    assert!(confirm.contains("300"), "{confirm}");
    let before = ussd_page(&app, &s).await;
    let last_step = step_of(&before);
    send(&app, &s, &last_step, "1").await;
    // the last screen fits one screen (issue 11) and the session ends
    let done = ussd_page(&app, &s).await;
    assert!(
        done.contains("id=\"screen-end\""),
        "the session ended: {done}"
    );
    assert!(!done.contains("Page 2"), "{done}");
    let code: String = sqlx::query_scalar("select code from pledges where phone = '+992935550101'")
        .fetch_one(&pool)
        .await
        .expect("one pledge");
    assert!(screen(&done).contains(&code), "{}", screen(&done));
    assert!(
        done.replace('\u{a0}', " ")
            .contains(&format!("Pledge {code}: 300.00 TJS to Bridge")),
        "{done}"
    );
    let pledges = count(
        &pool,
        "select count(*) from pledges where phone = '+992935550101'",
    )
    .await;

    // the same confirming form again (a double tap, an old tab): nothing is sent
    send(&app, &s, &last_step, "1").await;
    assert_eq!(pledges, 1);
    assert_eq!(
        count(
            &pool,
            "select count(*) from pledges where phone = '+992935550101'"
        )
        .await,
        1
    );
    let again = ussd_page(&app, &s).await;
    assert_eq!(
        again.matches("Pledge ").count(),
        done.matches("Pledge ").count()
    );

    // with htmx, a key answers the handset and the log alone
    let fragment = post_htmx(
        &app,
        &s,
        &[("reply", "12"), ("press", "3"), ("step", "dial")],
    )
    .await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(
        fragment
            .body
            .trim_start()
            .starts_with("<div class=\"sim\" id=\"sim\">"),
        "{}",
        fragment.body
    );
    assert!(!fragment.body.contains("<html"));
    assert!(
        fragment.body.contains("name=\"reply\" value=\"123\""),
        "{}",
        fragment.body
    );
}

async fn post_htmx(app: &TestApp, s: &Signed, fields: &[(&str, &str)]) -> Answer {
    let mut all: Vec<(&str, &str)> = fields.to_vec();
    all.push(("csrf", &s.csrf));
    let body = common::form(&all);
    let req = axum::http::Request::post("/console/phone/ussd")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &s.cookie)
        .header("sec-fetch-site", "same-origin")
        .header("hx-request", "true")
        .body(axum::body::Body::from(body))
        .expect("request");
    let mut req = req;
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .expect("an answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_text_from_a_household_gets_its_reply_from_the_outbox(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let seed = common::seed(&app.pool).await;
    staff(
        &app,
        "Anzob",
        COORDINATOR,
        Role::Coordinator,
        &[seed.community],
    )
    .await;
    let s = sign_in(&app, COORDINATOR, [10, 8, 0, 2]).await;
    let household = format!("{}.0", seed.household);
    let pick = post(
        &app,
        "/console/phone/sms",
        &s.cookie,
        &[("csrf", &s.csrf), ("pick", "1"), ("household", &household)],
    )
    .await;
    assert_eq!(pick.location(), "/console/phone?tab=sms#handset");
    let page = get(&app, "/console/phone?tab=sms", &s.cookie).await;
    assert!(page.body.contains("id=\"thread-empty\""), "{}", page.body);
    let key = step_of(&page.body);
    for _ in 0..2 {
        // the second is a double submit of the same form: the same message, handled once
        let answer = post(
            &app,
            "/console/phone/sms",
            &s.cookie,
            &[
                ("csrf", &s.csrf),
                ("step", &key),
                ("reply", "TOTAL"),
                ("send", "1"),
            ],
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    }
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where sender_e164 = '+992901112233' and kind = 'sms'"
        )
        .await,
        1
    );
    let (body, kind): (String, String) = sqlx::query_as(
        "select body, kind from outbox where phone = '+992901112233' order by id desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("a reply queued");
    assert_eq!(kind, "reply");
    let page = get(&app, "/console/phone?tab=sms", &s.cookie).await;
    let first_line = body.lines().next().expect("a line");
    assert!(
        page.body.contains(first_line),
        "{first_line:?} in {}",
        page.body
    );
    assert!(page.body.contains("TOTAL"), "the text sent shows too");
    assert!(page.body.contains("SMS queued · reply"), "{}", page.body);
    assert_eq!(
        page.body.matches("Texted: TOTAL").count(),
        1,
        "one step logged"
    );
    // the text, then its reply
    let (text_at, reply_at) = (
        page.body
            .find("<span class=\"text\">TOTAL")
            .expect("the text"),
        page.body.find(first_line).expect("the reply"),
    );
    assert!(text_at < reply_at);

    // another community's household's number cannot be taken up, typed or from the list
    let b =
        common::add_household(&app.pool, seed.other_community, Some("tg"), "+992931119999").await;
    let refused = post(
        &app,
        "/console/phone/sms",
        &s.cookie,
        &[
            ("csrf", &s.csrf),
            ("pick", "1"),
            ("number", "+992931119999"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    let page = get(&app, "/console/phone?tab=sms", &s.cookie).await;
    assert!(
        page.body.contains("This number cannot be used here"),
        "{}",
        page.body
    );
    let listed = post(
        &app,
        "/console/phone/sms",
        &s.cookie,
        &[
            ("csrf", &s.csrf),
            ("pick", "1"),
            ("household", &format!("{b}.0")),
        ],
    )
    .await;
    assert_eq!(listed.status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_programme_officer_has_no_simulator(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let seed = common::seed(&app.pool).await;
    staff(&app, "Officer", OFFICER, Role::Officer, &[seed.community]).await;
    let s = sign_in(&app, OFFICER, [10, 8, 0, 3]).await;
    let home = get_with(&app, "/console", &s.cookie, &[]).await;
    assert!(!home.body.contains("href=\"/console/phone\""));
    assert_eq!(
        get(&app, "/console/phone", &s.cookie).await.status,
        StatusCode::NOT_FOUND
    );
}

/// A number is checked before every step, not only when it is taken up: once it belongs to
/// a household of another community, the coordinator's next step is refused and reaches no
/// webhook, and its texts are no longer shown.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_number_moved_out_of_scope_is_refused_at_the_next_step(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let seed = common::seed(&app.pool).await;
    staff(
        &app,
        "Coordinator",
        COORDINATOR,
        Role::Coordinator,
        &[seed.community],
    )
    .await;
    let s = sign_in(&app, COORDINATOR, [10, 8, 0, 7]).await;
    let pick = post(
        &app,
        "/console/phone/sms",
        &s.cookie,
        &[("csrf", &s.csrf), ("pick", "1"), ("number", NEW_NUMBER)],
    )
    .await;
    assert_eq!(pick.status, StatusCode::SEE_OTHER, "{}", pick.body);
    // the number joins a household of the other community meanwhile
    sqlx::query(
        "with h as (insert into households (community_id, language) values ($1, 'en') returning id)
         insert into phones (phone, household_id) select $2, id from h",
    )
    .bind(seed.other_community)
    .bind(NEW_NUMBER)
    .execute(&pool)
    .await
    .expect("moved");
    let inbound = "select count(*) from inbound_messages";
    let before = count(&pool, inbound).await;
    let page = get(&app, "/console/phone?tab=sms", &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let key = console_kit::field(&page.body, "step");
    let sent = post(
        &app,
        "/console/phone/sms",
        &s.cookie,
        &[
            ("csrf", &s.csrf),
            ("step", &key),
            ("reply", "HELP"),
            ("send", "1"),
        ],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert_eq!(
        count(&pool, inbound).await,
        before,
        "no text reached the webhook"
    );
    let page = get(&app, "/console/phone?tab=sms", &s.cookie).await;
    assert!(
        page.body.contains("This number cannot be used here"),
        "{}",
        page.body
    );
}
