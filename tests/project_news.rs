//! Project news (issue 11, point 3): an update posted to a project's pledgers (API and the
//! one broadcast path: preview, languages, opted-out numbers skipped, no answer window),
//! the target reached told to them once (concurrent receipts, a reversal and a new receipt,
//! the quiet hours), and closed projects kept on the phone's totals for a year with their
//! state, by USSD and SMS.

mod common;

use axum::http::StatusCode;
use chrono::{Duration, TimeZone, Utc};
use common::*;
use hashar::clock::Clock;
use serde_json::json;
use sqlx::PgPool;

/// A number abroad of the Tajik household, reading Russian.
const MIGRANT: &str = "+79161234567";

async fn household_of(pool: &PgPool, phone: &str) -> i64 {
    sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(phone)
        .fetch_one(pool)
        .await
        .expect("household")
}

async fn pledge(pool: &PgPool, project: i64, phone: &str, amount: &str) -> i64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = format!(
        "news-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, (select household_id from phones where phone = $2), $2, $3::numeric, 'TJS', 'api', $4)
         returning id",
    )
    .bind(project)
    .bind(phone)
    .bind(amount)
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("pledge")
}

/// Pledgers of the bridge: the Tajik household (its home number, and a number abroad that
/// reads Russian), the Russian household (opted out), the English one (cancelled); the
/// household without a language pledged to the roof only.
async fn pledgers(pool: &PgPool, seed: &Seed) {
    let tg = household_of(pool, PHONE_TG).await;
    sqlx::query("insert into phones (phone, household_id, language) values ($1, $2, 'ru')")
        .bind(MIGRANT)
        .bind(tg)
        .execute(pool)
        .await
        .expect("migrant");
    pledge(pool, seed.bridge, PHONE_TG, "500").await;
    pledge(pool, seed.bridge, PHONE_RU, "300").await;
    let cancelled = pledge(pool, seed.bridge, PHONE_EN, "200").await;
    sqlx::query(
        "insert into pledge_cancellations (pledge_id, reason, cancelled_by, cancelled_at)
         values ($1, 'moved', 'test', now())",
    )
    .bind(cancelled)
    .execute(pool)
    .await
    .expect("cancel");
    pledge(pool, seed.roof, PHONE_NO_LANGUAGE, "100").await;
    sqlx::query("insert into sms_optouts (phone, opted_out_at) values ($1, now())")
        .bind(PHONE_RU)
        .execute(pool)
        .await
        .expect("opt-out");
}

fn update() -> serde_json::Value {
    json!({"texts": {
        "tg": "Пул тайёр шуд, 12 май кушода мешавад.",
        "ru": "Мост готов, открытие 12 мая.",
        "en": "The bridge is finished, opening on 12 May."
    }})
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_update_reaches_the_pledgers_in_their_language_and_takes_no_answers(pool: PgPool) {
    let seed = seed(&pool).await;
    let tokens = tokens(&pool).await;
    pledgers(&pool, &seed).await;
    let app = app(pool.clone()).await;
    let path = format!("/api/v1/projects/{}/updates", seed.bridge);

    // another community's coordinator: as if there were no such project
    let (status, _) = call(&app, "POST", &path, update(), &tokens.other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        "POST",
        "/api/v1/projects/999999/updates",
        update(),
        &tokens.own,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut empty = update();
    empty["texts"]["ru"] = json!("  ");
    let (status, body) = call(&app, "POST", &path, empty, &tokens.own).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "texts.ru", "{body}");

    let (status, body) = call(&app, "POST", &path, update(), &tokens.own).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let b = &body["broadcast"];
    assert_eq!(b["only_project"], json!(seed.bridge), "{body}");
    assert_eq!(b["communities"], json!([seed.community]), "{body}");
    assert_eq!(b["rsvp_hours"], json!(0), "no answer window: {body}");
    let p = &body["preview"];
    // Tajik: the home number; Russian: the number abroad (the Russian household opted out);
    // the cancelled pledge's household and the roof's pledger get nothing
    assert_eq!(p["languages"]["tg"]["recipients"], json!(1), "{p}");
    assert_eq!(p["languages"]["ru"]["recipients"], json!(1), "{p}");
    assert_eq!(p["languages"]["ru"]["skipped_opted_out"], json!(1), "{p}");
    assert_eq!(p["languages"]["en"]["recipients"], json!(0), "{p}");
    assert_eq!(p["recipients"], json!(2), "{p}");
    assert_eq!(p["languages"]["ru"]["encoding"], "ucs2", "{p}");
    assert_eq!(p["segments_total"], json!(2), "{p}");
    let id = b["id"].as_i64().expect("id");
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from audit_log where action = 'broadcast.create' and subject_id = {id}
                      and detail->'after'->>'only_project' = '{}'", seed.bridge)
        )
        .await,
        1,
        "the post is audited"
    );

    // sent at 14:00 in Dushanbe: at once, each number in its language
    let (status, sent) = call(
        &app,
        "POST",
        &format!("/api/v1/broadcasts/{id}/send"),
        json!({}),
        &tokens.own,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    assert_eq!(sent["queued"], json!(2), "{sent}");
    let bodies: Vec<(String, String)> =
        sqlx::query_as("select phone, body from outbox where broadcast_id = $1 order by phone")
            .bind(id)
            .fetch_all(&pool)
            .await
            .expect("outbox");
    assert_eq!(
        bodies,
        vec![
            (
                MIGRANT.to_owned(),
                "Мост готов, открытие 12 мая.".to_owned()
            ),
            (
                PHONE_TG.to_owned(),
                "Пул тайёр шуд, 12 май кушода мешавад.".to_owned()
            ),
        ]
    );
    // a "1" in answer is not taken as a yes
    app.text("n1", PHONE_TG, "1").await;
    assert_eq!(count(&pool, "select count(*) from rsvps").await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_target_reached_is_told_to_the_pledgers_once(pool: PgPool) {
    let seed = seed(&pool).await;
    pledgers(&pool, &seed).await;
    let app = app(pool.clone()).await;
    let state = state_of(&app);
    let now = app.clock.now();
    let announced = || {
        let pool = pool.clone();
        async move {
            count(
                &pool,
                "select count(*) from broadcasts where created_by = 'hashar:target-reached'",
            )
            .await
        }
    };

    // the bridge (10 000, matched 1:1): 8 000 with matching is not there yet
    receive(&pool, seed.bridge, "4000").await;
    assert_eq!(
        hashar::news::announce_reached(&state, now)
            .await
            .expect("round"),
        0
    );
    // two receipts at once take it past its target: noted once
    let (a, b) = (pool.clone(), pool.clone());
    tokio::join!(
        receive(&a, seed.bridge, "600"),
        receive(&b, seed.bridge, "600")
    );
    assert_eq!(
        count(&pool, "select count(*) from project_target_reached").await,
        1
    );
    assert_eq!(
        hashar::news::announce_reached(&state, now)
            .await
            .expect("round"),
        1
    );
    assert_eq!(announced().await, 1);
    let bodies: Vec<(String, String)> = sqlx::query_as(
        "select o.phone, o.body from outbox o join broadcasts b on b.id = o.broadcast_id
         where b.created_by = 'hashar:target-reached' order by o.phone",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies[0].0 == MIGRANT
            && bodies[0].1.contains("«Мост»")
            && bodies[0].1.contains("10400 из 10000 TJS"),
        "{bodies:?}"
    );
    assert!(
        bodies[1].0 == PHONE_TG
            && bodies[1].1.contains("«Пул»")
            && bodies[1].1.contains("10400 аз 10000 TJS"),
        "{bodies:?}"
    );
    // the next round finds nothing; money reversed and received again tells nobody twice
    assert_eq!(
        hashar::news::announce_reached(&state, now)
            .await
            .expect("round"),
        0
    );
    sqlx::query(
        "insert into receipts (project_id, amount, currency, received_on, method, recorded_by, reverses, reason)
         select project_id, -amount, currency, received_on, method, 'test', id, 'recorded twice'
         from receipts where project_id = $1 and amount = 600 limit 1",
    )
    .bind(seed.bridge)
    .execute(&pool)
    .await
    .expect("reversal");
    receive(&pool, seed.bridge, "600").await;
    assert_eq!(
        hashar::news::announce_reached(&state, now)
            .await
            .expect("round"),
        0
    );
    assert_eq!(announced().await, 1);
    let (state_now, broadcast): (String, Option<i64>) = sqlx::query_as(
        "select state, broadcast_id from project_target_reached where project_id = $1",
    )
    .bind(seed.bridge)
    .fetch_one(&pool)
    .await
    .expect("reached");
    assert_eq!(state_now, "announced");
    assert!(broadcast.is_some());

    // the roof (20 000, matched 2:1 up to 3 000) reached at 22:00 in Dushanbe: held until
    // the quiet hours end at 07:00 (02:00 UTC)
    let night = Utc
        .with_ymd_and_hms(2026, 11, 28, 17, 0, 0)
        .single()
        .expect("time");
    app.clock.advance(night - now);
    receive(&pool, seed.roof, "17000").await;
    assert_eq!(
        hashar::news::announce_reached(&state, night)
            .await
            .expect("round"),
        1
    );
    let (status, send_at): (String, Option<chrono::DateTime<Utc>>) = sqlx::query_as(
        "select status, send_at from broadcasts where only_project = $1 and created_by = 'hashar:target-reached'",
    )
    .bind(seed.roof)
    .fetch_one(&pool)
    .await
    .expect("roof's announcement");
    assert_eq!(status, "scheduled");
    assert_eq!(
        send_at,
        Utc.with_ymd_and_hms(2026, 11, 29, 2, 0, 0).single()
    );
    let morning = night + Duration::hours(9);
    hashar::broadcasts::run_due(
        &pool,
        morning,
        &state.settings.quiet_hours,
        state.config.default_language,
        state.config.sms_provider.name(),
        state.config.sms_max_segments,
    )
    .await
    .expect("due");
    assert_eq!(
        count(
            &pool,
            &format!(
                "select count(*) from outbox o join broadcasts b on b.id = o.broadcast_id
                      where b.only_project = {} and b.created_by = 'hashar:target-reached'",
                seed.roof
            )
        )
        .await,
        1,
        "the roof's one pledger (the household without a language)"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn closed_projects_stay_on_the_totals_for_a_year_with_their_state(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let now = app.clock.now();
    // the bridge reached its target and closed an hour ago: completed; Old closed in
    // January without reaching it: closed; Ancient closed more than a year ago: gone
    receive(&pool, seed.bridge, "5000").await;
    close_project(&pool, seed.bridge, now - Duration::hours(1)).await;
    sqlx::query(
        "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, status, closed_at)
         values ($1, 'ANCIENT', 'infrastructure', 'Қадима', 'Древний', 'Ancient', 1000, 1, 'closed', $2)",
    )
    .bind(seed.community)
    .bind(now - Duration::days(366))
    .execute(&pool)
    .await
    .expect("ancient");

    let totals = app.session("t-en", PHONE_EN, &["2"]).await;
    assert!(
        totals.contains("1 Bridge (completed)")
            && totals.contains("2 School roof\n")
            && totals.contains("3 Old (closed)")
            && !totals.contains("Ancient"),
        "{totals}"
    );
    let tg = app.session("t-tg", PHONE_TG, &["2"]).await;
    assert!(
        tg.contains("1 Пул (анҷом ёфт)") && tg.contains("3 Кӯҳна (баста шуд)"),
        "{tg}"
    );
    let screen = app.session("t-ru", PHONE_RU, &["2", "1"]).await;
    assert!(
        screen.starts_with("CON Собрано 10000 из 10000 TJS (100%)\n"),
        "{screen}"
    );
    let detail = app.session("t-en2", PHONE_EN, &["2", "1"]).await;
    assert!(detail.contains("Bridge (completed): pledged 0"), "{detail}");
    let open = app.session("t-en3", PHONE_EN, &["2", "2"]).await;
    assert!(open.contains("\nSchool roof: pledged"), "{open}");
    // the pledge list offers the open project only
    let pledge = app.session("p-en", PHONE_EN, &["1"]).await;
    assert!(
        pledge.contains("1 School roof") && !pledge.contains("Bridge") && !pledge.contains("Old"),
        "{pledge}"
    );

    // by SMS: TOTAL lists them with their state, in the household's language
    app.text("sms-total", PHONE_RU, "ИТОГ").await;
    let reply: String =
        sqlx::query_scalar("select body from outbox where phone = $1 order by id desc limit 1")
            .bind(PHONE_RU)
            .fetch_one(&pool)
            .await
            .expect("reply");
    assert!(
        reply.contains("Мост (завершён): 10000/10000 TJS (100%)")
            && reply.contains("Крыша школы: ")
            && reply.contains("Старый (закрыт): ")
            && !reply.contains("Древний"),
        "{reply}"
    );
}
