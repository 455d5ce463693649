//! Pledge and join codes: FF1 (AES-256) of a sequence under a 256-bit secret drawn once.

mod common;

use aes::Aes256;
use common::*;
use fpe::ff1::{FlexibleNumeralString, FF1};
use sqlx::PgPool;

fn digits(x: u64, n: usize) -> Vec<u16> {
    let s = format!("{x:0n$}");
    s.bytes().map(|b| u16::from(b - b'0')).collect()
}

fn number(ds: &[u16]) -> u64 {
    ds.iter().fold(0, |acc, d| acc * 10 + u64::from(*d))
}

/// FF1 by the `fpe` crate, walked again while below `low` (as `ff1_code` in SQL).
fn reference_code(key: &[u8], x: u64, n: usize, low: u64) -> u64 {
    let ff1 = FF1::<Aes256>::new(key, 10).expect("radix");
    let mut v = x;
    loop {
        let out = ff1
            .encrypt(&[], &FlexibleNumeralString::from(digits(v, n)))
            .expect("encrypt");
        v = number(&Vec::<u16>::from(out));
        if v >= low {
            return v;
        }
    }
}

async fn secret(pool: &PgPool) -> Vec<u8> {
    sqlx::query_scalar("select key from code_secret")
        .fetch_one(pool)
        .await
        .expect("code secret")
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn the_sql_ff1_agrees_with_nist_and_the_fpe_crate(pool: PgPool) {
    // NIST SP 800-38G samples 1 (AES-128) and 7 (AES-256): radix 10, empty tweak.
    let nist: Vec<(i64, i64)> = sqlx::query_as(
        "select ff1_encrypt_decimal(0123456789, 10, '\\x2B7E151628AED2A6ABF7158809CF4F3C'),
                ff1_encrypt_decimal(0123456789, 10,
                    '\\x2B7E151628AED2A6ABF7158809CF4F3CEF4359D8D580AA4F7F036D6F04FC6A94')",
    )
    .fetch_all(&pool)
    .await
    .expect("nist");
    assert_eq!(nist, vec![(2433477484, 6657667009)]);

    let key = secret(&pool).await;
    assert_eq!(key.len(), 32, "a 256-bit secret");
    for (n, low) in [(6usize, 100_000u64), (7, 1_000_000)] {
        let step = (10i64.pow(n as u32) - low as i64) / 200;
        let xs: Vec<i64> = (0..200).map(|i| low as i64 + i * step + i).collect();
        let got: Vec<i64> =
            sqlx::query_scalar("select ff1_code(x, $2, $3, $4) from unnest($1::bigint[]) x")
                .bind(&xs)
                .bind(n as i32)
                .bind(low as i64)
                .bind(&key)
                .fetch_all(&pool)
                .await
                .expect("ff1_code");
        for (x, code) in xs.iter().zip(got) {
            assert_eq!(
                code as u64,
                reference_code(&key, *x as u64, n, low),
                "n={n} x={x}"
            );
        }
    }
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn codes_are_ff1_of_the_sequence_under_the_secret_and_show_no_structure(pool: PgPool) {
    let seed = seed(&pool).await;
    let key = secret(&pool).await;
    let first_seq: i64 = sqlx::query_scalar(
        "select case when is_called then last_value + 1 else last_value end from join_code_seq",
    )
    .fetch_one(&pool)
    .await
    .expect("seq");
    let mut codes = Vec::new();
    for i in 0..8 {
        let phone = format!("+99290700000{i}");
        let id = add_household(&pool, seed.community, Some("tg"), &phone).await;
        let code: String = sqlx::query_scalar("select join_code from households where id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("code");
        assert!(code.len() == 6 && !code.starts_with('0'), "{code}");
        let code: u64 = code.parse().expect("digits");
        // exactly FF1-AES-256 of 100,000 + the sequence number, under this database's secret
        assert_eq!(
            code,
            reference_code(&key, 100_000 + (first_seq + i) as u64, 6, 100_000)
        );
        codes.push(code as i64);
    }
    let diffs: Vec<i64> = codes.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        diffs.iter().any(|d| *d > 0) && diffs.iter().any(|d| *d < 0),
        "not monotonic: {codes:?}"
    );
    assert!(
        diffs.windows(2).any(|w| w[0] != w[1]),
        "not affine: {codes:?}"
    );

    // Another secret (another database) gives other codes for the same sequence numbers.
    let other: Vec<u8> = (0u8..32).collect();
    let same = codes
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            reference_code(&other, 100_000 + (first_seq + *i as i64) as u64, 6, 100_000)
                == **c as u64
        })
        .count();
    assert_eq!(same, 0);

    // The secret was drawn once: running the migrations again (a second start) keeps it.
    hashar::MIGRATOR.run(&pool).await.expect("migrate again");
    let _second = app(pool.clone()).await;
    assert_eq!(secret(&pool).await, key);
    assert_eq!(count(&pool, "select count(*) from code_secret").await, 1);
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn bulk_inserts_get_unique_codes_and_skip_old_ones(pool: PgPool) {
    let seed = seed(&pool).await;
    // A code from before (random scheme) equal to what the next sequence number encrypts to.
    let taken: String = sqlx::query_scalar(
        "select ff1_code(100000 + case when is_called then last_value + 1 else last_value end,
                         6, 100000, (select key from code_secret))::text from join_code_seq",
    )
    .fetch_one(&pool)
    .await
    .expect("next code");
    sqlx::query("insert into households (community_id, join_code) values ($1, $2)")
        .bind(seed.community)
        .bind(&taken)
        .execute(&pool)
        .await
        .expect("old code");

    sqlx::query("insert into households (community_id) select $1 from generate_series(1, 20000)")
        .bind(seed.community)
        .execute(&pool)
        .await
        .expect("bulk households");
    let n = count(
        &pool,
        "select count(distinct join_code) from households where join_code ~ '^[1-9][0-9]{5}$'",
    )
    .await;
    let all = count(&pool, "select count(*) from households").await;
    assert_eq!(n, all, "every household has its own 6-digit code");

    sqlx::query(
        "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
         select $1, $2, $3, 10, 'TJS', 'api', 'bulk-' || g from generate_series(1, 20000) g",
    )
    .bind(seed.bridge)
    .bind(seed.household)
    .bind(PHONE_TG)
    .execute(&pool)
    .await
    .expect("bulk pledges");
    let n = count(
        &pool,
        "select count(distinct code) from pledges where code ~ '^[1-9][0-9]{6}$'",
    )
    .await;
    assert_eq!(n, count(&pool, "select count(*) from pledges").await);
    assert!(n >= 20000);
}

/// Issue 12: the server makes pledge codes ahead (`store::pledge_codes`): the same FF1 of
/// the same sequence numbers as `new_pledge_code`; a USSD pledge takes the first one ready;
/// the trigger takes a given code once, and never one a pledge already has.
#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn codes_made_by_the_server_are_the_sql_codes_and_each_is_taken_once(pool: PgPool) {
    use hashar::store::pledge_codes::pledge_code;
    let seed = seed(&pool).await;
    let key = secret(&pool).await;
    for n in [0i64, 1, 2, 17, 123_456, 8_999_999] {
        let sql: i64 = sqlx::query_scalar(
            "select ff1_code(1000000 + $1, 7, 1000000, (select key from code_secret))",
        )
        .bind(n)
        .fetch_one(&pool)
        .await
        .expect("sql code");
        let ours = pledge_code(&key, n).expect("code");
        assert_eq!(ours, sql.to_string());
        assert_eq!(
            ours,
            reference_code(&key, 1_000_000 + n as u64, 7, 1_000_000).to_string()
        );
    }
    // past the 7-digit codes, as the SQL function refuses it
    assert!(pledge_code(&key, 9_000_000).is_err());

    // A USSD pledge takes the first code made ahead: FF1 of the next sequence number.
    let app = app(pool.clone()).await;
    let next: i64 = sqlx::query_scalar(
        "select case when is_called then last_value + 1 else last_value end from pledge_code_seq",
    )
    .fetch_one(&pool)
    .await
    .expect("seq");
    app.pledge_codes
        .refill(&pool)
        .await
        .expect("codes made ahead");
    let done = app
        .session("ahead", PHONE_EN, &["1", "1", "500", "1"])
        .await;
    let expected = pledge_code(&key, next).expect("code");
    assert!(done.starts_with("END Bridge: pledged 500 TJS."), "{done}");
    assert!(done.contains(&expected), "{done} has {expected}");
    let stored: String = sqlx::query_scalar("select code from pledges where channel = 'ussd'")
        .fetch_one(&pool)
        .await
        .expect("the pledge");
    assert_eq!(stored, expected);
    // A keyword pledge by SMS takes the next one.
    sqlx::query("insert into phones (phone, household_id) select '+79161234567', household_id from phones where phone = $1")
        .bind(PHONE_EN)
        .execute(&pool)
        .await
        .expect("migrant phone");
    assert_eq!(
        app.text("ahead-sms", "+79161234567", "PLEDGE 300 BRIDGE")
            .await,
        axum::http::StatusCode::OK
    );
    let expected = pledge_code(&key, next + 1).expect("code");
    let stored: String = sqlx::query_scalar("select code from pledges where channel = 'sms'")
        .fetch_one(&pool)
        .await
        .expect("the pledge");
    assert_eq!(stored, expected);
    let reply: String = sqlx::query_scalar("select body from outbox where phone = '+79161234567'")
        .fetch_one(&pool)
        .await
        .expect("the reply");
    assert!(reply.contains(&expected), "{reply} has {expected}");

    // In SQL: a given code is taken once per setting, and not when a pledge has it already.
    async fn pledge(
        tx: &mut sqlx::PgConnection,
        seed: &Seed,
        key: &str,
        given: Option<&str>,
    ) -> String {
        if let Some(code) = given {
            sqlx::query("select set_config('hashar.pledge_code', $1, true)")
                .bind(code)
                .execute(&mut *tx)
                .await
                .expect("set");
        }
        sqlx::query_scalar(
            "insert into pledges (project_id, household_id, phone, amount, currency, channel, idempotency_key)
             values ($1, $2, $3, 10, 'TJS', 'api', $4) returning code",
        )
        .bind(seed.bridge)
        .bind(seed.household)
        .bind(PHONE_TG)
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .expect("pledge")
    }
    let mut tx = pool.begin().await.expect("tx");
    assert_eq!(
        pledge(&mut tx, &seed, "given-1", Some("1234567")).await,
        "1234567"
    );
    // the setting served one pledge: the next gets its own code
    assert_ne!(pledge(&mut tx, &seed, "given-2", None).await, "1234567");
    // the same code given again: a pledge has it, so the trigger makes another
    let third = pledge(&mut tx, &seed, "given-3", Some("1234567")).await;
    assert!(
        third != "1234567" && third.len() == 7 && !third.starts_with('0'),
        "another 7-digit code: {third}"
    );
    tx.commit().await.expect("commit");
}
