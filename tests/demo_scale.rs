//! `hashar demo-data --households N --pledges M`: generated data for benchmarks at scale.

use chrono::{TimeZone, Utc};
use sqlx::PgPool;

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn generated_households_and_pledges_are_made_once_through_the_usual_triggers(pool: PgPool) {
    let now = Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap();
    hashar::demo::load(&pool).await.expect("demo data");
    let added = hashar::demo::scale(&pool, 120, 900, now)
        .await
        .expect("scale");
    assert_eq!(added.households, 120);
    assert_eq!(added.pledges, 900);
    // one in three received, by pledge id (about 300; the last two days' are not)
    assert!((250..=310).contains(&added.receipts), "{added:?}");

    // Phones +99290 and seven digits, each a household of its own, in every community.
    assert_eq!(
        count(
            &pool,
            "select count(*) from phones p join households h on h.id = p.household_id
             where p.phone ~ '^\\+99290[0-9]{7}$' and h.name = 'Household ' || right(p.phone, 7)"
        )
        .await,
        120
    );
    assert_eq!(
        count(
            &pool,
            "select count(distinct community_id) from households where name like 'Household %'"
        )
        .await,
        count(&pool, "select count(*) from communities").await
    );
    // Every pledge has its code, an open project of its household's community, a time in
    // the 12 weeks before now, and the sums kept by the triggers agree with the rows.
    assert_eq!(
        count(
            &pool,
            "select count(*) from pledges p join households h on h.id = p.household_id
             join projects r on r.id = p.project_id
             where p.idempotency_key like 'scale:%' and p.code is not null
               and r.community_id = h.community_id and r.status = 'open'
               and p.created_at between timestamptz '2026-09-05 09:00Z' and timestamptz '2026-11-28 09:00Z'"
        )
        .await,
        900
    );
    assert_eq!(
        count(
            &pool,
            "select count(*) from project_totals s where s.pledged <>
               (select coalesce(sum(amount), 0) from pledges where project_id = s.project_id and status <> 'cancelled')
             or s.received <> (select coalesce(sum(amount), 0) from receipts where project_id = s.project_id)"
        )
        .await,
        0
    );
    assert_eq!(
        count(&pool, "select count(*) from pledges where idempotency_key like 'scale:%' and status = 'received'").await,
        added.receipts as i64
    );

    // Again: nothing twice; a larger figure adds the difference.
    let again = hashar::demo::scale(&pool, 120, 900, now)
        .await
        .expect("again");
    assert_eq!(again, hashar::demo::ScaleSummary::default());
    let more = hashar::demo::scale(&pool, 130, 950, now)
        .await
        .expect("more");
    assert_eq!((more.households, more.pledges), (10, 50));
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn pledges_without_generated_households_or_past_the_limit_are_refused(pool: PgPool) {
    let now = Utc::now();
    hashar::demo::load(&pool).await.expect("demo data");
    assert!(matches!(
        hashar::demo::scale(&pool, 0, 10, now).await,
        Err(hashar::demo::ScaleError::NoHouseholds)
    ));
    assert!(matches!(
        hashar::demo::scale(&pool, hashar::demo::SCALE_MAX + 1, 0, now).await,
        Err(hashar::demo::ScaleError::TooMany)
    ));
    assert_eq!(count(&pool, "select count(*) from pledges").await, 0);
}
