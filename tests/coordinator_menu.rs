//! The coordinator phone menu: PIN (argon2; locked for 15 minutes after 5 wrong PINs, growing, and
//! the lock survives a restart), project totals of their communities, cash by pledge code.

mod common;

use axum::http::StatusCode;
use common::*;
use hashar::domain::Phone;
use rust_decimal::Decimal;
use sqlx::PgPool;

const COORD: &str = "+992900000301";

async fn coordinator(pool: &PgPool) {
    hashar::api::auth::add_coordinator(pool, "Anzob coordinator", COORD, &["anzob".into()], false)
        .await
        .expect("coordinator");
    hashar::actions::set_pin(pool, &Phone::parse(COORD).expect("phone"), "246813")
        .await
        .expect("pin");
}

async fn pledge(pool: &PgPool, project: i64, phone: &str, amount: &str, key: &str) -> String {
    sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         select $1, household_id, $2, $3::numeric, 'TJS', 'ussd', $4 from phones where phone = $2 returning code",
    )
    .bind(project)
    .bind(phone)
    .bind(amount)
    .bind(key)
    .fetch_one(pool)
    .await
    .expect("pledge")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_coordinator_records_cash_by_pledge_code(pool: PgPool) {
    let seed = seed(&pool).await;
    coordinator(&pool).await;
    let code = pledge(&pool, seed.bridge, PHONE_RU, "1000", "k1").await;
    add_household(&pool, seed.other_community, Some("tg"), "+992939998877").await;
    let water: i64 = sqlx::query_scalar("select id from projects where code = 'WATER'")
        .fetch_one(&pool)
        .await
        .expect("water");
    let foreign = pledge(&pool, water, "+992939998877", "50", "k2").await;
    let app = app(pool.clone()).await;

    let (_, first) = app.hop("c1", COORD, "").await;
    assert!(
        first.starts_with("CON Ҳашар, ҳамоҳангсоз. PIN-ро ворид кунед:"),
        "{first}"
    );
    let (_, bad) = app.hop("c1", COORD, "12").await;
    assert!(bad.contains("PIN аз 4 то 6 рақам аст."), "{bad}");
    let main = app.session("c2", COORD, &["246813"]).await;
    assert!(
        main.starts_with("CON Ҳамоҳангсоз\n1 Ҳисоби лоиҳаҳо\n2 Қабули пули нақд"),
        "{main}"
    );
    // totals of their own communities only
    let list = app.session("c2", COORD, &["246813", "1"]).await;
    assert!(list.contains("Пул") && !list.contains("Об"), "{list}");
    // a code from another village is refused, on the same screen
    let refused = app.session("c3", COORD, &["246813", "2", &foreign]).await;
    assert!(
        refused.contains("ваъдаи кушода бо ин рамз нест"),
        "{refused}"
    );
    // cash for our pledge
    let amount = app.session("c4", COORD, &["246813", "2", &code]).await;
    assert!(amount.contains("ваъда 1000, бақия 1000 TJS"), "{amount}");
    let too_much = app
        .session("c4", COORD, &["246813", "2", &code, "1200", "1"])
        .await;
    assert!(too_much.contains("Аз бақияи ваъда зиёд аст"), "{too_much}");
    assert_eq!(count(&pool, "select count(*) from receipts").await, 0);
    // 20:30 UTC is 01:30 the next day in Dushanbe: the receipt carries the local date
    app.clock.advance(chrono::Duration::minutes(11 * 60 + 30));
    let done = app
        .session("c5", COORD, &["246813", "2", &code, "300", "1"])
        .await;
    assert!(
        done.starts_with("END Сабт шуд. Пул: 600 аз 10000 TJS (6%)."),
        "{done}"
    );
    // the same hop again records nothing more
    let (_, again) = app
        .hop("c5", COORD, &["246813", "2", &code, "300", "1"].join("*"))
        .await;
    assert_eq!(again, done);
    let (amount, method, by, on): (Decimal, String, String, chrono::NaiveDate) =
        sqlx::query_as("select amount, method, recorded_by, received_on from receipts")
            .fetch_one(&pool)
            .await
            .expect("receipt");
    assert_eq!((amount, method.as_str()), (Decimal::from(300), "cash"));
    assert_eq!(on.to_string(), "2026-11-29");
    assert!(by.starts_with("coordinator:"));
    let sms: String =
        sqlx::query_scalar("select body from outbox where phone = $1 and kind = 'receipt'")
            .bind(PHONE_RU)
            .fetch_one(&pool)
            .await
            .expect("receipt sms");
    assert!(sms.starts_with("Получено 300 TJS для Мост"), "{sms}");
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn five_wrong_pins_lock_the_menu_for_fifteen_minutes_even_across_a_restart(pool: PgPool) {
    seed(&pool).await;
    coordinator(&pool).await;
    let app = app(pool.clone()).await;
    for i in 0..4 {
        let (status, wrong) = app.hop(&format!("w{i}"), COORD, "1111").await;
        assert_eq!(status, StatusCode::OK);
        assert!(wrong.contains("PIN нодуруст."), "{wrong}");
    }
    let (_, locked) = app.hop("w4", COORD, "1111").await;
    assert!(locked.contains("Пас аз 15 дақиқа"), "{locked}");
    let (_, still) = app.hop("w5", COORD, "246813").await;
    assert!(
        still.contains("Пас аз 15 дақиқа"),
        "the right PIN while locked: {still}"
    );
    // a restart: a new server on the same database, same clock time
    let restarted = app_with(pool.clone(), test_config()).await;
    restarted.clock.advance(chrono::Duration::minutes(14));
    let (_, after_restart) = restarted.hop("w6", COORD, "246813").await;
    assert!(
        after_restart.contains("Пас аз 15 дақиқа"),
        "{after_restart}"
    );
    restarted.clock.advance(chrono::Duration::minutes(2));
    let (_, open) = restarted.hop("w7", COORD, "246813").await;
    assert!(open.starts_with("CON Ҳамоҳангсоз"), "{open}");
    let failures: i32 = sqlx::query_scalar("select pin_failures from coordinators")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!(failures, 0);
    let hash: String = sqlx::query_scalar("select pin_hash from coordinators")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert!(hash.starts_with("$argon2") && !hash.contains("246813"));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_meeting_notice_from_the_phone(pool: PgPool) {
    seed(&pool).await;
    coordinator(&pool).await;
    let app = app(pool.clone()).await; // 09:00 UTC = 14:00 in Dushanbe
    let path = ["246813", "3", "1", "0112", "1000", "Мактаб"];
    let confirm = app.session("n1", COORD, &path).await;
    // the four households of Anzob, one number each; every text fits one UCS-2 SMS or two
    assert!(
        confirm.starts_with("CON 01.12 10:00, Мактаб: 4 рақам,"),
        "{confirm}"
    );
    let mut all = path.to_vec();
    all.push("1");
    let done = app.session("n1", COORD, &all).await;
    assert_eq!(done, "END Эълон 28.11 14:00 фиристода мешавад.");
    let (texts, status): (String, String) =
        sqlx::query_as("select text_ru, status from broadcasts")
            .fetch_one(&pool)
            .await
            .expect("broadcast");
    assert_eq!(status, "queued");
    assert!(
        texts.contains("{date}"),
        "the template is stored, filled per recipient"
    );
    let bodies: Vec<String> =
        sqlx::query_scalar("select body from outbox where kind = 'broadcast' order by phone")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(bodies.len(), 4);
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("Хашар: собрание 01.12 в 10:00, Мактаб.")),
        "{bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with("Hashar meeting: 01.12 at 10:00, Мактаб.")),
        "{bodies:?}"
    );
}

const ADMIN: &str = "+992900000302";

fn short_hash(pin: &str) -> String {
    use argon2::{
        password_hash::{rand_core::OsRng, SaltString},
        Argon2, PasswordHasher,
    };
    Argon2::default()
        .hash_password(pin.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("hash")
        .to_string()
}

/// Issue 8, point 12: a new PIN is 6 digits (not 111111, not 123456); a PIN of 4 digits set
/// before that rule opens the menu only after a new one is typed twice.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn new_pins_have_six_digits_and_a_short_one_must_be_changed_at_next_use(pool: PgPool) {
    seed(&pool).await;
    coordinator(&pool).await;
    let phone = Phone::parse(COORD).expect("phone");
    for weak in ["2468", "24681", "111111", "123456", "654321", "2468135"] {
        assert!(
            matches!(
                hashar::actions::set_pin(&pool, &phone, weak).await,
                Err(hashar::actions::PinError::Format)
            ),
            "{weak}"
        );
    }
    // a PIN from before the rule
    sqlx::query("update coordinators set pin_hash = $1")
        .bind(short_hash("2468"))
        .execute(&pool)
        .await
        .expect("old pin");
    let app = app(pool.clone()).await;
    let change = app.session("s1", COORD, &["2468"]).await;
    assert!(
        change.starts_with("CON PIN-и шумо хеле кӯтоҳ аст."),
        "{change}"
    );
    let weak = app.session("s1", COORD, &["2468", "1357"]).await;
    assert!(weak.starts_with("CON PIN-и нав 6 рақам аст"), "{weak}");
    let again = app.session("s1", COORD, &["2468", "1357", "975310"]).await;
    assert!(again.starts_with("CON PIN-и навро боз"), "{again}");
    let differ = app
        .session("s1", COORD, &["2468", "1357", "975310", "975311"])
        .await;
    assert!(differ.starts_with("CON Ду PIN мувофиқ нестанд"), "{differ}");
    let main = app
        .session(
            "s1",
            COORD,
            &["2468", "1357", "975310", "975311", "975310", "975310"],
        )
        .await;
    assert!(main.starts_with("CON Ҳамоҳангсоз"), "{main}");
    // the new PIN opens the next session at once; the old one no longer does
    let next = app.session("s2", COORD, &["975310"]).await;
    assert!(next.starts_with("CON Ҳамоҳангсоз"), "{next}");
    let old = app.session("s3", COORD, &["2468"]).await;
    assert!(old.contains("PIN нодуруст."), "{old}");
}

/// Issue 8, point 12: locks grow (15 minutes, an hour, a day) and each one sends an SMS to
/// the coordinator and to the admins.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pin_locks_grow_and_each_lock_alerts_the_coordinator_and_the_admins(pool: PgPool) {
    seed(&pool).await;
    coordinator(&pool).await;
    hashar::api::auth::add_coordinator(&pool, "Admin", ADMIN, &[], true)
        .await
        .expect("admin");
    let app = app(pool.clone()).await;
    let mut n = 0;
    let mut five_wrong = || {
        let ids: Vec<String> = (0..5)
            .map(|_| {
                n += 1;
                format!("w{n}")
            })
            .collect();
        ids
    };
    let alerts = |pool: PgPool| async move {
        sqlx::query_as::<_, (String, String)>(
            "select phone, body from outbox where body like 'Ҳашар: PIN-и ҳамоҳангсоз%' order by id",
        )
        .fetch_all(&pool)
        .await
        .expect("alerts")
    };
    for (minutes, text, before_open) in [
        (15i64, "Пас аз 15 дақиқа", 14i64),
        (60, "ба муддати як соат", 59),
        (24 * 60, "ба муддати 24 соат", 24 * 60 - 1),
    ] {
        let mut last = String::new();
        for id in five_wrong() {
            last = app.hop(&id, COORD, "1111").await.1;
        }
        assert!(last.contains(text), "{minutes}: {last}");
        let sent = alerts(pool.clone()).await;
        let mine: Vec<&(String, String)> = sent
            .iter()
            .filter(|(_, b)| b.contains(&format!(" {minutes} дақиқа")))
            .collect();
        assert_eq!(
            mine.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            vec![COORD, ADMIN],
            "{sent:?}"
        );
        assert!(
            mine[0].1.contains("Anzob coordinator") && !mine[0].1.contains(COORD),
            "the number is masked: {}",
            mine[0].1
        );
        // the right PIN while locked is refused, until the lock ends
        app.clock.advance(chrono::Duration::minutes(before_open));
        let (_, still) = app.hop(&format!("r{minutes}"), COORD, "246813").await;
        assert!(still.contains(text), "{minutes}: {still}");
        app.clock.advance(chrono::Duration::minutes(2));
    }
    // after the day: the right PIN opens the menu and the next lock is 15 minutes again
    let (_, open) = app.hop("open", COORD, "246813").await;
    assert!(open.starts_with("CON Ҳамоҳангсоз"), "{open}");
    let mut last = String::new();
    for id in five_wrong() {
        last = app.hop(&id, COORD, "1111").await.1;
    }
    assert!(last.contains("Пас аз 15 дақиқа"), "{last}");
    assert_eq!(alerts(pool.clone()).await.len(), 8);
}
