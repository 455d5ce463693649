//! Meetings (issue 11 point 4): a notice that announces a meeting is listed on the phone
//! (USSD and the SMS conversation) with its date and place, answered from there or by SMS
//! reply (one answer per household and meeting), reminded of the day before to those who
//! said yes (once), and its attendance recorded by household through the API, scoped.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use common::*;
use hashar::{
    app::{load_checked_menus, AppState},
    clock::{Clock, ManualClock},
};
use serde_json::{json, Value};
use sqlx::PgPool;

/// The meeting: 1 December 2026, 10:00 in Dushanbe (05:00 UTC).
fn meeting_at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0)
        .single()
        .expect("time")
}

/// Moves the test's clock to `at`.
fn set_clock(clock: &ManualClock, at: chrono::DateTime<Utc>) {
    clock.advance(at - clock.now());
}

fn meeting_notice(community: i64) -> Value {
    json!({
        "communities": [community],
        "texts": {
            "tg": "Ҷаласа {date} соати {time}, {place}. Меоед? 1 Ҳа, 2 Не",
            "ru": "Собрание {date} в {time}, {place}. Придёте? 1 Да, 2 Нет",
            "en": "Meeting {date} at {time}, {place}. Coming? 1 Yes, 2 No"
        },
        "meeting": {"at": "2026-12-01T10:00:00+05:00", "place": "Мактаби 3", "topics": ["remittances", "hiv"]}
    })
}

/// A meeting notice of the seed's community, created and sent by its coordinator.
async fn sent_meeting(app: &TestApp, t: &Tokens, community: i64) -> i64 {
    let (status, created) = call(
        app,
        "POST",
        "/api/v1/broadcasts",
        meeting_notice(community),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["broadcast"]["meeting"]["place"], "Мактаби 3");
    // the meeting's date, time and place fill the notice
    assert_eq!(
        created["preview"]["languages"]["en"]["text"],
        "Meeting 01.12 at 10:00, Мактаби 3. Coming? 1 Yes, 2 No"
    );
    let id = created["broadcast"]["id"].as_i64().expect("id");
    let (status, sent) = call(
        app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    id
}

async fn answers(pool: &PgPool, id: i64) -> Vec<(i64, String, String, String)> {
    sqlx::query_as(
        "select household_id, phone, answer, channel from rsvps where broadcast_id = $1 order by household_id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .expect("rsvps")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_meeting_is_listed_and_answered_on_ussd(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    // nothing planned yet
    let screen = app.session("m0", PHONE_TG, &["7"]).await;
    assert!(screen.contains("ҷаласа пешбинӣ нашудааст"), "{screen}");
    let id = sent_meeting(&app, &t, seed.community).await;
    let main = app.session("m1", PHONE_TG, &[]).await;
    assert!(main.contains("7 Ҷаласаҳо"), "{main}");
    assert!(
        !main.contains("99"),
        "the main menu fits one screen: {main}"
    );
    let list = app.session("m1", PHONE_TG, &["7"]).await;
    assert!(list.contains("1 01.12 10:00 Мактаби 3"), "{list}");
    let shown = app.session("m1", PHONE_TG, &["7", "1"]).await;
    assert!(shown.contains("01.12 10:00, Мактаби 3"), "{shown}");
    assert!(shown.contains("буҷети оила, ВНМО/БПНМ"), "{shown}");
    assert!(shown.contains("1 Меоям"), "{shown}");
    let done = app.session("m1", PHONE_TG, &["7", "1", "1"]).await;
    assert!(done.starts_with("END "), "{done}");
    assert!(done.contains("01.12 10:00"), "{done}");
    assert_eq!(
        answers(&pool, id).await,
        vec![(seed.household, PHONE_TG.into(), "yes".into(), "ussd".into())]
    );
    // the same hop again (an aggregator's retry) answers the same and writes nothing new
    let (_, again) = app.hop("m1", PHONE_TG, "7*1*1").await;
    assert!(again.contains("01.12 10:00"), "{again}");
    // the list shows the answer; changing one's mind replaces it
    let list = app.session("m2", PHONE_TG, &["7"]).await;
    assert!(list.contains("Мактаби 3 (ҳа)"), "{list}");
    let done = app.session("m2", PHONE_TG, &["7", "1", "2"]).await;
    assert!(done.contains("ҷавоби шумо сабт шуд"), "{done}");
    assert_eq!(
        answers(&pool, id).await,
        vec![(seed.household, PHONE_TG.into(), "no".into(), "ussd".into())]
    );
    // another community's household does not see it
    let other = add_household(&pool, seed.other_community, Some("en"), "+992935550001").await;
    let list = app.session("m3", "+992935550001", &["7"]).await;
    assert!(list.contains("No meetings are planned"), "{other}: {list}");
    // once the meeting has begun it is no longer listed
    set_clock(&app.clock, meeting_at() + Duration::minutes(1));
    let list = app.session("m4", PHONE_TG, &["7"]).await;
    assert!(list.contains("ҷаласа пешбинӣ нашудааст"), "{list}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_sms_reply_is_the_households_one_answer(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    // a second number of the Tajik household
    sqlx::query("insert into phones (phone, household_id) values ('+79161234567', $1)")
        .bind(seed.household)
        .execute(&pool)
        .await
        .expect("phone");
    let id = sent_meeting(&app, &t, seed.community).await;
    assert_eq!(app.text("s1", PHONE_TG, "1").await, StatusCode::OK);
    assert_eq!(
        answers(&pool, id).await,
        vec![(seed.household, PHONE_TG.into(), "yes".into(), "sms".into())]
    );
    // the migrant's number answers for the same household: one answer, the latest
    assert_eq!(app.text("s2", "+79161234567", "нет").await, StatusCode::OK);
    assert_eq!(
        answers(&pool, id).await,
        vec![(
            seed.household,
            "+79161234567".into(),
            "no".into(),
            "sms".into()
        )]
    );
    let (status, rsvps) = call(
        &app,
        "GET",
        &format!("/api/v1/broadcasts/{id}/rsvps"),
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rsvps.as_array().map(Vec::len), Some(1), "{rsvps}");
    // the SMS conversation lists the meetings too (the menus are shared); a minute later,
    // so that its answers are the conversation's, not replies to the notice
    app.clock.advance(Duration::minutes(1));
    assert_eq!(app.text("s3", PHONE_EN, "hello").await, StatusCode::OK);
    assert_eq!(app.text("s4", PHONE_EN, "7").await, StatusCode::OK);
    let last: String = sqlx::query_scalar(
        "select body from outbox where phone = $1 and kind = 'reply' order by id desc limit 1",
    )
    .bind(PHONE_EN)
    .fetch_one(&pool)
    .await
    .expect("reply");
    assert!(last.contains("1 1 Dec 10:00 Мактаби 3"), "{last}");
    assert_eq!(app.text("s5", PHONE_EN, "1").await, StatusCode::OK);
    assert_eq!(app.text("s6", PHONE_EN, "1").await, StatusCode::OK);
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from rsvps where broadcast_id = {id} and answer = 'yes' and channel = 'sms'")
        )
        .await,
        1
    );
}

/// The application state the server would run the reminders with, on the test's clock.
fn state(pool: &PgPool, clock: &ManualClock) -> AppState {
    let config = test_config();
    let menus = load_checked_menus(&config).expect("menus");
    AppState::with_clock(pool.clone(), menus, config, Arc::new(clock.clone()))
        .expect("valid settings")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn those_who_said_yes_are_reminded_once_the_day_before(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let id = sent_meeting(&app, &t, seed.community).await;
    app.session("r1", PHONE_TG, &["7", "1", "1"]).await;
    app.session("r2", PHONE_RU, &["7", "1", "2"]).await;
    let state = state(&pool, &app.clock);
    let reminders = || async {
        sqlx::query_as::<_, (String, String)>(
            "select o.phone, o.body from meeting_reminders m join outbox o on o.id = m.outbox_id
             where m.broadcast_id = $1",
        )
        .bind(id)
        .fetch_all(&pool)
        .await
        .expect("reminders")
    };
    // two days before: not yet
    assert_eq!(
        hashar::meetings::run_due(&state, meeting_at() - Duration::hours(48))
            .await
            .expect("run"),
        0
    );
    // 22:00 the evening before in Dushanbe: quiet hours, nothing is sent
    let evening = meeting_at() - Duration::hours(12);
    assert_eq!(
        hashar::meetings::run_due(&state, evening)
            .await
            .expect("run"),
        0
    );
    // 10:00 the day before: the Tajik household (yes) is reminded, the Russian (no) not
    let day_before = meeting_at() - Duration::hours(24) + Duration::minutes(5);
    assert_eq!(
        hashar::meetings::run_due(&state, day_before)
            .await
            .expect("run"),
        1
    );
    let sent = reminders().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].0, PHONE_TG);
    assert!(sent[0].1.contains("01.12 10:00"), "{}", sent[0].1);
    assert!(sent[0].1.contains("Мактаби 3"), "{}", sent[0].1);
    // again, and later: once
    for later in [day_before, day_before + Duration::hours(3)] {
        assert_eq!(
            hashar::meetings::run_due(&state, later).await.expect("run"),
            0
        );
    }
    assert_eq!(reminders().await.len(), 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn attendance_is_recorded_by_household_within_scope(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let id = sent_meeting(&app, &t, seed.community).await;
    app.session("a1", PHONE_TG, &["7", "1", "1"]).await;
    let uri = format!("/api/v1/broadcasts/{id}/attendance");
    let marks = |household: i64, attended: bool| json!({"households": [{"household_id": household, "attended": attended}]});
    // too early: two days before the meeting
    let (status, body) = call(&app, "PUT", &uri, marks(seed.household, true), &t.own).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    set_clock(&app.clock, meeting_at() + Duration::hours(1));
    let (status, counts) = call(&app, "PUT", &uri, marks(seed.household, true), &t.own).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts["came"], 1);
    assert_eq!(counts["yes"], 1);
    assert_eq!(counts["invited"], 4);
    // the same again changes nothing (and writes no second audit row)
    let (status, again) = call(&app, "PUT", &uri, marks(seed.household, true), &t.own).await;
    assert_eq!((status, again), (StatusCode::OK, counts.clone()));
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from audit_log where action = 'meeting.attendance' and subject_id = {id}")
        )
        .await,
        1
    );
    // another community's household: 404, nothing recorded
    let stranger = add_household(&pool, seed.other_community, Some("en"), "+992935550002").await;
    let (status, _) = call(&app, "PUT", &uri, marks(stranger, true), &t.own).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "PUT", &uri, marks(stranger, true), &t.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // another community's coordinator: the meeting is not theirs
    let (status, _) = call(&app, "PUT", &uri, marks(seed.household, false), &t.other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "GET", &uri, Value::Null, &t.other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // the sheet: the household that said yes first, marked as come
    let (status, sheet) = call(&app, "GET", &uri, Value::Null, &t.admin).await;
    assert_eq!(status, StatusCode::OK, "{sheet}");
    assert_eq!(sheet["households"][0]["household_id"], seed.household);
    assert_eq!(sheet["households"][0]["rsvp"], "yes");
    assert_eq!(sheet["households"][0]["attended"], true);
    assert_eq!(sheet["households"].as_array().map(Vec::len), Some(4));
    assert_eq!(sheet["meeting"]["topics"], json!(["remittances", "hiv"]));
    // unticked: recorded as not come, never deleted
    let (_, counts) = call(&app, "PUT", &uri, marks(seed.household, false), &t.own).await;
    assert_eq!(counts["came"], 0);
    // and counted per topic for the outreach figures
    call(&app, "PUT", &uri, marks(seed.household, true), &t.own).await;
    assert_eq!(
        count(
            &pool,
            "select count(*) from meeting_attended_topics where topic in ('remittances', 'hiv')"
        )
        .await,
        2
    );
    // a broadcast that is no meeting has no attendance
    let plain: i64 = sqlx::query_scalar(
        "insert into broadcasts (created_by, communities, text_tg, text_ru, text_en, created_at)
         values ('test', array[$1::bigint], 'а', 'б', 'c', now()) returning id",
    )
    .bind(seed.community)
    .fetch_one(&pool)
    .await
    .expect("broadcast");
    let (status, _) = call(
        &app,
        "GET",
        &format!("/api/v1/broadcasts/{plain}/attendance"),
        Value::Null,
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_meeting_is_checked_when_composed(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    for (meeting, field) in [
        (
            json!({"at": "2026-11-01T10:00:00+05:00", "place": "School"}),
            "meeting.at",
        ),
        (
            json!({"at": "2026-12-01T10:00:00+05:00", "place": "A place with far too long a name"}),
            "meeting.place",
        ),
    ] {
        let mut body = meeting_notice(seed.community);
        body["meeting"] = meeting;
        let (status, e) = call(&app, "POST", "/api/v1/broadcasts", body, &t.own).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], field, "{e}");
    }
    let mut body = meeting_notice(seed.community);
    body["meeting"]["topics"] = json!(["astrology"]);
    let (status, _) = call(&app, "POST", "/api/v1/broadcasts", body, &t.own).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // a notice scheduled for after its meeting is refused
    let (_, created) = call(
        &app,
        "POST",
        "/api/v1/broadcasts",
        meeting_notice(seed.community),
        &t.own,
    )
    .await;
    let id = created["broadcast"]["id"].as_i64().expect("id");
    let (status, e) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({"at": "2026-12-02T10:00:00+05:00"}),
        &t.own,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{e}");
}
