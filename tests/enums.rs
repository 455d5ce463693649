//! The store's text enums say what the schema says: each one's values are exactly those its
//! column's check constraint allows, and each value reads and writes through sqlx, serde and
//! `FromStr`/`Display` as the same string.

use std::{collections::BTreeSet, fmt::Debug, fmt::Display, str::FromStr};

use hashar::store::{
    inbox::InboundKind,
    money::ReceiptMethod,
    outbox::{Kind as OutboxKind, OutboxStatus, ReportState},
    pledges::{PledgeChannel, PledgeStatus},
    projects::{ProjectKind, ProjectStatus},
    staff::Role,
};
use sqlx::{PgPool, Postgres};

/// The values the check constraints of `table` allow in `column` (`column = ANY (ARRAY['a'::text, …])`).
async fn allowed(pool: &PgPool, table: &str, column: &str) -> BTreeSet<String> {
    let defs: Vec<String> = sqlx::query_scalar(
        "select pg_get_constraintdef(oid) from pg_constraint
         where conrelid = $1::regclass and contype = 'c'",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("constraints");
    let head = format!("({column} = ANY (ARRAY[");
    let mut found = defs.iter().filter_map(|d| {
        let list = &d[d.find(&head)? + head.len()..];
        let list = &list[..list.find("])")?];
        Some(
            list.split(", ")
                .map(|v| v.trim_end_matches("::text").trim_matches('\'').to_owned())
                .collect::<BTreeSet<_>>(),
        )
    });
    let values = found
        .next()
        .unwrap_or_else(|| panic!("no check constraint lists {table}.{column}: {defs:?}"));
    assert!(found.next().is_none(), "{table}.{column} is listed twice");
    values
}

async fn same_as_schema<T>(pool: &PgPool, table: &str, column: &str, all: &[T])
where
    T: Copy
        + PartialEq
        + Debug
        + Display
        + FromStr
        + serde::Serialize
        + serde::de::DeserializeOwned
        + sqlx::Type<Postgres>
        + for<'q> sqlx::Encode<'q, Postgres>
        + for<'r> sqlx::Decode<'r, Postgres>
        + Send
        + Unpin,
    <T as FromStr>::Err: Debug,
{
    let ours: BTreeSet<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(ours, allowed(pool, table, column).await, "{table}.{column}");
    for &v in all {
        let s = v.to_string();
        assert_eq!(s.parse::<T>().expect("parses"), v);
        assert_eq!(
            serde_json::to_value(v).expect("serializes"),
            serde_json::json!(s)
        );
        assert_eq!(
            serde_json::from_value::<T>(serde_json::json!(s)).expect("deserializes"),
            v
        );
        let (text, back): (String, T) = sqlx::query_as("select $1::text, $1::text")
            .bind(v)
            .fetch_one(pool)
            .await
            .expect("round trip");
        assert_eq!((text.as_str(), back), (s.as_str(), v));
    }
    assert!("nonsense".parse::<T>().is_err());
}

#[sqlx::test(migrator = "hashar::MIGRATOR")]
async fn text_enums_match_the_schema(pool: PgPool) {
    same_as_schema(&pool, "projects", "status", &ProjectStatus::ALL).await;
    same_as_schema(&pool, "projects", "kind", &ProjectKind::ALL).await;
    same_as_schema(&pool, "pledges", "status", &PledgeStatus::ALL).await;
    same_as_schema(&pool, "pledges", "channel", &PledgeChannel::ALL).await;
    same_as_schema(&pool, "receipts", "method", &ReceiptMethod::ALL).await;
    same_as_schema(&pool, "outbox", "status", &OutboxStatus::ALL).await;
    same_as_schema(&pool, "outbox", "kind", &OutboxKind::ALL).await;
    same_as_schema(&pool, "inbound_messages", "kind", &InboundKind::ALL).await;
    same_as_schema(&pool, "early_delivery_reports", "state", &ReportState::ALL).await;
    same_as_schema(&pool, "coordinators", "role", &Role::ALL).await;
}
