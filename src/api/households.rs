//! Households and their phones: list and search, register (with its numbers), read, rename,
//! set the language, move to another community, link and unlink numbers (a migrant member's
//! foreign number, say), and record or clear a number's STOP state.
//!
//! Scope: a coordinator sees only the households of their communities; another community's
//! household (or number) answers 404, and acting on another community (registering a
//! household there, moving one there) answers 403. A number belongs to at most one
//! household: linking one that belongs to another household answers 409.
//!
//! Decisions:
//! - A household keeps at least one number: unlinking its last one answers 409 (link the new
//!   number first, then unlink the old one). A household without a number could not pledge,
//!   get a receipt or a tip, and nobody could find it by phone.
//! - Linking a number already on the same household is a no-op answered 200 (201 when new).
//! - The STOP state belongs to the number, not to the household: unlinking a number keeps
//!   it, and `PUT /api/v1/phones/{phone}/opt-out` records what the person asked for (in
//!   person or by phone) exactly as texting STOP or START would.
//! - Moving a household leaves its past pledges and receipts with their projects: a pledge
//!   is a promise to a project, and the old community's coordinator still records its money.
//! - Numbers are never logged in full (`Phone`'s `Display` masks them).

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, PgConnection};
use utoipa::{IntoParams, ToSchema};

use super::{
    auth::Auth,
    error::{ApiError, ApiResult, Body, ErrorBody, Params, Segments},
};
use crate::{
    app::AppState,
    domain::{Language, Phone},
};

/// Most numbers a household may have (the people of one family, at home and abroad).
pub const MAX_PHONES: usize = 10;
const MAX_NAME: usize = 120;
const MAX_QUERY: usize = 100;

/// One of a household's numbers and whether it texted STOP.
#[derive(Debug, Serialize, FromRow, ToSchema)]
pub struct HouseholdPhone {
    /// E.164, e.g. `+992901234567`.
    pub phone: String,
    /// True while the number has opted out of SMS (STOP): it gets no SMS but the STOP confirmation.
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub linked_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Household {
    pub id: i64,
    pub community_id: i64,
    pub name: Option<String>,
    /// `tg`, `ru` or `en`; absent: guessed from the number.
    pub language: Option<String>,
    /// coordinator, ussd, sms or demo
    pub registered_via: String,
    /// The code a member abroad texts (`JOIN 123456`) to link their number.
    pub join_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub phones: Vec<HouseholdPhone>,
}

#[derive(Debug, FromRow)]
struct HouseholdRow {
    id: i64,
    community_id: i64,
    name: Option<String>,
    language: Option<String>,
    registered_via: String,
    join_code: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, FromRow)]
struct PhoneRow {
    household_id: i64,
    phone: String,
    opted_out_at: Option<DateTime<Utc>>,
    linked_at: DateTime<Utc>,
}

const SELECT: &str =
    "select h.id, h.community_id, h.name, h.language, h.registered_via, h.join_code, h.created_at
     from households h";

/// The households' numbers, in the order they were linked.
async fn with_phones(
    conn: &mut PgConnection,
    rows: Vec<HouseholdRow>,
) -> Result<Vec<Household>, sqlx::Error> {
    let ids: Vec<i64> = rows.iter().map(|h| h.id).collect();
    let phones = sqlx::query_as::<_, PhoneRow>(
        "select p.household_id, p.phone, o.opted_out_at, p.created_at as linked_at
         from phones p left join sms_optouts o on o.phone = p.phone
         where p.household_id = any($1)
         order by p.household_id, p.created_at, p.phone",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|h| Household {
            phones: phones
                .iter()
                .filter(|p| p.household_id == h.id)
                .map(|p| HouseholdPhone {
                    phone: p.phone.clone(),
                    opted_out: p.opted_out_at.is_some(),
                    opted_out_at: p.opted_out_at,
                    linked_at: p.linked_at,
                })
                .collect(),
            id: h.id,
            community_id: h.community_id,
            name: h.name,
            language: h.language,
            registered_via: h.registered_via,
            join_code: h.join_code,
            created_at: h.created_at,
        })
        .collect())
}

/// The household if this coordinator may see it; 404 otherwise. With `lock`, the row is
/// locked for the rest of the transaction (changes to its numbers are serialised).
async fn visible(
    conn: &mut PgConnection,
    auth: &Auth,
    id: i64,
    lock: bool,
) -> ApiResult<HouseholdRow> {
    let sql = if lock {
        format!("{SELECT} where h.id = $1 for update")
    } else {
        format!("{SELECT} where h.id = $1")
    };
    let row = sqlx::query_as::<_, HouseholdRow>(&sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or(ApiError::NotFound("household"))?;
    if !auth.may(row.community_id) {
        return Err(ApiError::NotFound("household"));
    }
    Ok(row)
}

async fn load(conn: &mut PgConnection, auth: &Auth, id: i64) -> ApiResult<Household> {
    let row = visible(&mut *conn, auth, id, false).await?;
    with_phones(conn, vec![row])
        .await?
        .pop()
        .ok_or(ApiError::NotFound("household"))
}

fn parse_phone(field: &'static str, raw: &str) -> ApiResult<Phone> {
    Phone::parse(raw).map_err(|e| {
        ApiError::invalid(
            field,
            format!("{field}: {e} (an E.164 number such as +992901234567, or a Tajik number)"),
        )
    })
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME {
        return Err(ApiError::invalid(
            "name",
            format!("name must be 1 to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_language(raw: &str) -> ApiResult<Language> {
    raw.parse()
        .map_err(|_| ApiError::invalid("language", "language is tg, ru or en"))
}

/// 409 if `phone` belongs to a household other than `household` (`None`: any household).
/// The other household is named only when this coordinator may see it.
async fn check_free(
    conn: &mut PgConnection,
    auth: &Auth,
    phone: &Phone,
    household: Option<i64>,
) -> ApiResult<bool> {
    let owner: Option<(i64, i64)> = sqlx::query_as(
        "select h.id, h.community_id from phones p join households h on h.id = p.household_id
         where p.phone = $1",
    )
    .bind(phone.as_str())
    .fetch_optional(conn)
    .await?;
    match owner {
        None => Ok(true),
        Some((id, _)) if Some(id) == household => Ok(false),
        Some((id, community)) => Err(taken(auth, phone, Some((id, community)))),
    }
}

fn taken(auth: &Auth, phone: &Phone, owner: Option<(i64, i64)>) -> ApiError {
    match owner {
        Some((id, community)) if auth.may(community) => ApiError::Conflict(format!(
            "{} is already registered to household {id}",
            phone.as_str()
        )),
        _ => ApiError::Conflict(format!(
            "{} is already registered to another household",
            phone.as_str()
        )),
    }
}

/// Inserts a number for a household; a concurrent insert of the same number is a 409 too.
async fn link(
    conn: &mut PgConnection,
    auth: &Auth,
    phone: &Phone,
    household: i64,
) -> ApiResult<()> {
    // clock_timestamp(), not now(): numbers registered together keep the order they were given in
    let done = sqlx::query(
        "insert into phones (phone, household_id, created_at) values ($1, $2, clock_timestamp())",
    )
    .bind(phone.as_str())
    .bind(household)
    .execute(&mut *conn)
    .await;
    match done {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(taken(auth, phone, None))
        }
        Err(e) => return Err(e.into()),
    }
    // An SMS conversation started while the number was a stranger ends (as on `JOIN`).
    forget_conversation(conn, phone).await?;
    Ok(())
}

async fn forget_conversation(conn: &mut PgConnection, phone: &Phone) -> Result<(), sqlx::Error> {
    sqlx::query("delete from sms_conversations where phone = $1")
        .bind(phone.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HouseholdQuery {
    /// Only this community's households.
    pub community: Option<i64>,
    /// Part of the name (any case), part of a number (digits), or the join code.
    pub q: Option<String>,
    /// At most 1000 (default 100).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Households this coordinator may see, with their numbers, oldest first.
#[utoipa::path(get, path = "/api/v1/households", tag = "households", params(HouseholdQuery),
    responses((status = 200, body = [Household]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Params(q): Params<HouseholdQuery>,
) -> ApiResult<Json<Vec<Household>>> {
    if let Some(c) = q.community {
        auth.require(c)?;
    }
    let (limit, offset) = super::error::paging(q.limit, q.offset)?;
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_QUERY) {
        return Err(ApiError::invalid(
            "q",
            format!("q is at most {MAX_QUERY} characters"),
        ));
    }
    // Searched literally: `%` and `_` typed by the coordinator are not wildcards.
    let pattern = text.as_ref().map(|t| {
        format!(
            "%{}%",
            t.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let digits = text
        .as_ref()
        .map(|t| t.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|d| d.len() >= 3)
        .map(|d| format!("%{d}%"));
    let mut conn = state.pool.acquire().await?;
    let rows = sqlx::query_as::<_, HouseholdRow>(&format!(
        "{SELECT}
         where ($1::bigint[] is null or h.community_id = any($1))
           and ($2::bigint is null or h.community_id = $2)
           and ($3::text is null
                or h.name ilike $3
                or h.join_code = $4
                or ($5::text is not null and exists (
                    select 1 from phones p where p.household_id = h.id and p.phone like $5)))
         order by h.id
         limit $6 offset $7"
    ))
    .bind(auth.scope())
    .bind(q.community)
    .bind(pattern)
    .bind(text)
    .bind(digits)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(with_phones(&mut conn, rows).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHousehold {
    pub community_id: i64,
    /// 1 to 120 characters.
    pub name: Option<String>,
    /// `tg`, `ru` or `en`; absent: guessed from the number when texting.
    pub language: Option<String>,
    /// 1 to 10 numbers, any common spelling (`+992 90 123 4567`, `901234567`,
    /// `+79161234567`); stored as E.164.
    pub phones: Vec<String>,
}

/// Registers a household with its numbers.
#[utoipa::path(post, path = "/api/v1/households", tag = "households", request_body = NewHousehold,
    responses((status = 201, body = Household), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Body(h): Body<NewHousehold>,
) -> ApiResult<(StatusCode, Json<Household>)> {
    auth.require(h.community_id)?;
    let name = h.name.as_deref().map(check_name).transpose()?;
    let language = h.language.as_deref().map(check_language).transpose()?;
    if h.phones.is_empty() || h.phones.len() > MAX_PHONES {
        return Err(ApiError::invalid(
            "phones",
            format!("phones is a list of 1 to {MAX_PHONES} numbers"),
        ));
    }
    let mut phones: Vec<Phone> = Vec::with_capacity(h.phones.len());
    for raw in &h.phones {
        let phone = parse_phone("phones", raw)?;
        if phones.contains(&phone) {
            return Err(ApiError::invalid(
                "phones",
                format!("phones lists {} twice", phone.as_str()),
            ));
        }
        phones.push(phone);
    }
    let mut tx = state.pool.begin().await?;
    for phone in &phones {
        check_free(&mut tx, &auth, phone, None).await?;
    }
    let id: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "insert into households (community_id, name, language, registered_via)
         values ($1, $2, $3, 'coordinator') returning id",
    )
    .bind(h.community_id)
    .bind(name)
    .bind(language.map(Language::code))
    .fetch_one(&mut *tx)
    .await;
    let id = match id {
        Ok(id) => id,
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            return Err(ApiError::invalid("community_id", "no such community"))
        }
        Err(e) => return Err(e.into()),
    };
    for phone in &phones {
        link(&mut tx, &auth, phone, id).await?;
    }
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        household = id,
        phones = phones.len(),
        "household registered"
    );
    Ok((StatusCode::CREATED, Json(household)))
}

/// One household with its numbers.
#[utoipa::path(get, path = "/api/v1/households/{id}", tag = "households",
    params(("id" = i64, Path, description = "household id")),
    responses((status = 200, body = Household), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
) -> ApiResult<Json<Household>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(load(&mut conn, &auth, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdChange {
    /// A name sets it; `null` removes it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// `tg`, `ru` or `en`; `null` removes it (guessed from the number); absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// Moves the household: the coordinator must be allowed on both communities.
    pub community_id: Option<i64>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Renames a household, sets its language, or moves it to another community.
#[utoipa::path(patch, path = "/api/v1/households/{id}", tag = "households", request_body = HouseholdChange,
    params(("id" = i64, Path, description = "household id")),
    responses((status = 200, body = Household), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(c): Body<HouseholdChange>,
) -> ApiResult<Json<Household>> {
    let name = match &c.name {
        Some(Some(n)) => Some(Some(check_name(n)?)),
        Some(None) => Some(None),
        None => None,
    };
    let language = match &c.language {
        Some(Some(l)) => Some(Some(check_language(l)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = state.pool.begin().await?;
    let current = visible(&mut tx, &auth, id, true).await?;
    let moved = c.community_id.filter(|&to| to != current.community_id);
    if let Some(to) = moved {
        auth.require(to)?;
    }
    let done = sqlx::query(
        "update households set
             name = case when $2 then $3 else name end,
             language = case when $4 then $5 else language end,
             community_id = coalesce($6, community_id)
         where id = $1",
    )
    .bind(id)
    .bind(name.is_some())
    .bind(name.flatten())
    .bind(language.is_some())
    .bind(language.flatten().map(Language::code))
    .bind(moved)
    .execute(&mut *tx)
    .await;
    match done {
        Ok(_) => {}
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            return Err(ApiError::invalid("community_id", "no such community"))
        }
        Err(e) => return Err(e.into()),
    }
    if moved.is_some() {
        // An SMS conversation lists the old community's projects: it starts again.
        sqlx::query(
            "delete from sms_conversations where phone in (select phone from phones where household_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    if let Some(Some(lang)) = language {
        // The per-process hint (used when the database cannot answer) follows the record.
        for p in &household.phones {
            state
                .hints
                .remember(&Phone::from_e164_unchecked(p.phone.clone()), lang);
        }
    }
    match moved {
        Some(to) => tracing::info!(
            coordinator = auth.coordinator_id,
            household = id,
            from = current.community_id,
            to,
            "household moved"
        ),
        None => tracing::info!(
            coordinator = auth.coordinator_id,
            household = id,
            "household changed"
        ),
    }
    Ok(Json(household))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPhone {
    /// Any common spelling; stored as E.164.
    pub phone: String,
}

/// Links a number (a member's, at home or abroad) to a household: 201 when new, 200 when it
/// was already this household's, 409 when it is another household's.
#[utoipa::path(post, path = "/api/v1/households/{id}/phones", tag = "households", request_body = NewPhone,
    params(("id" = i64, Path, description = "household id")),
    responses((status = 201, body = Household), (status = 200, body = Household), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_phone(
    State(state): State<AppState>,
    auth: Auth,
    Segments(id): Segments<i64>,
    Body(p): Body<NewPhone>,
) -> ApiResult<(StatusCode, Json<Household>)> {
    let phone = parse_phone("phone", &p.phone)?;
    let mut tx = state.pool.begin().await?;
    visible(&mut tx, &auth, id, true).await?;
    let status = if check_free(&mut tx, &auth, &phone, Some(id)).await? {
        let count: i64 = sqlx::query_scalar("select count(*) from phones where household_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_PHONES {
            return Err(ApiError::Conflict(format!(
                "the household already has {MAX_PHONES} numbers"
            )));
        }
        link(&mut tx, &auth, &phone, id).await?;
        tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, "number linked");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    Ok((status, Json(household)))
}

/// Unlinks a number (URL-encoded E.164, `%2B992901234567`) from a household. A household
/// keeps at least one number: unlinking the last answers 409. The number's STOP state stays.
#[utoipa::path(delete, path = "/api/v1/households/{id}/phones/{phone}", tag = "households",
    params(("id" = i64, Path, description = "household id"),
           ("phone" = String, Path, description = "the number, URL-encoded E.164")),
    responses((status = 200, body = Household), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn remove_phone(
    State(state): State<AppState>,
    auth: Auth,
    Segments((id, raw)): Segments<(i64, String)>,
) -> ApiResult<Json<Household>> {
    let phone = parse_phone("phone", &raw)?;
    let mut tx = state.pool.begin().await?;
    visible(&mut tx, &auth, id, true).await?;
    let numbers: Vec<String> =
        sqlx::query_scalar("select phone from phones where household_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    if !numbers.iter().any(|n| n == phone.as_str()) {
        return Err(ApiError::NotFound("phone"));
    }
    if numbers.len() == 1 {
        return Err(ApiError::Conflict(
            "this is the household's only number: link another one first".into(),
        ));
    }
    sqlx::query("delete from phones where phone = $1 and household_id = $2")
        .bind(phone.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    forget_conversation(&mut tx, &phone).await?;
    let household = load(&mut tx, &auth, id).await?;
    tx.commit().await?;
    tracing::info!(coordinator = auth.coordinator_id, household = id, phone = %phone, "number unlinked");
    Ok(Json(household))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutChange {
    /// true: the number gets no SMS (as if it texted STOP); false: it gets them again (START).
    pub opted_out: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneOptOut {
    pub phone: String,
    pub household_id: i64,
    pub opted_out: bool,
    pub opted_out_at: Option<DateTime<Utc>>,
}

/// Records or clears a number's STOP state, as the person asked (a number of a household
/// this coordinator may see; others answer 404).
#[utoipa::path(put, path = "/api/v1/phones/{phone}/opt-out", tag = "households", request_body = OptOutChange,
    params(("phone" = String, Path, description = "the number, URL-encoded E.164")),
    responses((status = 200, body = PhoneOptOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn set_opt_out(
    State(state): State<AppState>,
    auth: Auth,
    Segments(raw): Segments<String>,
    Body(c): Body<OptOutChange>,
) -> ApiResult<Json<PhoneOptOut>> {
    let phone = parse_phone("phone", &raw)?;
    let mut tx = state.pool.begin().await?;
    let owner: Option<(i64, i64)> = sqlx::query_as(
        "select h.id, h.community_id from phones p join households h on h.id = p.household_id
         where p.phone = $1",
    )
    .bind(phone.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let household = match owner {
        Some((household, community)) if auth.may(community) => household,
        _ => return Err(ApiError::NotFound("phone")),
    };
    if c.opted_out {
        sqlx::query(
            "insert into sms_optouts (phone, opted_out_at) values ($1, $2) on conflict do nothing",
        )
        .bind(phone.as_str())
        .bind(state.clock.now())
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query("delete from sms_optouts where phone = $1")
            .bind(phone.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let opted_out_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("select opted_out_at from sms_optouts where phone = $1")
            .bind(phone.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = auth.coordinator_id,
        household,
        phone = %phone,
        opted_out = c.opted_out,
        "opt-out set by a coordinator"
    );
    Ok(Json(PhoneOptOut {
        phone: phone.as_str().to_owned(),
        household_id: household,
        opted_out: opted_out_at.is_some(),
        opted_out_at,
    }))
}
