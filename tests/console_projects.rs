//! The console's Projects pages through the real router and a real database: the list and
//! its filters, a project's figures, creating a project (a Tajik name too long for a phone
//! screen refused with the screen-limit words, what was typed kept), editing target / ratio
//! / cap through the confirm page (old → new, the effect on matched), closing and opening,
//! the audit rows each change writes, a double submit acting once, a POST without its CSRF
//! token refused, and who sees what: a coordinator of A gets 404 for B's project, a
//! counsellor sees no money, a programme officer reads and changes nothing.

mod common;
mod console_kit;

use axum::http::StatusCode;
use common::{Seed, TestApp};
use console_kit::{field, get, post, sign_in, staff, Signed};
use hashar::{clock::Clock, store::staff::Role};
use sqlx::PgPool;

const COORDINATOR: &str = "+992900000811";
const ADMIN: &str = "+992900000812";
const COUNSELLOR: &str = "+992900000813";
const OFFICER: &str = "+992900000814";

/// The app, the seed, and a coordinator of the seed's community, signed in.
async fn setup(pool: PgPool) -> (TestApp, Seed, Signed) {
    let app = common::app(pool).await;
    let seed = common::seed(&app.pool).await;
    staff(
        &app,
        "Dilnoza Rahimova",
        COORDINATOR,
        Role::Coordinator,
        &[seed.community],
    )
    .await;
    let signed = sign_in(&app, COORDINATOR, [10, 2, 0, 1]).await;
    (app, seed, signed)
}

async fn as_role(app: &TestApp, phone: &str, role: Role, communities: &[i64], ip: u8) -> Signed {
    staff(app, &format!("{role}"), phone, role, communities).await;
    sign_in(app, phone, [10, 2, 1, ip]).await
}

async fn audit(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_log where action = $1")
        .bind(action)
        .fetch_one(pool)
        .await
        .expect("audit rows")
}

async fn project_row(pool: &PgPool, id: i64) -> (String, String, Option<String>, String) {
    sqlx::query_as(
        "select target::text, match_ratio::text, match_cap::text, status from projects where id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .expect("project")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_list_filters_and_a_project_shows_its_figures(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    common::receive(&app.pool, seed.roof, "5000").await;
    let list = get(&app, "/console/projects", &s.cookie).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    for name in ["Bridge", "School roof", "Old"] {
        assert!(list.body.contains(name), "{name}: {}", list.body);
    }
    assert!(!list.body.contains("Water"), "B's project: {}", list.body);
    assert!(list.body.contains("<svg class=\"progress\""), "a bar");
    assert!(
        list.body.contains("href=\"/console/projects\""),
        "in the menu"
    );
    let closed = get(&app, "/console/projects?status=closed", &s.cookie).await;
    assert!(closed.body.contains("Old"), "{}", closed.body);
    assert!(!closed.body.contains("School roof"), "{}", closed.body);
    let business = get(&app, "/console/projects?kind=business", &s.cookie).await;
    assert!(
        business.body.contains("id=\"no-projects\""),
        "{}",
        business.body
    );
    let elsewhere = get(
        &app,
        &format!("/console/projects?community={}", seed.other_community),
        &s.cookie,
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);

    // received 5 000 at 2:1 with a 3 000 cap: matched 3 000, matched total 8 000 of 20 000
    let page = get(&app, &format!("/console/projects/{}", seed.roof), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for (id, text) in [
        ("received", "5,000.00"),
        ("matched", "3,000.00"),
        ("matched-total", "8,000.00"),
        ("target", "20,000.00"),
        ("ratio", "2:1"),
        ("cap", "3,000.00"),
        ("match-due", "3,000.00"),
        ("percent", "40.0%"),
    ] {
        let cell = page
            .body
            .split(&format!("id=\"{id}\">"))
            .nth(1)
            .and_then(|r| r.split('<').next())
            .unwrap_or_else(|| panic!("{id}: {}", page.body));
        assert!(cell.contains(text), "{id}: {cell}");
    }
    assert!(
        page.body
            .contains(&format!("href=\"/console/money/projects/{}\"", seed.roof)),
        "Record money links to the Money page"
    );
    // a pledge shows its number masked
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 700, 'TJS', 'ussd', 'k1')",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(common::PHONE_TG)
    .execute(&app.pool)
    .await
    .expect("pledge");
    let page = get(
        &app,
        &format!("/console/projects/{}", seed.bridge),
        &s.cookie,
    )
    .await;
    assert!(page.body.contains("id=\"pledges\""), "{}", page.body);
    assert!(
        !page.body.contains("901112233"),
        "a full number: {}",
        page.body
    );
    assert!(page.body.contains("700.00"), "{}", page.body);
}

/// The amounts of the pledges table of a project page, in the order shown.
fn pledge_amounts(body: &str) -> Vec<String> {
    let Some(table) = body
        .split("id=\"pledges\"")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
    else {
        return Vec::new();
    };
    table
        .split("class=\"num\">")
        .skip(1)
        .filter_map(|cell| cell.split('<').next())
        .map(str::to_owned)
        .collect()
}

/// The `href` of the link with this id, its `&amp;` read back.
fn href_of(body: &str, id: &str) -> Option<String> {
    let (tag, _) = body.split_once(&format!("id=\"{id}\""))?;
    let href = tag.rsplit("href=\"").next()?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// A project's pledges come a page at a time, newest first: the "older" link carries the
/// last pledge's (time, id), so that paging through pledges made at the same instant (a
/// bulk import, or the clock's resolution) neither repeats nor skips one, and the last
/// page has no "older" link.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_project_pages_through_its_pledges_by_keyset(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    // 45 pledges at 4 instants (11 or 12 share each), amounts 101 to 145 to tell them apart
    for n in 0..45i64 {
        sqlx::query(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
             values ($1, $2, $3, $4, 'TJS', 'ussd', $5, timestamptz '2026-11-20 10:00:00.123456Z' + ($6 * interval '1 hour'))",
        )
        .bind(seed.bridge)
        .bind(seed.household)
        .bind(common::PHONE_TG)
        .bind(rust_decimal::Decimal::from(101 + n))
        .bind(format!("page-{n}"))
        .bind(n % 4)
        .execute(&app.pool)
        .await
        .expect("a pledge");
    }
    // amounts under 1,000: "101.00" is how English writes them
    let expected: Vec<String> = sqlx::query_scalar(
        "select amount::bigint || '.00' from pledges where project_id = $1
          order by created_at desc, id desc",
    )
    .bind(seed.bridge)
    .fetch_all(&app.pool)
    .await
    .expect("the pledges");
    assert_eq!(expected.len(), 45);

    let mut seen = Vec::new();
    let mut uri = format!("/console/projects/{}", seed.bridge);
    let mut pages = 0;
    loop {
        let page = get(&app, &uri, &s.cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.body);
        let amounts = pledge_amounts(&page.body);
        assert!(amounts.len() <= 20, "{uri}: {amounts:?}");
        seen.extend(amounts);
        pages += 1;
        if pages > 1 {
            assert!(
                page.body.contains("id=\"newest-pledges\""),
                "a way back: {}",
                page.body
            );
        }
        match href_of(&page.body, "older-pledges") {
            Some(next) => {
                assert!(next.contains("?before="), "{next}");
                uri = next;
            }
            None => break,
        }
        assert!(pages < 5, "too many pages");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for (cell, amount) in seen.iter().zip(&expected) {
        assert!(
            cell.contains(amount.as_str()),
            "every pledge once, newest first: {seen:?}"
        );
    }

    // a cursor that is not one shows the first page
    let odd = get(
        &app,
        &format!("/console/projects/{}?before=yesterday", seed.bridge),
        &s.cookie,
    )
    .await;
    assert_eq!(odd.status, StatusCode::OK);
    let first = pledge_amounts(&odd.body);
    assert_eq!(first.len(), 20);
    assert!(first[0].contains(expected[0].as_str()), "{first:?}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_admin_creates_a_project_and_a_too_long_tajik_name_is_refused(pool: PgPool) {
    let (app, seed, _) = setup(pool).await;
    let admin = as_role(&app, ADMIN, Role::Admin, &[], 1).await;
    let form = get(&app, "/console/projects/new", &admin.cookie).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let key = field(&form.body, "key");
    let community = seed.community.to_string();
    let long = "Пули калони деҳаи мо дар Анзоб"; // 30 characters
    let mut fields = vec![
        ("csrf", admin.csrf.as_str()),
        ("key", key.as_str()),
        ("community", community.as_str()),
        ("code", "canal"),
        ("kind", "infrastructure"),
        ("name_tg", long),
        ("name_ru", "Канал"),
        ("name_en", "Canal"),
        ("target", "80 000"),
        ("currency", "TJS"),
        ("ratio", "0,5"),
        ("cap", ""),
    ];
    let refused = post(&app, "/console/projects/new", &admin.cookie, &fields).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);
    assert!(
        refused.location().starts_with("/console/projects/new?"),
        "{}",
        refused.location()
    );
    let back = get(&app, refused.location(), &admin.cookie).await;
    assert!(
        back.body
            .contains("The name must be 1 to 24 characters: it is shown on a phone screen."),
        "{}",
        back.body
    );
    assert!(
        back.body.contains("id=\"name_tg-error\""),
        "beside the field"
    );
    assert!(back.body.contains(long), "what was typed is kept");
    assert_eq!(
        common::count(
            &app.pool,
            "select count(*) from projects where code = 'CANAL'"
        )
        .await,
        0
    );
    assert_eq!(audit(&app.pool, "project.create").await, 0);

    fields[5] = ("name_tg", "Ҷӯйбор");
    let created = post(&app, "/console/projects/new", &admin.cookie, &fields).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let id: i64 = sqlx::query_scalar("select id from projects where code = 'CANAL'")
        .fetch_one(&app.pool)
        .await
        .expect("created");
    assert_eq!(created.location(), format!("/console/projects/{id}"));
    let page = get(&app, created.location(), &admin.cookie).await;
    assert!(page.body.contains("Project CANAL created"), "{}", page.body);
    assert!(
        page.body.contains("Project created"),
        "history: {}",
        page.body
    );
    // the same form again: nothing more
    let again = post(&app, "/console/projects/new", &admin.cookie, &fields).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location(), format!("/console/projects/{id}"));
    assert_eq!(
        common::count(
            &app.pool,
            "select count(*) from projects where code = 'CANAL'"
        )
        .await,
        1
    );
    assert_eq!(audit(&app.pool, "project.create").await, 1);
    let (target, ratio, cap, status) = project_row(&app.pool, id).await;
    assert_eq!(
        (target.as_str(), ratio.as_str(), cap, status.as_str()),
        ("80000.00", "0.5000", None, "open")
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_edit_goes_through_its_confirm_page_once(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    common::receive(&app.pool, seed.roof, "5000").await;
    let uri = format!("/console/projects/{}", seed.roof);
    let form = get(&app, &format!("{uri}/edit"), &s.cookie).await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    assert!(form.body.contains("value=\"20,000.00\""), "{}", form.body);
    // refused: the reason beside the field, what was typed kept
    let bad = get(
        &app,
        &format!("{uri}/edit/confirm?target=0&ratio=1&cap="),
        &s.cookie,
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("id=\"target-error\""), "{}", bad.body);
    // a cap of 1 000 at 1:1: matched 3 000 → 1 000
    let confirm = get(
        &app,
        &format!("{uri}/edit/confirm?target=25000&ratio=1&cap=1000"),
        &s.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    for text in [
        "20,000.00\u{a0}TJS → <strong>25,000.00\u{a0}TJS",
        "2:1 → <strong>1:1",
        "3,000.00\u{a0}TJS → <strong>1,000.00\u{a0}TJS",
    ] {
        assert!(confirm.body.contains(text), "{text}: {}", confirm.body);
    }
    assert_eq!(
        audit(&app.pool, "project.edit").await,
        0,
        "a GET changes nothing"
    );
    let key = field(&confirm.body, "key");
    let fields = [
        ("csrf", s.csrf.as_str()),
        ("key", key.as_str()),
        ("target", &field(&confirm.body, "target")),
        ("ratio", &field(&confirm.body, "ratio")),
        ("cap", &field(&confirm.body, "cap")),
    ];
    let saved = post(&app, &format!("{uri}/edit"), &s.cookie, &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    assert_eq!(saved.location(), uri);
    let again = post(&app, &format!("{uri}/edit"), &s.cookie, &fields).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "a double submit");
    assert_eq!(audit(&app.pool, "project.edit").await, 1, "recorded once");
    let page = get(&app, &uri, &s.cookie).await;
    assert!(page.body.contains("Saved"), "{}", page.body);
    assert!(
        page.body.contains("Target, ratio or cap changed"),
        "history"
    );
    let (target, ratio, cap, _) = project_row(&app.pool, seed.roof).await;
    assert_eq!(
        (target.as_str(), ratio.as_str(), cap.as_deref()),
        ("25000.00", "1.0000", Some("1000.00"))
    );
    let detail: serde_json::Value = sqlx::query_scalar(
        "select detail from audit_log where action = 'project.edit' and subject_id = $1",
    )
    .bind(seed.roof)
    .fetch_one(&app.pool)
    .await
    .expect("the audit row");
    assert_eq!(detail["before"]["matched"], "3000.00", "{detail}");
    assert_eq!(detail["after"]["matched"], "1000.00", "{detail}");
    // without its CSRF token: refused, nothing changed
    let no_csrf = post(
        &app,
        &format!("{uri}/edit"),
        &s.cookie,
        &[("key", "another"), ("target", "1"), ("ratio", "1")],
    )
    .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(project_row(&app.pool, seed.roof).await.0, "25000.00");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_project_closes_and_opens_through_confirm_pages(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let uri = format!("/console/projects/{}", seed.bridge);
    let confirm = get(&app, &format!("{uri}/status?to=closed"), &s.cookie).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(confirm.body.contains("Close Bridge?"), "{}", confirm.body);
    let key = field(&confirm.body, "key");
    let closed = post(
        &app,
        &format!("{uri}/status"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("to", "closed")],
    )
    .await;
    assert_eq!(closed.status, StatusCode::SEE_OTHER);
    assert_eq!(project_row(&app.pool, seed.bridge).await.3, "closed");
    let page = get(&app, &uri, &s.cookie).await;
    assert!(page.body.contains("id=\"closed\""), "{}", page.body);
    assert!(page.body.contains("status?to=open"), "{}", page.body);
    let confirm = get(&app, &format!("{uri}/status?to=open"), &s.cookie).await;
    let key = field(&confirm.body, "key");
    post(
        &app,
        &format!("{uri}/status"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("to", "open")],
    )
    .await;
    assert_eq!(project_row(&app.pool, seed.bridge).await.3, "open");
    assert_eq!(audit(&app.pool, "project.close").await, 1);
    assert_eq!(audit(&app.pool, "project.open").await, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn each_role_sees_what_it_may(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    common::receive(&app.pool, seed.bridge, "500").await;
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(&app.pool)
        .await
        .expect("water");
    // a coordinator of A: B's project is not there
    let b = get(&app, &format!("/console/projects/{water}"), &s.cookie).await;
    assert_eq!(b.status, StatusCode::NOT_FOUND);
    assert!(!b.body.contains("Water"));
    let b_edit = post(
        &app,
        &format!("/console/projects/{water}/edit"),
        &s.cookie,
        &[
            ("csrf", &s.csrf),
            ("key", "k-b"),
            ("target", "1"),
            ("ratio", "1"),
        ],
    )
    .await;
    assert_eq!(b_edit.status, StatusCode::NOT_FOUND);
    assert_eq!(project_row(&app.pool, water).await.0, "8000.00");
    // a counsellor: every community, no money
    let counsellor = as_role(&app, COUNSELLOR, Role::Counsellor, &[], 2).await;
    let page = get(
        &app,
        &format!("/console/projects/{water}"),
        &counsellor.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Water"));
    let page = get(
        &app,
        &format!("/console/projects/{}", seed.bridge),
        &counsellor.cookie,
    )
    .await;
    assert!(!page.body.contains("TJS"), "no money: {}", page.body);
    assert!(!page.body.contains("id=\"edit\""));
    let list = get(&app, "/console/projects", &counsellor.cookie).await;
    assert!(!list.body.contains("TJS"), "no money: {}", list.body);
    assert!(!list.body.contains("<svg class=\"progress\""));
    // an officer of A: reads the figures, changes nothing
    let officer = as_role(&app, OFFICER, Role::Officer, &[seed.community], 3).await;
    let page = get(
        &app,
        &format!("/console/projects/{}", seed.bridge),
        &officer.cookie,
    )
    .await;
    assert!(page.body.contains("500.00\u{a0}TJS"), "{}", page.body);
    assert!(!page.body.contains("id=\"edit\""), "{}", page.body);
    assert!(!page.body.contains("id=\"close\""));
    let edit = get(
        &app,
        &format!("/console/projects/{}/edit", seed.bridge),
        &officer.cookie,
    )
    .await;
    assert_eq!(edit.status, StatusCode::NOT_FOUND);
    let close = post(
        &app,
        &format!("/console/projects/{}/status", seed.bridge),
        &officer.cookie,
        &[("csrf", &officer.csrf), ("key", "k-o"), ("to", "closed")],
    )
    .await;
    assert_eq!(close.status, StatusCode::NOT_FOUND);
    assert_eq!(project_row(&app.pool, seed.bridge).await.3, "open");
    assert_eq!(
        common::count(
            &app.pool,
            "select count(*) from audit_log where subject_kind = 'project'"
        )
        .await,
        0
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_project_page_says_when_its_target_was_reached_and_whether_pledgers_were_told(
    pool: PgPool,
) {
    let (app, seed, s) = setup(pool).await;
    let uri = format!("/console/projects/{}", seed.bridge);
    // the text of the element with id `reached`, up to its first tag
    let reached = |body: &str| -> Option<String> {
        body.split("id=\"reached\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .map(str::to_owned)
    };
    let before = get(&app, &uri, &s.cookie).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(reached(&before.body), None, "{}", before.body);
    // the bridge (10 000, matched 1:1) reached with 5 000 received
    common::receive(&app.pool, seed.bridge, "5000").await;
    let due = get(&app, &uri, &s.cookie).await;
    let line = reached(&due.body).unwrap_or_default();
    assert!(
        line.starts_with("Target reached on ") && line.contains("within minutes"),
        "{line}"
    );
    let state = common::state_of(&app);
    let told = hashar::news::announce_reached(&state, app.clock.now())
        .await
        .expect("a round");
    assert_eq!(told, 1);
    let announced = get(&app, &uri, &s.cookie).await;
    let line = reached(&announced.body).unwrap_or_default();
    assert!(line.contains("were told by SMS"), "{line}");
    let broadcast: i64 =
        sqlx::query_scalar("select broadcast_id from project_target_reached where project_id = $1")
            .bind(seed.bridge)
            .fetch_one(&app.pool)
            .await
            .expect("announced");
    assert!(
        announced
            .body
            .contains(&format!("href=\"/console/broadcasts/{broadcast}\"")),
        "the coordinator sees the message: {}",
        announced.body
    );
    // a counsellor reads the line but gets no link to a page they may not open
    let c = as_role(&app, COUNSELLOR, Role::Counsellor, &[], 9).await;
    let theirs = get(&app, &uri, &c.cookie).await;
    assert_eq!(theirs.status, StatusCode::OK);
    let line = reached(&theirs.body).unwrap_or_default();
    assert!(line.contains("were told by SMS"), "{line}");
    assert!(
        !theirs.body.contains("id=\"reached-message\""),
        "{}",
        theirs.body
    );
}
