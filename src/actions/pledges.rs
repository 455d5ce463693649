//! Pledges from a menu, and a project's figures as every screen shows them.

use sqlx::PgConnection;

use super::{decimal_var, id_var, ActionError, EffectCtx};
use crate::{
    domain::{Encoding, TextMeasure},
    engine::{check::PLEDGE_SMS, menu::fill, Action, Caller, Vars},
    store::{pledges, projects, ussd_sessions::StepDone, ProjectId},
};

/// As wide as every pledge code (7 digits, `new_pledge_code`): the SMS is measured with it.
const CODE_WIDTH: &str = "9999999";

/// The SQLSTATE `create_pledge` raises when the project is closed or not the caller's.
pub const PROJECT_NOT_OPEN: &str = "HS001";

/// Maps a failed pledge call: "not open" becomes [`ActionError::ProjectNotOpen`].
pub fn pledge_error(e: sqlx::Error, project: i64) -> ActionError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some(PROJECT_NOT_OPEN) => {
            ActionError::ProjectNotOpen(project)
        }
        _ => ActionError::Db(e),
    }
}

/// `create_pledge` and, with `again`, `create_pledge_again`: the chosen project and amount.
/// With `done` (the USSD step, the milliseconds left, who announces the session), in one
/// statement that also records the step and commits on its own.
/// `create_pledge` asks first ({ask, minutes}) when the same pledge was made in the last 10
/// minutes; `create_pledge_again` is the caller's "yes".
pub(super) async fn create(
    conn: &mut PgConnection,
    ctx: &EffectCtx<'_>,
    vars: &Vars,
    again: bool,
    done: Option<&StepDone<'_, Caller>>,
) -> Result<Vars, ActionError> {
    let action = if again {
        Action::CreatePledgeAgain
    } else {
        Action::CreatePledge
    };
    let project = id_var(vars, action.name(), "project_id")?;
    let amount = decimal_var(vars, action.name(), "amount")?;
    // The household hears of the pledge by SMS at once (code, amount, project, how to pay),
    // queued by the pledge's own statement.
    let sms = PledgeText::render(ctx, vars);
    // The one-statement pledge takes a code made ahead by this process, if one is ready.
    let code = done.and_then(|_| ctx.state.pledge_codes.take(&ctx.state.pool));
    let totals = pledges::pledge_at(
        conn,
        ctx.now,
        ProjectId(project),
        ctx.phone.as_str(),
        amount,
        ctx.channel,
        ctx.idempotency_key,
        again,
        sms.as_ref()
            .map(|t| t.for_store(ctx.state.config.sms_provider.name()))
            .as_ref(),
        done,
        code.as_deref(),
    )
    .await
    .map_err(|e| pledge_error(e, project))?;
    if totals.contains_key("ask") {
        tracing::info!(phone = %ctx.phone, project, amount = %amount, "pledge repeats a recent one: asking");
    } else {
        tracing::info!(phone = %ctx.phone, project, amount = %amount, "pledge recorded");
    }
    Ok(totals)
}

/// A project's figures from the `project_totals` view, formatted for a screen.
pub async fn project_total(conn: &mut PgConnection, project: i64) -> Result<Vars, ActionError> {
    projects::total_texts(conn, ProjectId(project))
        .await?
        .ok_or(ActionError::ProjectNotOpen(project))
}

/// The SMS that tells a pledge, in the caller's language, around the code the pledge gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PledgeText {
    pub before: String,
    pub after: String,
    pub encoding: Encoding,
    pub segments: usize,
}

impl PledgeText {
    /// `sms.pledge_code` filled with the chosen project, amount and currency, cut (after the
    /// code, never before it) to `HASHAR_SMS_MAX_SEGMENTS`. `None` when the text has no
    /// `{pledge_code}` (`menus check` makes sure every language has it).
    pub fn render(ctx: &EffectCtx<'_>, vars: &Vars) -> Option<PledgeText> {
        let lang = ctx.language;
        let template = ctx.state.menus.text(lang, PLEDGE_SMS);
        PledgeText::of(template, vars, lang, ctx.state.config.sms_max_segments)
    }

    /// [`PledgeText::render`] from the template itself.
    pub fn of(
        template: &str,
        vars: &Vars,
        lang: crate::domain::Language,
        max_segments: u32,
    ) -> Option<PledgeText> {
        let filled = fill(template, |name| {
            if name == "pledge_code" {
                return None; // left as it is, to be split at
            }
            vars.get(&format!("{name}.{lang}"))
                .or_else(|| vars.get(name))
                .cloned()
        });
        let (before, after) = filled.split_once("{pledge_code}")?;
        let head = format!("{before}{CODE_WIDTH}");
        let cut = crate::outbox::fit_segments(&format!("{head}{after}"), max_segments);
        // A limit so low that it would cut the code itself: sent whole rather than without it.
        let after = cut.strip_prefix(&head).unwrap_or(after);
        let measure = TextMeasure::of(&format!("{head}{after}"));
        Some(PledgeText {
            before: before.to_owned(),
            after: after.to_owned(),
            encoding: measure.encoding,
            segments: measure.sms_segments(),
        })
    }

    fn for_store<'a>(&'a self, provider: &'a str) -> pledges::PledgeSms<'a> {
        pledges::PledgeSms {
            before: &self.before,
            after: &self.after,
            encoding: match self.encoding {
                Encoding::Gsm7 => "gsm7",
                Encoding::Ucs2 => "ucs2",
            },
            segments: i32::try_from(self.segments).unwrap_or(i32::MAX),
            provider,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Language;

    fn vars() -> Vars {
        Vars::from([
            ("project.ru".to_owned(), "Мост".to_owned()),
            ("project.en".to_owned(), "Bridge".to_owned()),
            ("amount".to_owned(), "500".to_owned()),
            ("currency".to_owned(), "TJS".to_owned()),
        ])
    }

    #[test]
    fn the_text_is_split_at_the_code_in_the_callers_language() {
        let t = PledgeText::of(
            "Code {pledge_code}: {amount} {currency} to {project}.",
            &vars(),
            Language::Ru,
            3,
        )
        .expect("has the code");
        assert_eq!(t.before, "Code ");
        assert_eq!(t.after, ": 500 TJS to Мост.");
        assert_eq!(t.encoding, Encoding::Ucs2);
        assert_eq!(t.segments, 1);
        let en = PledgeText::of("{project} {pledge_code}", &vars(), Language::En, 3).expect("code");
        assert_eq!(
            (en.before.as_str(), en.encoding),
            ("Bridge ", Encoding::Gsm7)
        );
    }

    #[test]
    fn a_long_text_is_cut_after_the_code_never_before() {
        let long = format!("Code {{pledge_code}}. {}", "word ".repeat(100));
        let t = PledgeText::of(&long, &vars(), Language::En, 1).expect("code");
        assert_eq!(t.before, "Code ");
        assert_eq!(t.segments, 1);
        assert!(t.after.ends_with('…'), "{:?}", t.after);
        // the code is never cut off, even when the limit would cut it
        let late = format!("{}{{pledge_code}}", "word ".repeat(40));
        let t = PledgeText::of(&late, &vars(), Language::En, 1).expect("code");
        assert_eq!(t.after, "");
        assert!(t.before.starts_with("word"));
        assert_eq!(PledgeText::of("no code", &vars(), Language::En, 3), None);
    }
}
