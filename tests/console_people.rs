//! People & access (`/console/people`, issue 10 page 7) through the real router and a real
//! database: adding a person with a one-time set-password link (shown once, works once,
//! expires after 24 hours), role and communities, the last admin, API tokens against
//! `/api/v1` until revoked, disabling, 404 for every role but admin, the audit log, and
//! the CSRF check on every POST.

mod common;
mod console_kit;

use axum::http::{header, StatusCode};
use console_kit::{field, get, post, sign_in, staff, Answer, Signed, PASSWORD};
use hashar::store::staff::Role;

const ADMIN: &str = "+992900000701";
const COORD: &str = "+992900000702";

async fn admin(app: &common::TestApp) -> Signed {
    staff(app, "Admin One", ADMIN, Role::Admin, &[]).await;
    sign_in(app, ADMIN, [10, 7, 0, 1]).await
}

async fn id_of(app: &common::TestApp, phone: &str) -> i64 {
    sqlx::query_scalar("select id from coordinators where phone = $1")
        .bind(phone)
        .fetch_one(&app.pool)
        .await
        .expect("a person")
}

async fn role_of(app: &common::TestApp, id: i64) -> String {
    sqlx::query_scalar("select role from coordinators where id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("a role")
}

async fn audited(app: &common::TestApp, action: &str, subject: i64) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_log where action = $1 and subject_kind = 'staff' and subject_id = $2",
    )
    .bind(action)
    .bind(subject)
    .fetch_one(&app.pool)
    .await
    .expect("audit rows")
}

/// A POST of `fields` with the session's CSRF token and a fresh form key.
async fn change(app: &common::TestApp, s: &Signed, uri: &str, fields: &[(&str, &str)]) -> Answer {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = format!(
        "people-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut form = fields.to_vec();
    form.push(("csrf", &s.csrf));
    form.push(("key", &key));
    post(app, uri, &s.cookie, &form).await
}

/// The secret shown once on a page (the readonly `secret` input), if any.
fn secret(body: &str) -> Option<String> {
    body.split("id=\"secret\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
}

fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// Sets `password` through the welcome page of `link` (a full URL or its token),
/// anonymously: the form's pre-session CSRF token, then the POST.
async fn welcome(app: &common::TestApp, link: &str, password: &str) -> Answer {
    let token = link.rsplit('/').next().expect("a token");
    let uri = format!("/console/welcome/{token}");
    let page = get(app, &uri, "").await;
    if page.status != StatusCode::OK {
        return page;
    }
    let cookie = set_cookie(&page, "__Host-hashar-csrf").expect("a pre-session cookie");
    post(
        app,
        &uri,
        &cookie,
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("password", password),
            ("again", password),
        ],
    )
    .await
}

/// A sign-in try through the form: its status.
async fn try_sign_in(app: &common::TestApp, phone: &str) -> StatusCode {
    let page = get(app, "/console/login?lang=en", "").await;
    let cookie = set_cookie(&page, "__Host-hashar-csrf").expect("a pre-session cookie");
    post(
        app,
        "/console/login",
        &cookie,
        &[
            ("csrf", &field(&page.body, "csrf")),
            ("phone", phone),
            ("password", PASSWORD),
        ],
    )
    .await
    .status
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_added_person_gets_a_link_shown_once_that_works_once_and_expires(pool: sqlx::PgPool) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;
    let form = get(&app, "/console/people/new", &s.cookie).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let community = seed.community.to_string();
    let added = change(
        &app,
        &s,
        "/console/people/new",
        &[
            ("name", "Dilnoza Karimova"),
            ("phone", "+992 90 000 0703"),
            ("role", "coordinator"),
            ("communities", &community),
        ],
    )
    .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let id = id_of(&app, "+992900000703").await;
    assert_eq!(added.location(), format!("/console/people/{id}"));
    // the link, once
    let page = get(&app, added.location(), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    let link = secret(&page.body).expect("the link shown once");
    assert!(link.contains("/console/welcome/"), "{link}");
    let again = get(&app, added.location(), &s.cookie).await;
    assert_eq!(secret(&again.body), None, "shown once only");
    // not stored in clear anywhere
    let token = link.rsplit('/').next().expect("a token").to_owned();
    let clear: i64 = common::count(
        &app.pool,
        &format!("select count(*) from password_links where token_sha256 = '{token}'"),
    )
    .await;
    assert_eq!(clear, 0);
    let sessions: i64 = common::count(
        &app.pool,
        &format!("select count(*) from tower_sessions.session where convert_from(data, 'UTF8') like '%{token}%'"),
    )
    .await;
    assert_eq!(sessions, 0, "the link left the session once shown");
    // the list shows them, masked
    let list = get(&app, "/console/people", &s.cookie).await;
    assert!(list.body.contains("Dilnoza Karimova"), "{}", list.body);
    assert!(!list.body.contains("+992900000703"));
    // a short password is refused, the link still works
    let short = welcome(&app, &link, "short").await;
    assert_eq!(
        short.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    // works once
    let set = welcome(&app, &link, PASSWORD).await;
    assert_eq!(set.status, StatusCode::SEE_OTHER, "{}", set.body);
    assert_eq!(set.location(), "/console/login");
    sign_in(&app, "+992900000703", [10, 7, 0, 2]).await;
    let twice = welcome(&app, &link, PASSWORD).await;
    assert_eq!(twice.status, StatusCode::NOT_FOUND);
    // a new link expires after 24 hours
    let reset = change(&app, &s, &format!("/console/people/{id}/password"), &[]).await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let page = get(&app, reset.location(), &s.cookie).await;
    let link = secret(&page.body).expect("a new link");
    app.clock.advance(chrono::Duration::hours(25));
    let late = welcome(&app, &link, PASSWORD).await;
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert_eq!(audited(&app, "staff.add", id).await, 1);
    assert_eq!(audited(&app, "staff.password_link", id).await, 2);
    assert_eq!(audited(&app, "staff.password_set", id).await, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn roles_change_through_a_confirm_page_and_the_last_admin_stays(pool: sqlx::PgPool) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;
    let a = seed.community.to_string();
    let b = seed.other_community.to_string();
    staff(&app, "Rustam", COORD, Role::Coordinator, &[seed.community]).await;
    let coord = id_of(&app, COORD).await;
    let me = id_of(&app, ADMIN).await;
    // the confirm page says old → new and changes nothing
    let confirm = get(
        &app,
        &format!("/console/people/{coord}/access?role=counsellor&communities={b}"),
        &s.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("Role: coordinator → counsellor"),
        "{}",
        confirm.body
    );
    assert_eq!(role_of(&app, coord).await, "coordinator");
    let done = change(
        &app,
        &s,
        &format!("/console/people/{coord}/access"),
        &[
            ("role", "officer"),
            ("communities", &a),
            ("communities", &b),
        ],
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(role_of(&app, coord).await, "officer");
    let communities: i64 = common::count(
        &app.pool,
        &format!("select count(*) from coordinator_communities where coordinator_id = {coord}"),
    )
    .await;
    assert_eq!(communities, 2);
    assert_eq!(audited(&app, "staff.role", coord).await, 1);
    assert_eq!(audited(&app, "staff.communities", coord).await, 1);
    // an officer without a community is refused
    let none = change(
        &app,
        &s,
        &format!("/console/people/{coord}/access"),
        &[("role", "officer")],
    )
    .await;
    assert_eq!(none.status, StatusCode::SEE_OTHER);
    let page = get(&app, none.location(), &s.cookie).await;
    assert!(
        page.body.contains("needs at least one community"),
        "{}",
        page.body
    );
    // the last admin can be neither demoted nor disabled
    for (uri, fields) in [
        (
            format!("/console/people/{me}/access"),
            vec![("role", "coordinator"), ("communities", a.as_str())],
        ),
        (format!("/console/people/{me}/disable"), vec![]),
    ] {
        let refused = change(&app, &s, &uri, &fields).await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER, "{uri}");
        let page = get(&app, refused.location(), &s.cookie).await;
        assert!(
            page.body
                .contains("The last admin cannot be removed, disabled or demoted."),
            "{}",
            page.body
        );
        assert_eq!(role_of(&app, me).await, "admin");
    }
    assert_eq!(audited(&app, "staff.disable", me).await, 0);
    // with a second admin, the first may step down
    let promote = change(
        &app,
        &s,
        &format!("/console/people/{coord}/access"),
        &[("role", "admin")],
    )
    .await;
    assert_eq!(promote.status, StatusCode::SEE_OTHER);
    assert_eq!(role_of(&app, coord).await, "admin");
    let down = change(
        &app,
        &s,
        &format!("/console/people/{me}/access"),
        &[("role", "counsellor")],
    )
    .await;
    assert_eq!(down.status, StatusCode::SEE_OTHER);
    assert_eq!(role_of(&app, me).await, "counsellor");
    // and is no longer an admin at their next request
    let gone = get(&app, "/console/people", &s.cookie).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

/// Issues a token for `coord` through the person page: the token, shown once.
async fn issue(app: &common::TestApp, s: &Signed, coord: i64) -> String {
    let answer = change(app, s, &format!("/console/people/{coord}/tokens"), &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    let page = get(app, answer.location(), &s.cookie).await;
    secret(&page.body).expect("the token, shown once")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_token_works_against_the_api_until_revoked_and_disabling_stops_everything(
    pool: sqlx::PgPool,
) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;
    staff(&app, "Rustam", COORD, Role::Coordinator, &[seed.community]).await;
    let coord = id_of(&app, COORD).await;
    let their_session = sign_in(&app, COORD, [10, 7, 0, 3]).await;
    let token = issue(&app, &s, coord).await;
    assert!(token.starts_with("hsr_"), "{token}");
    let (status, _) = app
        .api("GET", "/api/v1/communities", None, Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let token_id: i64 = common::count(
        &app.pool,
        &format!("select max(id) from api_tokens where coordinator_id = {coord}"),
    )
    .await;
    let revoke = change(
        &app,
        &s,
        &format!("/console/people/{coord}/tokens/{token_id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(revoke.status, StatusCode::SEE_OTHER);
    let (status, _) = app
        .api("GET", "/api/v1/communities", None, Some(&token))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(audited(&app, "staff.token_issue", coord).await, 1);
    assert_eq!(audited(&app, "staff.token_revoke", coord).await, 1);
    // disabling: the session ends, the password and a token stop working
    let token = issue(&app, &s, coord).await;
    let confirm = get(&app, &format!("/console/people/{coord}/disable"), &s.cookie).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("Disable Rustam?"), "{}", confirm.body);
    let disable = change(&app, &s, &format!("/console/people/{coord}/disable"), &[]).await;
    assert_eq!(disable.status, StatusCode::SEE_OTHER);
    let (status, _) = app
        .api("GET", "/api/v1/communities", None, Some(&token))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let home = get(&app, "/console", &their_session.cookie).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(try_sign_in(&app, COORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(audited(&app, "staff.disable", coord).await, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn unlock_and_sign_out_everywhere_are_audited(pool: sqlx::PgPool) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;
    staff(&app, "Rustam", COORD, Role::Coordinator, &[seed.community]).await;
    let coord = id_of(&app, COORD).await;
    let their_session = sign_in(&app, COORD, [10, 7, 0, 4]).await;
    sqlx::query(
        "update coordinators set password_locked_until = '2026-11-28 10:00:00+00' where id = $1",
    )
    .bind(coord)
    .execute(&app.pool)
    .await
    .expect("a lock");
    let page = get(&app, &format!("/console/people/{coord}"), &s.cookie).await;
    assert!(
        !page.body.contains("id=\"person-locked\">—"),
        "the lock shows"
    );
    let out = change(&app, &s, &format!("/console/people/{coord}/sign-out"), &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let home = get(&app, "/console", &their_session.cookie).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER, "their session ended");
    let unlock = change(&app, &s, &format!("/console/people/{coord}/unlock"), &[]).await;
    assert_eq!(unlock.status, StatusCode::SEE_OTHER);
    sign_in(&app, COORD, [10, 7, 0, 5]).await;
    assert_eq!(audited(&app, "staff.sign_out_everywhere", coord).await, 1);
    assert_eq!(audited(&app, "staff.unlock", coord).await, 1);
    // the audit tab, by person and by action
    let tab = get(
        &app,
        &format!("/console/people/audit?person={coord}&action=staff.unlock"),
        &s.cookie,
    )
    .await;
    assert_eq!(tab.status, StatusCode::OK);
    assert!(tab.body.contains("unlocked"), "{}", tab.body);
    assert!(!tab.body.contains("signed out everywhere"), "{}", tab.body);
    let dated = get(
        &app,
        "/console/people/audit?from=2026-11-29&to=2026-12-31",
        &s.cookie,
    )
    .await;
    assert!(dated.body.contains("id=\"audit-empty\""), "{}", dated.body);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn people_is_for_admins_only_and_every_post_needs_the_csrf_token(pool: sqlx::PgPool) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    let s = admin(&app).await;
    let me = id_of(&app, ADMIN).await;
    for (phone, role, communities) in [
        (COORD, Role::Coordinator, vec![seed.community]),
        ("+992900000705", Role::Counsellor, vec![]),
        ("+992900000706", Role::Officer, vec![seed.community]),
    ] {
        staff(&app, "Someone", phone, role, &communities).await;
        let other = sign_in(&app, phone, [10, 7, 1, communities.len() as u8]).await;
        for uri in [
            "/console/people".to_owned(),
            "/console/people/new".to_owned(),
            "/console/people/audit".to_owned(),
            format!("/console/people/{me}"),
        ] {
            let answer = get(&app, &uri, &other.cookie).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{role}: {uri}");
            assert!(!answer.body.contains("Admin One"), "{role}: {uri}");
        }
        let post = change(&app, &other, &format!("/console/people/{me}/tokens"), &[]).await;
        assert_eq!(post.status, StatusCode::NOT_FOUND, "{role}");
        let home = get(&app, "/console", &other.cookie).await;
        assert!(!home.body.contains("/console/people"), "no link for {role}");
    }
    let home = get(&app, "/console", &s.cookie).await;
    assert!(
        home.body.contains("href=\"/console/people\""),
        "admins see the link"
    );
    // without the CSRF token: 403, nothing added
    let refused = post(
        &app,
        "/console/people/new",
        &s.cookie,
        &[
            ("name", "Forged"),
            ("phone", "+992900000709"),
            ("role", "admin"),
            ("key", "forged-1"),
        ],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let forged: i64 = common::count(
        &app.pool,
        "select count(*) from coordinators where name = 'Forged'",
    )
    .await;
    assert_eq!(forged, 0);
    let tokens: i64 = common::count(&app.pool, "select count(*) from api_tokens").await;
    let refused = post(
        &app,
        &format!("/console/people/{me}/tokens"),
        &s.cookie,
        &[("key", "forged-2")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        common::count(&app.pool, "select count(*) from api_tokens").await,
        tokens
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_repeated_form_adds_once_and_shows_no_secret_again(pool: sqlx::PgPool) {
    let app = common::app(pool).await;
    common::seed(&app.pool).await;
    let s = admin(&app).await;
    let fields = [
        ("name", "Counsellor Two"),
        ("phone", "+992900000711"),
        ("role", "counsellor"),
        ("csrf", s.csrf.as_str()),
        ("key", "same-key"),
    ];
    let first = post(&app, "/console/people/new", &s.cookie, &fields).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let page = get(&app, first.location(), &s.cookie).await;
    assert!(secret(&page.body).is_some());
    let second = post(&app, "/console/people/new", &s.cookie, &fields).await;
    assert_eq!(second.status, StatusCode::SEE_OTHER);
    assert_eq!(second.location(), first.location());
    let page = get(&app, second.location(), &s.cookie).await;
    assert_eq!(secret(&page.body), None);
    let n: i64 = common::count(
        &app.pool,
        "select count(*) from coordinators where phone = '+992900000711'",
    )
    .await;
    assert_eq!(n, 1);
    // a taken phone is refused beside the field, with what was typed kept
    let taken = change(
        &app,
        &s,
        "/console/people/new",
        &[
            ("name", "Again"),
            ("phone", "+992900000711"),
            ("role", "counsellor"),
        ],
    )
    .await;
    assert_eq!(taken.status, StatusCode::SEE_OTHER);
    let form = get(&app, taken.location(), &s.cookie).await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(form.body.contains("Someone has this phone number already."));
    assert!(form.body.contains("value=\"Again\""));
}
