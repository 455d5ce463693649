//! The console's Callbacks page through the real router and a real database: the queue
//! (oldest first, overdue highlighted and counted, a `tel:` button with the full number),
//! Take (once per form key; the household's SMS; "Taken by Dilnoza at 14:00" for another
//! counsellor), Record outcome with topics and a note (no answer back in the queue two
//! hours later on the test's clock), a POST without its CSRF token refused, the empty
//! state in three languages, and who sees it (counsellors and admins; coordinators and
//! programme officers 404).

mod common;
mod console_kit;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use common::TestApp;
use console_kit::{get, post, sign_in, staff, Signed};
use hashar::store::staff::Role;
use sqlx::PgPool;

const DILNOZA: &str = "+992900000821";
const FARRUKH: &str = "+992900000822";
const COORDINATOR: &str = "+992900000823";
const OFFICER: &str = "+992900000824";
const ADMIN: &str = "+992900000825";

async fn request(pool: &PgPool, phone: &str, language: &str, at: chrono::DateTime<Utc>) -> i64 {
    sqlx::query_scalar(
        "insert into callback_requests (phone, household_id, language, channel, idempotency_key, created_at)
         values ($1, (select household_id from phones where phone = $1), $2, 'ussd', gen_random_uuid()::text, $3)
         returning id",
    )
    .bind(phone)
    .bind(language)
    .bind(at)
    .fetch_one(pool)
    .await
    .expect("a callback request")
}

async fn sms_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where kind = 'callback'")
        .fetch_one(pool)
        .await
        .expect("outbox")
}

async fn as_role(
    app: &TestApp,
    name: &str,
    phone: &str,
    role: Role,
    communities: &[i64],
    ip: u8,
) -> Signed {
    staff(app, name, phone, role, communities).await;
    sign_in(app, phone, [10, 3, 0, ip]).await
}

async fn take(app: &TestApp, s: &Signed, id: i64, key: &str) -> console_kit::Answer {
    post(
        app,
        &format!("/console/callbacks/{id}/take"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", key)],
    )
    .await
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_counsellor_takes_and_records_a_call(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let seed = common::seed(&pool).await;
    let dilnoza = as_role(&app, "Dilnoza", DILNOZA, Role::Counsellor, &[], 1).await;
    let farrukh = as_role(&app, "Farrukh", FARRUKH, Role::Counsellor, &[], 2).await;

    // empty: why, in the page's language
    let page = get(&app, "/console/callbacks", &dilnoza.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No one is waiting"), "{}", page.body);
    let ru = get(&app, "/console/callbacks?lang=ru", &dilnoza.cookie).await;
    assert!(ru.body.contains("Никто не ждёт звонка"));
    let tg = get(&app, "/console/callbacks?lang=tg", &dilnoza.cookie).await;
    assert!(tg.body.contains("Касе интизор нест"));
    get(&app, "/console/callbacks?lang=en", &dilnoza.cookie).await;

    // Tuesday's request is overdue on Saturday; Friday's is not
    let old = request(
        &pool,
        common::PHONE_TG,
        "tg",
        Utc.with_ymd_and_hms(2026, 11, 24, 5, 0, 0).unwrap(),
    )
    .await;
    let friday = request(
        &pool,
        common::PHONE_RU,
        "ru",
        Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap(),
    )
    .await;
    let page = get(&app, "/console/callbacks", &dilnoza.cookie).await;
    let body = &page.body;
    assert!(body.contains("2 households waiting"), "{body}");
    assert!(body.contains("id=\"overdue-count\">1 overdue"), "{body}");
    let at_old = body
        .find(&format!("id=\"callback-{old}\""))
        .expect("the old card");
    let at_friday = body
        .find(&format!("id=\"callback-{friday}\""))
        .expect("Friday's card");
    assert!(at_old < at_friday, "oldest first");
    assert!(body.contains(&format!(
        "class=\"card cb-card cb-overdue\" id=\"callback-{old}\""
    )));
    assert!(body.contains(&format!("class=\"card cb-card\" id=\"callback-{friday}\"")));
    assert!(body.contains(&format!("href=\"tel:{}\"", common::PHONE_TG)));
    assert!(
        body.contains("26.11.2026") || body.contains("26 Nov 2026"),
        "due by Thursday: {body}"
    );
    assert!(body.contains(&format!("href=\"/console/households/{}\"", seed.household)));
    // the language chips filter
    let russian = get(&app, "/console/callbacks?language=ru", &dilnoza.cookie).await;
    assert!(!russian.body.contains(&format!("id=\"callback-{old}\"")));
    assert!(russian.body.contains(&format!("id=\"callback-{friday}\"")));

    // without its CSRF token, nothing happens
    let refused = post(
        &app,
        &format!("/console/callbacks/{old}/take"),
        &dilnoza.cookie,
        &[("key", "k0")],
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(sms_count(&pool).await, 0);

    // Take asks first, on a page of its own: the SMS the household gets, in its language
    // (the old request is Tajik), and nothing sent yet
    let confirm = get(
        &app,
        &format!("/console/callbacks/{old}/take"),
        &dilnoza.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("id=\"take-confirm\""),
        "{}",
        confirm.body
    );
    let sms = confirm
        .body
        .split("id=\"take-sms\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or_default();
    assert!(
        !sms.is_empty() && !sms.contains("counsellor"),
        "Tajik: {sms}"
    );
    assert_eq!(sms_count(&pool).await, 0);

    // Take, twice with the same key (a double tap): one SMS, one audit row
    for _ in 0..2 {
        let answer = take(&app, &dilnoza, old, "take-1").await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(
            answer.location(),
            format!("/console/callbacks#callback-{old}")
        );
    }
    assert_eq!(sms_count(&pool).await, 1);
    let page = get(&app, "/console/callbacks", &dilnoza.cookie).await;
    assert!(
        page.body.contains("Taken · SMS queued to the household"),
        "{}",
        page.body
    );
    assert!(page.body.contains(&format!("id=\"outcome-form-{old}\"")));
    assert!(page.body.contains("Taken by Dilnoza at 14:00"));

    // another counsellor's confirm page: back to the queue with who holds it
    let theirs = get(
        &app,
        &format!("/console/callbacks/{old}/take"),
        &farrukh.cookie,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::SEE_OTHER);
    // another counsellor: refused, with who and when; no outcome form for them
    let answer = take(&app, &farrukh, old, "take-2").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = get(&app, "/console/callbacks", &farrukh.cookie).await;
    assert!(
        page.body.contains("class=\"flash refused\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("Taken by Dilnoza at 14:00"));
    assert!(!page.body.contains(&format!("id=\"outcome-form-{old}\"")));
    assert_eq!(sms_count(&pool).await, 1);

    // no answer: back in the queue at 16:00, takeable then
    let answer = post(
        &app,
        &format!("/console/callbacks/{old}/outcome"),
        &dilnoza.cookie,
        &[
            ("csrf", &dilnoza.csrf),
            ("key", "out-1"),
            ("outcome", "no_answer"),
            ("note", ""),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = get(&app, "/console/callbacks", &dilnoza.cookie).await;
    assert!(
        page.body
            .contains("No answer recorded · back in the queue at 16:00"),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("No answer (1 of 3 tries): back in the queue at 16:00"));
    assert!(!page.body.contains(&format!("id=\"take-{old}\"")));
    app.clock.advance(Duration::hours(2));
    let page = get(&app, "/console/callbacks", &farrukh.cookie).await;
    assert!(
        page.body.contains(&format!("id=\"take-{old}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("No answer (1 of 3 tries): call again"));

    // Farrukh takes it and reaches them: topics (repeated fields) and a note
    assert_eq!(
        take(&app, &farrukh, old, "take-3").await.status,
        StatusCode::SEE_OTHER
    );
    let note = "Husband in Moscow, patent";
    let answer = post(
        &app,
        &format!("/console/callbacks/{old}/outcome"),
        &farrukh.cookie,
        &[
            ("csrf", &farrukh.csrf),
            ("key", "out-2"),
            ("outcome", "reached"),
            ("topics", "legal_stay"),
            ("topics", "trafficking"),
            ("note", note),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let row: (String, String, Vec<String>, Option<String>) =
        sqlx::query_as("select status, outcome, topics, note from callback_requests where id = $1")
            .bind(old)
            .fetch_one(&pool)
            .await
            .expect("the request");
    assert_eq!(
        row,
        (
            "done".into(),
            "reached".into(),
            vec!["legal_stay".into(), "trafficking".into()],
            Some(note.into())
        )
    );
    let page = get(&app, "/console/callbacks", &farrukh.cookie).await;
    assert!(page.body.contains("Outcome recorded · the request is done"));
    assert!(!page.body.contains(&format!("id=\"callback-{old}\"")));
    let done = get(&app, "/console/callbacks?done=1", &farrukh.cookie).await;
    assert!(
        done.body.contains(&format!("id=\"callback-{old}\"")),
        "{}",
        done.body
    );
    assert!(done.body.contains("Reached: we talked"));
    assert!(done.body.contains("Human trafficking"));
    assert!(done.body.contains(note));

    // a note too long is refused beside nothing written
    take(&app, &dilnoza, friday, "take-4").await;
    let long = "й".repeat(281);
    post(
        &app,
        &format!("/console/callbacks/{friday}/outcome"),
        &dilnoza.cookie,
        &[
            ("csrf", &dilnoza.csrf),
            ("key", "out-3"),
            ("outcome", "reached"),
            ("note", &long),
        ],
    )
    .await;
    let page = get(&app, "/console/callbacks", &dilnoza.cookie).await;
    assert!(
        page.body.contains("The note is at most 280 characters."),
        "{}",
        page.body
    );
    let status: String = sqlx::query_scalar("select status from callback_requests where id = $1")
        .bind(friday)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "open");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn only_counsellors_and_admins_see_the_queue(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let seed = common::seed(&pool).await;
    let id = request(
        &pool,
        common::PHONE_TG,
        "tg",
        Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap(),
    )
    .await;
    let coordinator = as_role(
        &app,
        "Coordinator",
        COORDINATOR,
        Role::Coordinator,
        &[seed.community],
        3,
    )
    .await;
    let officer = as_role(
        &app,
        "Officer",
        OFFICER,
        Role::Officer,
        &[seed.community],
        4,
    )
    .await;
    let admin = as_role(&app, "Admin", ADMIN, Role::Admin, &[], 5).await;
    for s in [&coordinator, &officer] {
        let page = get(&app, "/console/callbacks", &s.cookie).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(!page.body.contains(common::PHONE_TG));
        assert!(
            !page.body.contains("href=\"/console/callbacks\""),
            "not in the navigation"
        );
        let answer = take(&app, s, id, "k").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(sms_count(&pool).await, 0);
    let page = get(&app, "/console/callbacks", &admin.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("href=\"/console/callbacks\""));
    assert_eq!(
        take(&app, &admin, id, "k").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(sms_count(&pool).await, 1);
    let unsigned = get(&app, "/console/callbacks", "").await;
    assert_eq!(unsigned.status, StatusCode::SEE_OTHER);
}

/// The coverage tab: per community, households, those with a number abroad, the requests of
/// the last 30 days, done, and the median wait of the done ones; counsellors only.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_coverage_tab_counts_each_communitys_requests_and_median_wait(pool: PgPool) {
    let app = common::app(pool.clone()).await;
    let seed = common::seed(&pool).await;
    let dilnoza = as_role(&app, "Dilnoza", DILNOZA, Role::Counsellor, &[], 11).await;
    let coordinator = as_role(
        &app,
        "Coordinator",
        COORDINATOR,
        Role::Coordinator,
        &[seed.community],
        12,
    )
    .await;
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
    // two done in the seed's community (waits of 2 and 4 hours: median 3 hours), one open,
    // and one 40 days old (outside the 30 days)
    for (asked_hours_ago, waited) in [(30, Some(2)), (20, Some(4)), (5, None), (40 * 24, Some(1))] {
        let at = now - Duration::hours(asked_hours_ago);
        let id = request(&pool, common::PHONE_TG, "tg", at).await;
        if let Some(h) = waited {
            sqlx::query(
                "update callback_requests set status = 'done', outcome = 'reached', done_at = $2,
                        done_by = (select id from coordinators where phone = $3)
                  where id = $1",
            )
            .bind(id)
            .bind(at + Duration::hours(h))
            .bind(DILNOZA)
            .execute(&pool)
            .await
            .expect("done");
        }
    }
    let page = get(&app, "/console/callbacks/coverage", &dilnoza.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let anzob = page
        .body
        .split("<th scope=\"row\">Anzob</th>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_default();
    let cells: Vec<&str> = anzob
        .split("\">")
        .skip(1)
        .filter_map(|c| c.split('<').next())
        .collect();
    // households, abroad, requests (30 days), done, median wait
    assert_eq!(cells.get(2..), Some(&["3", "2", "3 hours"][..]), "{anzob}");
    let theirs = get(&app, "/console/callbacks/coverage", &coordinator.cookie).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}
