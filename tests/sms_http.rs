//! Texts from migrants abroad over each aggregator's webhook, against a real PostgreSQL:
//! keyword commands, JOIN, STOP/START, SMS conversations, currencies, signatures, secrets,
//! deduplication and delivery reports.

mod common;

use axum::http::StatusCode;
use common::*;
use hashar::{channels::twilio, clock::Clock};
use rust_decimal::Decimal;
use sqlx::{PgPool, Row};

const MIGRANT: &str = "+79161234567";

impl TestApp {
    /// The replies queued for a number, oldest first: (body, status, kind).
    async fn replies(&self, phone: &str) -> Vec<(String, String, String)> {
        sqlx::query_as("select body, status, kind from outbox where phone = $1 order by id")
            .bind(phone)
            .fetch_all(&self.pool)
            .await
            .expect("outbox")
    }

    async fn last_reply(&self, phone: &str) -> String {
        self.replies(phone)
            .await
            .pop()
            .map(|r| r.0)
            .unwrap_or_default()
    }
}

async fn add_migrant(pool: &PgPool, household_phone: &str, migrant: &str) {
    sqlx::query("insert into phones (phone, household_id) select $2, household_id from phones where phone = $1")
        .bind(household_phone)
        .bind(migrant)
        .execute(pool)
        .await
        .expect("migrant phone");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_keyword_pledge_is_stored_once_and_answered_in_the_households_language(pool: PgPool) {
    let seed = seed(&pool).await;
    add_migrant(&pool, PHONE_RU, MIGRANT).await;
    let app = app(pool.clone()).await;
    assert_eq!(
        app.text("ATXid_1", MIGRANT, "ОБЕЩАЮ 1 500 МОСТ").await,
        StatusCode::OK
    );
    // the aggregator retries the same message: answered 200, handled once
    assert_eq!(
        app.text("ATXid_1", MIGRANT, "ОБЕЩАЮ 1 500 МОСТ").await,
        StatusCode::OK
    );
    let pledges = sqlx::query("select project_id, amount, channel, phone from pledges")
        .fetch_all(&pool)
        .await
        .expect("pledges");
    assert_eq!(pledges.len(), 1);
    assert_eq!(pledges[0].get::<i64, _>(0), seed.bridge);
    assert_eq!(pledges[0].get::<Decimal, _>(1), Decimal::from(1500));
    assert_eq!(pledges[0].get::<String, _>(2), "sms");
    assert_eq!(pledges[0].get::<String, _>(3), MIGRANT);
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where kind = 'sms'"
        )
        .await,
        1
    );
    let replies = app.replies(MIGRANT).await;
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0].0.starts_with("Спасибо!") && replies[0].0.contains("1500"),
        "{}",
        replies[0].0
    );
    assert_eq!(replies[0].1, "queued");
    let (encoding, segments): (String, i32) =
        sqlx::query_as("select encoding, segments from outbox")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(encoding, "ucs2");
    assert!(segments >= 1);
    let inbound =
        sqlx::query("select sender_e164, outcome, handled_at is not null from inbound_messages")
            .fetch_one(&pool)
            .await
            .expect("inbound");
    assert_eq!(
        inbound.get::<Option<String>, _>(0).as_deref(),
        Some(MIGRANT)
    );
    assert_eq!(
        inbound.get::<Option<String>, _>(1).as_deref(),
        Some("pledge")
    );
    assert!(inbound.get::<bool, _>(2));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn amounts_projects_and_helpful_errors(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    let cases = [
        (
            "PLEDGE 500 BRIDGE",
            "Thank you! Pledged 500 TJS to Bridge, not paid yet. Code ",
        ),
        (
            "pledge 1500,50 roof",
            "Thank you! Pledged 1500.50 TJS to School roof, not paid yet.",
        ),
        (
            "Pledge 250.5 school",
            "Thank you! Pledged 250.50 TJS to School roof, not paid yet.",
        ),
        (
            "PLEDGE 500",
            "Which project? Text e.g. PLEDGE 500 BRIDGE. Projects: BRIDGE, ROOF.",
        ),
        (
            "PLEDGE 500 PARTY",
            "No open project called PARTY. Projects: BRIDGE, ROOF.",
        ),
        (
            "PLEDGE abc",
            "To pledge, text the amount and the project, e.g. PLEDGE 500 BRIDGE.",
        ),
        (
            "PLEDGE -5 BRIDGE",
            "To pledge, text the amount and the project, e.g. PLEDGE 500 BRIDGE.",
        ),
        (
            "PLEDGE 200000 BRIDGE",
            "The most you can pledge at once is 100000 TJS.",
        ),
        (
            "PLEDGE 5000 RUB BRIDGE",
            "Pledges in RUB are not possible yet. Please pledge in TJS.",
        ),
        ("TOTAL BRIDGE", "Bridge: "),
        ("HELP", "Hashar by SMS:"),
        ("JOIN 12", "Text JOIN and your family's 6-digit code"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_eq!(
            app.text(&format!("m{i}"), MIGRANT, text).await,
            StatusCode::OK
        );
        let reply = app.last_reply(MIGRANT).await;
        assert!(reply.starts_with(want), "{text:?} → {reply:?}");
    }
    let amounts: Vec<Decimal> = sqlx::query_scalar("select amount from pledges order by id")
        .fetch_all(&pool)
        .await
        .expect("pledges");
    assert_eq!(
        amounts,
        vec![
            Decimal::from(500),
            "1500.50".parse().expect("d"),
            "250.50".parse().expect("d")
        ]
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pledges_in_another_currency_need_a_rate_and_keep_what_was_said(pool: PgPool) {
    let seed = seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    let today = app.clock.now().date_naive();
    sqlx::query("insert into exchange_rates (base, quote, rate, valid_from) values ('RUB', 'TJS', 0.1150, $1), ('RUB', 'TJS', 0.2, $1 + 10)")
        .bind(today)
        .execute(&pool)
        .await
        .expect("rates");
    app.text("r1", MIGRANT, "PLEDGE 5000 RUB BRIDGE").await;
    let reply = app.last_reply(MIGRANT).await;
    assert!(
        reply.starts_with(
            "Thank you! Pledged 5000 RUB = 575 TJS (rate 0.115) to Bridge, not paid yet."
        ),
        "{reply}"
    );
    let row = sqlx::query(
        "select amount, currency, said_amount, said_currency, rate, project_id from pledges",
    )
    .fetch_one(&pool)
    .await
    .expect("pledge");
    assert_eq!(row.get::<Decimal, _>(0), Decimal::from(575));
    assert_eq!(row.get::<String, _>(1), "TJS");
    assert_eq!(row.get::<Option<Decimal>, _>(2), Some(Decimal::from(5000)));
    assert_eq!(row.get::<Option<String>, _>(3).as_deref(), Some("RUB"));
    assert_eq!(
        row.get::<Option<Decimal>, _>(4),
        Some("0.115".parse().expect("d"))
    );
    assert_eq!(row.get::<i64, _>(5), seed.bridge);
}

/// The rate of a pledge in another currency is the one of the programme's local day
/// (Dushanbe, UTC+5), not UTC's: at 01:30 local time on the 29th (20:30 UTC on the 28th) the
/// rate valid from the 29th applies.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_exchange_rate_is_the_one_of_the_local_day(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    // the test clock starts at 2026-11-28 09:00 UTC
    app.clock
        .advance(chrono::Duration::hours(11) + chrono::Duration::minutes(30));
    sqlx::query(
        "insert into exchange_rates (base, quote, rate, valid_from)
         values ('RUB', 'TJS', 0.1150, '2026-11-28'), ('RUB', 'TJS', 0.2, '2026-11-29')",
    )
    .execute(&pool)
    .await
    .expect("rates");
    app.text("r-local", MIGRANT, "PLEDGE 5000 RUB BRIDGE").await;
    let reply = app.last_reply(MIGRANT).await;
    assert!(
        reply.starts_with(
            "Thank you! Pledged 5000 RUB = 1000 TJS (rate 0.2) to Bridge, not paid yet."
        ),
        "{reply}"
    );
}

/// Issue 8, point 3: the check and the count of wrong codes are one atomic step, so
/// concurrent tries from one number get exactly five wrong answers.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn concurrent_wrong_join_codes_are_counted_exactly(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let code: String = sqlx::query_scalar("select h.join_code from phones p join households h on h.id = p.household_id where p.phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("code");
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let ids: Vec<String> = (0..9).map(|i| format!("c{i}")).collect();
    let text = format!("JOIN {wrong}");
    let statuses =
        futures_util::future::join_all(ids.iter().map(|id| app.text(id, MIGRANT, &text))).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let replies = app.replies(MIGRANT).await;
    let wrong_answers = replies
        .iter()
        .filter(|r| r.0.starts_with("Неверный код"))
        .count();
    let limited = replies
        .iter()
        .filter(|r| r.0.starts_with("Слишком много неверных кодов"))
        .count();
    assert_eq!((wrong_answers, limited), (5, 4), "{replies:?}");
    assert_eq!(
        count(
            &pool,
            "select count(*) from join_attempts where not succeeded"
        )
        .await,
        5
    );
    // the next try, even with the right code, is refused
    app.text("c9", MIGRANT, &format!("JOIN {code}")).await;
    assert!(app
        .last_reply(MIGRANT)
        .await
        .starts_with("Слишком много неверных кодов"));
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from phones where phone = '{MIGRANT}'")
        )
        .await,
        0
    );
}

/// Issue 8, point 3: an attacker who spreads guesses over many numbers gets at most the
/// hour's budget of wrong codes for all numbers (60); then JOIN is refused for every
/// number, whatever the code, until the hour has passed.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn wrong_join_codes_from_many_numbers_spend_one_budget(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let code: String = sqlx::query_scalar("select h.join_code from phones p join households h on h.id = p.household_id where p.phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("code");
    let mut wrong = 100_000u32;
    for n in 0..12 {
        let phone = format!("+7916000{n:04}");
        for i in 0..5 {
            wrong += 1;
            if wrong.to_string() == code {
                wrong += 1;
            }
            app.text(&format!("g{n}-{i}"), &phone, &format!("JOIN {wrong}"))
                .await;
            assert!(app.last_reply(&phone).await.starts_with("Неверный код"));
        }
    }
    // a thirteenth number with the right code: refused, not linked
    app.text("right", MIGRANT, &format!("JOIN {code}")).await;
    assert!(app
        .last_reply(MIGRANT)
        .await
        .starts_with("Слишком много неверных кодов"));
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from phones where phone = '{MIGRANT}'")
        )
        .await,
        0
    );
    app.clock.advance(chrono::Duration::minutes(61));
    app.text("right-later", MIGRANT, &format!("JOIN {code}"))
        .await;
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from phones where phone = '{MIGRANT}'")
        )
        .await,
        1
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn join_links_a_number_abroad_and_wrong_codes_are_rate_limited(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let code: String = sqlx::query_scalar("select h.join_code from phones p join households h on h.id = p.household_id where p.phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("code");
    assert_eq!(code.len(), 6);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    for i in 0..5 {
        app.text(&format!("w{i}"), MIGRANT, &format!("JOIN {wrong}"))
            .await;
        // a +7 number without a household gets Russian
        assert_eq!(
            app.last_reply(MIGRANT).await,
            "Неверный код. Пожалуйста, уточните его у родных."
        );
    }
    // the sixth try within the hour is refused even with the right code
    app.text("w5", MIGRANT, &format!("JOIN {code}")).await;
    let limited = app.last_reply(MIGRANT).await;
    assert!(
        limited.starts_with("Слишком много неверных кодов"),
        "{limited}"
    );
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from phones where phone = '{MIGRANT}'")
        )
        .await,
        0,
        "{limited}"
    );
    // an hour later it works, and the number now belongs to the Russian-speaking household
    app.clock.advance(chrono::Duration::minutes(61));
    app.text("ok", MIGRANT, &format!("JOIN {code}")).await;
    let household: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(MIGRANT)
        .fetch_one(&pool)
        .await
        .expect("joined");
    let expected: i64 = sqlx::query_scalar("select household_id from phones where phone = $1")
        .bind(PHONE_RU)
        .fetch_one(&pool)
        .await
        .expect("household");
    assert_eq!(household, expected);
    assert!(
        app.last_reply(MIGRANT).await.contains("Анзоб"),
        "{}",
        app.last_reply(MIGRANT).await
    );
    assert_ne!(limited, app.last_reply(MIGRANT).await);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn after_stop_only_the_confirmation_is_sent_until_start(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    app.text("s1", MIGRANT, "STOP").await;
    app.text("s2", MIGRANT, "TOTAL").await;
    app.text("s3", MIGRANT, "PLEDGE 100 BRIDGE").await;
    app.text("s4", MIGRANT, "START").await;
    app.text("s5", MIGRANT, "HELP").await;
    let replies = app.replies(MIGRANT).await;
    let statuses: Vec<(&str, &str)> = replies
        .iter()
        .map(|r| (r.1.as_str(), r.2.as_str()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("queued", "stop_confirmation"),
            ("suppressed", "reply"),
            ("suppressed", "reply"),
            ("queued", "reply"),
            ("queued", "reply")
        ]
    );
    assert!(replies[0].0.contains("START"), "{}", replies[0].0);
    assert!(replies[3].0.starts_with("Welcome back"), "{}", replies[3].0);
    // START again, from a number that no longer stops: no "welcome back"
    app.text("s4b", MIGRANT, "START").await;
    let again = app.last_reply(MIGRANT).await;
    assert!(again.contains("already on"), "{again}");
    // the pledge itself still counts: STOP silences messages, not the household
    assert_eq!(count(&pool, "select count(*) from pledges").await, 1);
    // Cyrillic СТОП works the same
    app.text("s6", MIGRANT, "стоп").await;
    assert_eq!(
        count(
            &pool,
            &format!("select count(*) from sms_optouts where phone = '{MIGRANT}'")
        )
        .await,
        1
    );
}

/// Issue 11, point 1: replies in Russian and Tajik suggest the keywords of their own
/// language, and projects by a word of their name in it (not `PLEDGE 500 BRIDGE`); each
/// suggestion works when texted back.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn russian_and_tajik_replies_suggest_their_own_keywords(pool: PgPool) {
    let seed = seed(&pool).await;
    add_migrant(&pool, PHONE_RU, MIGRANT).await;
    const TAJIK_MIGRANT: &str = "+79161234568";
    add_migrant(&pool, PHONE_TG, TAJIK_MIGRANT).await;
    let app = app(pool.clone()).await;
    let cases = [
        (
            MIGRANT,
            "обещаю 500",
            "Какой проект? Напишите, например: ОБЕЩАЮ 500 МОСТ. Проекты: МОСТ, КРЫША.",
        ),
        (
            MIGRANT,
            "ОБЕЩАЮ 500 ВЕЧЕРИНКА",
            "Нет открытого проекта «ВЕЧЕРИНКА». Проекты: МОСТ, КРЫША.",
        ),
        (
            MIGRANT,
            "ОБЕЩАЮ много",
            "Напишите сумму и проект, например: ОБЕЩАЮ 500 МОСТ.",
        ),
        (MIGRANT, "ВСТУПИТЬ", "Отправьте ВСТУПИТЬ и 6-значный код"),
        (MIGRANT, "ЯЗЫК", "Напишите ЯЗЫК RU, ЯЗЫК TG или ЯЗЫК EN."),
        (
            TAJIK_MIGRANT,
            "ваъда 500",
            "Кадом лоиҳа? Масалан, нависед: ВАЪДА 500 ПУЛ. Лоиҳаҳо: ПУЛ, БОМИ.",
        ),
        (
            TAJIK_MIGRANT,
            "ВАЪДА чанд",
            "Маблағ ва лоиҳаро нависед, масалан: ВАЪДА 500 ПУЛ.",
        ),
        (TAJIK_MIGRANT, "ПАЙВАСТ", "ПАЙВАСТ ва рамзи 6-рақамаи"),
    ];
    for (i, (phone, text, want)) in cases.iter().enumerate() {
        app.text(&format!("k{i}"), phone, text).await;
        let reply = app.last_reply(phone).await;
        assert!(reply.starts_with(want), "{text:?} → {reply:?}");
    }
    for (i, phone) in [MIGRANT, TAJIK_MIGRANT].iter().enumerate() {
        app.text(&format!("h{i}"), phone, "?").await;
        let help = app.last_reply(phone).await;
        for latin in ["PLEDGE", "TOTAL", "JOIN", "LANG", "STOP", "START"] {
            assert!(!help.contains(latin), "{latin} in {help}");
        }
    }
    // what the replies suggest works
    app.text("back-1", MIGRANT, "ОБЕЩАЮ 500 КРЫША").await;
    app.text("back-2", TAJIK_MIGRANT, "ВАЪДА 300 ПУЛ").await;
    let pledged: Vec<(i64, Decimal)> =
        sqlx::query_as("select project_id, amount from pledges order by id")
            .fetch_all(&pool)
            .await
            .expect("pledges");
    assert_eq!(
        pledged,
        vec![
            (seed.roof, Decimal::from(500)),
            (seed.bridge, Decimal::from(300))
        ]
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_unknown_number_registers_by_sms_conversation_then_pledges(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    app.text("c1", MIGRANT, "Салом").await;
    let first = app.last_reply(MIGRANT).await;
    assert!(
        first.contains("1 Тоҷикӣ") && first.contains("ВСТУПИТЬ"),
        "{first}"
    );
    app.text("c2", MIGRANT, "2").await;
    assert!(
        app.last_reply(MIGRANT).await.contains("1 Анзоб"),
        "{}",
        app.last_reply(MIGRANT).await
    );
    app.text("c3", MIGRANT, "1").await;
    app.text("c4", MIGRANT, "1").await;
    let main = app.last_reply(MIGRANT).await;
    assert!(main.starts_with("Хашар"), "{main}");
    let community: i64 = sqlx::query_scalar("select h.community_id from phones p join households h on h.id = p.household_id where p.phone = $1")
        .bind(MIGRANT)
        .fetch_one(&pool)
        .await
        .expect("registered by sms");
    assert_eq!(community, seed.community);
    // issue 8, point 13: recorded as registered by SMS, not USSD
    let via: String = sqlx::query_scalar("select h.registered_via from phones p join households h on h.id = p.household_id where p.phone = $1")
        .bind(MIGRANT)
        .fetch_one(&pool)
        .await
        .expect("registered_via");
    assert_eq!(via, "sms");
    // the same menus as USSD: pledge → project 1 → amount → confirm
    for (i, input) in ["1", "1", "300", "1"].iter().enumerate() {
        app.text(&format!("p{i}"), MIGRANT, input).await;
    }
    // the END screen, then (queued by the pledge itself, so just before it) the pledge's SMS
    // with how to pay
    let replies = app.replies(MIGRANT).await;
    let code: String = sqlx::query_scalar("select code from pledges where phone = $1")
        .bind(MIGRANT)
        .fetch_one(&pool)
        .await
        .expect("code");
    let n = replies.len();
    assert_eq!(
        replies[n - 1].0,
        format!("Мост: обещано 300 TJS. Код {code}. Оплата — в SMS")
    );
    assert!(
        replies[n - 2].0.starts_with(&format!(
            "Хашар: код обещания {code}. Вы обещали 300 TJS на «Мост»"
        )),
        "{:?}",
        replies[n - 2]
    );
    let amount: Decimal = sqlx::query_scalar("select amount from pledges where phone = $1")
        .bind(MIGRANT)
        .fetch_one(&pool)
        .await
        .expect("pledge");
    assert_eq!(amount, Decimal::from(300));
    assert_eq!(
        count(&pool, "select count(*) from sms_conversations").await,
        0,
        "the conversation ended with the END screen"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_sms_conversation_expires_after_thirty_minutes(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    app.text("e1", MIGRANT, "hi").await;
    app.text("e2", MIGRANT, "1").await;
    assert!(app
        .last_reply(MIGRANT)
        .await
        .starts_with("Choose a project"));
    app.clock.advance(chrono::Duration::minutes(31));
    app.text("e3", MIGRANT, "1").await;
    // a new conversation: the text opens the main menu instead of choosing project 1
    assert!(
        app.last_reply(MIGRANT)
            .await
            .starts_with("Hashar\n1 Pledge"),
        "{}",
        app.last_reply(MIGRANT).await
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_unparseable_sender_is_stored_and_not_answered(pool: PgPool) {
    let app = app(pool.clone()).await;
    assert_eq!(app.text("u1", "MPESA", "hello").await, StatusCode::OK);
    let outcome: Option<String> = sqlx::query_scalar("select outcome from inbound_messages")
        .fetch_one(&pool)
        .await
        .expect("stored");
    assert!(outcome
        .unwrap_or_default()
        .starts_with("unparseable sender"));
    assert_eq!(count(&pool, "select count(*) from outbox").await, 0);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn twilio_requests_need_a_valid_signature(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let mut config = test_config();
    config.providers.twilio.twilio_auth_token = Some("token-123".into());
    config.public_url = "https://hashar.example.org".into();
    let app = app_with(pool.clone(), config).await;
    let params: Vec<(String, String)> = [
        ("MessageSid", "SM0001"),
        ("AccountSid", "AC1"),
        ("From", MIGRANT),
        ("To", "+12025550100"),
        ("Body", "TOTAL"),
        ("NumSegments", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let post = |sig: Option<String>| {
        let body = body.clone();
        let router = app.router.clone();
        async move {
            let mut req = axum::http::Request::post("/webhooks/twilio/sms")
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(s) = sig {
                req = req.header("x-twilio-signature", s);
            }
            let resp = tower::ServiceExt::oneshot(
                router,
                req.body(axum::body::Body::from(body)).expect("request"),
            )
            .await
            .expect("answer");
            let status = resp.status();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .expect("body")
                .to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    assert_eq!(post(None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(post(Some("bm90IGl0".into())).await.0, StatusCode::FORBIDDEN);
    let wrong_url = twilio::signature(
        "token-123",
        "https://elsewhere.example.org/webhooks/twilio/sms",
        &params,
    );
    assert_eq!(post(Some(wrong_url)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        count(&pool, "select count(*) from inbound_messages").await,
        0,
        "refused requests are stored nowhere"
    );
    let good = twilio::signature(
        "token-123",
        "https://hashar.example.org/webhooks/twilio/sms",
        &params,
    );
    let (status, twiml) = post(Some(good)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(twiml.contains("<Response"), "{twiml}");
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where provider = 'twilio'"
        )
        .await,
        1
    );
    assert!(
        app.last_reply(MIGRANT).await.starts_with("Bridge: "),
        "{}",
        app.last_reply(MIGRANT).await
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_shared_secret_protects_unsigned_providers(pool: PgPool) {
    const SECRET: &str = "s3cret-0123456789";
    seed(&pool).await;
    let mut config = test_config();
    // at least 16 characters, as `Config::settings` requires since the settings are checked
    // when the app is built
    config.webhook_secret = Some(SECRET.into());
    let app = app_with(pool.clone(), config).await;
    let body = form(&[
        ("id", "x1"),
        ("from", MIGRANT),
        ("to", "4274"),
        ("text", "HELP"),
    ]);
    assert_eq!(
        app.post_form("/webhooks/africastalking/sms", body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post_form("/webhooks/africastalking/sms?secret=wrong", body.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/webhooks/kannel/sms?id=k1&from=79161234567&text=HELP")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        count(&pool, "select count(*) from inbound_messages").await,
        0
    );
    assert_eq!(
        app.post_form(
            &format!("/webhooks/africastalking/sms?secret={SECRET}"),
            body
        )
        .await
        .0,
        StatusCode::OK
    );
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!("kannel:{SECRET}"))
    };
    let req = axum::http::Request::get(
        "/webhooks/kannel/sms?id=k1&from=%2B79161234568&to=4274&text=HELP",
    )
    .header("authorization", format!("Basic {basic}"))
    .body(axum::body::Body::empty())
    .expect("request");
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        count(&pool, "select count(*) from inbound_messages").await,
        2
    );
    let (status, _) = app
        .get(&format!(
            "/webhooks/kannel/sms?secret={SECRET}&id=k2&from=%2B79161234568&to=4274&text=HELP"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where raw::text like '%s3cret%'"
        )
        .await,
        0,
        "the secret is not stored"
    );
    // and the USSD webhook of the same unsigned provider
    let (status, _) = app
        .post_form(
            "/webhooks/africastalking/ussd",
            form(&[("sessionId", "s"), ("phoneNumber", PHONE_EN), ("text", "")]),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn infobip_and_kannel_inbound(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    add_migrant(&pool, PHONE_RU, "+79031112233").await;
    let app = app(pool.clone()).await;
    let json = serde_json::json!({"results": [
        {"messageId": "ib-1", "from": "79161234567", "to": "4274", "text": "TOTAL BRIDGE", "receivedAt": "2026-11-28T09:28:39.220+0000", "smsCount": 1},
        {"messageId": "ib-2", "from": "79031112233", "to": "4274", "text": "ИТОГ", "receivedAt": "2026-11-28T09:28:40.220+0000", "smsCount": 1}
    ], "messageCount": 2, "pendingMessageCount": 0});
    let req = axum::http::Request::post("/webhooks/infobip/sms")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(json.to_string()))
        .expect("request");
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(app.last_reply(MIGRANT).await.starts_with("Bridge: "));
    assert!(
        app.last_reply("+79031112233").await.starts_with("Мост: "),
        "{}",
        app.last_reply("+79031112233").await
    );
    let (status, _) = app
        .get("/webhooks/kannel/sms?id=6f1c-uuid&from=%2B79161234567&to=4274&text=%D0%98%D0%A2%D0%9E%D0%93&coding=0&charset=UTF-8")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where kind = 'sms'"
        )
        .await,
        3
    );
    let bad = app
        .get("/webhooks/kannel/sms?from=%2B79161234567&text=x")
        .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn delivery_reports_move_status_forward_only(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    app.text("d1", MIGRANT, "HELP").await;
    app.text("d2", MIGRANT, "HELP ME").await;
    let ids: Vec<i64> = sqlx::query_scalar("select id from outbox order by id")
        .fetch_all(&pool)
        .await
        .expect("ids");
    // pretend the provider took both (the dispatcher tests cover sending)
    sqlx::query("update outbox set status = 'sent', provider = 'africastalking', provider_msg_id = 'ATXid_' || id")
        .execute(&pool)
        .await
        .expect("sent");
    let dlr = |id: i64, status: &str| {
        form(&[
            ("id", &format!("ATXid_{id}")),
            ("status", status),
            ("phoneNumber", MIGRANT),
            ("retryCount", "0"),
        ])
    };
    assert_eq!(
        app.post_form("/webhooks/africastalking/delivery", dlr(ids[0], "Success"))
            .await
            .0,
        StatusCode::OK
    );
    // a late "Sent" must not move it back; a repeat is ignored
    app.post_form("/webhooks/africastalking/delivery", dlr(ids[0], "Sent"))
        .await;
    app.post_form("/webhooks/africastalking/delivery", dlr(ids[0], "Success"))
        .await;
    let mut failed = dlr(ids[1], "Failed");
    failed.push_str("&failureReason=UserInBlackList");
    app.post_form("/webhooks/africastalking/delivery", failed)
        .await;
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("select status, last_error from outbox order by id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(rows[0].0, "delivered");
    assert_eq!(
        rows[1],
        ("failed".to_owned(), Some("UserInBlackList".to_owned()))
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where kind = 'delivery'"
        )
        .await,
        3
    );
    // Kannel and Infobip name the message by our outbox id
    sqlx::query("update outbox set provider = 'kannel' where id = $1")
        .bind(ids[0])
        .execute(&pool)
        .await
        .expect("kannel");
    sqlx::query("update outbox set provider = 'infobip', status = 'sent' where id = $1")
        .bind(ids[1])
        .execute(&pool)
        .await
        .expect("infobip");
    let (status, _) = app
        .get(&format!(
            "/webhooks/kannel/delivery?msg={}&type=8&reply=ACK%2F&smsc=FAKE&ts=1",
            ids[0]
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let report = serde_json::json!({"results": [{"bulkId": "b", "messageId": ids[1].to_string(), "to": "79161234567",
        "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET", "description": "ok"},
        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR", "description": "No Error", "permanent": false}}]});
    let req = axum::http::Request::post("/webhooks/infobip/delivery")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(report.to_string()))
        .expect("request");
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    let rows: Vec<(String, String)> =
        sqlx::query_as("select provider, status from outbox order by id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    // the Kannel "sent to SMSC" report does not move a delivered message back
    assert_eq!(
        rows,
        vec![
            ("kannel".to_owned(), "delivered".to_owned()),
            ("infobip".to_owned(), "delivered".to_owned())
        ]
    );
}

/// A database that stalls mid-request (here: a table locked by someone else) gets the
/// provider a 503 within `HASHAR_DB_TIMEOUT_MS`, nothing half-done is kept, and the
/// provider's retry after the stall is handled once — for texts and delivery reports.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_stalled_database_gets_a_quick_retry_answer_and_keeps_nothing_half_done(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    // the same server with a short timeout, for the requests that meet the stall
    let mut config = test_config();
    config.db_timeout_ms = 300;
    let impatient = app_with(pool.clone(), config).await;
    assert_eq!(app.text("s0", MIGRANT, "HELP").await, StatusCode::OK);
    let reply_id: i64 = sqlx::query_scalar("select id from outbox")
        .fetch_one(&pool)
        .await
        .expect("reply");
    sqlx::query("update outbox set status = 'sent', provider = 'africastalking', provider_msg_id = 'ATXid_s0'")
        .execute(&pool)
        .await
        .expect("sent");

    // 1. An inbound text while `inbound_messages` is locked.
    let status = while_locked(
        &pool,
        "lock table inbound_messages in access exclusive mode",
        impatient.text("s1", MIGRANT, "PLEDGE 300 BRIDGE"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        count(&pool, "select count(*) from pledges where amount = 300").await,
        0
    );
    assert_eq!(
        app.text("s1", MIGRANT, "PLEDGE 300 BRIDGE").await,
        StatusCode::OK
    );
    assert_eq!(
        app.text("s1", MIGRANT, "PLEDGE 300 BRIDGE").await,
        StatusCode::OK
    );
    assert_eq!(
        count(&pool, "select count(*) from pledges where amount = 300").await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where provider_msg_id = 's1'"
        )
        .await,
        1
    );

    // 2. A pledge while `outbox` is locked: the pledge is made with its text, the reply
    //    waits for the lock and the request is answered 503. The retry answers it: one
    //    pledge, one reply (whichever of the retry and the waiting statement comes first).
    let status = while_locked(
        &pool,
        "lock table outbox in access exclusive mode",
        impatient.text("s2", MIGRANT, "PLEDGE 400 BRIDGE"),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.text("s2", MIGRANT, "PLEDGE 400 BRIDGE").await,
        StatusCode::OK
    );
    assert_eq!(
        count(&pool, "select count(*) from pledges where amount = 400").await,
        1
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from outbox o join inbound_messages i on i.id = o.inbound_id
             where i.provider_msg_id = 's2' and i.outcome = 'pledge' and i.handled_at is not null"
        )
        .await,
        1
    );

    // 3. A delivery report while `outbox` is locked: the raw report must not stay stored
    //    without its update, or the retry would be taken for a duplicate and never applied.
    let dlr = form(&[
        ("id", "ATXid_s0"),
        ("status", "Success"),
        ("phoneNumber", MIGRANT),
        ("retryCount", "0"),
    ]);
    let (status, _) = while_locked(
        &pool,
        "lock table outbox in access exclusive mode",
        impatient.post_form("/webhooks/africastalking/delivery", dlr.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where kind = 'delivery'"
        )
        .await,
        0
    );
    let (status, _) = app
        .post_form("/webhooks/africastalking/delivery", dlr)
        .await;
    assert_eq!(status, StatusCode::OK);
    let state: String = sqlx::query_scalar("select status from outbox where id = $1")
        .bind(reply_id)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(state, "delivered");
}

async fn post_json(app: &TestApp, path: &str, body: String) -> StatusCode {
    let req = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .expect("request");
    tower::ServiceExt::oneshot(app.router.clone(), req)
        .await
        .expect("answer")
        .status()
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn texts_and_bodies_are_bounded(pool: PgPool) {
    use hashar::channels::{FORM_BODY_LIMIT, MAX_TEXT_CHARS};
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    // the longest text is taken (Cyrillic: two bytes a character), one more is refused
    let longest = "ж".repeat(MAX_TEXT_CHARS);
    assert_eq!(app.text("long-1", MIGRANT, &longest).await, StatusCode::OK);
    let longer = format!("{longest}ж");
    let (status, body) = app
        .post_form(
            "/webhooks/africastalking/sms",
            form(&[
                ("id", "long-2"),
                ("from", MIGRANT),
                ("to", "4274"),
                ("text", &longer),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("1600"), "{body}");
    // the 1.9 MB text that was accepted: refused by the body limit
    let huge = "x".repeat(1_900_000);
    assert_eq!(
        app.text("huge", MIGRANT, &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let just_over = "x".repeat(FORM_BODY_LIMIT);
    assert_eq!(
        app.text("over", MIGRANT, &just_over).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Kannel's query and Infobip's JSON are held to the same text limit
    let (status, _) = app
        .get(&format!(
            "/webhooks/kannel/sms?id=k-long&from=%2B79161234567&to=4274&text={}",
            "x".repeat(MAX_TEXT_CHARS + 1)
        ))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let json = serde_json::json!({"results": [
        {"messageId": "ib-ok", "from": "79161234567", "to": "4274", "text": "TOTAL"},
        {"messageId": "ib-long", "from": "79161234567", "to": "4274", "text": longer}
    ]});
    assert_eq!(
        post_json(&app, "/webhooks/infobip/sms", json.to_string()).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // a refused request is stored nowhere, not even its short messages
    let stored: Vec<String> = sqlx::query_scalar(
        "select provider_msg_id from inbound_messages where kind = 'sms' order by id",
    )
    .fetch_all(&pool)
    .await
    .expect("stored");
    assert_eq!(stored, vec!["long-1".to_owned()]);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn each_infobip_report_is_stored_with_its_own_json(pool: PgPool) {
    seed(&pool).await;
    let app = app(pool.clone()).await;
    let report = |id: &str| {
        serde_json::json!({"bulkId": "b", "messageId": id, "to": "79161234567",
            "status": {"groupId": 3, "groupName": "DELIVERED", "id": 5, "name": "DELIVERED_TO_HANDSET"}})
    };
    let body = serde_json::json!({"results": [report("ib-a"), report("ib-b"), report("ib-c")]});
    assert_eq!(
        post_json(&app, "/webhooks/infobip/delivery", body.to_string()).await,
        StatusCode::OK
    );
    let raws: Vec<serde_json::Value> =
        sqlx::query_scalar("select raw from inbound_messages where kind = 'delivery' order by id")
            .fetch_all(&pool)
            .await
            .expect("raw");
    assert_eq!(raws, vec![report("ib-a"), report("ib-b"), report("ib-c")]);
    // more reports than one request may carry: refused whole
    let many: Vec<_> = (0..=hashar::channels::MAX_MESSAGES_PER_REQUEST)
        .map(|i| report(&format!("many-{i}")))
        .collect();
    assert_eq!(
        post_json(
            &app,
            "/webhooks/infobip/delivery",
            serde_json::json!({ "results": many }).to_string()
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        count(&pool, "select count(*) from inbound_messages").await,
        3
    );
}

/// SMS and delivery webhooks answer 503 (the documented "retry"), not 500, when the
/// database refuses connections or the pool times out.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_database_outage_answers_503_to_sms_and_delivery_webhooks(pool: PgPool) {
    drop(pool);
    let (apps, _holder) = apps_on_dead_databases(2_000).await;
    for (app, what) in apps {
        assert_eq!(
            app.text("outage-1", MIGRANT, "TOTAL").await,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}"
        );
        let (status, body) = app
            .post_form(
                "/webhooks/africastalking/delivery",
                form(&[
                    ("id", "ATXid_1"),
                    ("status", "Success"),
                    ("phoneNumber", MIGRANT),
                ]),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
        assert_eq!(body, "temporary failure, please retry\n");
    }
}

/// After a database restart (every backend terminated), no request fails: a webhook whose
/// pooled connection turns out dead is handled once more on a live one.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn after_a_database_restart_the_next_requests_succeed(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app_as_served(pool.clone(), test_config()).await;
    // fill the pool with several connections
    let ids: Vec<String> = (0..6).map(|i| format!("warm-{i}")).collect();
    let texts = ids.iter().map(|id| app.text(id, MIGRANT, "TOTAL"));
    for status in futures_util::future::join_all(texts).await {
        assert_eq!(status, StatusCode::OK);
    }
    let terminate = "select count(pg_terminate_backend(pid)) from pg_stat_activity
                     where datname = current_database() and pid <> pg_backend_pid()";
    let killed: i64 = sqlx::query_scalar(terminate)
        .fetch_one(&pool)
        .await
        .expect("terminate");
    assert!(killed >= 2, "{killed}");
    for i in 0..10 {
        assert_eq!(
            app.text(&format!("after-{i}"), MIGRANT, "TOTAL").await,
            StatusCode::OK,
            "text {i} after the restart"
        );
    }
    let _: i64 = sqlx::query_scalar(terminate)
        .fetch_one(&pool)
        .await
        .expect("terminate");
    let (status, body) = app
        .post_form(
            "/webhooks/africastalking/delivery",
            form(&[
                ("id", "ATXid_9"),
                ("status", "Success"),
                ("phoneNumber", MIGRANT),
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        count(
            &pool,
            "select count(*) from inbound_messages where provider_msg_id like 'after-%'"
        )
        .await,
        10
    );
}

/// An SMS conversation keeps short answers only, and a bounded number of them: a long text
/// is kept as `~` (invalid everywhere, like the text itself), and after
/// `MAX_CONVERSATION_TEXTS` answers the next text starts over at the main menu.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_sms_conversation_keeps_few_and_short_answers(pool: PgPool) {
    seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    app.text("k0", MIGRANT, "hi").await;
    app.text("k1", MIGRANT, "1").await;
    let long = "7".repeat(1500);
    assert_eq!(app.text("k2", MIGRANT, &long).await, StatusCode::OK);
    let reply = app.last_reply(MIGRANT).await;
    assert!(reply.starts_with("Invalid choice"), "{reply}");
    let inputs: Vec<String> = sqlx::query_scalar("select inputs from sms_conversations")
        .fetch_one(&pool)
        .await
        .expect("conversation");
    assert_eq!(inputs, vec!["1".to_owned(), "~".to_owned()]);
    // the same screen as the long text gave: the walk did not change
    app.text("k3", MIGRANT, "x").await;
    assert_eq!(app.last_reply(MIGRANT).await, reply);
    for i in 4..=hashar::sms::MAX_CONVERSATION_TEXTS {
        app.text(&format!("k{i}"), MIGRANT, "x").await;
    }
    let kept: Vec<String> = sqlx::query_scalar("select inputs from sms_conversations")
        .fetch_one(&pool)
        .await
        .expect("conversation");
    assert_eq!(kept.len(), hashar::sms::MAX_CONVERSATION_TEXTS);
    // one more answer would make too many: it opens the main menu instead
    app.text("over", MIGRANT, "1").await;
    assert!(
        app.last_reply(MIGRANT)
            .await
            .starts_with("Hashar\n1 Pledge"),
        "{}",
        app.last_reply(MIGRANT).await
    );
    let restarted: Vec<String> = sqlx::query_scalar("select inputs from sms_conversations")
        .fetch_one(&pool)
        .await
        .expect("conversation");
    assert!(restarted.is_empty(), "{restarted:?}");
}

/// The SMS conversation lists projects by the rule USSD follows (`listed_projects`): a
/// project closed while the migrant answers keeps its number, so "1" still means the bridge
/// (and the pledge is refused as closed) instead of whatever moved up to its place.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_project_closed_during_an_sms_conversation_keeps_its_number(pool: PgPool) {
    let seed = seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    app.text("l0", MIGRANT, "hi").await;
    app.text("l1", MIGRANT, "1").await;
    let list = app.last_reply(MIGRANT).await;
    assert!(
        list.contains("1 Bridge") && list.contains("2 School roof"),
        "{list}"
    );
    close_project(&pool, seed.bridge, app.clock.now()).await;
    app.text("l2", MIGRANT, "1").await;
    let amount = app.last_reply(MIGRANT).await;
    assert!(amount.starts_with("Amount in TJS for Bridge"), "{amount}");
    app.text("l3", MIGRANT, "500").await;
    app.text("l4", MIGRANT, "1").await;
    assert_eq!(
        app.last_reply(MIGRANT).await,
        "This project is not open for pledges now."
    );
    assert_eq!(count(&pool, "select count(*) from pledges").await, 0);
    // a conversation begun after the closing window no longer lists it
    app.clock.advance(chrono::Duration::hours(2));
    app.text("l5", MIGRANT, "hi").await;
    app.text("l6", MIGRANT, "1").await;
    let fresh = app.last_reply(MIGRANT).await;
    assert!(
        fresh.contains("1 School roof") && !fresh.contains("Bridge"),
        "{fresh}"
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledge_whose_reply_was_never_queued_is_answered_once_by_a_retry_or_the_scheduler(
    pool: PgPool,
) {
    let seed = seed(&pool).await;
    add_migrant(&pool, PHONE_EN, MIGRANT).await;
    let app = app(pool.clone()).await;
    let state = state_of(&app);
    let phone = hashar::domain::Phone::parse(MIGRANT).expect("phone");
    let raw = serde_json::json!({"from": MIGRANT, "text": "PLEDGE 300 BRIDGE"});
    // What a text's quick path leaves when its process dies between its two statements:
    // the text stored, not handled, with its pledge made.
    for id in ["c1", "c2"] {
        let sms = hashar::store::inbox::NewSms {
            provider: "africastalking",
            provider_msg_id: id,
            sender: MIGRANT,
            raw: &raw,
            text: "PLEDGE 300 BRIDGE",
            now: app.clock.now(),
        };
        let mut conn = pool.acquire().await.expect("connection");
        let made = hashar::store::inbox::insert_pledging(
            &mut conn,
            &sms,
            &phone,
            hashar::store::ProjectId(seed.bridge),
            Decimal::from(300),
            &format!("sms:africastalking:{id}"),
            None,
        )
        .await
        .expect("the first statement");
        assert!(made.is_some());
    }
    assert_eq!(count(&pool, "select count(*) from outbox").await, 0);

    // 1. The aggregator retries c1 (twice): answered now, once.
    for _ in 0..2 {
        assert_eq!(
            app.text("c1", MIGRANT, "PLEDGE 300 BRIDGE").await,
            StatusCode::OK
        );
    }
    // 2. Nobody retries c2: the scheduler answers it once it has waited a minute.
    assert_eq!(
        hashar::sms::answer_unhandled(&state).await.expect("round"),
        0,
        "a text may still be under way"
    );
    app.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(
        hashar::sms::answer_unhandled(&state).await.expect("round"),
        1
    );
    assert_eq!(
        hashar::sms::answer_unhandled(&state).await.expect("round"),
        0
    );

    // Each text: handled as a pledge, one pledge, one reply that gives its pledge's code.
    let rows: Vec<(String, Option<String>, i64, i64, bool)> = sqlx::query_as(
        "select i.provider_msg_id, i.outcome,
                (select count(*) from outbox o where o.inbound_id = i.id),
                (select count(*) from pledges p where p.idempotency_key = 'sms:africastalking:' || i.provider_msg_id),
                (select bool_and(o.body like '%' || p.code || '%') from outbox o
                   join pledges p on p.idempotency_key = 'sms:africastalking:' || i.provider_msg_id
                  where o.inbound_id = i.id)
         from inbound_messages i order by i.id",
    )
    .fetch_all(&pool)
    .await
    .expect("texts");
    assert_eq!(
        rows,
        vec![
            ("c1".to_owned(), Some("pledge".to_owned()), 1, 1, true),
            ("c2".to_owned(), Some("pledge".to_owned()), 1, 1, true),
        ]
    );
}
