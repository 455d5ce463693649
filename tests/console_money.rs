//! The console's Money page through the real router and a real database: find a pledge by
//! its code, a phone, a household's number or name (a partial number refused, another
//! community's number answered as an unknown one), confirm and record a receipt (in full, in part, `1 500,50`), refuse more than
//! is outstanding, cancel with a reason, record a partner's disbursement, a double submit
//! recording once, a POST without its CSRF token refused, and scope: another community's
//! pledge is "not in your communities" by code and 404 by URL; counsellors and officers
//! get 404 everywhere here. Money without a pledge (from a household named by its number),
//! and an admin's reversal of a receipt and of a disbursement (with a reason, once).

mod common;
mod console_kit;

use axum::http::StatusCode;
use common::{Seed, TestApp, PHONE_TG};
use console_kit::{field, get, get_with, post, sign_in, staff, Signed};
use hashar::store::staff::Role;
use sqlx::PgPool;

const COORDINATOR: &str = "+992900000801";

/// The app, the seed, and a coordinator of the seed's community (Anzob), signed in.
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
    let signed = sign_in(&app, COORDINATOR, [10, 1, 0, 1]).await;
    (app, seed, signed)
}

/// A pledge of `amount` TJS to `project` by the household of `phone`; its id and code.
async fn pledge(
    pool: &PgPool,
    project: i64,
    household: i64,
    phone: &str,
    amount: &str,
) -> (i64, String) {
    sqlx::query_as(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, $4::numeric, 'TJS', 'ussd', gen_random_uuid()::text) returning id, code",
    )
    .bind(project)
    .bind(household)
    .bind(phone)
    .bind(amount)
    .fetch_one(pool)
    .await
    .expect("pledge")
}

async fn receipts(pool: &PgPool, pledge: i64) -> i64 {
    sqlx::query_scalar("select count(*) from receipts where pledge_id = $1")
        .bind(pledge)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// The text of the element with this id (up to the next tag), a no-break space (between
/// an amount and its currency, or Russian digit groups) read as a space.
fn text_of(body: &str, id: &str) -> String {
    body.split(&format!("id=\"{id}\""))
        .nth(1)
        .and_then(|rest| rest.split_once('>'))
        .and_then(|(_, rest)| rest.split('<').next())
        .unwrap_or("")
        .replace('\u{a0}', " ")
}

/// Opens the receipt confirm page for these values and presses its button.
async fn record(app: &TestApp, s: &Signed, id: i64, amount: &str) -> (console_kit::Answer, String) {
    let query = common::form(&[
        ("amount", amount),
        ("date", "2026-11-28"),
        ("method", "cash"),
    ]);
    let confirm = get(
        app,
        &format!("/console/money/pledges/{id}/receipt?{query}"),
        &s.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    let key = field(&confirm.body, "key");
    let answer = post(
        app,
        &format!("/console/money/pledges/{id}/receipt"),
        &s.cookie,
        &[
            ("csrf", &field(&confirm.body, "csrf")),
            ("key", &key),
            ("amount", &field(&confirm.body, "amount")),
            ("date", &field(&confirm.body, "date")),
            ("method", &field(&confirm.body, "method")),
        ],
    )
    .await;
    (answer, confirm.body.replace('\u{a0}', " "))
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledge_is_found_by_its_code(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, code) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;

    // the empty find page
    let page = get(&app, "/console/money", &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("id=\"code\" name=\"q\" type=\"search\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"find-empty\""), "{}", page.body);
    assert_eq!(
        text_of(&page.body, "no-receipts-today"),
        "No receipts today."
    );
    assert!(
        page.body.contains("aria-current=\"page\">Money<"),
        "{}",
        page.body
    );

    let page = get(&app, &format!("/console/money?code={code}"), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let b = &page.body;
    assert_eq!(text_of(b, "pledge-title"), format!("Pledge {code} "));
    assert_eq!(text_of(b, "pledge-status"), "Pledged");
    assert_eq!(
        text_of(b, "pledge-household"),
        format!("No. {} · +99290*****33", seed.household)
    );
    assert!(!b.contains(PHONE_TG), "the full number is shown: {b}");
    assert_eq!(text_of(b, "pledge-project"), "Bridge");
    assert_eq!(text_of(b, "pledge-amount"), "1,000.00 TJS");
    assert_eq!(text_of(b, "pledge-received"), "0.00 TJS");
    assert_eq!(text_of(b, "pledge-outstanding"), "1,000.00 TJS");
    assert_eq!(text_of(b, "matched-total"), "0.00 TJS");
    // the receipt form: amount = outstanding, today in HASHAR_TIMEZONE, cash
    assert!(b.contains("name=\"amount\" value=\"1,000.00\""), "{b}");
    assert!(
        b.contains("name=\"date\" type=\"date\" value=\"2026-11-28\""),
        "{b}"
    );
    assert!(b.contains("<option value=\"cash\" selected>"), "{b}");
    assert!(
        b.contains(&format!("action=\"/console/money/pledges/{id}/receipt\"")),
        "{b}"
    );

    // the same URL for htmx: the fragment only
    let fragment = get_with(
        &app,
        &format!("/console/money?code={code}"),
        &s.cookie,
        &[("hx-request", "true")],
    )
    .await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(!fragment.body.contains("<html"), "{}", fragment.body);
    assert!(fragment.body.contains("id=\"pledge\""), "{}", fragment.body);
    // …but a history restore gets the whole page
    let restore = get_with(
        &app,
        &format!("/console/money?code={code}"),
        &s.cookie,
        &[
            ("hx-request", "true"),
            ("hx-history-restore-request", "true"),
        ],
    )
    .await;
    assert!(restore.body.contains("<html"));

    // a code nobody has, and a malformed one
    let page = get(&app, "/console/money?code=0000000", &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        text_of(&page.body, "not-found"),
        "No pledge 0000000 in your communities"
    );
    let page = get(&app, "/console/money?code=1234", &s.cookie).await;
    assert!(
        text_of(&page.body, "code-error").starts_with("Part of a phone number is not a search"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"1234\""), "typed input kept");

    // the pledge's own URL shows the same card; other languages word it their way
    let page = get(
        &app,
        &format!("/console/money/pledges/{id}?lang=ru"),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(text_of(&page.body, "pledge-amount"), "1 000,00 TJS");
    assert!(page.body.contains("<html lang=\"ru\">"));
    let page = get(
        &app,
        &format!("/console/money/pledges/{id}?lang=tg"),
        &s.cookie,
    )
    .await;
    assert_eq!(
        text_of(&page.body, "pledge-title"),
        format!("Ваъдаи {code} ")
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_receipt_is_confirmed_then_recorded_in_part_and_in_full(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, code) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "2000").await;

    let (answer, confirm) = record(&app, &s, id, "1 500,50").await;
    assert_eq!(
        text_of(&confirm, "confirm-what"),
        format!(
            "Record 1,500.50 TJS for pledge {code}, Bridge, household {}?",
            seed.household
        )
    );
    assert!(
        confirm.contains("The household gets an SMS receipt."),
        "{confirm}"
    );
    assert!(
        confirm.contains("Outstanding afterwards: 499.50 TJS."),
        "{confirm}"
    );
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location(), format!("/console/money/pledges/{id}"));

    // the ledger after the change, with the one-time flash
    let page = get(&app, answer.location(), &s.cookie).await;
    let b = &page.body;
    assert_eq!(
        text_of(b, "flash"),
        "Recorded 1,500.50 TJS · SMS receipt queued"
    );
    assert_eq!(text_of(b, "pledge-received"), "1,500.50 TJS");
    assert_eq!(text_of(b, "pledge-outstanding"), "499.50 TJS");
    assert_eq!(text_of(b, "matched-total"), "3,001.00 TJS", "1:1 match");
    assert!(b.contains("Dilnoza Rahimova"), "who recorded it: {b}");
    assert!(b.contains("Receipt recorded"), "the audit entry: {b}");
    let page = get(&app, &format!("/console/money/pledges/{id}"), &s.cookie).await;
    assert!(!page.body.contains("id=\"flash\""), "the flash shows once");
    // today's receipts on the find page link to the pledge
    let find = get(&app, "/console/money", &s.cookie).await;
    assert!(find.body.contains("id=\"today-receipts\""), "{}", find.body);
    assert!(
        find.body.contains(&format!(
            "<a href=\"/console/money/pledges/{id}\">{code}</a>, Bridge"
        )),
        "{}",
        find.body
    );

    // the household's SMS receipt is queued, as by the API
    let queued: i64 = sqlx::query_scalar("select count(*) from outbox where phone = $1")
        .bind(PHONE_TG)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(queued, 1);

    // the rest: the default amount is what is outstanding
    assert!(
        page.body.contains("name=\"amount\" value=\"499.50\""),
        "{}",
        page.body
    );
    let (answer, _) = record(&app, &s, id, "499.50").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = get(&app, &format!("/console/money/pledges/{id}"), &s.cookie).await;
    assert_eq!(text_of(&page.body, "pledge-status"), "Received");
    assert_eq!(text_of(&page.body, "pledge-outstanding"), "0.00 TJS");
    assert!(
        !page.body.contains("id=\"receipt-form\""),
        "nothing left to record"
    );
    assert_eq!(receipts(&app.pool, id).await, 2);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn more_than_outstanding_and_bad_amounts_are_refused_beside_the_field(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, _) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;

    let page = get(
        &app,
        &format!("/console/money/pledges/{id}/receipt?amount=2000&date=2026-11-28&method=cash"),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let b = &page.body;
    assert_eq!(
        text_of(b, "amount-error"),
        "That is more than is outstanding on the pledge."
    );
    assert!(b.contains("id=\"error-summary\""), "{b}");
    assert!(b.contains("<a href=\"#amount\">That is more than"), "{b}");
    assert!(
        b.contains("name=\"amount\" value=\"2000\""),
        "typed input kept: {b}"
    );

    for (amount, date) in [
        ("abc", "2026-11-28"),
        ("-5", "2026-11-28"),
        ("1.2345", "2026-11-28"),
    ] {
        let query = common::form(&[("amount", amount), ("date", date), ("method", "cash")]);
        let page = get(
            &app,
            &format!("/console/money/pledges/{id}/receipt?{query}"),
            &s.cookie,
        )
        .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{amount}");
        assert!(
            text_of(&page.body, "amount-error").starts_with("Give an amount above 0"),
            "{amount}: {}",
            page.body
        );
    }
    let page = get(
        &app,
        &format!("/console/money/pledges/{id}/receipt?amount=10&date=2019-01-01&method=cash"),
        &s.cookie,
    )
    .await;
    assert_eq!(
        text_of(&page.body, "date-error"),
        "Give a date from 2020 up to today."
    );

    // past the confirm page (a stale form): the service refuses, the form comes back
    let csrf = s.csrf.clone();
    let answer = post(
        &app,
        &format!("/console/money/pledges/{id}/receipt"),
        &s.cookie,
        &[
            ("csrf", &csrf),
            ("key", "k-over"),
            ("amount", "2000"),
            ("date", "2026-11-28"),
            ("method", "cash"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        answer.location(),
        format!("/console/money/pledges/{id}?amount=2000&date=2026-11-28&method=cash")
    );
    let page = get(&app, answer.location(), &s.cookie).await;
    assert_eq!(
        text_of(&page.body, "amount-error"),
        "That is more than is outstanding on the pledge."
    );
    assert!(page.body.contains("name=\"amount\" value=\"2000\""));
    assert!(!page.body.contains("exceed"), "never the database's words");
    assert_eq!(receipts(&app.pool, id).await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledge_is_cancelled_with_a_reason_and_then_takes_no_money(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, code) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "300").await;

    // a reason is required
    let page = get(
        &app,
        &format!("/console/money/pledges/{id}/cancel?reason=+"),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        text_of(&page.body, "reason-error"),
        "Give a reason (at most 500 characters)."
    );

    let confirm = get(
        &app,
        &format!("/console/money/pledges/{id}/cancel?reason=Moved+to+Dushanbe"),
        &s.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        text_of(&confirm.body, "confirm-what"),
        format!(
            "Cancel pledge {code} of 300.00 TJS for Bridge, household {}?",
            seed.household
        )
    );
    let answer = post(
        &app,
        &format!("/console/money/pledges/{id}/cancel"),
        &s.cookie,
        &[
            ("csrf", &field(&confirm.body, "csrf")),
            ("key", &field(&confirm.body, "key")),
            ("reason", &field(&confirm.body, "reason")),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = get(&app, answer.location(), &s.cookie).await;
    let b = &page.body;
    assert_eq!(text_of(b, "flash"), "Pledge cancelled");
    assert_eq!(text_of(b, "pledge-status"), "Cancelled");
    assert!(
        text_of(b, "pledge-cancellation").ends_with("by Dilnoza Rahimova: Moved to Dushanbe"),
        "{b}"
    );
    assert!(!b.contains("id=\"receipt-form\""), "{b}");

    // no money for a cancelled pledge
    let page = get(
        &app,
        &format!("/console/money/pledges/{id}/receipt?amount=10&date=2026-11-28&method=cash"),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body
            .contains("This pledge is cancelled: no money can be recorded for it."),
        "{}",
        page.body
    );

    // a pledge with money on it cannot be cancelled
    let (paid, _) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "300").await;
    let (answer, _) = record(&app, &s, paid, "100").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = get(
        &app,
        &format!("/console/money/pledges/{paid}/cancel?reason=x"),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        text_of(&page.body, "reason-error"),
        "Money was received for this pledge, so it cannot be cancelled."
    );
    // and past the confirm page the database's rule says the same, in our words
    let answer = post(
        &app,
        &format!("/console/money/pledges/{paid}/cancel"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", "k-cancel"), ("reason", "x")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = get(&app, answer.location(), &s.cookie).await;
    assert_eq!(
        text_of(&page.body, "reason-error"),
        "Money was received for this pledge, so it cannot be cancelled."
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_partners_disbursement_is_recorded_up_to_the_match_due(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, _) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;
    let (answer, _) = record(&app, &s, id, "1000").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);

    let url = format!("/console/money/projects/{}", seed.bridge);
    let page = get(&app, &url, &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(text_of(&page.body, "match-due"), "1,000.00 TJS");
    assert_eq!(text_of(&page.body, "matched-total"), "2,000.00 TJS");
    assert!(page.body.contains("id=\"no-disbursements\""));

    let page = get(
        &app,
        &format!("{url}/disburse?amount=1500&date=2026-11-28&partner=UNDP"),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        text_of(&page.body, "amount-error"),
        "That is more than the match due."
    );
    let page = get(
        &app,
        &format!("{url}/disburse?amount=10&date=2026-11-28&partner="),
        &s.cookie,
    )
    .await;
    assert_eq!(
        text_of(&page.body, "partner-error"),
        "Name the partner (at most 200 characters)."
    );

    let confirm = get(
        &app,
        &format!("{url}/disburse?amount=600&date=2026-11-28&partner=UNDP&reference=TR-7"),
        &s.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        text_of(&confirm.body, "confirm-what"),
        "Record 600.00 TJS from UNDP as matching for Bridge?"
    );
    let answer = post(
        &app,
        &format!("{url}/disburse"),
        &s.cookie,
        &[
            ("csrf", &field(&confirm.body, "csrf")),
            ("key", &field(&confirm.body, "key")),
            ("amount", "600"),
            ("date", "2026-11-28"),
            ("partner", "UNDP"),
            ("reference", "TR-7"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), url);
    let page = get(&app, &url, &s.cookie).await;
    assert_eq!(
        text_of(&page.body, "flash"),
        "Disbursement of 600.00 TJS recorded"
    );
    assert_eq!(text_of(&page.body, "match-due"), "400.00 TJS");
    assert_eq!(text_of(&page.body, "disbursed"), "600.00 TJS");
    assert!(page.body.contains("id=\"disbursements\""));
    // the pledge card shows the project's match due too
    let page = get(&app, &format!("/console/money/pledges/{id}"), &s.cookie).await;
    assert_eq!(text_of(&page.body, "match-due"), "400.00 TJS");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_double_submit_records_once(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, _) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;
    let confirm = get(
        &app,
        &format!("/console/money/pledges/{id}/receipt?amount=200&date=2026-11-28&method=cash"),
        &s.cookie,
    )
    .await;
    let fields = [
        ("csrf", field(&confirm.body, "csrf")),
        ("key", field(&confirm.body, "key")),
        ("amount", "200".to_owned()),
        ("date", "2026-11-28".to_owned()),
        ("method", "cash".to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let uri = format!("/console/money/pledges/{id}/receipt");
    let (first, second) = tokio::join!(
        post(&app, &uri, &s.cookie, &fields),
        post(&app, &uri, &s.cookie, &fields)
    );
    let third = post(&app, &uri, &s.cookie, &fields).await;
    for a in [&first, &second, &third] {
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    }
    assert_eq!(receipts(&app.pool, id).await, 1);
    let queued: i64 = sqlx::query_scalar("select count(*) from outbox where phone = $1")
        .bind(PHONE_TG)
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(queued, 1, "one SMS receipt");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_post_without_its_csrf_token_is_refused(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, _) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;
    for fields in [
        vec![
            ("key", "k1"),
            ("amount", "10"),
            ("date", "2026-11-28"),
            ("method", "cash"),
        ],
        vec![
            ("csrf", "not-the-token"),
            ("key", "k2"),
            ("amount", "10"),
            ("date", "2026-11-28"),
            ("method", "cash"),
        ],
    ] {
        let answer = post(
            &app,
            &format!("/console/money/pledges/{id}/receipt"),
            &s.cookie,
            &fields,
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    }
    let answer = post(
        &app,
        &format!("/console/money/pledges/{id}/cancel"),
        &s.cookie,
        &[("key", "k3"), ("reason", "x")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(receipts(&app.pool, id).await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn another_communitys_pledge_is_not_found(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let sarazm =
        common::add_household(&app.pool, seed.other_community, Some("tg"), "+992931119999").await;
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(&app.pool)
        .await
        .expect("water");
    let (id, code) = pledge(&app.pool, water, sarazm, "+992931119999", "500").await;
    common::receive(&app.pool, water, "500").await;

    // by code: the same words as a code nobody has
    let page = get(&app, &format!("/console/money?code={code}"), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        text_of(&page.body, "not-found"),
        format!("No pledge {code} in your communities")
    );
    assert!(!page.body.contains("Water"), "{}", page.body);

    // nor among today's receipts
    let page = get(&app, "/console/money", &s.cookie).await;
    assert!(!page.body.contains("Water"), "{}", page.body);
    assert!(
        page.body.contains("id=\"no-receipts-today\""),
        "{}",
        page.body
    );

    // by URL: 404
    for uri in [
        format!("/console/money/pledges/{id}"),
        format!("/console/money/pledges/{id}/receipt?amount=1&date=2026-11-28&method=cash"),
        format!("/console/money/pledges/{id}/cancel?reason=x"),
        format!("/console/money/projects/{water}"),
        format!("/console/money/projects/{water}/disburse?amount=1&date=2026-11-28&partner=P"),
    ] {
        let page = get(&app, &uri, &s.cookie).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!page.body.contains("Water"), "{uri}");
    }
    for (uri, fields) in [
        (
            format!("/console/money/pledges/{id}/receipt"),
            vec![
                ("amount", "1"),
                ("date", "2026-11-28"),
                ("method", "cash"),
                ("key", "a"),
            ],
        ),
        (
            format!("/console/money/pledges/{id}/cancel"),
            vec![("reason", "x"), ("key", "b")],
        ),
        (
            format!("/console/money/projects/{water}/disburse"),
            vec![
                ("amount", "1"),
                ("date", "2026-11-28"),
                ("partner", "P"),
                ("key", "c"),
            ],
        ),
    ] {
        let mut fields = fields;
        fields.push(("csrf", &s.csrf));
        let answer = post(&app, &uri, &s.cookie, &fields).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    }
    assert_eq!(receipts(&app.pool, id).await, 0);
    let disbursed: i64 = sqlx::query_scalar("select count(*) from match_disbursements")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(disbursed, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn counsellors_and_officers_get_404_and_strangers_the_sign_in_page(pool: PgPool) {
    let (app, seed, _) = setup(pool).await;
    let (id, code) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;
    staff(&app, "Counsellor", "+992900000802", Role::Counsellor, &[]).await;
    staff(
        &app,
        "Officer",
        "+992900000803",
        Role::Officer,
        &[seed.community],
    )
    .await;
    for (phone, ip) in [
        ("+992900000802", [10, 1, 1, 2]),
        ("+992900000803", [10, 1, 1, 3]),
    ] {
        let s = sign_in(&app, phone, ip).await;
        let home = get(&app, "/console", &s.cookie).await;
        assert!(
            !home.body.contains("href=\"/console/money\""),
            "no money in their menu"
        );
        for uri in [
            "/console/money".to_owned(),
            format!("/console/money?code={code}"),
            format!("/console/money/pledges/{id}"),
            format!("/console/money/projects/{}", seed.bridge),
        ] {
            let page = get(&app, &uri, &s.cookie).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{phone} {uri}");
        }
        let answer = post(
            &app,
            &format!("/console/money/pledges/{id}/receipt"),
            &s.cookie,
            &[
                ("csrf", &s.csrf),
                ("key", phone),
                ("amount", "1"),
                ("date", "2026-11-28"),
                ("method", "cash"),
            ],
        )
        .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
    }
    let page = get(&app, &format!("/console/money/pledges/{id}"), "").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/login");
    assert_eq!(receipts(&app.pool, id).await, 0);
}

/// The households' search: a phone in any spelling, a household's number and part of its
/// name list the household with its pledges; part of a number is refused in words; a number
/// of another community's household answers as an unknown number does.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_phone_a_household_number_or_a_name_lists_the_households_pledges(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let (id, code) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;
    sqlx::query("update households set name = 'Karimov' where id = $1")
        .bind(seed.household)
        .execute(&app.pool)
        .await
        .expect("a name");
    let link = format!("href=\"/console/money/pledges/{id}\" class=\"pledge-link\">{code}<");
    for q in [
        "%2B992%2090%20111%2022%2033",
        "901112233",
        "00992901112233",
        &format!("No.%20{}", seed.household),
        "karim",
    ] {
        let page = get(&app, &format!("/console/money?q={q}"), &s.cookie).await;
        assert_eq!(page.status, StatusCode::OK, "{q}: {}", page.body);
        assert!(page.body.contains(&link), "{q}: {}", page.body);
        assert!(
            page.body.contains(&format!("found-{}", seed.household)),
            "{q}"
        );
        assert!(
            !page.body.contains(PHONE_TG),
            "{q}: the full number is shown"
        );
    }
    // htmx gets the result alone
    let part = get_with(
        &app,
        "/console/money?q=901112233",
        &s.cookie,
        &[("hx-request", "true")],
    )
    .await;
    assert!(part.body.contains(&link));
    assert!(!part.body.contains("<html"), "{}", part.body);

    let page = get(&app, "/console/money?q=90111", &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        text_of(&page.body, "code-error").starts_with("Part of a phone number is not a search"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("pledge-link"));

    // Sarazm's number and a number nobody has: the same words
    let b =
        common::add_household(&app.pool, seed.other_community, Some("tg"), "+992931119999").await;
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(&app.pool)
        .await
        .expect("water");
    pledge(&app.pool, water, b, "+992931119999", "700").await;
    let elsewhere = get(&app, "/console/money?q=%2B992931119999", &s.cookie).await;
    let unknown = get(&app, "/console/money?q=%2B992931119998", &s.cookie).await;
    assert_eq!(elsewhere.status, unknown.status);
    assert_eq!(
        text_of(&elsewhere.body, "not-found"),
        "No household with the number +992931119999 in your communities"
    );
    assert_eq!(
        text_of(&unknown.body, "not-found").replace("9998", "9999"),
        text_of(&elsewhere.body, "not-found")
    );
    assert!(!elsewhere.body.contains("pledge-link"));
    let page = get(&app, &format!("/console/money?q=%23{b}"), &s.cookie).await;
    assert_eq!(
        text_of(&page.body, "not-found"),
        format!("No household No. {b} in your communities")
    );
    let page = get(&app, "/console/money?q=Nobody", &s.cookie).await;
    assert_eq!(
        text_of(&page.body, "not-found"),
        "No household named “Nobody” in your communities"
    );
    // the old address of a code still works
    let page = get(&app, &format!("/console/money?code={code}"), &s.cookie).await;
    assert!(page.body.contains("id=\"pledge\""));
}

/// Money without a pledge from a household named by its number: checked, confirmed,
/// recorded once, listed on the project's ledger with the household; a number of another
/// community's household is refused beside the field.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn money_without_a_pledge_is_confirmed_and_listed_on_the_project(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let url = format!("/console/money/projects/{}", seed.bridge);
    let page = get(&app, &url, &s.cookie).await;
    assert!(page.body.contains("id=\"unpledged-form\""), "{}", page.body);
    assert!(page.body.contains("id=\"no-unpledged\""));

    common::add_household(&app.pool, seed.other_community, Some("tg"), "+992931119999").await;
    let refused = get(
        &app,
        &format!("{url}/receipt?amount=250&date=2026-11-28&method=cash&phone=%2B992931119999"),
        &s.cookie,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        text_of(&refused.body, "r_phone-error").replace("&#39;", "'"),
        "No such household in the project's community."
    );

    let confirm = get(
        &app,
        &format!("{url}/receipt?amount=250&date=2026-11-28&method=cash&phone=901112233"),
        &s.cookie,
    )
    .await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        text_of(&confirm.body, "confirm-what"),
        format!(
            "Record 250.00 TJS for Bridge without a pledge, from No. {}?",
            seed.household
        )
    );
    let form = [
        ("csrf", field(&confirm.body, "csrf")),
        ("key", field(&confirm.body, "key")),
        ("amount", field(&confirm.body, "amount")),
        ("date", field(&confirm.body, "date")),
        ("method", field(&confirm.body, "method")),
        ("phone", field(&confirm.body, "phone")),
        ("receipt_no", field(&confirm.body, "receipt_no")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let answer = post(&app, &format!("{url}/receipt"), &s.cookie, &form).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.location(), url);
    }
    let (count, household): (i64, Option<i64>) = sqlx::query_as(
        "select count(*), max(household_id) from receipts where pledge_id is null and project_id = $1",
    )
    .bind(seed.bridge)
    .fetch_one(&app.pool)
    .await
    .expect("receipts");
    assert_eq!(
        (count, household),
        (1, Some(seed.household)),
        "recorded once"
    );
    let page = get(&app, &url, &s.cookie).await;
    assert_eq!(
        text_of(&page.body, "flash"),
        "Recorded 250.00 TJS without a pledge"
    );
    assert_eq!(text_of(&page.body, "project-received"), "250.00 TJS");
    assert!(page.body.contains("id=\"unpledged\""));
    assert!(page
        .body
        .contains(&format!("href=\"/console/households/{}\"", seed.household)));
    // a coordinator reverses nothing
    assert!(!page.body.contains("reverse-receipt-"));
    let audit: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'receipt.record_without_pledge'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audit, 1);
}

/// An admin reverses a receipt (the pledge is outstanding again) and a disbursement, each
/// with a reason on its confirm page, once; a coordinator gets 404 there.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_admin_reverses_a_receipt_and_a_disbursement(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    staff(&app, "Admin", "+992900000809", Role::Admin, &[]).await;
    let admin = sign_in(&app, "+992900000809", [10, 1, 0, 9]).await;
    let (id, _) = pledge(&app.pool, seed.bridge, seed.household, PHONE_TG, "1000").await;
    let (answer, _) = record(&app, &s, id, "400").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let receipt: i64 = sqlx::query_scalar("select id from receipts where pledge_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("the receipt");
    let pledge_url = format!("/console/money/pledges/{id}");
    let page = get(&app, &pledge_url, &s.cookie).await;
    assert!(!page.body.contains("reverse-receipt-"));
    let reverse = format!("/console/money/receipts/{receipt}/reverse");
    assert_eq!(
        get(&app, &reverse, &s.cookie).await.status,
        StatusCode::NOT_FOUND
    );

    let page = get(&app, &pledge_url, &admin.cookie).await;
    assert!(page
        .body
        .contains(&format!("id=\"reverse-receipt-{receipt}\"")));
    let confirm = get(&app, &reverse, &admin.cookie).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_eq!(
        text_of(&confirm.body, "confirm-what"),
        "Reverse the receipt of 400.00 TJS of 28 Nov 2026 for Bridge?"
    );
    assert!(confirm.body.contains("name=\"reason\""));
    // no reason: back to the page, the reason asked for beside the field
    let answer = post(
        &app,
        &reverse,
        &admin.cookie,
        &[("csrf", &admin.csrf), ("key", "rev-0"), ("reason", " ")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let again = get(&app, answer.location(), &admin.cookie).await;
    assert_eq!(
        text_of(&again.body, "reason-error"),
        "Give a reason (at most 500 characters)."
    );
    let key = field(&confirm.body, "key");
    for _ in 0..2 {
        let answer = post(
            &app,
            &reverse,
            &admin.cookie,
            &[
                ("csrf", &admin.csrf),
                ("key", &key),
                ("reason", "Typed twice"),
            ],
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.location(), pledge_url);
    }
    let page = get(&app, &pledge_url, &admin.cookie).await;
    assert_eq!(
        text_of(&page.body, "flash"),
        "Receipt of 400.00 TJS reversed"
    );
    assert_eq!(text_of(&page.body, "pledge-outstanding"), "1,000.00 TJS");
    assert!(
        !page.body.contains("reverse-receipt-"),
        "nothing left to reverse"
    );
    let reversals: i64 = sqlx::query_scalar("select count(*) from receipts where reverses = $1")
        .bind(receipt)
        .fetch_one(&app.pool)
        .await
        .expect("reversals");
    assert_eq!(reversals, 1);
    let done = get(&app, &reverse, &admin.cookie).await;
    assert_eq!(done.status, StatusCode::CONFLICT);
    assert!(!done.body.contains("id=\"confirm\""));

    // a disbursement
    common::receive(&app.pool, seed.bridge, "500").await;
    let url = format!("/console/money/projects/{}", seed.bridge);
    let confirm = get(
        &app,
        &format!("{url}/disburse?amount=300&date=2026-11-28&partner=UNDP"),
        &admin.cookie,
    )
    .await;
    let answer = post(
        &app,
        &format!("{url}/disburse"),
        &admin.cookie,
        &[
            ("csrf", &admin.csrf),
            ("key", &field(&confirm.body, "key")),
            ("amount", "300"),
            ("date", "2026-11-28"),
            ("partner", "UNDP"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let disbursement: i64 = sqlx::query_scalar("select id from match_disbursements")
        .fetch_one(&app.pool)
        .await
        .expect("the disbursement");
    let page = get(&app, &url, &admin.cookie).await;
    assert!(page
        .body
        .contains(&format!("id=\"reverse-disbursement-{disbursement}\"")));
    let reverse = format!("/console/money/disbursements/{disbursement}/reverse");
    assert_eq!(
        get(&app, &reverse, &s.cookie).await.status,
        StatusCode::NOT_FOUND
    );
    let confirm = get(&app, &reverse, &admin.cookie).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(text_of(&confirm.body, "confirm-what")
        .replace("&#39;", "'")
        .starts_with("Reverse UNDP's disbursement of 300.00 TJS"));
    let answer = post(
        &app,
        &reverse,
        &admin.cookie,
        &[
            ("csrf", &admin.csrf),
            ("key", &field(&confirm.body, "key")),
            ("reason", "Wrong project"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), url);
    let page = get(&app, &url, &admin.cookie).await;
    assert_eq!(
        text_of(&page.body, "flash"),
        "Disbursement of 300.00 TJS reversed"
    );
    assert_eq!(text_of(&page.body, "disbursed"), "0.00 TJS");
    let audit: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action in ('receipt.reverse', 'disbursement.reverse')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("audit");
    assert_eq!(audit, 2);
}
