//! Recording money, for every edge: receipts for pledges (fully or partly) and without one,
//! cancellations, partners' matching disbursements and the reversals of receipts and
//! disbursements, and a pledge's history. Each change checks the actor (admins and
//! coordinators handle money, in their scope; reversals are for admins), runs in one
//! transaction with its audit row (and, for a receipt for a pledge, the household's SMS
//! receipt through the outbox), and is kept from happening twice by [`Once`]. The database
//! refuses anything inconsistent (see migrations/*_money.sql): that is a
//! [`ServiceError::Conflict`] with the rule's text key.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgConnection;

use super::{
    amount, audit, forms, money_date, opt_text, text, Actor, Once, ServiceError, ServiceResult,
};
use crate::{
    actions::ActionError,
    app::AppState,
    receipts::{self, ReceiptInsert},
    store::{
        self,
        audit::AuditRow,
        money::{DisbursementInsert, ReceiptMethod},
        pledges::Balance,
        CommunityId, HouseholdId, PledgeId, ProjectId,
    },
};

pub use crate::store::money::{CancellationRow, Disbursement, Receipt};

/// Longest receipt number, partner name, partner reference and reason.
pub const MAX_RECEIPT_NO: usize = 50;
pub const MAX_PARTNER: usize = 200;
pub const MAX_REFERENCE: usize = 200;
pub const MAX_REASON: usize = 500;

/// A rule the database enforces, as a conflict with its text key and message; other
/// errors as they are.
fn rule(e: sqlx::Error) -> ServiceError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23514") => {
            let message = db.message().to_owned();
            ServiceError::conflict(rule_key(&message), message)
        }
        sqlx::Error::Database(db) if db.constraint() == Some("receipt_numbers_pkey") => {
            ServiceError::conflict(
                "money.receipt_no_taken",
                "this receipt number is already recorded in the project's community (reverse that receipt first if it was wrong)",
            )
        }
        sqlx::Error::Database(db)
            if matches!(
                db.constraint(),
                Some("receipts_reverses_key" | "match_disbursements_reverses_key")
            ) =>
        {
            ServiceError::conflict("money.already_reversed", "this entry is already reversed")
        }
        _ => ServiceError::Db(e),
    }
}

/// The text key of a money rule, from the database's words (see migrations/*_money.sql).
fn rule_key(message: &str) -> &'static str {
    const KEYS: &[(&str, &str)] = &[
        ("is cancelled", "money.pledge_cancelled"),
        ("would exceed its amount", "money.more_than_outstanding"),
        ("it cannot be cancelled", "money.cancel_received"),
        ("would exceed what is due", "money.beyond_match_due"),
        ("is already reversed", "money.already_reversed"),
        ("is itself a reversal", "money.reverse_reversal"),
        (
            "reverse the disbursement first",
            "money.reversal_leaves_match_due",
        ),
        ("differs from the project currency", "money.currency"),
        ("project currency", "money.currency"),
        ("is not the pledge's project", "money.pledge_project"),
    ];
    KEYS.iter()
        .find(|(words, _)| message.contains(words))
        .map_or("money.rule", |(_, key)| key)
}

fn method(method: &str) -> ServiceResult<ReceiptMethod> {
    method.parse().map_err(|()| {
        ServiceError::invalid(
            "method",
            "money.method_invalid",
            "method is cash, bank, mobile_money, remittance or other",
        )
    })
}

fn money(v: Decimal) -> String {
    format!("{v:.2}")
}

/// Pledge `id` with what is outstanding on it, if this actor may see it.
async fn pledge_for(
    conn: &mut PgConnection,
    actor: &Actor,
    id: PledgeId,
) -> ServiceResult<Balance> {
    let p = store::pledges::balance(conn, id, false)
        .await?
        .ok_or(ServiceError::NotFound("pledge"))?;
    if !actor.may_see(p.community) {
        return Err(ServiceError::NotFound("pledge"));
    }
    Ok(p)
}

/// Money received for a pledge.
#[derive(Debug, Clone)]
pub struct PledgeReceipt<'a> {
    /// Defaults to what is still outstanding on the pledge.
    pub amount: Option<Decimal>,
    pub received_on: NaiveDate,
    /// cash, bank, mobile_money, remittance or other
    pub method: &'a str,
    /// The paper receipt's number, unique in the community (1 to 50 characters).
    pub receipt_no: Option<&'a str>,
}

/// Records money received for a pledge (all of what is outstanding, or part of it), queues
/// the household's SMS receipt and writes the audit row, in one transaction.
pub async fn receive_for_pledge(
    state: &AppState,
    actor: &Actor,
    id: PledgeId,
    r: PledgeReceipt<'_>,
    once: Once<'_>,
) -> ServiceResult<Receipt> {
    actor.require_money()?;
    let method = method(r.method)?;
    let now = state.clock.now();
    let received_on = money_date("received_on", r.received_on, now)?;
    let receipt_no = opt_text("receipt_no", r.receipt_no, MAX_RECEIPT_NO)?;
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "receipt.record", now).await? {
        return Ok(first);
    }
    let pledge = pledge_for(&mut tx, actor, id).await?;
    let amount = amount("amount", r.amount.unwrap_or(pledge.outstanding))?;
    let receipt = receipts::insert(
        &mut tx,
        &ReceiptInsert {
            project_id: pledge.project.0,
            pledge_id: Some(id.0),
            household_id: None,
            amount,
            currency: &pledge.currency,
            received_on,
            method,
            receipt_no,
            recorded_by: &actor.who(),
            recorded_at: now,
        },
    )
    .await
    .map_err(rule)?;
    send_receipt(state, &mut tx, &pledge.phone, &receipt).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "receipt.record",
            subject_kind: "pledge",
            subject_id: id.0,
            community: Some(pledge.community),
            before: json!({ "outstanding": money(pledge.outstanding), "status": pledge.status }),
            after: json!({
                "outstanding": money(pledge.outstanding - amount),
                "receipt": receipt.id,
                "amount": money(amount),
            }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &receipt).await?;
    tx.commit().await?;
    tracing::info!(coordinator = actor.coordinator_id, pledge = id.0, amount = %amount, "money received for a pledge");
    Ok(receipt)
}

/// The household's SMS receipt, queued with the change.
async fn send_receipt(
    state: &AppState,
    tx: &mut PgConnection,
    phone: &str,
    receipt: &Receipt,
) -> ServiceResult<()> {
    receipts::queue_sms(state, tx, phone, receipt)
        .await
        .map_err(|e| match e {
            ActionError::Db(db) => ServiceError::Db(db),
            _ => ServiceError::NotFound("project"),
        })
}

/// Cancels a pledge nothing was received for, with a reason; returns the cancellation.
pub async fn cancel(
    state: &AppState,
    actor: &Actor,
    id: PledgeId,
    reason: &str,
    once: Once<'_>,
) -> ServiceResult<CancellationRow> {
    actor.require_money()?;
    let reason = text("reason", reason, MAX_REASON)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "pledge.cancel", now).await? {
        return Ok(first);
    }
    let pledge = pledge_for(&mut tx, actor, id).await?;
    let done = store::money::cancel_pledge(&mut tx, id, reason, &actor.who(), now)
        .await
        .map_err(rule)?;
    if !done {
        return Err(ServiceError::conflict(
            "money.already_cancelled",
            format!("pledge {id} is already cancelled"),
        ));
    }
    let cancellation = store::money::cancellation_of(&mut tx, id)
        .await?
        .ok_or(ServiceError::NotFound("pledge"))?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "pledge.cancel",
            subject_kind: "pledge",
            subject_id: id.0,
            community: Some(pledge.community),
            before: json!({ "status": pledge.status, "outstanding": money(pledge.outstanding) }),
            after: json!({ "status": "cancelled", "reason": reason }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &cancellation).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        pledge = id.0,
        "pledge cancelled"
    );
    Ok(cancellation)
}

/// A pledge with everything that happened to it.
#[derive(Debug, Clone)]
pub struct PledgeHistory {
    pub pledge: store::pledges::Pledge,
    pub receipts: Vec<Receipt>,
    pub cancellation: Option<CancellationRow>,
    /// Nothing once cancelled.
    pub outstanding: Decimal,
    /// The audit log's rows about the pledge, newest first.
    pub audit: Vec<AuditRow>,
}

/// The history of pledge `id`, if this actor may see it (every role reads).
pub async fn history(
    state: &AppState,
    actor: &Actor,
    id: PledgeId,
) -> ServiceResult<PledgeHistory> {
    let mut conn = state.pool.acquire().await?;
    let p = pledge_for(&mut conn, actor, id).await?;
    let pledge = store::pledges::one(&mut conn, id)
        .await?
        .ok_or(ServiceError::NotFound("pledge"))?;
    let receipts = store::money::receipts_of_pledge(&mut conn, id).await?;
    let cancellation = store::money::cancellation_of(&mut conn, id).await?;
    let audit = audit::of(&mut conn, "pledge", id.0).await?;
    Ok(PledgeHistory {
        pledge,
        receipts,
        outstanding: if cancellation.is_some() {
            Decimal::ZERO
        } else {
            p.outstanding
        },
        cancellation,
        audit,
    })
}

/// Money received for a project without a pledge.
#[derive(Debug, Clone)]
pub struct ProjectReceipt<'a> {
    pub project: ProjectId,
    pub household: Option<HouseholdId>,
    pub amount: Decimal,
    pub received_on: NaiveDate,
    pub method: &'a str,
    pub receipt_no: Option<&'a str>,
}

/// Records money received for a project without a pledge (from a household of the
/// project's community, or from no one in particular).
pub async fn receive_without_pledge(
    state: &AppState,
    actor: &Actor,
    r: ProjectReceipt<'_>,
    once: Once<'_>,
) -> ServiceResult<Receipt> {
    actor.require_money()?;
    let method = method(r.method)?;
    let amount = amount("amount", r.amount)?;
    let now = state.clock.now();
    let received_on = money_date("received_on", r.received_on, now)?;
    let receipt_no = opt_text("receipt_no", r.receipt_no, MAX_RECEIPT_NO)?;
    let mut tx = state.pool.begin().await?;
    if let Some(first) =
        forms::first(&mut tx, actor, once, "receipt.record_without_pledge", now).await?
    {
        return Ok(first);
    }
    let project = store::projects::get(&mut tx, r.project)
        .await?
        .ok_or(ServiceError::invalid(
            "project_id",
            "money.no_project",
            "no such project",
        ))?;
    actor.require(project.community.0)?;
    if let Some(h) = r.household {
        let community = store::money::household_community(&mut tx, h).await?;
        if community != Some(project.community) {
            return Err(ServiceError::invalid(
                "household_id",
                "money.household_elsewhere",
                "no such household in the project's community",
            ));
        }
    }
    let receipt = receipts::insert(
        &mut tx,
        &ReceiptInsert {
            project_id: r.project.0,
            pledge_id: None,
            household_id: r.household.map(|h| h.0),
            amount,
            currency: &project.currency,
            received_on,
            method,
            receipt_no,
            recorded_by: &actor.who(),
            recorded_at: now,
        },
    )
    .await
    .map_err(rule)?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "receipt.record_without_pledge",
            subject_kind: "project",
            subject_id: r.project.0,
            community: Some(project.community),
            before: json!(null),
            after: json!({
                "receipt": receipt.id,
                "amount": money(amount),
                "household": r.household,
            }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &receipt).await?;
    tx.commit().await?;
    Ok(receipt)
}

/// A partner's matching disbursement for a project.
#[derive(Debug, Clone)]
pub struct NewDisbursement<'a> {
    pub amount: Decimal,
    pub disbursed_on: NaiveDate,
    /// 1 to 200 characters.
    pub partner: &'a str,
    /// At most 200 characters.
    pub reference: Option<&'a str>,
}

/// Records a partner's matching disbursement for project `id` (never beyond what is due).
pub async fn disburse(
    state: &AppState,
    actor: &Actor,
    id: ProjectId,
    d: NewDisbursement<'_>,
    once: Once<'_>,
) -> ServiceResult<Disbursement> {
    actor.require_money()?;
    let amount = amount("amount", d.amount)?;
    let partner = text("partner", d.partner, MAX_PARTNER)?;
    let reference = opt_text("reference", d.reference, MAX_REFERENCE)?;
    let now = state.clock.now();
    let disbursed_on = money_date("disbursed_on", d.disbursed_on, now)?;
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "disbursement.record", now).await? {
        return Ok(first);
    }
    let project = store::projects::get(&mut tx, id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    if !actor.may_see(project.community) {
        return Err(ServiceError::NotFound("project"));
    }
    let disbursement = store::money::insert_disbursement(
        &mut tx,
        &DisbursementInsert {
            project: project.id,
            amount,
            currency: &project.currency,
            disbursed_on,
            partner,
            reference,
            recorded_by: &actor.who(),
            recorded_at: now,
        },
    )
    .await
    .map_err(rule)?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "disbursement.record",
            subject_kind: "project",
            subject_id: id.0,
            community: Some(project.community),
            before: json!(null),
            after: json!({
                "disbursement": disbursement.id,
                "amount": money(amount),
                "partner": partner,
            }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &disbursement).await?;
    tx.commit().await?;
    Ok(disbursement)
}

/// The community of project `id`, for the audit row of a reversal.
async fn community_of(conn: &mut PgConnection, id: i64) -> ServiceResult<Option<CommunityId>> {
    Ok(store::projects::get(conn, ProjectId(id))
        .await?
        .map(|p| p.community))
}

/// Reverses a receipt recorded by mistake (admins only): appends its reversal; `NotFound`
/// when there is no such receipt.
pub async fn reverse_receipt(
    state: &AppState,
    actor: &Actor,
    id: i64,
    reason: &str,
    once: Once<'_>,
) -> ServiceResult<Receipt> {
    actor.require_admin()?;
    let reason = text("reason", reason, MAX_REASON)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "receipt.reverse", now).await? {
        return Ok(first);
    }
    let reversal = receipts::reverse(&mut tx, id, reason, &actor.who(), now)
        .await
        .map_err(rule)?
        .ok_or(ServiceError::NotFound("receipt"))?;
    let community = community_of(&mut tx, reversal.project_id).await?;
    let (subject_kind, subject_id) = match reversal.pledge_id {
        Some(p) => ("pledge", p),
        None => ("project", reversal.project_id),
    };
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "receipt.reverse",
            subject_kind,
            subject_id,
            community,
            before: json!({ "receipt": id }),
            after: json!({ "reversal": reversal.id, "amount": money(reversal.amount), "reason": reason }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &reversal).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        receipt = id,
        "receipt reversed"
    );
    Ok(reversal)
}

/// Reverses a partner's matching disbursement recorded by mistake (admins only);
/// `NotFound` when there is no such disbursement.
pub async fn reverse_disbursement(
    state: &AppState,
    actor: &Actor,
    id: i64,
    reason: &str,
    once: Once<'_>,
) -> ServiceResult<Disbursement> {
    actor.require_admin()?;
    let reason = text("reason", reason, MAX_REASON)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first(&mut tx, actor, once, "disbursement.reverse", now).await? {
        return Ok(first);
    }
    let reversal = store::money::reverse_disbursement(&mut tx, id, reason, &actor.who(), now)
        .await
        .map_err(rule)?
        .ok_or(ServiceError::NotFound("disbursement"))?;
    let community = community_of(&mut tx, reversal.project_id).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "disbursement.reverse",
            subject_kind: "project",
            subject_id: reversal.project_id,
            community,
            before: json!({ "disbursement": id }),
            after: json!({ "reversal": reversal.id, "amount": money(reversal.amount), "reason": reason }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &reversal).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        disbursement = id,
        "disbursement reversed"
    );
    Ok(reversal)
}

/// Pledge codes are seven digits (`pledges.code`).
pub const CODE_DIGITS: usize = 7;

/// The pledge with this 7-digit code, if this actor may see it: a pledge that does not
/// exist and one in another community are the same `NotFound` (nothing tells them apart).
pub async fn find_by_code(state: &AppState, actor: &Actor, code: &str) -> ServiceResult<PledgeId> {
    let code = code.trim();
    if code.len() != CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::invalid(
            "code",
            "money.code_invalid",
            "a pledge code is 7 digits",
        ));
    }
    let mut conn = state.pool.acquire().await?;
    let id = store::money::pledge_by_code(&mut conn, code)
        .await?
        .ok_or(ServiceError::NotFound("pledge"))?;
    pledge_for(&mut conn, actor, id).await?;
    Ok(id)
}

/// A pledge as the money page shows it: its code, household and project, its history, and
/// its project's ledger.
#[derive(Debug, Clone)]
pub struct PledgeView {
    pub card: store::money::PledgeCard,
    pub history: PledgeHistory,
    pub ledger: ProjectLedger,
}

/// Pledge `id` with its history and its project's ledger, if this actor may see it.
pub async fn pledge_view(
    state: &AppState,
    actor: &Actor,
    id: PledgeId,
) -> ServiceResult<PledgeView> {
    let history = history(state, actor, id).await?;
    let mut conn = state.pool.acquire().await?;
    let card = store::money::pledge_card(&mut conn, id)
        .await?
        .ok_or(ServiceError::NotFound("pledge"))?;
    let ledger = store::money::project_ledger(&mut conn, card.project)
        .await?
        .ok_or(ServiceError::NotFound("pledge"))?;
    Ok(PledgeView {
        card,
        history,
        ledger,
    })
}

pub use crate::store::money::ProjectLedger;

/// How many disbursements [`project_view`] lists.
pub const DISBURSEMENTS_SHOWN: i64 = 50;

/// Project `id`'s ledger and its latest disbursements (newest first), if this actor may
/// see it.
pub async fn project_view(
    state: &AppState,
    actor: &Actor,
    id: ProjectId,
) -> ServiceResult<(ProjectLedger, Vec<Disbursement>)> {
    let mut conn = state.pool.acquire().await?;
    let ledger = store::money::project_ledger(&mut conn, id)
        .await?
        .filter(|l| actor.may_see(l.community))
        .ok_or(ServiceError::NotFound("project"))?;
    let disbursements =
        store::money::disbursements_of_project(&mut conn, id, DISBURSEMENTS_SHOWN).await?;
    Ok((ledger, disbursements))
}

/// The names of the members of staff among `who` (`coordinator:<id>`, as rows record who
/// acted), keyed by that text; `system`, `cli` and the unknown are left out.
pub async fn names(
    state: &AppState,
    who: &[&str],
) -> ServiceResult<std::collections::HashMap<String, String>> {
    let ids: Vec<i64> = who
        .iter()
        .filter_map(|w| w.strip_prefix("coordinator:")?.parse().ok())
        .collect();
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = store::staff::names_of(&state.pool, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| (format!("coordinator:{id}"), name))
        .collect())
}

pub use crate::store::money::RecentReceipt;

/// How many receipts [`receipts_since`] lists.
pub const RECENT_SHOWN: i64 = 20;

/// The receipts recorded since `since` in the communities this actor sees, newest first
/// (at most [`RECENT_SHOWN`]); only for those who handle money.
pub async fn receipts_since(
    state: &AppState,
    actor: &Actor,
    since: chrono::DateTime<chrono::Utc>,
) -> ServiceResult<Vec<RecentReceipt>> {
    actor.require_money()?;
    let mut conn = state.pool.acquire().await?;
    Ok(store::money::receipts_since(&mut conn, since, actor.scope(), RECENT_SHOWN).await?)
}

/// Longest text the Money page's search box takes.
pub const MAX_SEARCH: usize = 100;

/// What the Money page's one search box was given, read by [`read_search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneySearch {
    /// Seven digits: a pledge code.
    Code(String),
    /// A whole phone number (any spelling `Phone::parse` reads: `+992 90 123 4567`,
    /// `901234567`, `+7 916 123-45-67`, `00992…`).
    Phone(crate::domain::Phone),
    /// A household's number as the console writes it: `No. 12`, `№ 12`, `#12`.
    Household(i64),
    /// Part of a household's name.
    Name(String),
}

/// Reads the search box: seven digits are a pledge code; other digits (with `+`, spaces,
/// dashes, dots or brackets) must be a whole phone number, since part of a number would
/// list other people's households (`money.search_partial`); `No. 12` / `№ 12` / `#12` is
/// a household's number; anything else with a letter is part of a name.
pub fn read_search(raw: &str) -> ServiceResult<MoneySearch> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > MAX_SEARCH || super::has_control(text) {
        return Err(ServiceError::invalid(
            "q",
            "money.search_invalid",
            format!("type a pledge code, a phone number or a household's name (at most {MAX_SEARCH} characters)"),
        ));
    }
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{a0}'))
        .collect();
    if compact.len() == CODE_DIGITS && compact.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(MoneySearch::Code(compact));
    }
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return crate::domain::Phone::parse(text)
            .map(MoneySearch::Phone)
            .map_err(|_| {
                ServiceError::invalid(
                    "q",
                    "money.search_partial",
                    "a part of a phone number is not a search: type the whole number",
                )
            });
    }
    let lower = text.to_lowercase();
    let number = ["no.", "no", "№", "#"]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix))
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 12 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<i64>().ok());
    if let Some(id) = number {
        return Ok(MoneySearch::Household(id));
    }
    if text.chars().any(char::is_alphabetic) {
        return Ok(MoneySearch::Name(text.to_owned()));
    }
    Err(ServiceError::invalid(
        "q",
        "money.search_invalid",
        "type a pledge code, a phone number or a household's name",
    ))
}

/// A household found by the Money page's search, with its newest pledges.
#[derive(Debug, Clone)]
pub struct HouseholdPledges {
    pub household: super::households::Household,
    pub pledges: Vec<store::households::HouseholdPledge>,
}

/// What the search found: one pledge (by its code), or households with their pledges
/// (none: nothing in the actor's communities; a number or household elsewhere answers
/// exactly as an unknown one).
#[derive(Debug, Clone)]
pub enum MoneyFound {
    Pledge(PledgeId),
    Households {
        households: Vec<HouseholdPledges>,
        /// More households match a name than are listed.
        more: bool,
    },
}

/// Households a name search lists.
pub const SEARCH_HOUSEHOLDS: i64 = 10;
/// Pledges listed for each household found.
pub const SEARCH_PLEDGES: i64 = 20;

/// Finds what the Money page's search box was given, in this actor's communities (only for
/// those who handle money). A pledge code that does not exist or is elsewhere is `NotFound`
/// (as [`find_by_code`]).
pub async fn search(
    state: &AppState,
    actor: &Actor,
    what: &MoneySearch,
) -> ServiceResult<MoneyFound> {
    actor.require_money()?;
    let ids: Vec<i64> = match what {
        MoneySearch::Code(code) => {
            return find_by_code(state, actor, code)
                .await
                .map(MoneyFound::Pledge)
        }
        MoneySearch::Phone(phone) => super::households::visible_owner(state, actor, phone)
            .await?
            .into_iter()
            .collect(),
        MoneySearch::Household(id) => vec![*id],
        MoneySearch::Name(name) => {
            let search = super::households::Search {
                q: Some(name.as_str()),
                limit: SEARCH_HOUSEHOLDS + 1,
                ..Default::default()
            };
            super::households::list(state, actor, &search)
                .await?
                .into_iter()
                .map(|h| h.id)
                .collect()
        }
    };
    let more = ids.len() > usize::try_from(SEARCH_HOUSEHOLDS).unwrap_or(usize::MAX);
    let mut households = Vec::new();
    for id in ids
        .into_iter()
        .take(usize::try_from(SEARCH_HOUSEHOLDS).unwrap_or(0))
    {
        let household = match super::households::get(state, actor, id).await {
            Ok(h) => h,
            Err(ServiceError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let mut conn = state.pool.acquire().await?;
        let pledges =
            store::households::pledges_of(&mut conn, HouseholdId(id), SEARCH_PLEDGES).await?;
        households.push(HouseholdPledges { household, pledges });
    }
    Ok(MoneyFound::Households { households, more })
}

/// A receipt and whether it was reversed, if this actor handles money and may see its
/// project (the reversal's confirm page).
pub async fn receipt(state: &AppState, actor: &Actor, id: i64) -> ServiceResult<(Receipt, bool)> {
    actor.require_money()?;
    let mut conn = state.pool.acquire().await?;
    let receipt = store::money::receipt(&mut conn, id)
        .await?
        .ok_or(ServiceError::NotFound("receipt"))?;
    match community_of(&mut conn, receipt.project_id).await? {
        Some(c) if actor.may_see(c) => {}
        _ => return Err(ServiceError::NotFound("receipt")),
    }
    let reversed = store::money::receipt_reversed(&mut conn, id).await?;
    Ok((receipt, reversed))
}

/// A disbursement and whether it was reversed, if this actor handles money and may see
/// its project.
pub async fn disbursement(
    state: &AppState,
    actor: &Actor,
    id: i64,
) -> ServiceResult<(Disbursement, bool)> {
    actor.require_money()?;
    let mut conn = state.pool.acquire().await?;
    let (d, reversed) = store::money::disbursement(&mut conn, id)
        .await?
        .ok_or(ServiceError::NotFound("disbursement"))?;
    match community_of(&mut conn, d.project_id).await? {
        Some(c) if actor.may_see(c) => Ok((d, reversed)),
        _ => Err(ServiceError::NotFound("disbursement")),
    }
}

/// How many receipts without a pledge [`receipts_without_pledge`] lists.
pub const UNPLEDGED_SHOWN: i64 = 50;

/// Project `id`'s latest receipts without a pledge (reversals included), newest first, if
/// this actor handles money and may see the project.
pub async fn receipts_without_pledge(
    state: &AppState,
    actor: &Actor,
    id: ProjectId,
) -> ServiceResult<Vec<Receipt>> {
    actor.require_money()?;
    let mut conn = state.pool.acquire().await?;
    match community_of(&mut conn, id.0).await? {
        Some(c) if actor.may_see(c) => {}
        _ => return Err(ServiceError::NotFound("project")),
    }
    Ok(store::money::receipts_without_pledge(&mut conn, id, UNPLEDGED_SHOWN).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_words_of_each_rule_have_a_key() {
        for (message, key) in [
            ("pledge 4 is cancelled", "money.pledge_cancelled"),
            (
                "receipts for pledge 4 would exceed its amount (1 + 2 > 2)",
                "money.more_than_outstanding",
            ),
            (
                "pledge 4 already has money received; it cannot be cancelled",
                "money.cancel_received",
            ),
            (
                "matching for project 1 would exceed what is due (1 + 2 > 2)",
                "money.beyond_match_due",
            ),
            ("receipt 3 is already reversed", "money.already_reversed"),
            ("something new", "money.rule"),
        ] {
            assert_eq!(rule_key(message), key, "{message}");
        }
    }

    #[test]
    fn the_search_box_tells_a_code_a_number_a_household_and_a_name_apart() {
        use crate::domain::Phone;
        let read = |raw: &str| read_search(raw);
        assert_eq!(
            read(" 4821735 ").ok(),
            Some(MoneySearch::Code("4821735".into()))
        );
        assert_eq!(
            read("482 1735").ok(),
            Some(MoneySearch::Code("4821735".into()))
        );
        let tj = Phone::parse("+992905840898").ok().map(MoneySearch::Phone);
        assert!(tj.is_some());
        assert_eq!(read("+992 90 584 0898").ok(), tj);
        assert_eq!(read("905840898").ok(), tj);
        assert_eq!(read("00992905840898").ok(), tj);
        let ru = Phone::parse("+79161234567").ok().map(MoneySearch::Phone);
        assert!(ru.is_some());
        assert_eq!(read("+7 (916) 123-45-67").ok(), ru);
        for partial in ["90584", "+99290", "0898", "12345678"] {
            match read(partial) {
                Err(ServiceError::Invalid { key, .. }) => {
                    assert_eq!(key, "money.search_partial", "{partial}")
                }
                other => panic!("{partial}: {other:?}"),
            }
        }
        assert_eq!(read("No. 12").ok(), Some(MoneySearch::Household(12)));
        assert_eq!(read("№12").ok(), Some(MoneySearch::Household(12)));
        assert_eq!(read("#7").ok(), Some(MoneySearch::Household(7)));
        assert_eq!(
            read("Karimov").ok(),
            Some(MoneySearch::Name("Karimov".into()))
        );
        assert_eq!(read("Нозим").ok(), Some(MoneySearch::Name("Нозим".into())));
        assert!(read("").is_err());
        assert!(read("---").is_err());
        assert!(read(&"a".repeat(MAX_SEARCH + 1)).is_err());
    }
}
