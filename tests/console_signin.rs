//! Console sign-in through the real router (no browser) over a real database: wrong
//! passwords and unknown phones, the lock after five, the per-address throttle, the session
//! cookie, sign-out here and everywhere, the CSRF check of signed-in forms, and a disabled
//! person or an old session signed out at their next request.

mod common;

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Request, StatusCode},
    response::Response,
};
use common::TestApp;
use hashar::{
    console::pages::{nav_for, BUILT},
    domain::Phone,
    store::staff::Role,
};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

const PHONE: &str = "+992900000777";
const PASSWORD: &str = "correct horse battery";

async fn send(app: &TestApp, req: Request<Body>) -> (Response, String) {
    let resp = app.router.clone().oneshot(req).await.expect("an answer");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        Response::from_parts(parts, Body::empty()),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn header_of<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `Set-Cookie` for `name`, if any.
fn set_cookie(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn csrf_field(body: &str) -> String {
    body.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned()
}

async fn get(app: &TestApp, uri: &str, cookie: &str) -> (Response, String) {
    let req = Request::get(uri)
        .header("cookie", cookie)
        .body(Body::empty())
        .expect("request");
    send(app, req).await
}

async fn post(
    app: &TestApp,
    uri: &str,
    cookie: &str,
    ip: [u8; 4],
    body: String,
) -> (Response, String) {
    let mut req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(body))
        .expect("request");
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    send(app, req).await
}

/// A person with a console password, and the app.
async fn setup(pool: PgPool, role: Role) -> TestApp {
    let app = common::app(pool).await;
    let phone = Phone::parse(PHONE).expect("a phone");
    let mut conn = app.pool.acquire().await.expect("a connection");
    hashar::store::staff::upsert_coordinator(&mut conn, "Nodira Karimova", &phone, Some(role))
        .await
        .expect("a member of staff");
    hashar::console::auth::set_password(&app.pool, &phone, PASSWORD)
        .await
        .expect("a password");
    app
}

/// One sign-in try from `ip` with the pre-session token; the answer and its body.
async fn try_sign_in(
    app: &TestApp,
    ip: [u8; 4],
    phone: &str,
    password: &str,
) -> (Response, String) {
    let (resp, body) = get(app, "/console/login?lang=en", "").await;
    let cookie = set_cookie(&resp, "__Host-hashar-csrf").expect("a pre-session cookie");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let form = common::form(&[
        ("csrf", &csrf_field(&body)),
        ("phone", phone),
        ("password", password),
    ]);
    post(
        app,
        "/console/login",
        &format!("{cookie}; hashar-lang=en"),
        ip,
        form,
    )
    .await
}

/// Signs in; returns the session cookie (`name=value`).
async fn sign_in(app: &TestApp, ip: [u8; 4]) -> String {
    let (resp, body) = try_sign_in(app, ip, PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{body}");
    assert_eq!(header_of(&resp, "location"), "/console");
    let cookie = set_cookie(&resp, "__Host-hashar").expect("a session cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

fn error_of(body: &str) -> &str {
    body.split("id=\"login-error\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or("")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_wrong_password_and_an_unknown_phone_get_the_same_answer(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let (wrong, wrong_body) = try_sign_in(&app, [10, 0, 0, 1], PHONE, "not the password").await;
    let (unknown, unknown_body) = try_sign_in(&app, [10, 0, 0, 2], "+992900000999", PASSWORD).await;
    let (bad, bad_body) = try_sign_in(&app, [10, 0, 0, 3], "not a phone", PASSWORD).await;
    for (resp, body) in [
        (&wrong, &wrong_body),
        (&unknown, &unknown_body),
        (&bad, &bad_body),
    ] {
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(error_of(body), "Wrong phone number or password.", "{body}");
        assert_eq!(set_cookie(resp, "__Host-hashar"), None);
    }
    // the failure is counted for the known phone only
    let failures: i32 =
        sqlx::query_scalar("select password_failures from coordinators where phone = $1")
            .bind(PHONE)
            .fetch_one(&app.pool)
            .await
            .expect("the count");
    assert_eq!(failures, 1);
    // a right password starts the count again
    sign_in(&app, [10, 0, 0, 1]).await;
    let failures: i32 =
        sqlx::query_scalar("select password_failures from coordinators where phone = $1")
            .bind(PHONE)
            .fetch_one(&app.pool)
            .await
            .expect("the count");
    assert_eq!(failures, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn five_wrong_passwords_lock_the_account_for_fifteen_minutes(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    for _ in 0..4 {
        let (resp, body) = try_sign_in(&app, [10, 0, 1, 1], PHONE, "wrong password").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_of(&body), "Wrong phone number or password.");
    }
    // the fifth locks until 09:15 UTC, told in HASHAR_TIMEZONE (Dushanbe: 14:15)
    let (resp, body) = try_sign_in(&app, [10, 0, 1, 1], PHONE, "wrong password").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_of(&body),
        "Too many wrong passwords. Try again at 14:15."
    );
    // the right password does not open it while locked
    let (resp, body) = try_sign_in(&app, [10, 0, 1, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        error_of(&body),
        "Too many wrong passwords. Try again at 14:15."
    );
    // fifteen minutes later it does
    app.clock
        .advance(chrono::Duration::minutes(15) + chrono::Duration::seconds(1));
    sign_in(&app, [10, 0, 1, 2]).await;
    // the audit log has the lock (by the system) and then the one sign-in, nothing for the
    // refused tries
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select actor, action from audit_log where subject_kind = 'staff' order by id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("audit");
    let staff: i64 = sqlx::query_scalar("select id from coordinators where phone = $1")
        .bind(PHONE)
        .fetch_one(&app.pool)
        .await
        .expect("staff");
    assert_eq!(
        rows,
        vec![
            ("system".to_owned(), "staff.lock".to_owned()),
            (format!("coordinator:{staff}"), "staff.sign_in".to_owned()),
        ]
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn one_address_gets_ten_tries_a_minute(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    for _ in 0..10 {
        let (resp, _) = try_sign_in(&app, [10, 0, 2, 1], "+992900000999", "x").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let (resp, body) = try_sign_in(&app, [10, 0, 2, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        error_of(&body),
        "Too many tries from this device. Wait a minute and try again."
    );
    assert_eq!(set_cookie(&resp, "__Host-hashar"), None);
    // another address is not held back
    sign_in(&app, [10, 0, 2, 2]).await;
    // the server's clock counts the minute (not the machine's speed): 6 s later, one more try
    app.clock.advance(chrono::Duration::seconds(5));
    let (resp, _) = try_sign_in(&app, [10, 0, 2, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(chrono::Duration::seconds(1));
    let (resp, body) = try_sign_in(&app, [10, 0, 2, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{body}");
    let (resp, _) = try_sign_in(&app, [10, 0, 2, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn signing_in_sets_the_session_cookie_and_shows_the_first_page(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let (resp, body) = try_sign_in(&app, [10, 0, 3, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{body}");
    assert_eq!(header_of(&resp, "location"), "/console");
    let cookie = set_cookie(&resp, "__Host-hashar").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    // the pre-session token is cleared
    let cleared = set_cookie(&resp, "__Host-hashar-csrf").expect("cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let cookie = cookie.split(';').next().expect("name=value").to_owned();
    let (resp, body) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "{body}");
    assert_eq!(header_of(&resp, "cache-control"), "no-store");
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    assert!(
        body.contains("Signed in as Nodira Karimova (coordinator)."),
        "{body}"
    );
    // a coordinator's navigation: the pages built so far that a coordinator may use
    // (money; never people & access), and no link to a page not built yet
    assert!(body.contains("href=\"/console\""), "{body}");
    for (href, _) in nav_for(Role::Coordinator) {
        assert_eq!(
            body.contains(&format!("href=\"{href}\"")),
            BUILT.contains(&href),
            "{href}: {body}"
        );
    }
    let plan: Vec<&str> = nav_for(Role::Coordinator).iter().map(|(h, _)| *h).collect();
    assert!(plan.contains(&"/console/money"), "{plan:?}");
    assert!(!plan.contains(&"/console/people"), "{plan:?}");
    assert!(body.contains("href=\"/console/money\""), "built: {body}");
    // the session's language follows ?lang=
    let (_, body) = get(&app, "/console?lang=ru", &cookie).await;
    assert!(
        body.contains("Вы вошли как Nodira Karimova (координатор)."),
        "{body}"
    );
    let (_, body) = get(&app, "/console", &cookie).await;
    assert!(body.contains("<html lang=\"ru\">"), "{body}");
    // a second sign-in gets another session id
    let other = sign_in(&app, [10, 0, 3, 2]).await;
    assert_ne!(other, cookie);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_admin_sees_people_and_access(pool: PgPool) {
    let app = setup(pool, Role::Admin).await;
    let cookie = sign_in(&app, [10, 0, 4, 1]).await;
    let (_, body) = get(&app, "/console", &cookie).await;
    assert!(body.contains("(administrator)"), "{body}");
    // people & access is in an admin's plan, linked once the page is built
    let plan: Vec<&str> = nav_for(Role::Admin).iter().map(|(h, _)| *h).collect();
    assert!(plan.contains(&"/console/people"), "{plan:?}");
    assert_eq!(
        body.contains("href=\"/console/people\""),
        BUILT.contains(&"/console/people"),
        "{body}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn signing_out_ends_the_session(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let cookie = sign_in(&app, [10, 0, 5, 1]).await;
    let (_, body) = get(&app, "/console", &cookie).await;
    let token = csrf_field(&body);
    let (resp, _) = post(
        &app,
        "/console/logout",
        &cookie,
        [10, 0, 5, 1],
        common::form(&[("csrf", &token)]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&resp, "location"), "/console/login");
    let (resp, _) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&resp, "location"), "/console/login");
    let left: i64 = sqlx::query_scalar("select count(*) from tower_sessions.session")
        .fetch_one(&app.pool)
        .await
        .expect("a count");
    assert_eq!(left, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn signing_out_everywhere_ends_every_session(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let phone_session = sign_in(&app, [10, 0, 6, 1]).await;
    let desk_session = sign_in(&app, [10, 0, 6, 2]).await;
    let (_, body) = get(&app, "/console", &desk_session).await;
    let token = csrf_field(&body);
    let (resp, _) = post(
        &app,
        "/console/logout/everywhere",
        &desk_session,
        [10, 0, 6, 2],
        common::form(&[("csrf", &token)]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for cookie in [&phone_session, &desk_session] {
        let (resp, _) = get(&app, "/console", cookie).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_eq!(header_of(&resp, "location"), "/console/login");
    }
    // a new sign-in works
    let again = sign_in(&app, [10, 0, 6, 3]).await;
    let (resp, _) = get(&app, "/console", &again).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_signed_in_form_needs_the_sessions_token(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let cookie = sign_in(&app, [10, 0, 7, 1]).await;
    let (_, body) = get(&app, "/console", &cookie).await;
    let token = csrf_field(&body);
    // no token, another token, a cross-site request
    for (form, site) in [
        (String::new(), "same-origin"),
        (
            common::form(&[("csrf", "A".repeat(43).as_str())]),
            "same-origin",
        ),
        (common::form(&[("csrf", &token)]), "cross-site"),
    ] {
        let mut req = Request::post("/console/logout")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .header("sec-fetch-site", site)
            .body(Body::from(form))
            .expect("request");
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 0, 7, 1], 1))));
        let (resp, _) = send(&app, req).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    // still signed in
    let (resp, _) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_disabled_person_is_signed_out_and_cannot_sign_in(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let cookie = sign_in(&app, [10, 0, 8, 1]).await;
    sqlx::query("update coordinators set disabled_at = now() where phone = $1")
        .bind(PHONE)
        .execute(&app.pool)
        .await
        .expect("disabled");
    let (resp, _) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header_of(&resp, "location"), "/console/login");
    let (resp, body) = try_sign_in(&app, [10, 0, 8, 1], PHONE, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&body), "Wrong phone number or password.");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_session_ends_twelve_hours_after_sign_in(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let cookie = sign_in(&app, [10, 0, 9, 1]).await;
    app.clock.advance(chrono::Duration::hours(11));
    let (resp, _) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.clock
        .advance(chrono::Duration::hours(1) + chrono::Duration::seconds(1));
    let (resp, _) = get(&app, "/console", &cookie).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_password_needs_ten_characters_and_someone_to_belong_to(pool: PgPool) {
    let app = setup(pool, Role::Coordinator).await;
    let phone = Phone::parse(PHONE).expect("a phone");
    let short = hashar::console::auth::set_password(&app.pool, &phone, "123456789").await;
    assert!(matches!(
        short,
        Err(hashar::console::auth::PasswordError::TooShort)
    ));
    let nobody = Phone::parse("+992900000998").expect("a phone");
    let missing = hashar::console::auth::set_password(&app.pool, &nobody, "long enough!").await;
    assert!(matches!(
        missing,
        Err(hashar::console::auth::PasswordError::NoSuchPerson)
    ));
    let hash: String =
        sqlx::query_scalar("select password_hash from coordinators where phone = $1")
            .bind(PHONE)
            .fetch_one(&app.pool)
            .await
            .expect("a hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
}

/// `hashar coordinator set-password` reads the password from standard input (never from the
/// command line), refuses a short one, and prints no full phone number.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_cli_sets_a_password_read_from_stdin(pool: PgPool) {
    use std::{
        io::Write,
        process::{Command, Stdio},
    };
    let app = setup(pool, Role::Coordinator).await;
    let db = app
        .pool
        .connect_options()
        .get_database()
        .expect("the test database has a name")
        .to_owned();
    let run = |password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hashar"))
            .args(["coordinator", "set-password", "--phone", PHONE])
            .env(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:5432/{db}"),
            )
            .env(
                "HASHAR_MENUS_DIR",
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus"),
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hashar");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("the password written");
        child.wait_with_output().expect("hashar ends")
    };
    let short = run("too short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10 characters"));
    let done = run("a new password, long enough");
    assert!(done.status.success(), "{done:?}");
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(out.contains("console password set"), "{out}");
    assert!(!out.contains(PHONE), "{out}");
    let (resp, _) = try_sign_in(&app, [10, 0, 10, 1], PHONE, "a new password, long enough").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}
