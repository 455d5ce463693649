//! Whole USSD sessions over HTTP against a real PostgreSQL database (one per test).

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use hashar::clock::Clock;
use rust_decimal::Decimal;
use sqlx::{PgPool, Row};

fn dec(s: &str) -> Decimal {
    s.parse().expect("decimal literal")
}

/// Presses "99" until the session ends; returns every page joined.
async fn until_end(app: &TestApp, session: &str, phone: &str, inputs: &[&str]) -> String {
    let mut path: Vec<&str> = inputs.to_vec();
    let mut pages = Vec::new();
    loop {
        let (status, body) = app.hop(session, phone, &path.join("*")).await;
        assert_eq!(status, StatusCode::OK);
        pages.push(body.clone());
        if body.starts_with("END ") {
            return pages.join("\n");
        }
        assert!(
            body.contains("\n99 "),
            "neither END nor a next page: {body}"
        );
        assert!(pages.len() < 6, "END never reached: {pages:?}");
        path.push("99");
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn health_and_readiness(pool: PgPool) {
    let app = app(pool).await;
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, "ok\n".to_owned())
    );
    assert_eq!(
        app.get("/readyz").await,
        (StatusCode::OK, "ready\n".to_owned())
    );
}

/// Issue 11, point 1: the pledge's last screen is one screen in every language and leads
/// with the project, the amount and the code; the same facts (and how to pay) go to the
/// number by SMS at once, in its language, once.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pledge_sessions_in_each_language(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let cases = [
        (
            PHONE_TG,
            "Ҳашар",
            "Пул: ваъда 500 TJS. Рамз ",
            "Ҳашар: рамзи ваъда ",
            "пардохт нашудааст",
            "Пул",
        ),
        (
            PHONE_RU,
            "Хашар",
            "Мост: обещано 500 TJS. Код ",
            "Хашар: код обещания ",
            "оплаты ещё нет",
            "Мост",
        ),
        (
            PHONE_EN,
            "Hashar",
            "Bridge: pledged 500 TJS. Code ",
            "Hashar: pledge code ",
            "not paid yet",
            "Bridge",
        ),
    ];
    for (i, (phone, title, lead, sms_lead, unpaid, project)) in cases.iter().enumerate() {
        let session = format!("pledge-{i}");
        let (_, main) = app.hop(&session, phone, "").await;
        assert!(main.starts_with(&format!("CON {title}")), "{main}");
        let confirm = app.session(&session, phone, &["1", "1", "500"]).await;
        assert!(
            confirm.starts_with("CON ") && confirm.contains("500") && confirm.contains(project),
            "{confirm}"
        );
        // one screen: the session ends on it, the code in view
        let (_, done) = app.hop(&session, phone, "1*1*500*1").await;
        let code = code_of(&pool, phone).await;
        assert_eq!(code.len(), 1);
        assert!(
            done.starts_with(&format!("END {lead}{}. ", code[0])),
            "{done}"
        );
        assert!(!done.contains("99 "), "not paged: {done}");
        // the SMS: code first, amount, project, not paid yet, how to pay
        let sms: Vec<(String, String, String)> =
            sqlx::query_as("select body, kind, status from outbox where phone = $1")
                .bind(phone)
                .fetch_all(&pool)
                .await
                .expect("outbox");
        assert_eq!(sms.len(), 1, "{sms:?}");
        let (body, kind, status) = &sms[0];
        assert!(
            body.starts_with(&format!("{sms_lead}{}.", code[0])),
            "{body}"
        );
        assert!(
            body.contains("500 TJS") && body.contains(project) && body.contains(unpaid),
            "{body}"
        );
        assert_eq!((kind.as_str(), status.as_str()), ("reply", "queued"));
        // a repeated hop (an aggregator's retry) shows the same and sends nothing more
        let (_, again) = app.hop(&session, phone, "1*1*500*1").await;
        assert_eq!(again, done);
        assert_eq!(
            count(
                &pool,
                &format!("select count(*) from outbox where phone = '{phone}'")
            )
            .await,
            1
        );
    }
    let rows =
        sqlx::query("select phone, amount, currency, status, channel from pledges order by id")
            .fetch_all(&pool)
            .await
            .expect("pledges");
    assert_eq!(rows.len(), 3);
    for (row, (phone, ..)) in rows.iter().zip(cases.iter()) {
        assert_eq!(row.get::<String, _>("phone"), *phone);
        assert_eq!(row.get::<Decimal, _>("amount"), dec("500"));
        assert_eq!(row.get::<String, _>("currency"), "TJS");
        assert_eq!(row.get::<String, _>("status"), "pledged");
        assert_eq!(row.get::<String, _>("channel"), "ussd");
    }
}

/// A number that texted STOP gets its pledge's SMS stored as suppressed, never sent; a
/// pledge that asks first ("pledge again?") sends nothing until it is made.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_pledge_sms_respects_stop_and_waits_for_the_pledge(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    sqlx::query("insert into sms_optouts (phone, opted_out_at) values ($1, now())")
        .bind(PHONE_RU)
        .execute(&pool)
        .await
        .expect("opt out");
    until_end(&app, "stop-1", PHONE_RU, &["1", "1", "500", "1"]).await;
    let status: String = sqlx::query_scalar("select status from outbox where phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("one row");
    assert_eq!(status, "suppressed");
    // the same pledge again within 10 minutes asks first: no SMS for the question
    let question = app
        .session("stop-2", PHONE_RU, &["1", "1", "500", "1"])
        .await;
    assert!(question.starts_with("CON Вы уже обещали"), "{question}");
    assert_eq!(count(&pool, "select count(*) from outbox").await, 1);
    // "yes" makes it, and its own SMS goes with it
    until_end(&app, "stop-2", PHONE_RU, &["1", "1", "500", "1", "1"]).await;
    assert_eq!(count(&pool, "select count(*) from outbox").await, 2);
    assert_eq!(
        count(&pool, "select count(distinct pledge_id) from outbox").await,
        2
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_repeated_hop_gets_the_same_answer_and_pledges_once(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    app.session("dup", PHONE_EN, &["1", "2", "250,50"]).await;
    let first = app.hop("dup", PHONE_EN, "1*2*250,50*1").await;
    let second = app.hop("dup", PHONE_EN, "1*2*250,50*1").await;
    assert_eq!(first, second);
    assert!(
        first
            .1
            .starts_with("END School roof: pledged 250.50 TJS. Code "),
        "{}",
        first.1
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
    let amount: Decimal = sqlx::query_scalar("select amount from pledges")
        .fetch_one(&pool)
        .await
        .expect("pledge");
    assert_eq!(amount, dec("250.50"));
    // concurrent duplicates: still one pledge
    let (a, b) = tokio::join!(
        app.hop("dup2", PHONE_EN, "1*1*70*1"),
        app.hop("dup2", PHONE_EN, "1*1*70*1")
    );
    assert_eq!(a, b);
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn lost_hops_follow_the_history(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    // Hops "1" and "1*1" never reached us (another instance, or lost): the history decides.
    app.hop("lost", PHONE_EN, "").await;
    let (_, confirm) = app.hop("lost", PHONE_EN, "1*1*300").await;
    assert!(
        confirm.starts_with("CON Pledge 300 TJS to Bridge?"),
        "{confirm}"
    );
    // Only the final hop arrives: the pledge still happens, once.
    let (_, done) = app.hop("lost-2", PHONE_EN, "1*1*300*1").await;
    assert!(done.starts_with("END Bridge: pledged 300 TJS."), "{done}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_expired_session_starts_cleanly(pool: PgPool) {
    seed(&pool).await;
    sync_tips(&pool).await;
    let app = app(pool.clone()).await;
    let (_, tip) = app.hop("exp", PHONE_EN, "3").await;
    assert!(tip.starts_with("CON "), "{tip}");
    assert_eq!(count(&pool, "select count(*) from ussd_sessions").await, 1);
    app.clock.advance(chrono::Duration::minutes(10));
    let (_, restarted) = app.hop("exp", PHONE_EN, "3*1").await;
    assert!(
        restarted.starts_with("CON Hashar\n1 Pledge"),
        "back at the main menu: {restarted}"
    );
    // inputs now count from the restart: "2" opens the totals list
    let (_, totals) = app.hop("exp", PHONE_EN, "3*1*2").await;
    assert!(totals.starts_with("CON Which project?"), "{totals}");
    // an unknown session with an empty history simply starts
    let (_, fresh) = app.hop("never-seen", PHONE_EN, "").await;
    assert!(fresh.starts_with("CON Hashar"), "{fresh}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_unknown_caller_registers_first(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let phone = "+992935556677";
    let (_, first) = app.hop("reg", phone, "").await;
    assert!(
        first.contains("1 Тоҷикӣ") && first.contains("2 Русский") && first.contains("3 English"),
        "{first}"
    );
    let villages = app.session("reg", phone, &["2"]).await;
    assert!(
        villages.contains("1 Анзоб") && villages.contains("2 Саразм"),
        "{villages}"
    );
    // nothing is stored before the village is confirmed
    assert_eq!(count(&pool, "select count(*) from households").await, 4);
    let main = app.session("reg", phone, &["2", "1", "1"]).await;
    assert!(main.starts_with("CON Хашар"), "{main}");
    let row = sqlx::query(
        "select h.community_id, h.language, h.registered_via from phones p join households h on h.id = p.household_id where p.phone = $1",
    )
    .bind(phone)
    .fetch_one(&pool)
    .await
    .expect("registered");
    assert_eq!(row.get::<i64, _>(0), seed.community);
    assert_eq!(row.get::<Option<String>, _>(1).as_deref(), Some("ru"));
    assert_eq!(row.get::<String, _>(2), "ussd");
    // the rest of the session replays through the registration without repeating it
    let list = app.session("reg", phone, &["2", "1", "1", "1"]).await;
    assert!(
        list.contains("1 Мост") && list.contains("2 Крыша школы"),
        "{list}"
    );
    assert_eq!(count(&pool, "select count(*) from households").await, 5);
    // a later session goes straight to the main menu, in Russian
    let (_, again) = app.hop("reg-2", phone, "").await;
    assert!(again.starts_with("CON Хашар"), "{again}");
}

/// Two copies of the confirming hop at once (an aggregator's retry racing the first): one
/// household, and both copies get the same screen (the one that lost the race takes the
/// recorded result of the one that won, instead of an error for the phone it found taken).
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn concurrent_copies_of_the_registering_hop_register_once(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    // Five callers, each with its own race (once the step is recorded, copies only replay).
    for i in 0..5 {
        let phone = format!("+99293555668{i}");
        let session = format!("reg-dup-{i}");
        app.session(&session, &phone, &["2", "1"]).await;
        let (a, b) = tokio::join!(
            app.hop(&session, &phone, "2*1*1"),
            app.hop(&session, &phone, "2*1*1")
        );
        assert_eq!(a, b);
        assert!(a.1.starts_with("CON Хашар"), "{}", a.1);
    }
    assert_eq!(count(&pool, "select count(*) from households").await, 4 + 5);
    assert_eq!(
        count(
            &pool,
            "select count(*) from phones where phone like '+99293555668_'"
        )
        .await,
        5
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_household_without_a_language_chooses_one_and_it_is_remembered(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let (_, first) = app.hop("lang", PHONE_NO_LANGUAGE, "").await;
    assert!(first.contains("3 English"), "{first}");
    let (_, main) = app.hop("lang", PHONE_NO_LANGUAGE, "3").await;
    assert!(
        main.starts_with("CON Hashar"),
        "registered already, so no village step: {main}"
    );
    // the number's own language (the household's other numbers keep theirs)
    let lang: (Option<String>, Option<String>) = sqlx::query_as("select p.language, h.language from phones p join households h on h.id = p.household_id where p.phone = $1")
        .bind(PHONE_NO_LANGUAGE)
        .fetch_one(&pool)
        .await
        .expect("household");
    assert_eq!(lang, (Some("en".to_owned()), None));
    // changing language from the main menu
    let (_, ru) = app
        .session("lang-2", PHONE_NO_LANGUAGE, &["5", "2"])
        .await
        .split_once(' ')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .expect("screen");
    assert!(ru.starts_with("Хашар"), "{ru}");
}

async fn sync_tips(pool: &PgPool) -> u64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("menus/tips.toml");
    hashar::actions::sync_tips(pool, &path)
        .await
        .expect("tips load")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn tips_rotate_without_repeats_until_all_were_seen(pool: PgPool) {
    let seed = seed(&pool).await;
    let total = sync_tips(&pool).await as usize;
    assert!(total >= 12, "at least 12 tips, got {total}");
    assert_eq!(sync_tips(&pool).await, 0, "loading twice adds nothing");
    let app = app(pool.clone()).await;
    let mut path = vec!["3"];
    let mut screens = Vec::new();
    for _ in 0..=total {
        let (_, screen) = app.hop("tips", PHONE_EN, &path.join("*")).await;
        assert!(screen.starts_with("CON "), "{screen}");
        screens.push(screen);
        path.push("1");
    }
    let rows: Vec<(i32, i64)> = sqlx::query_as("select round, tip_id from tip_views where household_id = $1 order by seen_at, round, tip_id")
        .bind(seed.household + 2) // the English household
        .fetch_all(&pool)
        .await
        .expect("views");
    let round1: std::collections::BTreeSet<i64> =
        rows.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
    assert_eq!(round1.len(), total, "every tip once in the first round");
    assert_eq!(
        rows.iter().filter(|r| r.0 == 2).count(),
        1,
        "then a new round starts"
    );
    // the first tip of round 2 is the first tip again
    let first_tip_text: String =
        sqlx::query_scalar("select text_en from tips order by position limit 1")
            .fetch_one(&pool)
            .await
            .expect("tip");
    let first_words: String = first_tip_text
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        screens[0].contains(&first_words) && screens[total].contains(&first_words),
        "{}",
        screens[total]
    );
    // a repeated hop does not count as another view
    app.hop("tips", PHONE_EN, "3").await;
    assert_eq!(
        count(&pool, "select count(*) from tip_views").await as usize,
        total + 1
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn totals_are_exact_with_ratios_and_caps(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    receive(&pool, seed.roof, "1000.50").await;
    receive(&pool, seed.roof, "700.25").await;
    receive(&pool, seed.bridge, "333.33").await;
    until_end(&app, "p1", PHONE_EN, &["1", "2", "500", "1"]).await;
    until_end(&app, "p2", PHONE_RU, &["1", "2", "250.5", "1"]).await;
    let row = sqlx::query("select pledged, outstanding, received, matched, matched_total, percent from project_totals where project_id = $1")
        .bind(seed.roof)
        .fetch_one(&pool)
        .await
        .expect("totals");
    // received 1700.75 × 2 = 3401.50, capped at 3000
    let got: Vec<Decimal> = (0..6).map(|i| row.get(i)).collect();
    assert_eq!(
        got,
        vec![
            dec("750.50"),
            dec("750.50"),
            dec("1700.75"),
            dec("3000.00"),
            dec("4700.75"),
            dec("23.5")
        ]
    );
    let row = sqlx::query("select received, matched, matched_total, percent from project_totals where project_id = $1")
        .bind(seed.bridge)
        .fetch_one(&pool)
        .await
        .expect("totals");
    let got: Vec<Decimal> = (0..4).map(|i| row.get(i)).collect();
    assert_eq!(
        got,
        vec![dec("333.33"), dec("333.33"), dec("666.66"), dec("6.7")]
    );
    // the screen shows the same figures, from the same view
    let screen = app.session("t1", PHONE_EN, &["2", "2"]).await;
    assert_eq!(screen, "CON Collected 4700.75 of 20000 TJS (23.5%)\nSchool roof: pledged 750.50, paid 1700.75, matched 3000.\n0 Back");
    // in Russian and Tajik (UCS-2, 80 characters) the figure leads on a page of its own line
    let ru = app.session("t2", PHONE_RU, &["2", "2"]).await;
    assert!(
        ru.starts_with("CON Собрано 4700.75 из 20000 TJS (23.5%)\n"),
        "{ru}"
    );
    let tg = app.session("t3", PHONE_TG, &["2", "2"]).await;
    assert!(
        tg.starts_with("CON Ҷамъ шуд 4700.75 аз 20000 TJS (23.5%)\n"),
        "{tg}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn closed_projects_are_not_offered_and_cannot_be_pledged(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let list = app.session("c", PHONE_EN, &["1"]).await;
    assert!(
        !list.contains("Old") && !list.contains("Water"),
        "only this village's open projects: {list}"
    );
    app.session("c2", PHONE_EN, &["1", "1", "500"]).await;
    // closed while the caller is on the confirmation screen (at the test clock's time)
    close_project(&pool, seed.bridge, app.clock.now()).await;
    let (_, refused) = app.hop("c2", PHONE_EN, "1*1*500*1").await;
    assert_eq!(refused, "END This project is not open for pledges now.");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 0);
    // the list keeps its numbering for sessions that saw it; new sessions no longer see it
    let (_, same) = app.hop("c2", PHONE_EN, "1*1*500*0*0").await;
    assert!(
        same.contains("1 Bridge") && same.contains("2 School roof"),
        "{same}"
    );
    app.clock.advance(chrono::Duration::minutes(10));
    let list = app.session("c3", PHONE_EN, &["1"]).await;
    assert!(
        list.contains("1 School roof") && !list.contains("Bridge"),
        "{list}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn callback_requests_are_stored_once(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let done = app.session("cb", PHONE_TG, &["4", "5", "1"]).await;
    assert!(done.starts_with("END "), "{done}");
    app.hop("cb", PHONE_TG, "4*5*1").await;
    let row = sqlx::query("select phone, language, status, channel from callback_requests")
        .fetch_all(&pool)
        .await
        .expect("requests");
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].get::<String, _>(0), PHONE_TG);
    assert_eq!(row[0].get::<String, _>(1), "tg");
    assert_eq!(row[0].get::<String, _>(2), "open");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn bad_requests_get_a_clear_error(pool: PgPool) {
    let app = app(pool).await;
    let (status, body) = app
        .post_form(
            "/webhooks/africastalking/ussd",
            "phoneNumber=%2B992901112233&text=".into(),
        )
        .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "bad request: missing field sessionId\n"
        )
    );
    let (status, body) = app
        .post_form(
            "/webhooks/africastalking/ussd",
            "sessionId=s&phoneNumber=hello&text=".into(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with("bad request: field phoneNumber:"),
        "{body}"
    );
}

/// A database that accepts connections and never answers, or refuses them: the caller gets
/// END with "service busy" in their language, quickly, never a 500 or a hang.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_database_outage_answers_busy(pool: PgPool) {
    drop(pool);
    let (apps, holder) = apps_on_dead_databases(300).await;
    for (app, what) in apps {
        for (phone, busy) in [
            (PHONE_TG, "END Хизматрасонӣ банд аст"),
            ("+79161234567", "END Сервис занят"),
            ("+4915112345678", "END Service busy"),
        ] {
            let started = Instant::now();
            let (status, body) = app.hop("outage", phone, "1*1").await;
            assert_eq!(status, StatusCode::OK, "{what}");
            assert!(body.starts_with(busy), "{what}: {body}");
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{what}: took {:?}",
                started.elapsed()
            );
        }
        let (status, _) = app.get("/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
    }
    holder.abort();
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_menu_shows_the_family_code_for_relatives_abroad(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let code: String = sqlx::query_scalar(
        "select h.join_code from phones p join households h on h.id = p.household_id where p.phone = $1",
    )
    .bind(PHONE_EN)
    .fetch_one(&pool)
    .await
    .expect("code");
    let screen = app.session("fc", PHONE_EN, &["4", "99", "6"]).await;
    assert!(
        screen.starts_with(&format!(
            "CON Your family code is {code}. A family member abroad texts JOIN {code} to 4274"
        )),
        "{screen}"
    );
}

async fn code_of(pool: &PgPool, phone: &str) -> Vec<String> {
    sqlx::query_scalar("select code from pledges where phone = $1 order by id")
        .bind(phone)
        .fetch_all(pool)
        .await
        .expect("codes")
}

/// Issue 8, point 8: the same session id from another phone is that phone's own, fresh
/// session; it never sees the first caller's pledge or code.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_session_id_from_another_phone_is_its_own_session(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    app.session("shared", PHONE_EN, &["1", "1", "500"]).await;
    let first = until_end(&app, "shared", PHONE_EN, &["1", "1", "500", "1"]).await;
    let en_code = code_of(&pool, PHONE_EN).await;
    assert_eq!(en_code.len(), 1);
    assert!(first.contains(&en_code[0]), "{first}");

    // Another phone, the same id and the same keys: its own session, in its own language.
    let (_, start) = app.hop("shared", PHONE_RU, "").await;
    assert!(start.starts_with("CON Хашар"), "{start}");
    app.session("shared", PHONE_RU, &["1", "1", "500"]).await;
    let second = until_end(&app, "shared", PHONE_RU, &["1", "1", "500", "1"]).await;
    let ru_code = code_of(&pool, PHONE_RU).await;
    assert_eq!(ru_code.len(), 1, "the second phone's pledge is recorded");
    assert_ne!(ru_code[0], en_code[0]);
    assert!(second.starts_with("END Мост: обещано 500 TJS."), "{second}");
    assert!(second.contains(&ru_code[0]), "{second}");
    assert!(
        !second.contains(&en_code[0]),
        "never the other's code: {second}"
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);
    // and the first caller's session is untouched: a repeated hop still shows their code
    let again = until_end(&app, "shared", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert_eq!(again, first);
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);
}

/// Issue 8, point 8: the same phone reusing a session id for a new dialogue (other inputs)
/// gets its new pledge recorded and shown, never the first one's answer.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_reused_session_id_with_other_inputs_records_the_new_pledge(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    app.session("reused", PHONE_EN, &["1", "1", "500"]).await;
    until_end(&app, "reused", PHONE_EN, &["1", "1", "500", "1"]).await;
    // A new dialogue with the same id: another project and amount at the same steps.
    let confirm = app.session("reused", PHONE_EN, &["1", "2", "300"]).await;
    assert!(
        confirm.starts_with("CON Pledge 300 TJS to School roof?"),
        "{confirm}"
    );
    let done = until_end(&app, "reused", PHONE_EN, &["1", "2", "300", "1"]).await;
    let codes = code_of(&pool, PHONE_EN).await;
    assert_eq!(codes.len(), 2, "the new pledge is recorded, not dropped");
    assert!(
        done.starts_with("END School roof: pledged 300 TJS. Code "),
        "{done}"
    );
    assert!(
        done.contains(&codes[1]) && !done.contains(&codes[0]),
        "{done}"
    );
    let amounts: Vec<Decimal> = sqlx::query_scalar("select amount from pledges order by id")
        .fetch_all(&pool)
        .await
        .expect("amounts");
    assert_eq!(amounts, vec![dec("500"), dec("300")]);
    // Each history's retry still gets its own answer, once.
    let retry = until_end(&app, "reused", PHONE_EN, &["1", "2", "300", "1"]).await;
    assert_eq!(retry, done);
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);
}

/// [`while_locked`], then waits (bounded) until no other statement of this database is
/// still running, so that anything the request left behind in the server has finished or
/// failed.
async fn while_locked_then_settled<T>(
    pool: &PgPool,
    lock_sql: &str,
    request: impl std::future::Future<Output = T>,
) -> T {
    let answer = while_locked(pool, lock_sql, request).await;
    settle(pool).await;
    answer
}

/// Waits (bounded) until no other backend of this database runs a statement.
async fn settle(pool: &PgPool) {
    for _ in 0..250 {
        let busy = count(
            pool,
            "select count(*) from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid() and state = 'active'",
        )
        .await;
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("statements still running after 5 s");
}

/// Issue 8, point 9: a pledge that cannot commit inside the hop's deadline (the pledges
/// table is locked by someone else) is answered "busy" and is not recorded, not even once
/// the lock is gone; the caller's next try pledges once.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_stalled_pledge_answers_busy_and_records_nothing(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let mut config = test_config();
    config.db_timeout_ms = 300;
    let impatient = app_with(pool.clone(), config).await;
    impatient
        .session("stall", PHONE_EN, &["1", "1", "500"])
        .await;
    let (status, busy) = while_locked_then_settled(
        &pool,
        "lock table pledges in access exclusive mode",
        impatient.hop("stall", PHONE_EN, "1*1*500*1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(busy.starts_with("END Service busy"), "{busy}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 0);
    // the same for the project's pledge sums rows (the pledge's other write)
    let seed_bridge: i64 = sqlx::query_scalar("select id from projects where code = 'BRIDGE'")
        .fetch_one(&pool)
        .await
        .expect("bridge");
    let (_, busy) = while_locked_then_settled(
        &pool,
        &format!("select 1 from project_pledge_sums where project_id = {seed_bridge} for update"),
        impatient.hop("stall-2", PHONE_EN, "1*1*500*1"),
    )
    .await;
    assert!(busy.starts_with("END Service busy"), "{busy}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 0);
    assert_eq!(count(&pool, "select count(*) from outbox").await, 0);
    // the caller dials again: one pledge, no question (nothing was recorded before)
    let done = until_end(&app, "stall-3", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert!(done.starts_with("END Bridge: pledged 500 TJS."), "{done}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
}

/// Issue 9, point 1: every effect goes the way a pledge does (its own task, server-side
/// timeouts from the time left, COMMIT only in time): a stalled callback request answers
/// busy, records nothing, and its statement is cut by the database by then, not left
/// waiting behind the lock.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_stalled_effect_answers_busy_and_leaves_nothing_waiting(pool: PgPool) {
    seed(&pool).await;
    let mut config = test_config();
    config.db_timeout_ms = 300;
    let impatient = app_with(pool.clone(), config).await;
    impatient.session("stall", PHONE_EN, &["4", "5"]).await;
    let mut locker = pool.begin().await.expect("begin");
    sqlx::query("lock table callback_requests in access exclusive mode")
        .execute(&mut *locker)
        .await
        .expect("lock");
    let (status, busy) = impatient.hop("stall", PHONE_EN, "4*5*1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(busy.starts_with("END Service busy"), "{busy}");
    // The lock is still held: nothing of the hop waits for it any more.
    let mut waiting = -1;
    for _ in 0..100 {
        waiting = count(
            &pool,
            "select count(*) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'",
        )
        .await;
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(waiting, 0, "a statement of the busy hop still waits");
    locker.rollback().await.expect("unlock");
    settle(&pool).await;
    assert_eq!(
        count(&pool, "select count(*) from callback_requests").await,
        0
    );
    // dialling again does it
    let done = until_end(&impatient, "stall-2", PHONE_EN, &["4", "5", "1"]).await;
    assert!(done.starts_with("END"), "{done}");
    assert_eq!(
        count(&pool, "select count(*) from callback_requests").await,
        1
    );
}

/// Issue 8, point 9: a COMMIT that completes only after the hop was answered "busy" (here
/// held back by a deferred trigger waiting for a lock, which stands for a slow WAL flush: it
/// lifts the lock timeout the pledge's statement sets, as nothing can cut a flush) is told
/// to the household by SMS with
/// the pledge and its code (since issue 11 the pledge's own SMS, committed with it: one SMS,
/// not two); dialling again, the caller is asked before pledging twice.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledge_committed_after_the_deadline_is_told_by_sms(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    // Long enough for the hop to reach its COMMIT on a loaded machine; the COMMIT then waits
    // past it.
    let mut config = test_config();
    config.db_timeout_ms = 1_500;
    let impatient = app_with(pool.clone(), config).await;
    sqlx::raw_sql(
        "create function test_stall_commit() returns trigger language plpgsql as $$
         begin
             perform set_config('lock_timeout', '0', true);
             perform pg_advisory_xact_lock(8008);
             return null;
         end $$;
         create constraint trigger pledges_stall_commit after insert on pledges
             deferrable initially deferred for each row execute function test_stall_commit();",
    )
    .execute(&pool)
    .await
    .expect("stalling trigger");
    impatient
        .session("late", PHONE_EN, &["1", "1", "500"])
        .await;
    let mut holder = pool.acquire().await.expect("connection");
    sqlx::query("select pg_advisory_lock(8008)")
        .execute(&mut *holder)
        .await
        .expect("advisory lock");
    let (_, busy) = impatient.hop("late", PHONE_EN, "1*1*500*1").await;
    assert!(busy.starts_with("END Service busy"), "{busy}");
    sqlx::query("select pg_advisory_unlock(8008)")
        .execute(&mut *holder)
        .await
        .expect("advisory unlock");
    // The COMMIT completes now, and with it the pledge's SMS.
    let mut sms: Vec<(String, String)> = Vec::new();
    for _ in 0..250 {
        sms = sqlx::query_as("select phone, body from outbox")
            .fetch_all(&pool)
            .await
            .expect("outbox");
        if !sms.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let codes = code_of(&pool, PHONE_EN).await;
    assert_eq!(codes.len(), 1);
    assert_eq!(
        sms,
        vec![(
            PHONE_EN.to_owned(),
            format!(
                "Hashar: pledge code {}. You pledged 500 TJS to Bridge, not paid yet. Pay your village coordinator in cash or by transfer with this code; you get a receipt by SMS.",
                codes[0]
            )
        )]
    );
    // Dialling again with the same pledge: asked first.
    let (_, question) = app.hop("late-2", PHONE_EN, "1*1*500*1").await;
    assert!(
        question.starts_with("CON You pledged 500 TJS to Bridge 1 min ago. Pledge again?"),
        "{question}"
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
}

/// Issue 8, point 9: the same pledge (household, project, amount) within 10 minutes asks
/// "You pledged X n min ago. Pledge again?"; yes records it, no records nothing; after 10
/// minutes, or for another amount, nothing is asked.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_repeated_pledge_within_ten_minutes_asks_first(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let done = until_end(&app, "r1", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert!(done.starts_with("END Bridge: pledged 500 TJS."), "{done}");
    app.clock.advance(chrono::Duration::minutes(3));
    let question = app.session("r2", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert_eq!(
        question,
        "CON You pledged 500 TJS to Bridge 3 min ago. Pledge again?\n1 Yes\n2 No\n0 Back"
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
    // a repeated hop asks the same, and still records nothing
    let (_, same) = app.hop("r2", PHONE_EN, "1*1*500*1").await;
    assert_eq!(same, question);
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
    // "yes" records the second pledge, once
    let yes = until_end(&app, "r2", PHONE_EN, &["1", "1", "500", "1", "1"]).await;
    assert!(
        yes.starts_with("END Bridge: pledged 500 TJS. Code "),
        "{yes}"
    );
    until_end(&app, "r2", PHONE_EN, &["1", "1", "500", "1", "1"]).await;
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);
    let codes = code_of(&pool, PHONE_EN).await;
    assert!(yes.contains(&codes[1]), "{yes}");
    // "no" goes back to the main menu and records nothing
    let no = app
        .session("r3", PHONE_EN, &["1", "1", "500", "1", "2"])
        .await;
    assert!(no.starts_with("CON Hashar\n1 Pledge"), "{no}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);
    // another amount, or another household: not the same pledge
    let other = until_end(&app, "r4", PHONE_EN, &["1", "1", "501", "1"]).await;
    assert!(other.starts_with("END Bridge: pledged 501 TJS."), "{other}");
    let other = until_end(&app, "r5", PHONE_RU, &["1", "1", "500", "1"]).await;
    assert!(other.starts_with("END Мост: обещано 500 TJS."), "{other}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 4);
    // 10 minutes after the last one (at 3 min), no question
    app.clock.advance(chrono::Duration::minutes(9));
    let (_, still) = app.hop("r6", PHONE_EN, "1*1*500*1").await;
    assert!(
        still.starts_with("CON You pledged 500 TJS to Bridge 9 min ago."),
        "{still}"
    );
    app.clock.advance(chrono::Duration::minutes(1));
    let after = until_end(&app, "r7", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert!(after.starts_with("END Bridge: pledged 500 TJS."), "{after}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 5);
}

/// `HASHAR_PLEDGE_REPEAT_MINUTES` sets how far back the same pledge is asked about, through
/// the session setting every connection of the server's pools gets; 0 never asks.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_repeated_pledge_window_is_a_setting_and_0_never_asks(pool: PgPool) {
    seed(&pool).await;
    let mut config = test_config();
    config.pledge_repeat_minutes = 2;
    let app = app_as_served(pool.clone(), config).await;
    let done = until_end(&app, "w1", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert!(done.starts_with("END Bridge: pledged 500 TJS."), "{done}");
    app.clock.advance(chrono::Duration::seconds(90));
    let question = app.session("w2", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert_eq!(
        question,
        "CON You pledged 500 TJS to Bridge 2 min ago. Pledge again?\n1 Yes\n2 No\n0 Back"
    );
    // 2 minutes after it, not asked (with the default it would be, for 8 more minutes)
    app.clock.advance(chrono::Duration::seconds(30));
    let made = until_end(&app, "w3", PHONE_EN, &["1", "1", "500", "1"]).await;
    assert!(made.starts_with("END Bridge: pledged 500 TJS."), "{made}");
    assert_eq!(count(&pool, "select count(*) from pledges").await, 2);

    let mut config = test_config();
    config.pledge_repeat_minutes = 0;
    let never = app_as_served(pool.clone(), config).await;
    never.clock.advance(chrono::Duration::minutes(3));
    for session in ["w4", "w5"] {
        let made = until_end(&never, session, PHONE_EN, &["1", "1", "500", "1"]).await;
        assert!(made.starts_with("END Bridge: pledged 500 TJS."), "{made}");
    }
    assert_eq!(count(&pool, "select count(*) from pledges").await, 4);
}

/// Without `HASHAR_HOTLINE` the hotline screen says where to ask for the number in the
/// caller's language (it once put the English default inside Tajik and Russian screens).
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn without_a_hotline_number_each_language_says_where_to_ask(pool: PgPool) {
    seed(&pool).await;
    let mut config = common::test_config();
    config.hotline = None;
    let app = common::app_with(pool.clone(), config).await;
    for (phone, want) in [
        (PHONE_TG, "рақамро аз маркази деҳа пурсед"),
        (PHONE_RU, "спросите номер в ресурсном центре"),
        (PHONE_EN, "ask your resource centre for it"),
    ] {
        // the screen pages: read it whole (its text lines, without the options)
        let session = format!("hotline-{phone}");
        let mut pages = Vec::new();
        for input in ["4*4", "4*4*99"] {
            let (_, page) = app.hop(&session, phone, input).await;
            let text: Vec<&str> = page
                .trim_start_matches("CON ")
                .trim_start_matches("END ")
                .lines()
                .filter(|l| !l.starts_with("0 ") && !l.starts_with("99 ") && !l.starts_with("1 "))
                .collect();
            pages.push(text.join(" "));
        }
        let screen = pages.join(" ");
        assert!(screen.contains(want), "{screen}");
        if phone != PHONE_EN {
            assert!(!screen.contains("resource centre"), "{screen}");
        }
    }
}

/// Every pledge leaves a session row: those that can no longer be read (started more than
/// the session's time plus two days ago) are deleted with their recorded effects, in
/// batches; newer ones and the pledges themselves stay.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn old_ussd_sessions_are_deleted_with_their_effects(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    app.session("old-1", PHONE_EN, &["1", "1", "500", "1"])
        .await;
    app.session("old-2", PHONE_RU, &["1", "1", "500", "1"])
        .await;
    app.clock.advance(chrono::Duration::days(3));
    app.session("new", PHONE_EN, &["1", "2", "300", "1"]).await;
    assert_eq!(count(&pool, "select count(*) from ussd_sessions").await, 3);
    let before = app.clock.now()
        - chrono::Duration::seconds(
            i64::try_from(test_config().ussd_session_ttl_secs).expect("ttl"),
        )
        - hashar::workers::USSD_SESSIONS_KEPT;
    // one at a time: the oldest first
    assert_eq!(
        hashar::store::ussd_sessions::prune(&pool, before, 1)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        hashar::store::ussd_sessions::prune(&pool, before, 10)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        hashar::store::ussd_sessions::prune(&pool, before, 10)
            .await
            .expect("prune"),
        0
    );
    let left: Vec<String> = sqlx::query_scalar("select session_key from ussd_sessions")
        .fetch_all(&pool)
        .await
        .expect("sessions");
    assert_eq!(left, vec![format!("africastalking:{PHONE_EN}:new")]);
    assert_eq!(
        count(
            &pool,
            "select count(*) from ussd_effects where session_key not like '%:new'"
        )
        .await,
        0
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 3);
    // the kept session still answers its retry with the same screen
    let (_, retry) = app.hop("new", PHONE_EN, "1*2*300*1").await;
    assert!(
        retry.starts_with("END School roof: pledged 300 TJS."),
        "{retry}"
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 3);
}
