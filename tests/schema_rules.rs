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

/// The running sums behind `project_totals` always equal the sums of the rows themselves.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn running_totals_match_the_rows(pool: PgPool) {
    let seed = seed(&pool).await;
    let mut n = 0;
    let mut pledge = |project: i64, amount: &str| {
        n += 1;
        format!(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
             values ({project}, {}, '{PHONE_TG}', {amount}, 'TJS', 'api', 'k{n}')",
            seed.household
        )
    };
    for (project, amount) in [
        (seed.bridge, "100.10"),
        (seed.bridge, "0.90"),
        (seed.roof, "5000"),
        (seed.roof, "12.34"),
    ] {
        sqlx::query(&pledge(project, amount))
            .execute(&pool)
            .await
            .expect("pledge");
    }
    // the rows that change a pledge: a cancellation, a full and a partial receipt
    sqlx::query("insert into pledge_cancellations (pledge_id, reason, cancelled_by) select id, 'moved away', 't' from pledges where idempotency_key = 'k3'")
        .execute(&pool)
        .await
        .expect("cancel");
    sqlx::query("insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
                 select project_id, id, amount, 'TJS', '2026-11-01', 'cash', 't' from pledges where idempotency_key = 'k1'")
        .execute(&pool)
        .await
        .expect("receive in full");
    sqlx::query("insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
                 select project_id, id, 2.34, 'TJS', '2026-11-01', 'cash', 't' from pledges where idempotency_key = 'k4'")
        .execute(&pool)
        .await
        .expect("receive in part");
    receive(&pool, seed.roof, "10.01").await;
    receive(&pool, seed.roof, "0.99").await;
    let statuses: Vec<String> =
        sqlx::query_scalar("select status from pledges order by idempotency_key")
            .fetch_all(&pool)
            .await
            .expect("statuses");
    assert_eq!(
        statuses,
        vec!["received", "pledged", "cancelled", "pledged"]
    );
    let mismatches: i64 = sqlx::query_scalar(
        "select count(*) from project_totals t
         where t.pledged <> coalesce((select sum(amount) from pledges where project_id = t.project_id and status <> 'cancelled'), 0)
            or t.outstanding <> coalesce((select sum(amount) from pledges where project_id = t.project_id and status <> 'cancelled'), 0)
                               - coalesce((select sum(amount) from receipts where project_id = t.project_id and pledge_id is not null), 0)
            or t.received <> coalesce((select sum(amount) from receipts where project_id = t.project_id), 0)",
    )
    .fetch_one(&pool)
    .await
    .expect("compare");
    assert_eq!(mismatches, 0);
    assert_eq!(
        count(&pool, "select count(*) from project_sums").await,
        count(&pool, "select count(*) from projects").await
    );
    // pledged and outstanding in 8 stripes a project, each the sum of its own pledges
    assert_eq!(
        count(&pool, "select count(*) from project_pledge_sums").await,
        8 * count(&pool, "select count(*) from projects").await
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from project_pledge_sums s
              where s.pledged <> coalesce((select sum(amount) from pledges p where p.project_id = s.project_id
                                              and pledge_stripe(p.id) = s.stripe and status <> 'cancelled'), 0)
                 or s.outstanding <> s.pledged
                      - coalesce((select sum(r.amount) from receipts r where r.project_id = s.project_id
                                     and pledge_stripe(r.pledge_id) = s.stripe), 0)"
        )
        .await,
        0
    );
    let (pledged, outstanding, received): (
        rust_decimal::Decimal,
        rust_decimal::Decimal,
        rust_decimal::Decimal,
    ) = sqlx::query_as(
        "select pledged, outstanding, received from project_totals where project_id = $1",
    )
    .bind(seed.roof)
    .fetch_one(&pool)
    .await
    .expect("roof");
    assert_eq!(
        (
            pledged.to_string(),
            outstanding.to_string(),
            received.to_string()
        ),
        ("12.34".into(), "10.00".into(), "13.34".into())
    );
}

/// Screens show amounts the same way whether Rust or PostgreSQL formatted them.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn amounts_are_formatted_alike_in_sql_and_rust(pool: PgPool) {
    for text in [
        "0",
        "0.01",
        "0.5",
        "1",
        "99.99",
        "1500",
        "1500.00",
        "1500.5",
        "1500.50",
        "12345678.9",
        "99999999.99",
        "0.333",
        "2.005",
    ] {
        let value: rust_decimal::Decimal = text.parse().expect("decimal");
        let sql: String = sqlx::query_scalar("select screen_amount($1)")
            .bind(value)
            .fetch_one(&pool)
            .await
            .expect("format");
        assert_eq!(sql, hashar::domain::money::format_amount(value), "{text}");
    }
}

/// Money rules hold against direct SQL: a write that breaks one fails.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn money_rules_hold_in_the_database(pool: PgPool) {
    let seed = seed(&pool).await;
    let pledge: i64 = sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 100, 'TJS', 'api', 'm1') returning id",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .fetch_one(&pool)
    .await
    .expect("pledge");
    let receipt = |amount: &str, project: i64| {
        format!(
            "insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
             values ({project}, {pledge}, {amount}, 'TJS', '2026-11-01', 'cash', 't')"
        )
    };
    // a new pledge cannot start received; a status cannot be set by hand
    fails(&pool, &format!("insert into pledges (project_id, household_id, phone, amount, currency, channel, status, status_changed_at, status_changed_by, idempotency_key) values ({}, {}, '{PHONE_TG}', 5, 'TJS', 'api', 'received', now(), 'x', 'm2')", seed.bridge, seed.household)).await;
    fails(&pool, &format!("update pledges set status = 'received', status_changed_at = now(), status_changed_by = 'x' where id = {pledge}")).await;
    fails(
        &pool,
        &format!("update pledges set amount = 1 where id = {pledge}"),
    )
    .await;
    // receipts: the pledge's project, never more than pledged
    fails(&pool, &receipt("10", seed.roof)).await;
    sqlx::query(&receipt("60", seed.bridge))
        .execute(&pool)
        .await
        .expect("part");
    fails(&pool, &receipt("40.01", seed.bridge)).await;
    // received money cannot be cancelled away
    fails(&pool, &format!("insert into pledge_cancellations (pledge_id, reason, cancelled_by) values ({pledge}, 'x', 't')")).await;
    sqlx::query(&receipt("40", seed.bridge))
        .execute(&pool)
        .await
        .expect("rest");
    let status: String = sqlx::query_scalar("select status from pledges where id = $1")
        .bind(pledge)
        .fetch_one(&pool)
        .await
        .expect("status");
    assert_eq!(status, "received");
    fails(&pool, "update receipts set amount = 1").await;
    // a cancelled pledge receives nothing
    let other: i64 = sqlx::query_scalar(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         values ($1, $2, $3, 50, 'TJS', 'api', 'm3') returning id",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .fetch_one(&pool)
    .await
    .expect("pledge");
    sqlx::query("insert into pledge_cancellations (pledge_id, reason, cancelled_by) values ($1, 'changed mind', 't')")
        .bind(other)
        .execute(&pool)
        .await
        .expect("cancel");
    fails(&pool, &format!("insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by) values ({}, {other}, 1, 'TJS', '2026-11-01', 'cash', 't')", seed.bridge)).await;
    fails(&pool, "delete from pledge_cancellations").await;
    // matching: bridge is 1:1 without a cap and has 100 received → at most 100 due
    let disburse = |amount: &str| {
        format!("insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, recorded_by) values ({}, {amount}, 'TJS', '2026-11-02', 'Partner', 't')", seed.bridge)
    };
    sqlx::query(&disburse("70"))
        .execute(&pool)
        .await
        .expect("within what is due");
    fails(&pool, &disburse("30.01")).await;
    // roof: 2:1 capped at 3000; 5000 received → 3000 due at most
    receive(&pool, seed.roof, "5000").await;
    let cap = format!("insert into match_disbursements (project_id, amount, currency, disbursed_on, partner, recorded_by) values ({}, 3000.01, 'TJS', '2026-11-02', 'Partner', 't')", seed.roof);
    fails(&pool, &cap).await;
    fails(&pool, "delete from match_disbursements").await;
    let (disbursed, due): (rust_decimal::Decimal, rust_decimal::Decimal) =
        sqlx::query_as("select disbursed, match_due from project_totals where project_id = $1")
            .bind(seed.bridge)
            .fetch_one(&pool)
            .await
            .expect("totals");
    assert_eq!(
        (disbursed.to_string(), due.to_string()),
        ("70.00".into(), "30.00".into())
    );
}

/// Pledge codes (7 digits) and family join codes (6 digits) come from a sequence through a
/// keyed permutation (FF1-AES-256, see tests/codes.rs): unique by construction, so concurrent transactions never collide and
/// never wait for each other, and a bulk insert takes no lock per row; a number equal to a
/// code already stored (from the earlier random scheme) is skipped.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn codes_are_unique_without_locks(pool: PgPool) {
    let seed = seed(&pool).await;
    // the permutation (FF1 since 20261130000300) is a bijection on its domain, for the
    // real sizes (a sample)
    for (digits, low, n) in [(6, 100_000i64, 20_000i64), (7, 1_000_000, 20_000)] {
        let (distinct, min, max): (i64, i64, i64) = sqlx::query_as(
            "select count(distinct c), min(c), max(c) from (
                 select ff1_code($2 + g, $1, $2, (select key from code_secret)) c
                 from generate_series(0, $3 - 1) g) s",
        )
        .bind(digits)
        .bind(low)
        .bind(n)
        .fetch_one(&pool)
        .await
        .expect("permutation");
        assert_eq!(distinct, n, "{digits} digits");
        assert!(
            min >= low && max < low * 10,
            "{digits} digits: {min}..{max}"
        );
    }
    let insert_for = |project: i64, key: &str| {
        format!(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
             values ({project}, {}, '{PHONE_TG}', 10, 'TJS', 'ussd', '{key}') returning code",
            seed.household
        )
    };
    let insert = |key: &str| insert_for(seed.bridge, key);
    // two open transactions (on two projects: pledges to one project wait for each other
    // on its running sums): neither waits for the other's code, the codes differ
    let mut first = pool.begin().await.expect("begin");
    let code1: String = sqlx::query_scalar(&insert("c-1"))
        .fetch_one(&mut *first)
        .await
        .expect("first");
    let mut second = pool.begin().await.expect("begin");
    let code2: String = sqlx::query_scalar(&insert_for(seed.roof, "c-2"))
        .fetch_one(&mut *second)
        .await
        .expect("second, while the first is open");
    first.commit().await.expect("commit");
    second.commit().await.expect("commit");
    assert_ne!(code1, code2);
    for code in [&code1, &code2] {
        assert!(code.len() == 7 && !code.starts_with('0'), "{code}");
    }
    // the next number's code is already taken (as by the random scheme): it is skipped
    let next: String = sqlx::query_scalar(
        "select ff1_code(1000000 + case when is_called then last_value + 1 else last_value end,
                         7, 1000000, (select key from code_secret))::text
         from pledge_code_seq",
    )
    .fetch_one(&pool)
    .await
    .expect("next code");
    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, code)
         values ($1, $2, $3, 10, 'TJS', 'ussd', 'c-3', $4)",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .bind(&next)
    .execute(&pool)
    .await
    .expect("a pledge holding the next code");
    let code4: String = sqlx::query_scalar(&insert("c-4"))
        .fetch_one(&pool)
        .await
        .expect("the one after");
    assert_ne!(code4, next);
    assert_eq!(
        count(&pool, "select count(distinct code) from pledges").await,
        4
    );

    // join codes: 6 digits, distinct
    let joins: Vec<String> = sqlx::query_scalar(
        "insert into households (community_id, language, registered_via)
         select $1, 'tg', 'ussd' from generate_series(1, 50) returning join_code",
    )
    .bind(seed.community)
    .fetch_all(&pool)
    .await
    .expect("households");
    let distinct: std::collections::HashSet<&String> = joins.iter().collect();
    assert_eq!(distinct.len(), 50);
    assert!(joins.iter().all(|c| c.len() == 6 && !c.starts_with('0')));
}

/// The audit log is append-only (`forbid_update`/`forbid_delete`) and checks who and what;
/// staff roles are one of four and `is_admin` agrees with the role; console form keys are
/// printable and name who used them.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn audit_log_roles_and_form_keys_hold_their_rules(pool: PgPool) {
    let seed = seed(&pool).await;
    let row = |actor: &str, action: &str| {
        format!(
            "insert into audit_log (actor, action, subject_kind, subject_id, community_id, detail)
             values ('{actor}', '{action}', 'pledge', 1, {}, '{{}}')",
            seed.community
        )
    };
    sqlx::query(&row("coordinator:1", "receipt.record"))
        .execute(&pool)
        .await
        .expect("an audit row");
    sqlx::query(&row("cli", "pledge.cancel"))
        .execute(&pool)
        .await
        .expect("an audit row by the CLI");
    fails(&pool, &row("someone", "receipt.record")).await;
    fails(&pool, &row("coordinator:1", "Record")).await;
    fails(&pool, "insert into audit_log (actor, action, subject_kind, subject_id, detail) values ('system', 'a.b', 'pledge', 1, '[]')").await;
    let msg = fails(&pool, "update audit_log set action = 'receipt.reverse'").await;
    assert!(msg.contains("never changed"), "{msg}");
    let msg = fails(&pool, "delete from audit_log").await;
    assert!(msg.contains("never deleted"), "{msg}");
    // roles
    fails(
        &pool,
        "insert into coordinators (name, phone, role) values ('A', '+992900000901', 'boss')",
    )
    .await;
    fails(&pool, "insert into coordinators (name, phone, role, is_admin) values ('A', '+992900000902', 'counsellor', true)").await;
    fails(&pool, "insert into coordinators (name, phone, role, is_admin) values ('A', '+992900000903', 'admin', false)").await;
    sqlx::query(
        "insert into coordinators (name, phone, role) values ('A', '+992900000904', 'officer')",
    )
    .execute(&pool)
    .await
    .expect("an officer");
    // form keys
    fails(&pool, "insert into console_form_keys (key, actor, action) values ('a b', 'coordinator:1', 'receipt.record')").await;
    fails(&pool, "insert into console_form_keys (key, actor, action) values ('k1', 'nobody', 'receipt.record')").await;
    sqlx::query("insert into console_form_keys (key, actor, action) values ('k1', 'coordinator:1', 'receipt.record')")
        .execute(&pool)
        .await
        .expect("a form key");
}

/// Console sign-in: a password is stored only as an argon2id hash, counts and epochs are
/// never negative, the language is one of three. `tower_sessions.session` is the one table
/// with deletes: expired sessions (`console::auth::delete_expired_sessions`, run by the
/// broadcast scheduler) and sessions ended by signing out.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn staff_passwords_and_console_sessions_hold_their_rules(pool: PgPool) {
    sqlx::query("insert into coordinators (name, phone) values ('A', '+992900000911')")
        .execute(&pool)
        .await
        .expect("a coordinator");
    fails(
        &pool,
        "update coordinators set password_hash = 'plain text'",
    )
    .await;
    fails(&pool, "update coordinators set password_failures = -1").await;
    fails(&pool, "update coordinators set session_epoch = -1").await;
    fails(&pool, "update coordinators set language = 'de'").await;
    sqlx::query(
        "update coordinators set password_hash = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', language = 'tg'",
    )
    .execute(&pool)
    .await
    .expect("an argon2id hash and a language");
    // sessions: written, read, and deleted when expired
    sqlx::query(
        "insert into tower_sessions.session (id, data, expiry_date)
         values ('old', '\\x7b7d', now() - interval '1 minute'), ('new', '\\x7b7d', now() + interval '30 minutes')",
    )
    .execute(&pool)
    .await
    .expect("two sessions");
    hashar::console::auth::delete_expired_sessions(&pool)
        .await
        .expect("expired sessions deleted");
    let left: Vec<String> = sqlx::query_scalar("select id from tower_sessions.session")
        .fetch_all(&pool)
        .await
        .expect("the sessions left");
    assert_eq!(left, ["new"]);
}

/// `pledge_hour_sums` (the overview's pledges per week) always equals a direct sum over
/// `pledges` by project, UTC hour and currency, after inserts in several hours, a
/// cancellation, a receipt in full and its reversal, and a pledge moved to another hour;
/// its own rows are whole hours, never negative, never deleted.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pledge_hour_sums_match_a_direct_sum(pool: PgPool) {
    let seed = seed(&pool).await;
    let pledge = |project: i64, amount: &str, at: &str, key: &str| {
        format!(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key, created_at)
             values ({project}, {}, '{PHONE_TG}', {amount}, 'TJS', 'api', '{key}', '{at}')",
            seed.household
        )
    };
    for (project, amount, at, key) in [
        (seed.bridge, "100.10", "2026-11-23 18:59:59+00", "h1"),
        (seed.bridge, "0.90", "2026-11-23 18:00:00+00", "h2"),
        // 19:00 UTC is Tuesday 00:00 in Dushanbe: another hour
        (seed.bridge, "50", "2026-11-23 19:00:00+00", "h3"),
        (seed.roof, "5000", "2026-11-23 19:30:00+00", "h4"),
        (seed.roof, "12.34", "2026-11-30 04:10:00+00", "h5"),
        (seed.roof, "7", "2026-11-30 04:20:00+00", "h6"),
    ] {
        sqlx::query(&pledge(project, amount, at, key))
            .execute(&pool)
            .await
            .expect("pledge");
    }
    let by_key = |key: &str| {
        format!("select project_id, id, amount from pledges where idempotency_key = '{key}'")
    };
    // a cancellation
    sqlx::query(&format!(
        "insert into pledge_cancellations (pledge_id, reason, cancelled_by) select id, 'moved away', 't' from ({}) p",
        by_key("h4")
    ))
    .execute(&pool)
    .await
    .expect("cancel");
    // received in full (still counted), then reversed (pledged again)
    let receipt: i64 = sqlx::query_scalar(&format!(
        "insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by)
         select project_id, id, amount, 'TJS', '2026-11-24', 'cash', 't' from ({}) p returning id",
        by_key("h2")
    ))
    .fetch_one(&pool)
    .await
    .expect("receive in full");
    sqlx::query(
        "insert into receipts (project_id, pledge_id, amount, currency, received_on, method, recorded_by, reverses, reason)
         select project_id, pledge_id, -amount, currency, received_on, method, 't', id, 'typed twice'
           from receipts where id = $1",
    )
    .bind(receipt)
    .execute(&pool)
    .await
    .expect("reverse");
    // a pledge moved to another hour by hand
    sqlx::query(
        "update pledges set created_at = '2026-11-30 04:59:00+00' where idempotency_key = 'h1'",
    )
    .execute(&pool)
    .await
    .expect("move a pledge");
    let statuses: Vec<String> =
        sqlx::query_scalar("select status from pledges order by idempotency_key")
            .fetch_all(&pool)
            .await
            .expect("statuses");
    assert_eq!(
        statuses,
        [
            "pledged",
            "pledged",
            "pledged",
            "cancelled",
            "pledged",
            "pledged"
        ]
    );
    let sums = |sql: &'static str| async {
        sqlx::query_as::<_, (i64, String, String, i64, rust_decimal::Decimal)>(sql)
            .fetch_all(&pool)
            .await
            .expect("sums")
    };
    let kept = sums(
        "select project_id, to_char(hour at time zone 'UTC', 'YYYY-MM-DD HH24:MI'), currency,
                sum(pledges)::bigint, sum(amount)
           from pledge_hour_sums group by 1, 2, 3 having sum(pledges) > 0 order by 1, 2, 3",
    )
    .await;
    let direct = sums(
        "select project_id, to_char(date_trunc('hour', created_at, 'UTC') at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                currency, count(*), sum(amount)
           from pledges where status <> 'cancelled' group by 1, 2, 3 order by 1, 2, 3",
    )
    .await;
    assert_eq!(kept, direct);
    // the weeks (Monday 00:00 UTC), kept by the same trigger, likewise
    let weeks = sums(
        "select project_id, to_char(week at time zone 'UTC', 'YYYY-MM-DD HH24:MI'), currency,
                sum(pledges)::bigint, sum(amount)
           from pledge_week_sums group by 1, 2, 3 having sum(pledges) > 0 order by 1, 2, 3",
    )
    .await;
    let direct_weeks = sums(
        "select project_id, to_char(date_trunc('week', created_at, 'UTC') at time zone 'UTC', 'YYYY-MM-DD HH24:MI'),
                currency, count(*), sum(amount)
           from pledges where status <> 'cancelled' group by 1, 2, 3 order by 1, 2, 3",
    )
    .await;
    assert_eq!(weeks, direct_weeks);
    assert_eq!(weeks.len(), 3, "{weeks:?}");
    let msg = fails(&pool, "delete from pledge_week_sums").await;
    assert!(msg.contains("never deleted"), "{msg}");
    fails(&pool, "update pledge_week_sums set amount = -1").await;
    fails(
        &pool,
        &format!(
            "insert into pledge_week_sums (project_id, week, currency, stripe) values ({}, '2026-11-24 00:00:00+00', 'TJS', 0)",
            seed.bridge
        ),
    )
    .await;
    let hours: Vec<(i64, &str, i64)> = kept
        .iter()
        .map(|(project, hour, _, n, _)| (*project, hour.as_str(), *n))
        .collect();
    assert_eq!(
        hours,
        [
            (seed.bridge, "2026-11-23 18:00", 1),
            (seed.bridge, "2026-11-23 19:00", 1),
            (seed.bridge, "2026-11-30 04:00", 1),
            (seed.roof, "2026-11-30 04:00", 2),
        ]
    );
    // an emptied row stays as a zero row: the cancelled pledge's, and the moved pledge's
    // old one (its stripe of 18:00; the other pledge of that hour is in another stripe)
    assert_eq!(
        count(
            &pool,
            "select count(*) from pledge_hour_sums where pledges = 0 and amount = 0"
        )
        .await,
        2
    );
    // its own rules
    let msg = fails(&pool, "delete from pledge_hour_sums").await;
    assert!(msg.contains("never deleted"), "{msg}");
    fails(&pool, "update pledge_hour_sums set pledges = -1").await;
    fails(
        &pool,
        &format!(
            "insert into pledge_hour_sums (project_id, hour, currency, stripe) values ({}, '2026-11-30 04:30:00+00', 'TJS', 0)",
            seed.bridge
        ),
    )
    .await;
}

/// Set-password links: only a SHA-256 is stored, they work for 24 hours at most, name who
/// made them, and are never deleted.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn password_links_hold_their_rules(pool: PgPool) {
    let id: i64 = sqlx::query_scalar(
        "insert into coordinators (name, phone) values ('A', '+992900000921') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("a coordinator");
    let link = |hash: &str, by: &str, hours: i32| {
        format!(
            "insert into password_links (coordinator_id, token_sha256, created_by, created_at, expires_at)
             values ({id}, '{hash}', '{by}', now(), now() + interval '{hours} hours')"
        )
    };
    let hash = "a".repeat(64);
    fails(&pool, &link("not-a-hash", "coordinator:1", 24)).await;
    fails(&pool, &link(&hash, "someone", 24)).await;
    fails(&pool, &link(&hash, "coordinator:1", 25)).await;
    sqlx::query(&link(&hash, "coordinator:1", 24))
        .execute(&pool)
        .await
        .expect("a link");
    fails(&pool, "delete from password_links").await;
}

/// Issue 11, point 1: a pledge's SMS is queued once: a second outbox row for the same
/// pledge fails, and `pledge_at` called again with the same key (a retried hop) adds none.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn one_sms_per_pledge(pool: PgPool) {
    let seed = seed(&pool).await;
    let sms = serde_json::json!({
        "before": "Code ", "after": ".", "encoding": "gsm7", "segments": 1, "provider": "console"
    });
    let call = || {
        sqlx::query("select pledge_at(now(), $1, $2, 500, 'ussd', 'k-once', false, $3)")
            .bind(seed.bridge)
            .bind(PHONE_EN)
            .bind(&sms)
            .execute(&pool)
    };
    call().await.expect("a pledge");
    call().await.expect("the same pledge, retried");
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select o.body, o.pledge_id from outbox o join pledges p on p.id = o.pledge_id
         where p.idempotency_key = 'k-once'",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let code: String =
        sqlx::query_scalar("select code from pledges where idempotency_key = 'k-once'")
            .fetch_one(&pool)
            .await
            .expect("code");
    assert_eq!(rows[0].0, format!("Code {code}."));
    fails(
        &pool,
        &format!(
            "insert into outbox (phone, body, encoding, segments, provider, next_attempt_at, created_at, updated_at, pledge_id)
             values ('{PHONE_EN}', 'again', 'gsm7', 1, 'console', now(), now(), now(), {})",
            rows[0].1
        ),
    )
    .await;
}

/// The callback queue's states hold in the database (migrations/*_callback_queue.sql): a
/// done request has who, when and a final outcome and never changes; "no answer" waits for
/// its next try with nobody holding it; notes are at most 280 characters; topics come from
/// the list; nothing is deleted; holidays are real dates.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn callback_requests_hold_their_states(pool: PgPool) {
    seed(&pool).await;
    let id: i64 = sqlx::query_scalar(
        "insert into callback_requests (phone, language, channel, idempotency_key)
         values ('+992901112233', 'tg', 'ussd', 'rules') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("a request");
    let staff: i64 = sqlx::query_scalar(
        "insert into coordinators (name, phone) values ('Dilnoza', '+992900000999') returning id",
    )
    .fetch_one(&pool)
    .await
    .expect("staff");
    let set = |what: &str| format!("update callback_requests set {what} where id = {id}");
    fails(&pool, &set("status = 'done'")).await;
    fails(
        &pool,
        &set("status = 'done', outcome = 'reached', done_at = now()"),
    )
    .await;
    fails(&pool, &set("outcome = 'no_answer', attempts = 1")).await;
    fails(&pool, &set("outcome = 'no_answer', next_try_at = now()")).await;
    fails(
        &pool,
        &format!(
            "{} , taken_by = {staff}, taken_at = now()",
            set("outcome = 'no_answer', attempts = 1, next_try_at = now()")
        ),
    )
    .await;
    fails(&pool, &set(&format!("taken_by = {staff}"))).await;
    fails(&pool, &set("attempts = 4")).await;
    fails(&pool, &set("note = ''")).await;
    fails(&pool, &set(&format!("note = '{}'", "a".repeat(281)))).await;
    fails(&pool, &set("topics = array['politics']")).await;
    fails(
        &pool,
        &format!(
            "{} , attempts = 2",
            set(&format!(
                "status = 'done', outcome = 'unreachable', done_at = now(), done_by = {staff}"
            ))
        ),
    )
    .await;
    sqlx::query(&set(&format!(
        "status = 'done', outcome = 'reached', done_at = now(), done_by = {staff}, topics = array['hiv'], note = 'ok'"
    )))
    .execute(&pool)
    .await
    .expect("a done request");
    let msg = fails(&pool, &set("note = 'changed'")).await;
    assert!(msg.contains("is done"), "{msg}");
    fails(&pool, "delete from callback_requests").await;
    fails(
        &pool,
        "insert into public_holidays (month, day, name) values (2, 30, 'No such day')",
    )
    .await;
    fails(
        &pool,
        "insert into public_holidays (month, day, name) values (1, 1, 'New Year again')",
    )
    .await;
}

/// Issue 12: a pledge from a USSD menu is one statement that records its step and commits on
/// its own (`ussd_step_done`). Ended past its time it is refused (SQLSTATE 57014) and nothing
/// stays: no pledge, no SMS, no step; in time it is made and recorded, and the same step with
/// the same inputs again is refused (HS002) without a second pledge.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_pledge_step_in_one_statement_is_all_or_nothing(pool: PgPool) {
    let seed = seed(&pool).await;
    let statement = |ms_left: i32, key: &str| {
        format!(
            "select ussd_step_done('at:{PHONE_EN}:s1', '{PHONE_EN}', '{{}}', now(), 4, 'create_pledge',
                                   '\\x01', {ms_left},
                                   pledge_at(now(), {}, '{PHONE_EN}', 40, 'ussd', '{key}', false,
                                             '{{\"before\": \"Code \", \"after\": \".\", \"encoding\": \"gsm7\",
                                               \"segments\": 1, \"provider\": \"log\"}}'))",
            seed.bridge
        )
    };
    let late = fails(&pool, &statement(0, "k1")).await;
    assert!(late.contains("after the hop's deadline"), "{late}");
    for table in ["pledges", "outbox", "ussd_effects"] {
        assert_eq!(
            count(&pool, &format!("select count(*) from {table}")).await,
            0,
            "{table}"
        );
    }
    sqlx::query(&statement(10_000, "k1"))
        .execute(&pool)
        .await
        .expect("in time");
    let again = fails(&pool, &statement(10_000, "k1")).await;
    assert!(
        again.contains("recorded for these inputs already"),
        "{again}"
    );
    for table in ["pledges", "outbox", "ussd_effects"] {
        assert_eq!(
            count(&pool, &format!("select count(*) from {table}")).await,
            1,
            "{table}"
        );
    }
}

/// Two pledges to one project at once: the second is made while the first is still open in
/// its transaction, as their sums are in different stripes (it used to wait for the first's
/// commit on the project's one sums row, and on its hour's and week's). A lock wait would
/// fail the second at its lock timeout instead.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_second_pledge_to_a_project_does_not_wait_for_the_first(pool: PgPool) {
    let seed = seed(&pool).await;
    let pledge = |amount: &str, key: &str| {
        format!(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
             values ({}, {}, '{PHONE_TG}', {amount}, 'TJS', 'api', '{key}')",
            seed.bridge, seed.household
        )
    };
    let mut first = pool.begin().await.expect("first");
    sqlx::query(&pledge("100", "s1"))
        .execute(&mut *first)
        .await
        .expect("first pledge");
    let mut second = pool.begin().await.expect("second");
    sqlx::query("set local lock_timeout = '200ms'")
        .execute(&mut *second)
        .await
        .expect("lock timeout");
    sqlx::query(&pledge("50", "s2"))
        .execute(&mut *second)
        .await
        .expect("the second pledge waits for nothing");
    second.commit().await.expect("second commits");
    first.commit().await.expect("first commits");
    let pledged: rust_decimal::Decimal =
        sqlx::query_scalar("select pledged from project_totals where project_id = $1")
            .bind(seed.bridge)
            .fetch_one(&pool)
            .await
            .expect("totals");
    assert_eq!(pledged, rust_decimal::Decimal::new(150, 0));
}

/// A statement that sets `hashar.session_notify` to 'after_commit' makes a session's row
/// without notifying in its commit (the recording process announces it after, see
/// `Cache::announce_session`); any other writer notifies in its commit. Checked by the
/// order of delivery (notifications arrive in commit order): a marker sent after the
/// commit comes first, or second.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn a_session_row_notifies_in_its_commit_unless_left_to_the_process(pool: PgPool) {
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .expect("listener");
    listener.listen("hashar_cache").await.expect("listen");
    let record = |key: &str| {
        format!(
            "select ussd_record_step('{key}', '{PHONE_EN}', '{{}}'::jsonb, now(), 1, 'create_pledge',
                                     '\\x00'::bytea, '{{}}'::jsonb)"
        )
    };
    let mut next = async || {
        listener
            .recv()
            .await
            .expect("notification")
            .payload()
            .to_owned()
    };
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("select set_config('hashar.session_notify', 'after_commit', true)")
        .execute(&mut *tx)
        .await
        .expect("left to the process");
    sqlx::query(&record("t:left"))
        .execute(&mut *tx)
        .await
        .expect("recorded");
    tx.commit().await.expect("commit");
    sqlx::query("select pg_notify('hashar_cache', 'marker:1')")
        .execute(&pool)
        .await
        .expect("marker");
    assert_eq!(next().await, "marker:1");
    sqlx::query(&record("t:trigger"))
        .execute(&pool)
        .await
        .expect("recorded");
    sqlx::query("select pg_notify('hashar_cache', 'marker:2')")
        .execute(&pool)
        .await
        .expect("marker");
    assert_eq!(next().await, "session:t:trigger");
    assert_eq!(next().await, "marker:2");
}
