//! Issue 11, point 2: "My pledges" on USSD (main menu) and by SMS keyword, in three
//! languages, with cancelling an unpaid pledge by the same rules as the API's cancellation;
//! the pledges of the whole household, whichever phone made them. Real PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::*;
use rust_decimal::Decimal;
use sqlx::PgPool;

const MIGRANT: &str = "+79161234567";

async fn add_phone(pool: &PgPool, household_phone: &str, phone: &str) {
    sqlx::query("insert into phones (phone, household_id) select $2, household_id from phones where phone = $1")
        .bind(household_phone)
        .bind(phone)
        .execute(pool)
        .await
        .expect("second phone");
}

/// A pledge by `phone` (its household's), made `minutes_ago` before the test clock's
/// start; returns (id, code).
async fn pledge(
    pool: &PgPool,
    project: i64,
    phone: &str,
    amount: &str,
    minutes_ago: i64,
) -> (i64, String) {
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-28T09:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc)
        - chrono::Duration::minutes(minutes_ago);
    sqlx::query_as(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
         select $1, household_id, $2, $3::numeric, 'TJS', 'ussd', 'test:' || $2 || ':' || $4::text, $4
         from phones where phone = $2 returning id, code",
    )
    .bind(project)
    .bind(phone)
    .bind(amount)
    .bind(at)
    .fetch_one(pool)
    .await
    .expect("pledge")
}

async fn pay(pool: &PgPool, project: i64, pledge: i64, amount: &str) {
    sqlx::query(
        "insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
         values ($1, $2, $3::numeric, 'TJS', '2026-11-01', 'cash', 'coordinator:1')",
    )
    .bind(project)
    .bind(pledge)
    .bind(amount)
    .execute(pool)
    .await
    .expect("receipt");
}

async fn pledged(pool: &PgPool, project: i64) -> Decimal {
    sqlx::query_scalar("select pledged from project_totals where project_id = $1")
        .bind(project)
        .fetch_one(pool)
        .await
        .expect("totals")
}

async fn last_reply(pool: &PgPool, phone: &str) -> String {
    sqlx::query_scalar("select body from outbox where phone = $1 order by id desc limit 1")
        .bind(phone)
        .fetch_optional(pool)
        .await
        .expect("outbox")
        .unwrap_or_default()
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_main_menu_lists_the_households_pledges_newest_first_on_one_screen(pool: PgPool) {
    let seed = seed(&pool).await;
    add_phone(&pool, PHONE_TG, MIGRANT).await;
    let (_, older) = pledge(&pool, seed.bridge, PHONE_TG, "300", 60).await;
    // made by the migrant's phone: the household's all the same
    let (_, newer) = pledge(&pool, seed.roof, MIGRANT, "700", 5).await;
    // another household's pledge is never listed
    let (_, theirs) = pledge(&pool, seed.bridge, PHONE_RU, "900", 1).await;
    let app = app(pool.clone()).await;
    for (i, (phone, title, option)) in [
        (PHONE_TG, "Ҳашар", "6 Ваъдаҳоям"),
        (PHONE_RU, "Хашар", "6 Мои взносы"),
        (PHONE_EN, "Hashar", "6 My pledges"),
    ]
    .iter()
    .enumerate()
    {
        let (_, main) = app.hop(&format!("main-{i}"), phone, "").await;
        assert!(main.starts_with(&format!("CON {title}")), "{main}");
        // the sixth option on the first screen, not behind "99"
        assert!(main.contains(option) && !main.contains("\n99 "), "{main}");
    }
    let list = app.session("tg-list", PHONE_TG, &["6"]).await;
    assert!(list.starts_with("CON Ваъдаҳои шумо:"), "{list}");
    let at_newer = list.find(&newer).expect("the migrant's pledge is listed");
    let at_older = list
        .find(&older)
        .expect("the home phone's pledge is listed");
    assert!(at_newer < at_older, "newest first: {list}");
    assert!(
        list.contains(&format!("1 {newer} Боми мактаб 700 TJS")),
        "{list}"
    );
    assert!(!list.contains(&theirs), "{list}");
    // the other household sees its own only; a household without pledges is told so
    let ru = app.session("ru-list", PHONE_RU, &["6"]).await;
    assert!(ru.contains(&theirs) && !ru.contains(&newer), "{ru}");
    let en = app.session("en-list", PHONE_EN, &["6"]).await;
    assert!(en.contains("No pledges yet."), "{en}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn an_unpaid_pledge_is_cancelled_once_and_the_total_goes_back(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    // pledged on the phone, in English
    let (_, done) = app.hop("pledge", PHONE_EN, "1*1*500*1").await;
    assert!(done.starts_with("END "), "{done}");
    assert_eq!(pledged(&pool, seed.bridge).await, Decimal::from(500));
    let (id, code): (i64, String) = sqlx::query_as("select id, code from pledges")
        .fetch_one(&pool)
        .await
        .expect("pledge");
    let detail = app.session("mine", PHONE_EN, &["6", "1"]).await;
    assert!(
        detail.starts_with(&format!(
            "CON {code} Bridge: 500 TJS, paid 0, pledged.\n1 Cancel this pledge\n0 Back"
        )),
        "{detail}"
    );
    assert!(detail.contains("1 Cancel this pledge"), "{detail}");
    let (_, confirm) = app.hop("mine", PHONE_EN, "6*1*1").await;
    assert!(
        confirm.starts_with(&format!("CON Cancel pledge {code} (Bridge, 500 TJS)?")),
        "{confirm}"
    );
    let (_, cancelled) = app.hop("mine", PHONE_EN, "6*1*1*1").await;
    let expected = format!("END Pledge {code} cancelled: Bridge, 500 TJS.");
    assert_eq!(cancelled, expected);
    // the aggregator retries the hop: the same answer, cancelled once
    let (status, again) = app.hop("mine", PHONE_EN, "6*1*1*1").await;
    assert_eq!((status, again), (StatusCode::OK, expected));
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        1
    );
    let (status, by, reason): (String, String, String) = sqlx::query_as(
        "select p.status, p.status_changed_by, c.reason
         from pledges p join pledge_cancellations c on c.pledge_id = p.id where p.id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("cancelled pledge");
    let household: i64 = sqlx::query_scalar("select household_id from pledges where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("household");
    assert_eq!(status, "cancelled");
    assert_eq!(by, format!("household:{household}"));
    assert_eq!(reason, "cancelled by the household");
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_log where action = 'pledge.cancel' and subject_kind = 'pledge'"
        )
        .await,
        1
    );
    // the project's total is back where it was
    assert_eq!(pledged(&pool, seed.bridge).await, Decimal::ZERO);
    // listed as cancelled, and cannot be cancelled again
    let list = app.session("mine-2", PHONE_EN, &["6"]).await;
    assert!(
        list.contains(&format!("1 {code} Bridge 500 TJS cancelled")),
        "{list}"
    );
    let refused = app.session("mine-2", PHONE_EN, &["6", "1", "1", "1"]).await;
    assert!(
        refused.starts_with("CON This pledge is already cancelled.\n"),
        "{refused}"
    );
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        1
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledge_money_was_received_for_is_not_cancelled(pool: PgPool) {
    let seed = seed(&pool).await;
    let (id, code) = pledge(&pool, seed.bridge, PHONE_RU, "400", 30).await;
    pay(&pool, seed.bridge, id, "100").await;
    let app = app(pool.clone()).await;
    let detail = app.session("paid", PHONE_RU, &["6", "1"]).await;
    assert!(
        detail.starts_with(&format!(
            "CON {code} Мост: 400 TJS, оплачено 100, обещано.\n1 Отменить обещание"
        )),
        "{detail}"
    );
    let refused = app.session("paid", PHONE_RU, &["6", "1", "1", "1"]).await;
    assert!(
        refused.starts_with("CON Это обещание уже оплачено, отменить нельзя.\n"),
        "{refused}"
    );
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        0
    );
    let status: String = sqlx::query_scalar("select status from pledges where id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "pledged");
    // by SMS too
    assert_eq!(
        app.text("sms-1", PHONE_RU, &format!("ОТМЕНА {code}")).await,
        StatusCode::OK
    );
    let reply = last_reply(&pool, PHONE_RU).await;
    assert!(
        reply == format!("Обещание {code} нельзя отменить: по нему уже оплачено 100 TJS."),
        "{reply}"
    );
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        0
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn my_pledges_by_sms_in_each_language_bounded_newest_first(pool: PgPool) {
    let seed = seed(&pool).await;
    add_phone(&pool, PHONE_RU, MIGRANT).await;
    let app = app(pool.clone()).await;
    // nothing yet
    assert_eq!(app.text("m-0", MIGRANT, "МОИ").await, StatusCode::OK);
    assert_eq!(last_reply(&pool, MIGRANT).await, "У вас пока нет обещаний.");
    // many pledges, made by the household's home phone
    let mut codes = Vec::new();
    for i in 0..12 {
        let (_, code) = pledge(
            &pool,
            seed.bridge,
            PHONE_RU,
            &format!("{}", 100 + i),
            100 - i,
        )
        .await;
        codes.push(code);
    }
    let (_, theirs) = pledge(&pool, seed.bridge, PHONE_TG, "50", 1).await;
    assert_eq!(
        app.text("m-1", MIGRANT, "мои обещания").await,
        StatusCode::OK
    );
    let reply = last_reply(&pool, MIGRANT).await;
    assert!(reply.starts_with("Ваши обещания: "), "{reply}");
    let newest = &codes[11];
    assert!(
        reply.contains(&format!("{newest} Мост 111 TJS, оплачено 0, обещано")),
        "{reply}"
    );
    assert!(!reply.contains(&theirs), "{reply}");
    // bounded: as many as fit, newest first, and how many more
    let shown = codes.iter().filter(|c| reply.contains(c.as_str())).count();
    assert!((1..12).contains(&shown), "{shown}: {reply}");
    assert!(codes[12 - shown..]
        .iter()
        .all(|c| reply.contains(c.as_str())));
    assert!(
        reply.ends_with(&format!("И ещё {}.", 12 - shown)),
        "{reply}"
    );
    let segments: i32 =
        sqlx::query_scalar("select segments from outbox where phone = $1 order by id desc limit 1")
            .bind(MIGRANT)
            .fetch_one(&pool)
            .await
            .expect("segments");
    assert!(segments <= 3, "{segments}");
    // Tajik and English keywords
    assert_eq!(
        app.text("m-2", PHONE_TG, "Ваъдаҳои ман").await,
        StatusCode::OK
    );
    let tg = last_reply(&pool, PHONE_TG).await;
    assert!(
        tg.starts_with(&format!("Ваъдаҳои шумо: {theirs} Пул 50 TJS, пардохт 0")),
        "{tg}"
    );
    assert_eq!(app.text("m-3", PHONE_EN, "MY").await, StatusCode::OK);
    assert_eq!(
        last_reply(&pool, PHONE_EN).await,
        "You have no pledges yet."
    );
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn cancel_by_sms_only_the_households_own_pledge(pool: PgPool) {
    let seed = seed(&pool).await;
    add_phone(&pool, PHONE_TG, MIGRANT).await;
    let (_, ours) = pledge(&pool, seed.bridge, PHONE_TG, "250", 20).await;
    let (_, theirs) = pledge(&pool, seed.bridge, PHONE_RU, "900", 10).await;
    let app = app(pool.clone()).await;
    // another household's code: the same answer as a code nobody has
    assert_eq!(
        app.text("c-1", MIGRANT, &format!("БЕКОР {theirs}")).await,
        StatusCode::OK
    );
    let other = last_reply(&pool, MIGRANT).await;
    assert_eq!(
        other,
        format!(
            "Хонаводаи шумо ваъдаи {theirs} надорад. Барои дидани ваъдаҳоятон ВАЪДАҲО фиристед."
        )
    );
    assert_eq!(
        app.text("c-2", MIGRANT, "БЕКОР 0000001").await,
        StatusCode::OK
    );
    assert_eq!(
        last_reply(&pool, MIGRANT).await,
        other.replace(&theirs, "0000001")
    );
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        0
    );
    // no code
    assert_eq!(app.text("c-3", MIGRANT, "бекор").await, StatusCode::OK);
    assert!(last_reply(&pool, MIGRANT)
        .await
        .starts_with("БЕКОР ва рамзи 7-рақамаи"));
    // the household's own, made by the home phone, cancelled from the migrant's
    assert_eq!(
        app.text("c-4", MIGRANT, &format!("bekor {ours}")).await,
        StatusCode::OK
    );
    assert_eq!(
        last_reply(&pool, MIGRANT).await,
        format!("Ваъдаи {ours} бекор шуд: Пул, 250 TJS.")
    );
    // the aggregator retries the same message: handled once
    assert_eq!(
        app.text("c-4", MIGRANT, &format!("bekor {ours}")).await,
        StatusCode::OK
    );
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        1
    );
    assert_eq!(pledged(&pool, seed.bridge).await, Decimal::from(900));
    // again, as a new message: already cancelled
    assert_eq!(
        app.text("c-5", MIGRANT, &format!("CANCEL {ours}")).await,
        StatusCode::OK
    );
    assert!(last_reply(&pool, MIGRANT).await == format!("Ваъдаи {ours} аллакай бекор шудааст."),);
    assert_eq!(
        count(&pool, "select count(*) from pledge_cancellations").await,
        1
    );
}

/// The journey of issue 11's "done means", in Tajik: pledge, read the code on one screen,
/// receive it by SMS, find it under My pledges, cancel it, and the project's total goes back.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_tajik_household_pledges_finds_and_cancels_its_pledge(pool: PgPool) {
    let seed = seed(&pool).await;
    let app = app(pool.clone()).await;
    let (_, done) = app.hop("tg-1", PHONE_TG, "1*1*500*1").await;
    let code: String = sqlx::query_scalar("select code from pledges")
        .fetch_one(&pool)
        .await
        .expect("code");
    assert!(
        done.starts_with(&format!("END Пул: ваъда 500 TJS. Рамз {code}.")),
        "{done}"
    );
    assert!(last_reply(&pool, PHONE_TG).await.contains(&code));
    assert_eq!(pledged(&pool, seed.bridge).await, Decimal::from(500));
    let list = app.session("tg-2", PHONE_TG, &["6"]).await;
    assert!(list.contains(&format!("1 {code} Пул 500 TJS")), "{list}");
    let detail = app.session("tg-2", PHONE_TG, &["6", "1"]).await;
    assert!(
        detail.starts_with(&format!(
            "CON {code} Пул: 500 TJS, пардохт 0, ваъда шудааст.\n1 Бекор кардан"
        )),
        "{detail}"
    );
    // "no" goes back to the pledge, nothing changes
    let back = app.session("tg-2", PHONE_TG, &["6", "1", "1", "2"]).await;
    assert_eq!(back, detail);
    assert_eq!(pledged(&pool, seed.bridge).await, Decimal::from(500));
    let (_, cancelled) = app.hop("tg-2", PHONE_TG, "6*1*1*2*1*1").await;
    assert_eq!(
        cancelled,
        format!("END Ваъдаи {code} бекор шуд: Пул, 500 TJS.")
    );
    assert_eq!(pledged(&pool, seed.bridge).await, Decimal::ZERO);
    // HELP names the new keywords in each language
    assert_eq!(app.text("h-1", PHONE_TG, "ёрӣ").await, StatusCode::OK);
    let help = last_reply(&pool, PHONE_TG).await;
    assert!(help.contains("ВАЪДАҲО") && help.contains("БЕКОР"), "{help}");
    assert_eq!(app.text("h-2", PHONE_EN, "help").await, StatusCode::OK);
    let help = last_reply(&pool, PHONE_EN).await;
    assert!(help.contains("MY") && help.contains("CANCEL"), "{help}");
}
