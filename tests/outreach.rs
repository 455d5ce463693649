//! Issue 11 points 6 and 7: the safe-migration topics as households read them (paged, in
//! three languages, with or without `HASHAR_HOTLINE`), the self-served outreach they
//! record, and the outreach figures and targets through the admin API and its CSV.

mod common;

use axum::{body::Body, http::Request, http::StatusCode};
use chrono::{TimeZone, Utc};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;

/// The screen without the `CON `/`END ` prefix.
fn screen(body: &str) -> &str {
    body.trim_start_matches("CON ").trim_start_matches("END ")
}

fn has_more(body: &str, more: &str) -> bool {
    screen(body).lines().any(|l| l == more)
}

/// Reads the screen `inputs` leads to page by page ("99") to its last page; returns every
/// page, and checks after each page before the last that nothing was recorded yet.
async fn read_to_end(
    app: &TestApp,
    session: &str,
    phone: &str,
    inputs: &str,
    more: &str,
    topic: &str,
) -> Vec<String> {
    let mut pages = Vec::new();
    let mut text = inputs.to_owned();
    let before = self_served(&app.pool, phone, topic).await;
    loop {
        let (status, body) = app.hop(session, phone, &text).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages.push(body.clone());
        if !has_more(&body, more) {
            return pages;
        }
        assert_eq!(self_served(&app.pool, phone, topic).await, before, "{body}");
        assert!(
            pages.len() < 10,
            "a topic of more than 10 pages: {pages:#?}"
        );
        text.push_str("*99");
    }
}

async fn self_served(pool: &PgPool, phone: &str, topic: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from outreach_self_served s join phones p on p.household_id = s.household_id
         where p.phone = $1 and s.topic = $2",
    )
    .bind(phone)
    .bind(topic)
    .fetch_one(pool)
    .await
    .expect("count")
}

/// Every text line of the pages, without the options and navigation lines.
fn text_of(pages: &[String]) -> String {
    pages
        .iter()
        .flat_map(|p| screen(p).lines())
        .filter(|l| {
            let digits = l.bytes().take_while(u8::is_ascii_digit).count();
            !(1..=2).contains(&digits) || l.as_bytes().get(digits) != Some(&b' ')
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn reading_a_topic_to_the_end_is_recorded_once_as_self_served(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    // Tajik: HIV (Safe migration, 3) pages with 99; only the last page records it
    let pages = read_to_end(&app, "hiv-1", PHONE_TG, "4*3", "99 Давом", "hiv").await;
    assert!(pages.len() >= 3, "{pages:#?}");
    assert!(pages.len() <= 8, "more than a few screens: {pages:#?}");
    let text = text_of(&pages);
    assert!(text.contains("ройгон ва махфӣ"), "{text}");
    assert!(text.contains("Хатти боварӣ: 1313"), "{text}");
    assert_eq!(self_served(&pool, PHONE_TG, "hiv").await, 1);
    let first: chrono::DateTime<Utc> =
        sqlx::query_scalar("select first_at from outreach_self_served where topic = 'hiv'")
            .fetch_one(&pool)
            .await
            .expect("first_at");
    // read again in another session, later: still one row, the first time kept
    app.clock.advance(chrono::Duration::hours(3));
    read_to_end(&app, "hiv-2", PHONE_TG, "4*3", "99 Давом", "hiv").await;
    let rows: Vec<(chrono::DateTime<Utc>, String)> =
        sqlx::query_as("select first_at, channel from outreach_self_served")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows, vec![(first, "ussd".to_owned())]);

    // Russian: legal stay is two screens; the first does not count, the second's end does
    let legal = read_to_end(&app, "legal-1", PHONE_RU, "4*1", "99 Далее", "legal_stay").await;
    assert!(text_of(&legal).contains("патент"), "{legal:#?}");
    assert_eq!(self_served(&pool, PHONE_RU, "legal_stay").await, 0);
    let docs = read_to_end(&app, "legal-1", PHONE_RU, "4*1*1", "99 Далее", "legal_stay").await;
    assert!(text_of(&docs).contains("трудовому договору"), "{docs:#?}");
    assert_eq!(self_served(&pool, PHONE_RU, "legal_stay").await, 1);

    // English: trafficking
    let pages = read_to_end(&app, "tr-1", PHONE_EN, "4*2", "99 More", "trafficking").await;
    let text = text_of(&pages);
    assert!(text.contains("passport is taken"), "{text}");
    assert!(text.contains("Hotline: 1313"), "{text}");
    assert_eq!(self_served(&pool, PHONE_EN, "trafficking").await, 1);
    // going back from the last page and paging to it again changes nothing
    app.hop("tr-1", PHONE_EN, "4*2*99*0").await;
    assert_eq!(
        count(&pool, "select count(*) from outreach_self_served").await,
        3
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_topic_read_by_sms_counts_as_self_served_by_sms(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    for (i, text) in ["menu", "4", "3"].into_iter().enumerate() {
        let status = app.text(&format!("m{i}"), PHONE_EN, text).await;
        assert_eq!(status, StatusCode::OK);
    }
    let replies: Vec<String> =
        sqlx::query_scalar("select body from outbox where phone = $1 order by id")
            .bind(PHONE_EN)
            .fetch_all(&pool)
            .await
            .expect("replies");
    let last = replies.last().cloned().unwrap_or_default();
    assert!(last.starts_with("HIV."), "{replies:#?}");
    let channel: Vec<String> =
        sqlx::query_scalar("select channel from outreach_self_served where topic = 'hiv'")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(channel, vec!["sms".to_owned()], "{replies:#?}");
}

/// Without `HASHAR_HOTLINE`: the topics leave the hotline's line out and no Tajik or
/// Russian screen of the safe-migration menu holds a Latin letter.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn without_a_hotline_the_topics_leave_it_out_in_their_own_language(pool: PgPool) {
    seed(&pool).await;
    let mut config = test_config();
    config.hotline = None;
    let app = app_with(pool.clone(), config).await;
    for (phone, more, line) in [
        (PHONE_TG, "99 Давом", "Хатти боварӣ:"),
        (PHONE_RU, "99 Далее", "Горячая линия:"),
        (PHONE_EN, "99 More", "Hotline:"),
    ] {
        let mut all = Vec::new();
        for (i, inputs) in ["4", "4*1", "4*1*1", "4*2", "4*3", "4*4"]
            .into_iter()
            .enumerate()
        {
            let session = format!("no-hotline-{phone}-{i}");
            let topic = "none";
            all.extend(read_to_end(&app, &session, phone, inputs, more, topic).await);
        }
        let text = text_of(&all);
        assert!(!text.contains(line), "{phone}: {text}");
        assert!(!text.contains("{"), "{phone}: {text}");
        if phone != PHONE_EN {
            let latin: String = all
                .iter()
                .flat_map(|p| screen(p).chars())
                .filter(char::is_ascii_alphabetic)
                .collect();
            assert!(
                latin.is_empty(),
                "{phone}: Latin letters {latin:?} in {all:#?}"
            );
        }
    }
    assert_eq!(
        count(&pool, "select count(*) from outreach_self_served").await,
        9
    );
}

/// A done callback request (reached, with `topics`) of `household`, by `staff`.
async fn done_call(
    pool: &PgPool,
    household: i64,
    phone: &str,
    staff: i64,
    outcome: &str,
    topics: &[&str],
) {
    let topics: Vec<String> = topics.iter().map(|t| (*t).to_owned()).collect();
    sqlx::query(
        "insert into callback_requests (phone, household_id, language, channel, idempotency_key,
                created_at, status, outcome, topics, done_at, done_by, attempts)
         values ($1, $2, 'tg', 'ussd', gen_random_uuid()::text, $3, 'done', $4, $5, $3, $6,
                 case when $4 = 'unreachable' then 3 else 0 end)",
    )
    .bind(phone)
    .bind(household)
    .bind(Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap())
    .bind(outcome)
    .bind(&topics)
    .bind(staff)
    .execute(pool)
    .await
    .expect("a done callback");
}

async fn household_of(pool: &PgPool, phone: &str) -> i64 {
    sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(phone)
        .fetch_one(pool)
        .await
        .expect("a household")
}

fn topic<'a>(counts: &'a Value, name: &str) -> &'a Value {
    counts["topics"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["topic"] == name))
        .unwrap_or(&Value::Null)
}

async fn csv(app: &TestApp, uri: &str, token: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let resp = app.router.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn figures_count_households_per_community_and_topic_against_targets(pool: PgPool) {
    let s = seed(&pool).await;
    let app = app(pool.clone()).await;
    let t = tokens(&pool).await;
    let staff: i64 = sqlx::query_scalar("select min(id) from coordinators")
        .fetch_one(&pool)
        .await
        .expect("staff");
    let tg = household_of(&pool, PHONE_TG).await;
    let ru = household_of(&pool, PHONE_RU).await;
    let en = household_of(&pool, PHONE_EN).await;
    let sarazm = add_household(&pool, s.other_community, Some("tg"), "+992901119999").await;
    // counsellors: tg on legal stay and HIV (twice on HIV: counted once), ru on HIV and
    // "other" (not a topic); a declined call covers nothing
    done_call(
        &pool,
        tg,
        PHONE_TG,
        staff,
        "reached",
        &["legal_stay", "hiv"],
    )
    .await;
    done_call(&pool, tg, PHONE_TG, staff, "reached", &["hiv"]).await;
    done_call(&pool, ru, PHONE_RU, staff, "reached", &["hiv", "other"]).await;
    done_call(&pool, en, PHONE_EN, staff, "declined", &["trafficking"]).await;
    // self-served (apart): en and tg read HIV to the end, Sarazm's household trafficking
    for (h, topic) in [(en, "hiv"), (tg, "hiv"), (sarazm, "trafficking")] {
        sqlx::query(
            "insert into outreach_self_served (household_id, topic, channel, first_at) values ($1, $2, 'ussd', now())",
        )
        .bind(h)
        .bind(topic)
        .execute(&pool)
        .await
        .expect("self-served");
    }
    // an information session (the join point the meetings' attendance fills)
    sqlx::query(&format!(
        "create or replace view outreach_session_attendance as
         select id as household_id, 'trafficking'::text as topic, now() as attended_at
         from households where id in ({en}, {sarazm})"
    ))
    .execute(&pool)
    .await
    .expect("attendance view");

    let (status, f) = call(&app, "GET", "/api/v1/outreach", Value::Null, &t.admin).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["programme"], true);
    assert_eq!(f["target"], 2000);
    // informed: tg, ru (counsellor), en, sarazm (session) = 4; self-served apart: 3
    assert_eq!(
        f["all"],
        json!({"by_counsellor": 2, "by_session": 2, "informed": 4, "self_served": 3})
    );
    assert_eq!(
        topic(&f, "hiv"),
        &json!({"topic": "hiv", "by_counsellor": 2, "by_session": 0, "informed": 2, "self_served": 2})
    );
    assert_eq!(topic(&f, "legal_stay")["informed"], 1);
    assert_eq!(
        topic(&f, "trafficking"),
        &json!({"topic": "trafficking", "by_counsellor": 0, "by_session": 2, "informed": 2, "self_served": 1})
    );
    assert_eq!(topic(&f, "remittances")["informed"], 0);
    let anzob = &f["communities"][0];
    assert_eq!(anzob["id"], s.community);
    assert_eq!(anzob["target"], Value::Null);
    assert_eq!(anzob["all"]["informed"], 3);
    assert_eq!(topic(anzob, "hiv")["self_served"], 2);
    let other = &f["communities"][1];
    assert_eq!(other["all"]["informed"], 1);
    // nothing in the answer names a household or a number
    let text = f.to_string();
    assert!(
        !text.contains("+992") && !text.contains("household_id"),
        "{text}"
    );

    // targets: admins only, bounded, audited
    let set = |body: Value, token: String| {
        let app = &app;
        async move {
            call(app, "POST", "/api/v1/outreach/targets", body, &token)
                .await
                .0
        }
    };
    assert_eq!(
        set(
            json!({"community": s.community, "target": 300}),
            t.own.clone()
        )
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        set(
            json!({"community": s.community, "target": 0}),
            t.admin.clone()
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        set(json!({"community": 999999, "target": 10}), t.admin.clone()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        set(
            json!({"community": s.community, "target": 300}),
            t.admin.clone()
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        set(
            json!({"community": s.community, "target": 250}),
            t.admin.clone()
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        set(json!({"target": 2500}), t.admin.clone()).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_log where action = 'outreach.target'"
        )
        .await,
        3
    );
    let before: Value = sqlx::query_scalar(
        "select detail -> 'before' from audit_log where action = 'outreach.target' order by id desc limit 1",
    )
    .fetch_one(&pool)
    .await
    .expect("audit");
    assert_eq!(before, json!({"target": 2000}));

    let (_, f) = call(&app, "GET", "/api/v1/outreach", Value::Null, &t.admin).await;
    assert_eq!(f["target"], 2500);
    assert_eq!(f["communities"][0]["target"], 250);

    // a coordinator of Sarazm sees Sarazm only, against its targets (none set)
    let (status, mine) = call(&app, "GET", "/api/v1/outreach", Value::Null, &t.other).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["programme"], false);
    assert_eq!(mine["target"], Value::Null);
    assert_eq!(mine["communities"].as_array().map(Vec::len), Some(1));
    assert_eq!(mine["all"]["informed"], 1);
    assert_eq!(mine["all"]["self_served"], 1);
    // Anzob's coordinator: the sum of the targets set
    let (_, own) = call(&app, "GET", "/api/v1/outreach", Value::Null, &t.own).await;
    assert_eq!(own["target"], 250);
    assert_eq!(own["all"]["informed"], 3);

    // the CSV: the same counts, a row per community and topic, then the totals
    let (status, file) = csv(&app, "/api/v1/exports/outreach.csv", &t.admin).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(
        lines[0],
        "community_id,community,topic,informed,by_counsellor,by_session,self_served,target"
    );
    assert!(
        lines.contains(&format!("{},anzob,hiv,2,2,0,2,", s.community).as_str()),
        "{file}"
    );
    assert!(
        lines.contains(&format!("{},anzob,all,3,2,1,2,250", s.community).as_str()),
        "{file}"
    );
    assert!(lines.contains(&",,all,4,2,2,3,2500"), "{file}");
    assert_eq!(lines.len(), 1 + 2 * 5 + 5);
    // a coordinator's file: their community only; another community's filter is 403
    let (_, file) = csv(&app, "/api/v1/exports/outreach.csv", &t.other).await;
    assert!(!file.contains("anzob"), "{file}");
    let (status, _) = csv(
        &app,
        &format!("/api/v1/exports/outreach.csv?community={}", s.community),
        &t.other,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
