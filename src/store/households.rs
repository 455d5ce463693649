//! Households and their numbers.

use sqlx::PgConnection;

use super::{CommunityId, HouseholdId};
use crate::domain::{Language, Phone};

/// The household a number belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneOwner {
    pub household: HouseholdId,
    pub community: CommunityId,
    /// The household's language, if it chose one.
    pub language: Option<Language>,
    /// The code that links another number to the household, if it has one.
    pub join_code: Option<String>,
}

/// The household `phone` belongs to, if any.
pub async fn owner_of_phone(
    conn: &mut PgConnection,
    phone: &Phone,
) -> Result<Option<PhoneOwner>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select h.id as "household: HouseholdId", h.community_id as "community: CommunityId",
                  h.language, h.join_code
           from phones p join households h on h.id = p.household_id
           where p.phone = $1"#,
        phone.as_str()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| PhoneOwner {
        household: r.household,
        community: r.community,
        language: r.language.and_then(|l| l.parse().ok()),
        join_code: r.join_code,
    }))
}

/// Sets the language of the household `phone` belongs to (nothing when it belongs to none).
pub async fn set_language_of_phone(
    conn: &mut PgConnection,
    phone: &Phone,
    language: Language,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update households set language = $2
         where id = (select household_id from phones where phone = $1)",
        phone.as_str(),
        language.code()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Links `phone` to `household`. A number belongs to at most one household: linking one
/// that is taken fails with a unique violation ([`super::Violation::is_unique`]).
/// `clock_timestamp()`, not `now()`: numbers linked in one transaction keep their order.
pub async fn link_phone(
    conn: &mut PgConnection,
    phone: &Phone,
    household: HouseholdId,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into phones (phone, household_id, created_at) values ($1, $2, clock_timestamp())",
        phone.as_str(),
        household as HouseholdId
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How many numbers a household has.
pub async fn phone_count(
    conn: &mut PgConnection,
    household: HouseholdId,
) -> Result<i64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"select count(*) as "count!" from phones where household_id = $1"#,
        household as HouseholdId
    )
    .fetch_one(conn)
    .await?;
    Ok(count)
}
