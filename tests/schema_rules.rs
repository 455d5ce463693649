//! The data model's rules hold in the database itself: a direct SQL write that breaks one
//! fails, and nothing about money is ever deleted.

mod common;

use common::*;
use sqlx::PgPool;

async fn fails(pool: &PgPool, sql: &str) -> String {
    match sqlx::query(sql).execute(pool).await {
        Ok(_) => panic!("should have failed: {sql}"),
        Err(e) => e.to_string(),
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn direct_writes_that_break_the_rules_fail(pool: PgPool) {
    let seed = seed(&pool).await;
    let pledge = |amount: &str, status: &str, phone: &str, key: &str| {
        format!(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, status, idempotency_key)
             values ({}, {}, '{phone}', {amount}, 'TJS', 'ussd', '{status}', '{key}')",
            seed.bridge, seed.household
        )
    };
    fails(&pool, &pledge("0", "pledged", PHONE_TG, "a")).await;
    fails(&pool, &pledge("-5", "pledged", PHONE_TG, "b")).await;
    fails(&pool, &pledge("5", "lost", PHONE_TG, "c")).await;
    fails(&pool, &pledge("5", "pledged", "992901112233", "d")).await;
    // a received/cancelled pledge must say who changed it and when
    fails(&pool, &pledge("5", "received", PHONE_TG, "e")).await;
    sqlx::query(&pledge("5", "pledged", PHONE_TG, "ok"))
        .execute(&pool)
        .await
        .expect("a valid pledge");
    fails(&pool, &pledge("7", "pledged", PHONE_TG, "ok")).await; // same idempotency key
    fails(&pool, "delete from pledges").await;
    fails(&pool, "delete from projects").await;
    // phones: E.164, one household each
    fails(
        &pool,
        &format!(
            "insert into phones (phone, household_id) values ('{PHONE_TG}', {})",
            seed.household
        ),
    )
    .await;
    fails(
        &pool,
        &format!(
            "insert into phones (phone, household_id) values ('+0123', {})",
            seed.household
        ),
    )
    .await;
    // projects: positive target, known kind, ratio ≥ 0, cap ≥ 0
    let project = |target: &str, kind: &str, ratio: &str, cap: &str| {
        format!(
            "insert into projects (community_id, code, kind, name_tg, name_ru, name_en, target, match_ratio, match_cap)
             values ({}, 'NEW', '{kind}', 'a', 'b', 'c', {target}, {ratio}, {cap})",
            seed.community
        )
    };
    fails(&pool, &project("0", "infrastructure", "1", "null")).await;
    fails(&pool, &project("100", "party", "1", "null")).await;
    fails(&pool, &project("100", "business", "-1", "null")).await;
    fails(&pool, &project("100", "business", "1", "-3")).await;
    // receipts: positive, in the project's currency, never deleted
    let receipt = |amount: &str, currency: &str| {
        format!(
            "insert into receipts (project_id, amount, currency, received_on, method, recorded_by)
             values ({}, {amount}, '{currency}', '2026-11-01', 'cash', 't')",
            seed.bridge
        )
    };
    fails(&pool, &receipt("0", "TJS")).await;
    let msg = fails(&pool, &receipt("10", "RUB")).await;
    assert!(msg.contains("project currency"), "{msg}");
    receive(&pool, seed.bridge, "10").await;
    fails(&pool, "delete from receipts").await;
    // languages are tg, ru or en
    fails(
        &pool,
        &format!(
            "update households set language = 'de' where id = {}",
            seed.household
        ),
    )
    .await;
}
