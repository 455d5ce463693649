//! Projects, for every edge: the list with its figures, one project with its pledges,
//! receipts, disbursements and history, and the changes — create, edit target / ratio /
//! cap, open and close. The rules are the admin API's (a code of 2 to 12 letters or digits,
//! names that fit a phone screen in each language, money with two decimals, a ratio from 0
//! to 100); admins and coordinators change projects of their communities, counsellors and
//! programme officers read. Each change runs in one transaction with its audit row
//! (`project.create`, `project.edit`, `project.open`, `project.close`) and is kept from
//! happening twice by [`Once`].

use rust_decimal::Decimal;
use serde_json::json;

use super::{audit, forms, Actor, Once, ServiceError, ServiceResult};
use crate::{
    app::AppState,
    engine::check::MAX_PROJECT_NAME,
    store::{
        self,
        audit::AuditRow,
        money::{Disbursement, ProjectLedger, Receipt},
        pledges::{Pledge, PledgeCursor},
        projects::{ProjectKind, ProjectStatus, ProjectTotals},
        CommunityId, ProjectId, Violation,
    },
};

/// How many pledges, receipts and disbursements [`view`] lists.
pub const RECENT_SHOWN: i64 = 20;

/// Whether this actor may create and edit projects (admins and coordinators, in scope).
pub fn edits(actor: &Actor) -> bool {
    actor.handles_money()
}

fn require_editor(actor: &Actor) -> ServiceResult<()> {
    if edits(actor) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

/// A project's short code: trimmed, upper-cased, 2 to 12 letters or digits.
pub fn code(value: &str) -> ServiceResult<String> {
    let code = value.trim().to_uppercase();
    if !(2..=12).contains(&code.len())
        || !code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(ServiceError::invalid(
            "code",
            "projects.code_invalid",
            "code is 2 to 12 letters or digits, e.g. BRIDGE",
        ));
    }
    Ok(code)
}

/// `infrastructure` or `business`.
pub fn kind(value: &str) -> ServiceResult<ProjectKind> {
    value.trim().parse().map_err(|()| {
        ServiceError::invalid(
            "kind",
            "projects.kind_invalid",
            "kind is infrastructure or business",
        )
    })
}

/// `open` or `closed`.
pub fn status(value: &str) -> ServiceResult<ProjectStatus> {
    value.trim().parse().map_err(|()| {
        ServiceError::invalid(
            "status",
            "projects.status_invalid",
            "status is open or closed",
        )
    })
}

/// A name in one language: trimmed, 1 to [`MAX_PROJECT_NAME`] characters (it is shown on a
/// phone screen, in USSD menus and SMS).
pub fn name<'a>(field: &'static str, value: &'a str) -> ServiceResult<&'a str> {
    let v = value.trim();
    let n = v.chars().count();
    if n == 0 || n > MAX_PROJECT_NAME {
        return Err(ServiceError::invalid(
            field,
            "projects.name_length",
            format!("{field} must be 1 to {MAX_PROJECT_NAME} characters (it is shown on a phone screen)"),
        ));
    }
    Ok(v)
}

/// A target (more than 0) or a cap (0 or more): at most two decimals, below 10¹².
pub fn money(field: &'static str, v: Decimal, positive: bool) -> ServiceResult<Decimal> {
    let key = if positive {
        "projects.target_invalid"
    } else {
        "projects.cap_invalid"
    };
    if v.scale() > 2 && v.normalize().scale() > 2 {
        return Err(ServiceError::invalid(
            field,
            key,
            format!("{field} has more than two decimals"),
        ));
    }
    if (positive && v <= Decimal::ZERO) || v < Decimal::ZERO {
        return Err(ServiceError::invalid(
            field,
            key,
            format!(
                "{field} must be {}",
                if positive { "more than 0" } else { "0 or more" }
            ),
        ));
    }
    if v >= Decimal::from(1_000_000_000_000i64) {
        return Err(ServiceError::invalid(
            field,
            key,
            format!("{field} is too large"),
        ));
    }
    Ok(v)
}

/// Partners add `ratio` × what households pay: 0 to 100, at most 4 decimals.
pub fn ratio(v: Decimal) -> ServiceResult<Decimal> {
    if v < Decimal::ZERO || v > Decimal::from(100) || v.normalize().scale() > 4 {
        return Err(ServiceError::invalid(
            "match_ratio",
            "projects.ratio_invalid",
            "match_ratio must be between 0 and 100, at most 4 decimals",
        ));
    }
    Ok(v)
}

/// A three-letter currency code (TJS when none is given).
pub fn currency(value: Option<&str>) -> ServiceResult<crate::domain::Currency> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("TJS")
        .parse()
        .map_err(|_| {
            ServiceError::invalid(
                "currency",
                "projects.currency_invalid",
                "currency is a three-letter code such as TJS",
            )
        })
}

/// Projects this actor sees, with their figures: of `community` (checked against the
/// scope: `Forbidden` outside it), with `status` and `kind`, each filter optional.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    community: Option<CommunityId>,
    status: Option<ProjectStatus>,
    kind: Option<ProjectKind>,
) -> ServiceResult<Vec<ProjectTotals>> {
    if let Some(c) = community {
        actor.require(c.0)?;
    }
    let mut conn = state.pool.acquire().await?;
    let rows = store::projects::list_totals(&mut conn, actor.scope(), community, status).await?;
    Ok(rows
        .into_iter()
        .filter(|p| kind.is_none_or(|k| p.kind == k))
        .collect())
}

/// Project `id` with its figures, if this actor may see it (one elsewhere is `NotFound`).
pub async fn get(state: &AppState, actor: &Actor, id: ProjectId) -> ServiceResult<ProjectTotals> {
    let mut conn = state.pool.acquire().await?;
    totals_for(&mut conn, actor, id).await
}

async fn totals_for(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    id: ProjectId,
) -> ServiceResult<ProjectTotals> {
    store::projects::totals(conn, id)
        .await?
        .filter(|p| actor.may_see(p.community))
        .ok_or(ServiceError::NotFound("project"))
}

/// A project with what happened to it.
#[derive(Debug, Clone)]
pub struct ProjectView {
    pub totals: ProjectTotals,
    /// Disbursed and match due (matched − disbursed).
    pub ledger: ProjectLedger,
    /// A page of pledges, newest first: the latest, or those before the cursor [`view`]
    /// was given ([`RECENT_SHOWN`] at most).
    pub pledges: Vec<Pledge>,
    /// Where the next (older) page of pledges starts, when there is one.
    pub older: Option<PledgeCursor>,
    /// The latest receipts (and reversals), newest first.
    pub receipts: Vec<Receipt>,
    /// The latest disbursements (and reversals), newest first.
    pub disbursements: Vec<Disbursement>,
    /// The audit log's rows about the project, newest first.
    pub audit: Vec<AuditRow>,
}

/// Project `id` with a page of its pledges (the latest, or those older than `before`), its
/// latest receipts, disbursements and history, if this actor may see it (every role reads;
/// the edge leaves money out for counsellors). Every list is a bounded read of an index,
/// whatever the project's size (no count, no offset).
pub async fn view(
    state: &AppState,
    actor: &Actor,
    id: ProjectId,
    before: Option<PledgeCursor>,
) -> ServiceResult<ProjectView> {
    let mut conn = state.pool.acquire().await?;
    let totals = totals_for(&mut conn, actor, id).await?;
    let ledger = store::money::project_ledger(&mut conn, id)
        .await?
        .ok_or(ServiceError::NotFound("project"))?;
    // One more than shown tells whether there is an older page.
    let mut pledges = store::pledges::of_project(&mut conn, id, before, RECENT_SHOWN + 1).await?;
    let older = if pledges.len() > RECENT_SHOWN as usize {
        pledges.truncate(RECENT_SHOWN as usize);
        pledges.last().map(|p| (p.created_at, p.id))
    } else {
        None
    };
    let receipts = store::projects::receipts_of(&mut conn, id, RECENT_SHOWN).await?;
    let disbursements = store::money::disbursements_of_project(&mut conn, id, RECENT_SHOWN).await?;
    let audit = audit::of(&mut conn, "project", id.0).await?;
    Ok(ProjectView {
        totals,
        ledger,
        pledges,
        older,
        receipts,
        disbursements,
        audit,
    })
}

/// A project to create.
#[derive(Debug, Clone)]
pub struct NewProject<'a> {
    pub community: CommunityId,
    /// Short code people text, 2 to 12 letters or digits, unique in the community.
    pub code: &'a str,
    /// `infrastructure` or `business`.
    pub kind: &'a str,
    /// Tajik, Russian, English.
    pub name: [&'a str; 3],
    pub target: Decimal,
    /// Defaults to TJS.
    pub currency: Option<&'a str>,
    pub match_ratio: Decimal,
    pub match_cap: Option<Decimal>,
}

/// Creates an open project, with its audit row; returns its id.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    p: NewProject<'_>,
    once: Once<'_>,
) -> ServiceResult<ProjectId> {
    require_editor(actor)?;
    actor.require(p.community.0)?;
    let code = code(p.code)?;
    let kind = kind(p.kind)?;
    let names = [
        name("name_tg", p.name[0])?,
        name("name_ru", p.name[1])?,
        name("name_en", p.name[2])?,
    ];
    let target = money("target", p.target, true)?;
    let match_ratio = ratio(p.match_ratio)?;
    let match_cap = p
        .match_cap
        .map(|cap| money("match_cap", cap, false))
        .transpose()?;
    let currency = currency(p.currency)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    if let Some(first) = forms::first::<i64>(&mut tx, actor, once, "project.create", now).await? {
        return Ok(ProjectId(first));
    }
    let id = store::projects::create(
        &mut tx,
        &store::projects::NewProject {
            community: p.community,
            code: &code,
            kind,
            name: names,
            target,
            currency: currency.as_str(),
            match_ratio,
            match_cap,
        },
    )
    .await
    .map_err(|e| {
        if Violation::is_unique(&e) {
            ServiceError::conflict(
                "projects.code_taken",
                format!("the community already has a project {code}"),
            )
        } else if Violation::is_foreign_key(&e) {
            ServiceError::invalid("community_id", "projects.no_community", "no such community")
        } else {
            ServiceError::Db(e)
        }
    })?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action: "project.create",
            subject_kind: "project",
            subject_id: id.0,
            community: Some(p.community),
            before: json!(null),
            after: json!({
                "code": code,
                "kind": kind,
                "name": names,
                "target": two_dp(target),
                "currency": currency.as_str(),
                "match_ratio": match_ratio.normalize().to_string(),
                "match_cap": match_cap.map(two_dp),
            }),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &id.0).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        project = id.0,
        "project created"
    );
    Ok(id)
}

/// What an edit changes (`None`: unchanged; `match_cap: Some(None)` removes the cap).
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub target: Option<Decimal>,
    pub match_ratio: Option<Decimal>,
    pub match_cap: Option<Option<Decimal>>,
    pub status: Option<ProjectStatus>,
}

impl Change {
    /// Checks each field given ([`money`], [`ratio`]).
    pub fn checked(self) -> ServiceResult<Change> {
        Ok(Change {
            target: self.target.map(|t| money("target", t, true)).transpose()?,
            match_ratio: self.match_ratio.map(ratio).transpose()?,
            match_cap: self
                .match_cap
                .map(|cap| cap.map(|c| money("match_cap", c, false)).transpose())
                .transpose()?,
            status: self.status,
        })
    }

    /// The audit action: opening or closing, else an edit.
    fn action(&self) -> &'static str {
        match (self.status, self.target, self.match_ratio, self.match_cap) {
            (Some(ProjectStatus::Closed), None, None, None) => "project.close",
            (Some(ProjectStatus::Open), None, None, None) => "project.open",
            _ => "project.edit",
        }
    }
}

/// What matched (partners' part) would be for `received` with this ratio and cap: the
/// rule of the `project_totals` view, `min(received × ratio, cap)` rounded to the cent.
pub fn matched(received: Decimal, ratio: Decimal, cap: Option<Decimal>) -> Decimal {
    let m = received * ratio;
    let m = match cap {
        Some(cap) if cap < m => cap,
        _ => m,
    };
    m.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// Applies `c` to project `id` (one this actor may see: `NotFound` otherwise), with its
/// audit row (old and new values); returns the project's id.
pub async fn change(
    state: &AppState,
    actor: &Actor,
    id: ProjectId,
    c: Change,
    once: Once<'_>,
) -> ServiceResult<ProjectId> {
    require_editor(actor)?;
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let before = totals_for(&mut tx, actor, id).await?;
    let c = c.checked()?;
    let action = c.action();
    if let Some(first) = forms::first::<i64>(&mut tx, actor, once, action, now).await? {
        return Ok(ProjectId(first));
    }
    store::projects::change(
        &mut tx,
        id,
        &store::projects::ProjectChange {
            target: c.target,
            match_ratio: c.match_ratio,
            match_cap: c.match_cap,
            status: c.status,
        },
    )
    .await?;
    let after = totals_for(&mut tx, actor, id).await?;
    audit::write(
        &mut tx,
        actor,
        now,
        audit::Change {
            action,
            subject_kind: "project",
            subject_id: id.0,
            community: Some(before.community),
            before: figures(&before),
            after: figures(&after),
        },
    )
    .await?;
    forms::keep(&mut tx, once, &id.0).await?;
    tx.commit().await?;
    tracing::info!(
        coordinator = actor.coordinator_id,
        project = id.0,
        action,
        "project changed"
    );
    Ok(id)
}

fn two_dp(v: Decimal) -> String {
    format!("{v:.2}")
}

/// What the audit row keeps of a project's state.
fn figures(p: &ProjectTotals) -> serde_json::Value {
    json!({
        "target": two_dp(p.target),
        "match_ratio": p.match_ratio.normalize().to_string(),
        "match_cap": p.match_cap.map(two_dp),
        "status": p.status,
        "matched": two_dp(p.matched),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    #[test]
    fn matched_follows_the_view() {
        assert_eq!(matched(d("5000"), d("2"), Some(d("3000"))), d("3000"));
        assert_eq!(matched(d("5000"), d("2"), None), d("10000"));
        assert_eq!(matched(d("0.05"), d("0.5"), None), d("0.03"));
    }

    #[test]
    fn names_fit_a_phone_screen() {
        assert!(name("name_tg", "Пули Анзоб").is_ok());
        let long = "Ҳ".repeat(MAX_PROJECT_NAME + 1);
        let e = name("name_tg", &long).expect_err("too long");
        assert!(matches!(
            e,
            ServiceError::Invalid {
                field: "name_tg",
                key: "projects.name_length",
                ..
            }
        ));
    }

    #[test]
    fn an_open_or_close_alone_is_its_own_action() {
        let close = Change {
            status: Some(ProjectStatus::Closed),
            ..Change::default()
        };
        assert_eq!(close.action(), "project.close");
        let edit = Change {
            target: Some(d("1")),
            ..Change::default()
        };
        assert_eq!(edit.action(), "project.edit");
    }
}
