//! The console's Broadcasts pages through the real router and a real database: the empty
//! list, the compose page and its live fragments (htmx asks with `HX-Request` and gets the
//! out-of-band parts only; the same URL without it is the whole page), the measures
//! (Cyrillic is UCS-2 with 70/67, a longer text takes more SMS parts, the quiet hours move a
//! late time to the morning), the refusals in words (no community, an empty text, an
//! audience nobody in it can get), a POST without its CSRF token refused, the draft → confirm
//! → send → Undo → copy and send again path with its outbox rows and audit rows, a repeated
//! form key acting once, an SMS answer `1` moving the RSVP tally, and who sees what: a
//! coordinator of A gets 404 for a broadcast to B, counsellors and programme officers get
//! 404 for every page.

mod common;
mod console_kit;

use axum::http::StatusCode;
use common::{Seed, TestApp};
use console_kit::{field, get, get_with, post, sign_in, staff, Signed};
use hashar::store::staff::Role;
use sqlx::PgPool;

const COORDINATOR: &str = "+992900000821";
const ADMIN: &str = "+992900000822";
const COUNSELLOR: &str = "+992900000823";
const OFFICER: &str = "+992900000824";

const TG: &str = "Ҷаласаи деҳа {date} соати {time}. Меоед? 1 Ҳа, 2 Не";
const RU: &str = "Собрание села {date} в {time}. Придёте? 1 Да, 2 Нет";
const EN: &str = "Village meeting on {date} at {time}. Coming? 1 Yes, 2 No";

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
    let signed = sign_in(&app, COORDINATOR, [10, 3, 0, 1]).await;
    (app, seed, signed)
}

async fn as_role(app: &TestApp, phone: &str, role: Role, communities: &[i64], ip: u8) -> Signed {
    staff(app, &format!("{role}"), phone, role, communities).await;
    sign_in(app, phone, [10, 3, 1, ip]).await
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn compose<'a>(community: &'a str, s: &'a Signed) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", s.csrf.as_str()),
        ("community", community),
        ("text_tg", TG),
        ("text_ru", RU),
        ("text_en", EN),
        ("date", "1.12"),
        ("time", "10:00"),
        ("when", "now"),
    ]
}

/// The broadcast id in a `/console/broadcasts/{id}/send…` address.
fn id_in(location: &str) -> i64 {
    location
        .trim_start_matches("/console/broadcasts/")
        .split('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no broadcast in {location:?}"))
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_empty_list_and_the_compose_page(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let list = get(&app, "/console/broadcasts", &s.cookie).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert!(list.body.contains("id=\"no-broadcasts\""), "{}", list.body);
    assert!(list.body.contains("No broadcasts yet"));
    assert!(list.body.contains("href=\"/console/broadcasts/new\""));
    // the navigation offers the page
    assert!(
        list.body.contains("aria-current=\"page\">Broadcasts<"),
        "{}",
        list.body
    );

    let page = get(&app, "/console/broadcasts/new", &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for id in [
        "text_tg",
        "text_ru",
        "text_en",
        "measure-tg",
        "reach",
        "when-note",
        "preview",
    ] {
        assert!(page.body.contains(&format!("id=\"{id}\"")), "{id}");
    }
    // the live preview asks as one types, and reads the audience only when it changes
    assert!(page
        .body
        .contains("hx-trigger=\"input changed delay:400ms\""));
    assert!(page
        .body
        .contains("hx-get=\"/console/broadcasts/new?part=audience\" hx-trigger=\"change\""));
    // Anzob is offered, Sarazm (not theirs) is not
    assert!(page
        .body
        .contains(&format!("name=\"community\" value=\"{}\"", seed.community)));
    assert!(!page.body.contains(&format!(
        "name=\"community\" value=\"{}\"",
        seed.other_community
    )));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_live_preview_is_a_fragment_for_htmx_and_a_page_without(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let htmx = [("hx-request", "true")];
    // Latin: GSM-7, 160/153, one part
    let text = get_with(
        &app,
        "/console/broadcasts/new?part=text&text_en=Meeting%20at%20the%20school&n_tg=2&n_ru=1&n_en=1",
        &s.cookie,
        &htmx,
    )
    .await;
    assert_eq!(text.status, StatusCode::OK);
    assert!(!text.body.contains("<html"), "{}", text.body);
    assert!(text.body.contains("hx-swap-oob=\"true\""));
    assert!(
        text.body
            .contains("id=\"measure-en\" data-encoding=\"gsm7\" data-segments=\"1\""),
        "{}",
        text.body
    );
    assert!(text
        .body
        .contains("160 characters fit in one SMS; a longer text is sent in parts of 153."));
    // no audience part: that is read only when the audience changes
    assert!(!text.body.contains("id=\"reach\""));
    // Cyrillic: UCS-2, 70/67; 71 letters take two parts, for 2 recipients: 4 parts
    let long = "д".repeat(71);
    let text = get_with(
        &app,
        &format!(
            "/console/broadcasts/new?part=text&text_tg={}&n_tg=2&n_ru=0&n_en=0",
            urlencode(&long)
        ),
        &s.cookie,
        &htmx,
    )
    .await;
    assert!(
        text.body
            .contains("id=\"measure-tg\" data-encoding=\"ucs2\" data-segments=\"2\""),
        "{}",
        text.body
    );
    assert!(text
        .body
        .contains("70 characters fit in one SMS; a longer text is sent in parts of 67."));
    assert!(
        text.body
            .contains("UCS-2 · 71 characters · 2 SMS parts each"),
        "{}",
        text.body
    );
    // the configured price per part, times 4 parts
    let price =
        hashar::config::Config::from_env().sms_price_per_segment * rust_decimal::Decimal::from(4);
    assert!(
        text.body
            .contains(&format!("2 recipients · 4 SMS parts in all · {price:.2}")),
        "{}",
        text.body
    );
    // 22:00 in Dushanbe is in the quiet hours: moved to 07:00 the next morning
    let late = get_with(
        &app,
        "/console/broadcasts/new?part=text&when=later&at=2026-11-28T22%3A00",
        &s.cookie,
        &htmx,
    )
    .await;
    let quiet = app_quiet();
    assert!(
        late.body.contains(&format!(
            "Will be sent at {} tomorrow (quiet hours {}–{})",
            quiet.1, quiet.0, quiet.1
        )),
        "{}",
        late.body
    );
    // the audience: Anzob's four households, one of them without a language (counted in Tajik)
    let reach = get_with(
        &app,
        &format!(
            "/console/broadcasts/new?part=audience&community={}",
            seed.community
        ),
        &s.cookie,
        &htmx,
    )
    .await;
    assert!(reach.body.contains("4 numbers get it"), "{}", reach.body);
    assert!(
        reach.body.contains("name=\"n_tg\" value=\"2\""),
        "{}",
        reach.body
    );
    // the same address without htmx: the whole page, what was typed kept
    let page = get(
        &app,
        &format!(
            "/console/broadcasts/new?part=text&text_tg={}",
            urlencode(&long)
        ),
        &s.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<html") && page.body.contains(&long));
    // out of scope: another community's audience is not counted for this coordinator
    let other = get_with(
        &app,
        &format!(
            "/console/broadcasts/new?part=audience&community={}",
            seed.other_community
        ),
        &s.cookie,
        &htmx,
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

/// The quiet hours as `HASHAR_QUIET_HOURS` sets them for the tests: (start, end), `HH:MM`.
fn app_quiet() -> (String, String) {
    let window = hashar::config::Config::from_env().quiet_hours;
    let (a, b) = window.split_once('-').expect("a window");
    (a.trim().to_owned(), b.trim().to_owned())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn refusals_are_in_words_and_keep_what_was_typed(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let a = seed.community.to_string();
    // the preview button: the page with its figures, nothing stored
    let mut form = compose(&a, &s);
    form.push(("do", "preview"));
    let preview = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    assert!(
        preview.body.contains("4 numbers get it"),
        "{}",
        preview.body
    );
    assert!(preview.body.contains("Village meeting on {date}"));
    // no community
    let mut form = compose(&a, &s);
    form.retain(|(k, _)| *k != "community");
    let refused = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Choose at least one community."));
    assert!(
        refused.body.contains("Ҷаласаи деҳа {date}"),
        "what was typed is kept"
    );
    // an empty text
    let mut form = compose(&a, &s);
    form.retain(|(k, _)| *k != "text_ru");
    let refused = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("Write the text in every language."),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("href=\"#text_ru\""));
    // a placeholder without its value
    let mut form = compose(&a, &s);
    form.retain(|(k, _)| *k != "time");
    let refused = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert!(refused
        .body
        .contains("A placeholder in the text has no value"));
    // an audience nobody in it can get: Anzob's households that pledged to the roof (none)
    let roof = seed.roof.to_string();
    let mut form = compose(&a, &s);
    form.push(("only_project", &roof));
    let refused = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains("No one would get this"),
        "{}",
        refused.body
    );
    // in Russian too
    let ru = get(&app, "/console/broadcasts?lang=ru", &s.cookie).await;
    assert!(ru.body.contains("Рассылок пока нет"));
    let refused = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert!(
        refused.body.contains("Никто её не получит"),
        "{}",
        refused.body
    );
    assert_eq!(count(&app.pool, "select count(*) from broadcasts").await, 0);
    // without the CSRF token: refused before anything
    let mut form = compose(&a, &s);
    form.retain(|(k, _)| *k != "csrf");
    let csrf = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(csrf.status, StatusCode::FORBIDDEN);
    assert_eq!(count(&app.pool, "select count(*) from broadcasts").await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn send_undo_and_send_again_with_outbox_audit_and_answers(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let a = seed.community.to_string();
    let mut form = compose(&a, &s);
    form.push(("key", "compose-1"));
    let created = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = id_in(created.location());
    assert_eq!(created.location(), format!("/console/broadcasts/{id}/send"));
    // the same form again (a double tap): the same draft
    let again = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(again.location(), created.location());
    assert_eq!(count(&app.pool, "select count(*) from broadcasts").await, 1);

    let confirm = get(&app, created.location(), &s.cookie).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert!(
        confirm.body.contains("Send to 4 recipients:"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("Will be sent as soon as you confirm"));
    assert!(
        confirm.body.contains("Village meeting on 1.12 at 10:00."),
        "placeholders filled"
    );
    let key = field(&confirm.body, "key");
    let sent = post(
        &app,
        &format!("/console/broadcasts/{id}/send"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("at", "")],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    assert_eq!(sent.location(), format!("/console/broadcasts/{id}"));
    assert_eq!(
        count(
            &app.pool,
            &format!("select count(*) from outbox where broadcast_id = {id} and status = 'queued'")
        )
        .await,
        4
    );
    let page = get(&app, &format!("/console/broadcasts/{id}"), &s.cookie).await;
    assert!(
        page.body.contains("Sent: 4 messages queued"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"undo\""), "nothing went out: Undo");
    assert!(
        page.body.contains("hx-trigger=\"every 15s\""),
        "polled while in flight"
    );
    // the poll's fragment, and the same address as a page
    let part = get_with(
        &app,
        &format!("/console/broadcasts/{id}?part=progress"),
        &s.cookie,
        &[("hx-request", "true")],
    )
    .await;
    assert!(
        part.body.trim_start().starts_with("<section") && !part.body.contains("<html"),
        "{}",
        part.body
    );
    assert!(
        part.body.contains("id=\"state-queued\">4<"),
        "{}",
        part.body
    );

    // Undo: every waiting message stopped
    let key = field(&page.body, "key");
    let undo = post(
        &app,
        &format!("/console/broadcasts/{id}/cancel"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key)],
    )
    .await;
    assert_eq!(undo.status, StatusCode::SEE_OTHER);
    // a double tap on Undo acts once
    let twice = post(
        &app,
        &format!("/console/broadcasts/{id}/cancel"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key)],
    )
    .await;
    assert_eq!(twice.status, StatusCode::SEE_OTHER);
    assert_eq!(
        count(
            &app.pool,
            &format!(
                "select count(*) from outbox where broadcast_id = {id} and status = 'cancelled'"
            )
        )
        .await,
        4
    );
    let page = get(&app, &format!("/console/broadcasts/{id}"), &s.cookie).await;
    assert!(
        page.body.contains("Cancelled: 4 messages will not be sent"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("id=\"undo\""));
    assert!(page
        .body
        .contains(&format!("href=\"/console/broadcasts/new?copy={id}\"")));
    for (action, n) in [
        ("broadcast.create", 1),
        ("broadcast.send", 1),
        ("broadcast.cancel", 1),
    ] {
        let rows = count(
            &app.pool,
            &format!(
                "select count(*) from audit_log where action = '{action}' and subject_id = {id}"
            ),
        )
        .await;
        assert_eq!(rows, n, "{action}");
    }

    // the copy: the same texts and audience, ready to send again
    let copy = get(
        &app,
        &format!("/console/broadcasts/new?copy={id}"),
        &s.cookie,
    )
    .await;
    assert_eq!(copy.status, StatusCode::OK);
    assert!(copy.body.contains("Ҷаласаи деҳа {date}") && copy.body.contains("value=\"1.12\""));
    assert!(
        copy.body
            .contains(&format!("name=\"community\" value=\"{a}\" checked")),
        "{}",
        copy.body
    );
    let mut form = compose(&a, &s);
    form.push(("key", "compose-2"));
    let created = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    let second = id_in(created.location());
    assert_ne!(second, id);
    let confirm = get(&app, created.location(), &s.cookie).await;
    let key = field(&confirm.body, "key");
    let sent = post(
        &app,
        &format!("/console/broadcasts/{second}/send"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("at", "")],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);

    // a Tajik household answers 1 by SMS: the tally moves
    assert_eq!(
        app.text("rsvp-1", common::PHONE_TG, "1").await,
        StatusCode::OK
    );
    let page = get(&app, &format!("/console/broadcasts/{second}"), &s.cookie).await;
    assert!(page.body.contains("id=\"tally-yes\">1<"), "{}", page.body);
    assert!(page.body.contains("id=\"tally-no\">0<"));
    let list = get(&app, "/console/broadcasts", &s.cookie).await;
    assert!(list.body.contains(&format!("id=\"broadcast-{second}\"")));
    assert!(
        list.body.contains("Cancelled") && list.body.contains("Sending"),
        "{}",
        list.body
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_later_time_is_scheduled_out_of_the_quiet_hours(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let a = seed.community.to_string();
    let mut form = compose(&a, &s);
    form.retain(|(k, _)| *k != "when");
    form.push(("when", "later"));
    form.push(("at", "2026-11-28T22:00"));
    form.push(("key", "compose-later"));
    let created = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = id_in(created.location());
    assert!(
        created.location().ends_with("/send?at=2026-11-28T22%3A00"),
        "{}",
        created.location()
    );
    let confirm = get(&app, created.location(), &s.cookie).await;
    let quiet = app_quiet();
    assert!(
        confirm
            .body
            .contains(&format!("Will be sent at {} tomorrow", quiet.1)),
        "{}",
        confirm.body
    );
    let key = field(&confirm.body, "key");
    let at = field(&confirm.body, "at");
    let sent = post(
        &app,
        &format!("/console/broadcasts/{id}/send"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("at", &at)],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let status: String = sqlx::query_scalar("select status from broadcasts where id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("status");
    assert_eq!(status, "scheduled");
    assert_eq!(
        count(
            &app.pool,
            "select count(*) from outbox where broadcast_id is not null"
        )
        .await,
        0
    );
    let page = get(&app, &format!("/console/broadcasts/{id}"), &s.cookie).await;
    assert!(
        page.body.contains("Scheduled for 29 Nov 2026"),
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"undo\""));
    // the same form again (a double tap): done once, still scheduled
    let again = post(
        &app,
        &format!("/console/broadcasts/{id}/send"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("at", &at)],
    )
    .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(
        count(
            &app.pool,
            "select count(*) from outbox where broadcast_id is not null"
        )
        .await,
        0
    );
    assert_eq!(
        count(&app.pool, &format!("select count(*) from audit_log where action = 'broadcast.send' and subject_id = {id}")).await,
        1
    );
}

/// Issue 11, point 9: a member of the Russian-speaking household works in Moscow (+7). A
/// notice asked for 23:30 in Dushanbe (quiet there and in Moscow, 21:30): the compose page,
/// the confirmation and the broadcast's page say when each zone's group receives it, in
/// English and in Russian.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_preview_says_when_each_zone_receives_it(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    sqlx::query(
        "insert into phones (phone, household_id) select '+79161234567', household_id from phones where phone = $1",
    )
    .bind(common::PHONE_RU)
    .execute(&app.pool)
    .await
    .expect("a number in Moscow");
    let htmx = [("hx-request", "true")];
    let a = seed.community.to_string();
    // a later time chosen with the audience ticked: the zones are read again
    let part = get_with(
        &app,
        &format!(
            "/console/broadcasts/new?part=when&community={a}&when=later&at=2026-11-28T23%3A30"
        ),
        &s.cookie,
        &htmx,
    )
    .await;
    assert_eq!(part.status, StatusCode::OK);
    assert!(part.body.contains("id=\"reach-zones\""), "{}", part.body);
    assert!(
        part.body
            .contains("Dushanbe — 4 recipients: will be received tomorrow at 07:00"),
        "{}",
        part.body
    );
    assert!(
        part.body.contains(
            "Moscow — 1 recipient: will be received tomorrow at 07:00 Moscow time (09:00 Dushanbe)"
        ),
        "{}",
        part.body
    );
    // the first group's time: 07:00 in Dushanbe
    assert!(
        part.body.contains("Will be sent at 07:00 tomorrow"),
        "{}",
        part.body
    );
    // at 22:30 in Dushanbe it is 20:30 in Moscow: the number there gets it at once
    let early = get_with(
        &app,
        &format!(
            "/console/broadcasts/new?part=when&community={a}&when=later&at=2026-11-28T22%3A30"
        ),
        &s.cookie,
        &htmx,
    )
    .await;
    assert!(
        early.body.contains(
            "Moscow — 1 recipient: will be received today at 20:30 Moscow time (22:30 Dushanbe)"
        ),
        "{}",
        early.body
    );
    assert!(
        early.body.contains("Will be sent at 22:30 today"),
        "{}",
        early.body
    );
    // no audience yet: a time change is a text change, and says nothing of zones
    let none = get_with(
        &app,
        "/console/broadcasts/new?part=when&when=later&at=2026-11-28T23%3A30",
        &s.cookie,
        &htmx,
    )
    .await;
    assert_eq!(none.status, StatusCode::OK);
    assert!(!none.body.contains("reach-zones"), "{}", none.body);

    // the draft, its confirmation for 23:30 and its page once scheduled
    let mut form = compose(&a, &s);
    form.retain(|(k, _)| *k != "when");
    form.push(("when", "later"));
    form.push(("at", "2026-11-28T23:30"));
    form.push(("key", "compose-zones"));
    let created = post(&app, "/console/broadcasts/new", &s.cookie, &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let id = id_in(created.location());
    let confirm = get(&app, created.location(), &s.cookie).await;
    assert!(
        confirm.body.contains("id=\"confirm-zone-Europe-Moscow\">1 recipient: will be received tomorrow at 07:00 Moscow time (09:00 Dushanbe)"),
        "{}",
        confirm.body
    );
    assert!(
        confirm.body.contains(
            "id=\"confirm-zone-Asia-Dushanbe\">4 recipients: will be received tomorrow at 07:00<"
        ),
        "{}",
        confirm.body
    );
    assert!(
        confirm.body.contains("Will be sent at 07:00 tomorrow"),
        "{}",
        confirm.body
    );
    let key = field(&confirm.body, "key");
    let at = field(&confirm.body, "at");
    let sent = post(
        &app,
        &format!("/console/broadcasts/{id}/send"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", &key), ("at", &at)],
    )
    .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let page = get(
        &app,
        &format!("/console/broadcasts/{id}?lang=ru"),
        &s.cookie,
    )
    .await;
    assert!(
        page.body.contains("id=\"preview-zone-Europe-Moscow\">1 получатель: получат завтра в 07:00 по местному времени (Москва; Душанбе — 09:00)"),
        "{}",
        page.body
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn out_of_scope_and_out_of_role_is_404(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    let b: i64 = sqlx::query_scalar(
        "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, created_at)
         values ('test', array[$1::bigint], 'Об', 'Вода', 'Water meeting', now()) returning id",
    )
    .bind(seed.other_community)
    .fetch_one(&app.pool)
    .await
    .expect("a broadcast to B");
    for path in [
        format!("/console/broadcasts/{b}"),
        format!("/console/broadcasts/{b}/send"),
        format!("/console/broadcasts/new?copy={b}"),
    ] {
        let answer = get(&app, &path, &s.cookie).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!answer.body.contains("Water meeting"), "{path}");
    }
    let cancel = post(
        &app,
        &format!("/console/broadcasts/{b}/cancel"),
        &s.cookie,
        &[("csrf", &s.csrf), ("key", "k1")],
    )
    .await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    // nor in the list
    let list = get(&app, "/console/broadcasts", &s.cookie).await;
    assert!(!list.body.contains("Water meeting"));
    // an admin sees it
    let admin = as_role(&app, ADMIN, Role::Admin, &[], 1).await;
    let list = get(&app, "/console/broadcasts", &admin.cookie).await;
    assert!(list.body.contains("Water meeting"), "{}", list.body);
    // counsellors and programme officers do not send broadcasts
    let counsellor = as_role(&app, COUNSELLOR, Role::Counsellor, &[], 2).await;
    let officer = as_role(&app, OFFICER, Role::Officer, &[seed.community], 3).await;
    for who in [&counsellor, &officer] {
        for path in ["/console/broadcasts", "/console/broadcasts/new"] {
            let answer = get(&app, path, &who.cookie).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        }
        let home = get(&app, "/console", &who.cookie).await;
        assert!(!home.body.contains("href=\"/console/broadcasts\""));
    }
    assert_eq!(
        count(
            &app.pool,
            &format!("select count(*) from broadcasts where id = {b} and status = 'draft'")
        )
        .await,
        1
    );
}

/// Issue 11, point 3: "Post an update" on a project's page opens the compose page with the
/// project's pledgers as the audience; the draft it stores is an update (no answer window),
/// only for those who send broadcasts, and a closed project can be chosen too.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_project_update_is_composed_from_the_project_page(pool: PgPool) {
    let (app, seed, s) = setup(pool).await;
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 500, 'TJS', 'api', 'update-1')",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(common::PHONE_TG)
    .execute(&app.pool)
    .await
    .expect("pledge");
    let project = get(
        &app,
        &format!("/console/projects/{}", seed.bridge),
        &s.cookie,
    )
    .await;
    let link = format!(
        "/console/broadcasts/new?community={}&#38;only_project={}&#38;update=1",
        seed.community, seed.bridge
    );
    assert!(project.body.contains(&link), "{}", project.body);
    let page = get(&app, &link.replace("&#38;", "&"), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"update-title\""), "{}", page.body);
    assert!(page.body.contains("Update to the pledgers of Bridge"));
    assert!(page.body.contains("name=\"update\" value=\"1\""));
    assert!(page
        .body
        .contains(&format!("value=\"{}\" selected", seed.bridge)));
    // the closed project is offered too, marked
    assert!(page.body.contains("Old · Anzob (Closed)"), "{}", page.body);
    // one number pledged: one Tajik recipient
    assert!(
        page.body.contains("name=\"n_tg\" value=\"1\""),
        "{}",
        page.body
    );

    let key = field(&page.body, "key");
    let community = seed.community.to_string();
    let bridge = seed.bridge.to_string();
    let mut fields = compose(&community, &s);
    fields.extend([
        ("only_project", bridge.as_str()),
        ("update", "1"),
        ("key", key.as_str()),
    ]);
    let stored = post(&app, "/console/broadcasts/new", &s.cookie, &fields).await;
    assert_eq!(stored.status, StatusCode::SEE_OTHER, "{}", stored.body);
    let id = id_in(stored.location());
    let (only_project, rsvp_hours): (Option<i64>, i32) =
        sqlx::query_as("select only_project, rsvp_hours from broadcasts where id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .expect("the update");
    assert_eq!((only_project, rsvp_hours), (Some(seed.bridge), 0));

    // counsellors and programme officers see the project page without the link
    let officer = as_role(&app, OFFICER, Role::Officer, &[seed.community], 3).await;
    let page = get(
        &app,
        &format!("/console/projects/{}", seed.bridge),
        &officer.cookie,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("id=\"post-update\""));
}
