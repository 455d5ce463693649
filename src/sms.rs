//! An inbound text, from the stored raw message to the reply in the outbox, in one
//! transaction: a keyword command, a join code, STOP/START, or a step of the same household
//! menus USSD uses, run as an SMS conversation.

use std::{collections::BTreeMap, str::FromStr};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{Acquire, PgConnection, Postgres, Transaction};

use crate::{
    actions::{self, EffectCtx},
    app::AppState,
    channels::InboundSms,
    conversation::ConversationError,
    domain::{money::format_amount, Currency, Language, Phone},
    engine::{
        drive::{drive, Answers, EffectNeed, ListNeed, ReadNeed, Scene, Transport},
        menu::fill,
        Action, Caller, Engine, ListItem, ListSource, Vars,
    },
    keywords::{self, Command, CommandError},
    outbox::{self, Kind, NewMessage},
    store::{self, households, join_limits, CommunityId, HouseholdId},
};

/// What became of an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A retry of a message already stored: nothing done again.
    Duplicate,
    /// Stored, but the sender is not a phone number: nothing is answered.
    UnparseableSender { inbound_id: i64 },
    /// Handled; the reply (if any) is in the outbox.
    Handled { inbound_id: i64, reply: Option<i64> },
}

/// Wrong join codes allowed per number per hour.
const JOIN_FAILURES_PER_HOUR: i64 = 5;

/// Wrong join codes allowed per hour from all numbers together. A wrong code names no
/// household, so a limit "per target" cannot see an attacker who spreads guesses over many
/// numbers (each one a new per-number budget): with H households among the 900,000 codes,
/// every wrong try is a hit with probability H/900,000. This budget bounds the guesses the
/// whole world gets in an hour (at most ~H/15,000 households found per hour: one in a few
/// hours for a few thousand households); when it is spent, JOIN is refused for everyone
/// until the hour has passed (a migrant retries later; an attacker learns nothing). Honest
/// typos are rare and one-off, so the budget is far above their rate.
const JOIN_FAILURES_PER_HOUR_ALL: i64 = 60;

/// Stores `msg` (raw first, deduplicated on provider and message id) and handles it.
pub async fn receive(
    state: &AppState,
    msg: &InboundSms,
    raw: serde_json::Value,
) -> Result<Received, ConversationError> {
    let now = state.clock.now();
    if let Some(done) = quick(state, msg, &raw, now).await? {
        return Ok(done);
    }
    let mut tx = state.pool.begin().await?;
    let inbound_id = match crate::inbox::store_sms(&mut tx, msg, &raw, now).await? {
        crate::inbox::Stored::New(id) => id,
        crate::inbox::Stored::Unhandled(id) => {
            tracing::info!(
                provider = msg.provider,
                inbound_id = id,
                "inbound sms stored earlier but never answered: handled now"
            );
            id
        }
        crate::inbox::Stored::Handled => {
            tx.commit().await?;
            tracing::info!(provider = msg.provider, "duplicate inbound sms ignored");
            return Ok(Received::Duplicate);
        }
    };
    let phone = match msg.sender() {
        Ok(p) => p,
        Err(e) => {
            mark(
                &mut tx,
                inbound_id,
                None,
                &format!("unparseable sender: {e}"),
                now,
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(provider = msg.provider, sender = %crate::domain::phone::mask(&msg.from), "sms from an unparseable sender stored, not answered");
            return Ok(Received::UnparseableSender { inbound_id });
        }
    };
    let mut turn = Turn {
        state,
        phone: &phone,
        now,
        provider_msg: &msg.provider_msg_id,
        provider: msg.provider,
    };
    let (body, kind, mut outcome) = turn.handle(&mut tx, msg.text.trim(), inbound_id).await?;
    // A number nobody registered gets a few replies an hour at most (checked after the
    // turn, so a JOIN or registration that just made it known is answered).
    let body = match body {
        Some(body) if !store::conversations::is_known(&mut tx, &phone).await? => {
            let cap = state.config.sms_unknown_replies_per_hour;
            if unknown_reply_allowed(&mut tx, &phone, now, cap).await? {
                Some(body)
            } else {
                tracing::info!(
                    provider = msg.provider,
                    sender = %phone,
                    cap,
                    "unregistered number over its hourly reply cap: not answered"
                );
                outcome.push_str("; not answered: unregistered number over its hourly reply cap");
                None
            }
        }
        other => other,
    };
    let reply = match body {
        Some(body) => Some(
            outbox::enqueue(
                &mut tx,
                &NewMessage {
                    to: &phone,
                    body: &body,
                    kind,
                    inbound_id: Some(inbound_id),
                },
                state.config.sms_provider.name(),
                state.config.sms_max_segments,
                now,
            )
            .await?,
        ),
        None => None,
    };
    mark(&mut tx, inbound_id, Some(&phone), &outcome, now).await?;
    tx.commit().await?;
    Ok(Received::Handled { inbound_id, reply })
}

/// The quick path (issue 12) of the two texts migrants send most, a keyword pledge and
/// `TOTAL`, from a number of a registered household: who is texting and the community's
/// projects come from the hop cache ([`crate::cache`]), so a text takes two statements and
/// no transaction around them. `TOTAL`, and an answer that changes nothing (which project?,
/// too large, no open project), read what they show and then store the text as handled
/// together with its reply in one statement. A pledge is made in one statement that also
/// stores the text (not yet handled) and returns the project's new figures; a second one
/// marks the text handled and queues the reply that shows them. Between the two the text is
/// stored with its pledge and without its reply: a retry of the text, or the scheduler
/// ([`answer_unhandled`]), then handles it on the transaction's path, where the pledge's
/// key gives the pledge made, and the second statement queues nothing for a text already
/// handled, so the reply goes once.
///
/// `None` (the transaction's path handles the text, reading everything from the database)
/// whenever the quick path does not apply or cannot tell: the cache not serving, another
/// command, a number that is not a household's, a pledge said in another currency (its rate
/// is read), a text stored already (a retry), or a pledge refused by its statement (the
/// project closed, or the number moved, since the cache last heard).
async fn quick(
    state: &AppState,
    msg: &InboundSms,
    raw: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Option<Received>, ConversationError> {
    let text = msg.text.trim();
    let Some(reference) = state.cache.reference() else {
        return Ok(None);
    };
    if crate::broadcasts::rsvp_answer(text).is_some() {
        return Ok(None);
    }
    let command = match keywords::parse(text) {
        Some(Ok(c @ (Command::Pledge { .. } | Command::Total { .. }))) => c,
        _ => return Ok(None),
    };
    let Ok(phone) = msg.sender() else {
        return Ok(None);
    };
    let Some(store::ussd_sessions::KnownCaller {
        household: Some(household),
        ..
    }) = state.cache.caller(&state.pool, phone.as_str()).await?
    else {
        return Ok(None);
    };
    let lang = household
        .language
        .unwrap_or_else(|| state.hints.guess(&phone, state.config.default_language));
    let turn = Turn {
        state,
        phone: &phone,
        now,
        provider_msg: &msg.provider_msg_id,
        provider: msg.provider,
    };
    let sms = crate::inbox::new_sms(msg, raw, now);
    // open projects for a pledge; for TOTAL also those closed in the last year
    let closed_since = match &command {
        Command::Total { .. } => Some(crate::news::shown_since(now)),
        _ => None,
    };
    let projects = reference.projects_of(household.community_id, closed_since);
    let mut conn = state.pool.acquire().await?;
    let plan = match command {
        Command::Total { project } => {
            match turn.total_projects(lang, project.as_deref(), &projects) {
                Err(reply) => Quick::Answer(reply),
                Ok(chosen) => {
                    let ids: Vec<_> = chosen.iter().map(|p| p.id).collect();
                    let figures = store::projects::total_texts_of(&mut conn, &ids).await?;
                    // `None`: a project gone since the cache last heard
                    match figures.into_iter().collect::<Option<Vec<_>>>() {
                        Some(figures) => Quick::Answer(turn.totals(lang, &chosen, &figures)),
                        None => Quick::Transaction,
                    }
                }
            }
        }
        Command::Pledge {
            amount,
            currency,
            project,
        } => match turn.pledge_project(lang, amount, project.as_deref(), &projects) {
            Err(reply) => Quick::Answer(reply),
            Ok(chosen) => {
                let project_currency =
                    Currency::from_str(&chosen.currency).unwrap_or(Currency::TJS);
                if currency.is_some_and(|c| c != project_currency) {
                    Quick::Transaction
                } else if let Some(reply) = turn.out_of_bounds(lang, amount, project_currency) {
                    Quick::Answer(reply)
                } else {
                    Quick::Pledge {
                        project: chosen,
                        amount,
                    }
                }
            }
        },
        _ => Quick::Transaction,
    };
    let (inbound_id, (body, kind, outcome)) = match plan {
        Quick::Transaction => return Ok(None),
        Quick::Answer((body, kind, outcome)) => {
            let Some(body) = body else {
                return Ok(None);
            };
            let reply = answer(state, &sms, &phone, &body, kind, &outcome);
            return Ok(store::inbox::answer(&mut conn, None, &reply.answer())
                .await?
                .map(|(inbound_id, queued)| Received::Handled {
                    inbound_id,
                    reply: Some(queued.0),
                }));
        }
        Quick::Pledge { project, amount } => {
            let made = store::inbox::insert_pledging(
                &mut conn,
                &sms,
                &phone,
                project.id,
                amount,
                &turn.effect_key(),
                state.pledge_codes.take(&state.pool).as_deref(),
            )
            .await;
            match made {
                Ok(Some((inbound_id, totals))) => (
                    inbound_id,
                    turn.pledged(lang, totals, amount, project, None),
                ),
                // stored already (a retry), or refused: the transaction's path
                Ok(None) => return Ok(None),
                Err(e) => match actions::pledge_error(e, project.id.0) {
                    actions::ActionError::ProjectNotOpen(_) => return Ok(None),
                    e => return Err(ConversationError::Action(e)),
                },
            }
        }
    };
    // The pledge is made and its text stored: from here on a failure leaves the text to a
    // retry or to the scheduler (`answer_unhandled`), never to be made again.
    let body = body.unwrap_or_default();
    let reply = answer(state, &sms, &phone, &body, kind, &outcome);
    let queued = store::inbox::answer(&mut conn, Some(inbound_id), &reply.answer()).await?;
    Ok(Some(Received::Handled {
        inbound_id,
        reply: queued.map(|(_, id)| id.0),
    }))
}

/// What the quick path does with a text.
enum Quick<'p> {
    /// Leaves it to the transaction's path.
    Transaction,
    /// Answers it without changing anything.
    Answer(Reply),
    /// Makes this pledge (in the project's currency) and answers with its figures.
    Pledge {
        project: &'p ProjectRow,
        amount: Decimal,
    },
}

/// A quick path's reply, measured for the outbox.
struct QuickAnswer<'a> {
    sms: &'a store::inbox::NewSms<'a>,
    phone: &'a Phone,
    outcome: &'a str,
    provider: &'static str,
    measured: outbox::Measured,
    kind: Kind,
}

impl QuickAnswer<'_> {
    fn answer(&self) -> store::inbox::Answer<'_> {
        store::inbox::Answer {
            sms: self.sms,
            sender: self.phone,
            outcome: self.outcome,
            reply_provider: self.provider,
            body: &self.measured.body,
            encoding: self.measured.encoding,
            segments: self.measured.segments,
            kind: self.kind,
        }
    }
}

/// `body` measured as the outbox stores it.
fn answer<'a>(
    state: &AppState,
    sms: &'a store::inbox::NewSms<'a>,
    phone: &'a Phone,
    body: &str,
    kind: Kind,
    outcome: &'a str,
) -> QuickAnswer<'a> {
    QuickAnswer {
        sms,
        phone,
        outcome,
        provider: state.config.sms_provider.name(),
        measured: outbox::Measured::of(body, state.config.sms_max_segments),
        kind,
    }
}

/// How long a text may wait for its reply before the scheduler answers it
/// ([`answer_unhandled`]): well past any request still under way (`HASHAR_DB_TIMEOUT_MS`).
pub const UNHANDLED_AFTER: chrono::Duration = chrono::Duration::minutes(1);

/// Texts older than this are not answered late any more (a day-old reply helps nobody;
/// their pledges stand).
pub const UNHANDLED_GIVEN_UP: chrono::Duration = chrono::Duration::days(1);

/// Most texts answered late in one round.
const UNHANDLED_BATCH: i64 = 100;

/// Handles the texts stored but never handled (a quick path's process died between its two
/// statements and the aggregator did not retry), received between a day and a minute ago,
/// as a retry of each would: on the transaction's path, where a pledge made already is
/// found by its key. A text that fails is logged and left for the next round; the others
/// go on. Returns how many it handled.
pub async fn answer_unhandled(state: &AppState) -> Result<usize, ConversationError> {
    let now = state.clock.now();
    let texts = store::inbox::unhandled_sms(
        &state.pool,
        now - UNHANDLED_GIVEN_UP,
        now - UNHANDLED_AFTER,
        UNHANDLED_BATCH,
    )
    .await?;
    let mut handled = 0;
    for t in texts {
        let Some(provider) = crate::channels::SmsProvider::named(&t.provider) else {
            tracing::warn!(
                provider = t.provider,
                "unhandled sms of an unknown provider left alone"
            );
            continue;
        };
        let msg = InboundSms {
            provider: provider.name(),
            provider_msg_id: t.provider_msg_id,
            from: t.sender.unwrap_or_default(),
            to: String::new(),
            text: t.text.unwrap_or_default(),
            received_at: Some(t.received_at),
        };
        match receive(state, &msg, t.raw).await {
            Ok(Received::Handled { .. } | Received::UnparseableSender { .. }) => handled += 1,
            Ok(Received::Duplicate) => {}
            Err(e) => tracing::warn!(
                provider = msg.provider,
                error = %e,
                "a text stored without its reply could not be answered; tried again next round"
            ),
        }
    }
    Ok(handled)
}

/// Counts a reply to the unregistered `phone` and says whether it is within `cap` for the
/// current hour. One upsert: concurrent texts from one number wait for each other on the
/// row and each sees its own count (no read-then-write race); a rolled-back turn takes its
/// count back with it.
async fn unknown_reply_allowed(
    tx: &mut PgConnection,
    phone: &Phone,
    now: DateTime<Utc>,
    cap: u32,
) -> Result<bool, sqlx::Error> {
    if cap == 0 {
        return Ok(false);
    }
    let cap = i32::try_from(cap).unwrap_or(i32::MAX - 1);
    let replies = store::conversations::count_unknown_reply(tx, phone, now, cap).await?;
    Ok(replies <= cap)
}

async fn mark(
    tx: &mut PgConnection,
    id: i64,
    phone: Option<&Phone>,
    outcome: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::inbox::mark_handled(tx, id, phone, outcome, now).await
}

/// What an effect run for a text needs: the text's time and sender, and a key unique to
/// the text (and the step, in a conversation) so that the effect happens once.
fn effect_ctx<'a>(
    state: &'a AppState,
    now: DateTime<Utc>,
    phone: &'a Phone,
    idempotency_key: &'a str,
    language: Language,
) -> EffectCtx<'a> {
    EffectCtx {
        state,
        now,
        phone,
        channel: "sms",
        idempotency_key,
        language,
    }
}

/// The caller as the database knows them.
struct Known {
    household: Option<i64>,
    community: Option<i64>,
    language: Option<Language>,
}

struct Turn<'a> {
    state: &'a AppState,
    phone: &'a Phone,
    now: DateTime<Utc>,
    provider_msg: &'a str,
    provider: &'static str,
}

type Reply = (Option<String>, Kind, String);

impl Turn<'_> {
    fn text(&self, lang: Language, key: &str, vars: &Vars) -> String {
        let template = self.state.menus.text(lang, key);
        fill(template, |name| {
            vars.get(name)
                .or_else(|| self.state.globals.get(name))
                .cloned()
        })
    }

    fn reply(&self, lang: Language, key: &str, vars: &Vars, outcome: &str) -> Reply {
        (
            Some(self.text(lang, key, vars)),
            Kind::Reply,
            outcome.to_owned(),
        )
    }

    /// "No project called WORD; say one of CODES".
    fn unknown_project(
        &self,
        lang: Language,
        word: &str,
        projects: &[ProjectRow],
        outcome: &str,
    ) -> Reply {
        let vars = Vars::from([
            ("word".to_owned(), word.to_owned()),
            ("projects".to_owned(), codes(projects, lang)),
        ]);
        self.reply(lang, "sms.unknown_project", &vars, outcome)
    }

    async fn known(&self, tx: &mut PgConnection) -> Result<Known, sqlx::Error> {
        let owner = households::owner_of_phone(tx, self.phone).await?;
        Ok(Known {
            household: owner.as_ref().map(|o| o.household.0),
            community: owner.as_ref().map(|o| o.community.0),
            language: owner.and_then(|o| o.language),
        })
    }

    /// The key of the text's effect (a pledge, a tip): the same for every retry of the text.
    fn effect_key(&self) -> String {
        format!("sms:{}:{}", self.provider, self.provider_msg)
    }

    async fn handle(
        &mut self,
        tx: &mut Transaction<'_, Postgres>,
        text: &str,
        inbound_id: i64,
    ) -> Result<Reply, ConversationError> {
        let known = self.known(tx).await?;
        let lang = known.language.unwrap_or_else(|| {
            self.state
                .hints
                .guess(self.phone, self.state.config.default_language)
        });
        let none = Vars::new();
        // An answer to a meeting notice (1/2, yes/no in any language) while its window is open.
        if let Some((broadcast, answer)) =
            crate::broadcasts::record_rsvp(tx, self.phone, text, self.now, inbound_id).await?
        {
            tracing::info!(phone = %self.phone, broadcast, answer, "rsvp");
            let key = if answer == "yes" {
                "sms.rsvp_yes"
            } else {
                "sms.rsvp_no"
            };
            return Ok(self.reply(lang, key, &none, "rsvp"));
        }
        let Some(command) = keywords::parse(text) else {
            return self.conversation(tx, text, &known).await;
        };
        let command = match command {
            Ok(c) => c,
            Err(CommandError::PledgeAmount(_)) => {
                let example = self.example_project(tx, &known, lang).await?;
                let vars = Vars::from([("example".to_owned(), example)]);
                return Ok(self.reply(lang, "sms.pledge_example", &vars, "pledge: bad amount"));
            }
            Err(CommandError::JoinCode) => {
                return Ok(self.reply(lang, "sms.join_example", &none, "join: no code"))
            }
            Err(CommandError::CancelCode) => {
                return Ok(self.reply(lang, "sms.cancel_example", &none, "cancel: no code"))
            }
        };
        match command {
            Command::Stop => {
                households::opt_out(tx, self.phone, self.now).await?;
                // The conversation, if any, ends too.
                end_conversation(tx, self.phone).await?;
                tracing::info!(phone = %self.phone, "opted out (STOP)");
                Ok((
                    Some(self.text(lang, "sms.stop_ok", &none)),
                    Kind::StopConfirmation,
                    "stop".into(),
                ))
            }
            Command::Start => {
                // "Welcome back" only to a number that had stopped; START from one that never
                // did is told that messages are on.
                let key = if households::opt_in(tx, self.phone).await? {
                    "sms.start_ok"
                } else {
                    "sms.start_already"
                };
                Ok(self.reply(lang, key, &none, "start"))
            }
            Command::Help => Ok(self.reply(lang, "sms.help", &none, "help")),
            Command::Language(None) => {
                Ok(self.reply(lang, "sms.language_choose", &none, "language: ask"))
            }
            Command::Language(Some(new_lang)) => {
                // This number's language only: the household's other numbers keep theirs.
                if known.household.is_some() {
                    households::set_language_of_phone(tx, self.phone, new_lang).await?;
                }
                self.state.hints.remember(self.phone, new_lang);
                Ok(self.reply(new_lang, "sms.language_ok", &none, "language: set"))
            }
            Command::Join(code) => self.join(tx, &code, &known, lang).await,
            Command::Mine => self.mine(tx, &known, lang).await,
            Command::Cancel(code) => self.cancel(tx, &known, lang, &code).await,
            Command::Tip => {
                let key = self.effect_key();
                let ctx = effect_ctx(self.state, self.now, self.phone, &key, lang);
                let vars = actions::run_effect(tx, &ctx, Action::NextTip, None, &none).await?;
                let tip = vars
                    .get(&format!("tip.{lang}"))
                    .cloned()
                    .unwrap_or_default();
                Ok((Some(tip), Kind::Reply, "tip".into()))
            }
            Command::Total { project } => {
                let Some(community) = known.community else {
                    return Ok(self.reply(
                        lang,
                        "sms.not_registered",
                        &none,
                        "total: not registered",
                    ));
                };
                // open projects and those closed in the last year, with their state
                let projects =
                    listed_projects(tx, community, crate::news::shown_since(self.now)).await?;
                let chosen = match self.total_projects(lang, project.as_deref(), &projects) {
                    Ok(chosen) => chosen,
                    Err(reply) => return Ok(reply),
                };
                let ids: Vec<_> = chosen.iter().map(|p| p.id).collect();
                let mut figures = Vec::with_capacity(ids.len());
                for (texts, id) in store::projects::total_texts_of(tx, &ids)
                    .await?
                    .into_iter()
                    .zip(&ids)
                {
                    figures.push(texts.ok_or(actions::ActionError::ProjectNotOpen(id.0))?);
                }
                Ok(self.totals(lang, &chosen, &figures))
            }
            Command::Pledge {
                amount,
                currency,
                project,
            } => {
                self.pledge(tx, &known, lang, amount, currency, project)
                    .await
            }
        }
    }

    /// The projects `TOTAL [word]` asks about among `projects` (the listed ones: open, or
    /// closed in the last year), or the answer when there are none or `word` names none.
    fn total_projects<'p>(
        &self,
        lang: Language,
        word: Option<&str>,
        projects: &'p [ProjectRow],
    ) -> Result<Vec<&'p ProjectRow>, Reply> {
        if projects.is_empty() {
            return Err(self.reply(lang, "sms.no_projects", &Vars::new(), "total: no projects"));
        }
        match word {
            Some(word) => match find_project(projects, word) {
                Some(p) => Ok(vec![p]),
                None => Err(self.unknown_project(lang, word, projects, "total: unknown project")),
            },
            None => Ok(projects.iter().collect()),
        }
    }

    /// The answer to `TOTAL`: a line for each of `chosen` with its `figures`
    /// (`project_total_texts`, in the same order).
    fn totals(&self, lang: Language, chosen: &[&ProjectRow], figures: &[store::Texts]) -> Reply {
        let lines: Vec<String> = chosen
            .iter()
            .zip(figures)
            .map(|(p, t)| {
                let shown = crate::news::PhoneState::of(p.closed_at.is_some(), p.completed);
                format!(
                    "{}: {}/{} {} ({}%)",
                    shown.label(&self.state.menus, lang, p.name.get(lang)),
                    t.get("matched_total").map(String::as_str).unwrap_or("?"),
                    t.get("target").map(String::as_str).unwrap_or("?"),
                    t.get("currency").map(String::as_str).unwrap_or(""),
                    t.get("percent").map(String::as_str).unwrap_or("?"),
                )
            })
            .collect();
        let vars = Vars::from([("lines".to_owned(), lines.join("; "))]);
        self.reply(lang, "sms.totals", &vars, "total")
    }

    /// The project a pledge of `said` names among `projects` (the community's open ones),
    /// or the answer when it names none.
    fn pledge_project<'p>(
        &self,
        lang: Language,
        said: Decimal,
        word: Option<&str>,
        projects: &'p [ProjectRow],
    ) -> Result<&'p ProjectRow, Reply> {
        match (word, projects.len()) {
            (_, 0) => Err(self.reply(lang, "sms.no_projects", &Vars::new(), "pledge: no projects")),
            (None, 1) => Ok(&projects[0]),
            (None, _) => {
                let vars = Vars::from([
                    ("amount".to_owned(), format_amount(said)),
                    (
                        "example".to_owned(),
                        keywords::project_word(&words_of(projects), 0, lang),
                    ),
                    ("projects".to_owned(), codes(projects, lang)),
                ]);
                Err(self.reply(lang, "sms.which_project", &vars, "pledge: which project"))
            }
            (Some(w), _) => find_project(projects, w)
                .ok_or_else(|| self.unknown_project(lang, w, projects, "pledge: unknown project")),
        }
    }

    /// The answer to a pledge of `amount` (in the project's currency) that is above
    /// `HASHAR_MAX_PLEDGE` or not above zero; `None` when it may be made.
    fn out_of_bounds(&self, lang: Language, amount: Decimal, currency: Currency) -> Option<Reply> {
        (amount > self.state.config.max_pledge || amount <= Decimal::ZERO).then(|| {
            let vars = Vars::from([("currency".to_owned(), currency.to_string())]);
            self.reply(lang, "sms.too_large", &vars, "pledge: too large")
        })
    }

    /// The answer to a pledge made: `totals` (what `create_pledge` returned: the project's
    /// new figures and the pledge's code), the amount and project, and, for a pledge said in
    /// another currency, what was said and the rate.
    fn pledged(
        &self,
        lang: Language,
        mut vars: Vars,
        amount: Decimal,
        project: &ProjectRow,
        said: Option<(Decimal, Currency, Decimal)>,
    ) -> Reply {
        vars.insert("amount".into(), format_amount(amount));
        vars.insert("project".into(), project.name.get(lang).to_owned());
        tracing::info!(phone = %self.phone, project = project.id.0, amount = %amount, "pledge recorded by sms");
        match said {
            None => self.reply(lang, "sms.pledge_ok", &vars, "pledge"),
            Some((said, said_currency, rate)) => {
                vars.insert("said_amount".into(), format_amount(said));
                vars.insert("said_currency".into(), said_currency.to_string());
                vars.insert("rate".into(), rate.normalize().to_string());
                self.reply(lang, "sms.pledge_converted", &vars, "pledge: converted")
            }
        }
    }

    /// `MY`: the household's pledges, newest first, as many as fit the SMS segment limit,
    /// and how many more there are.
    async fn mine(
        &self,
        tx: &mut PgConnection,
        known: &Known,
        lang: Language,
    ) -> Result<Reply, ConversationError> {
        let none = Vars::new();
        if known.household.is_none() {
            return Ok(self.reply(lang, "sms.not_registered", &none, "mine: not registered"));
        }
        let (pledges, total) = store::pledges::of_household(
            tx,
            self.phone.as_str(),
            self.now,
            None,
            actions::my_pledges::LIST_LIMIT,
        )
        .await?;
        if pledges.is_empty() {
            return Ok(self.reply(lang, "sms.mine_none", &none, "mine: none"));
        }
        let lines: Vec<String> = pledges
            .iter()
            .map(|p| {
                let vars = actions::my_pledges::values_in(&self.state.menus, p, lang);
                self.text(lang, "sms.mine_line", &vars)
            })
            .collect();
        let max = self.state.config.sms_max_segments as usize;
        let body = |shown: usize| {
            let vars = Vars::from([("lines".to_owned(), lines[..shown].join("; "))]);
            let mut body = self.text(lang, "sms.mine", &vars);
            let more = total - i64::try_from(shown).unwrap_or(i64::MAX);
            if more > 0 {
                let vars = Vars::from([("count".to_owned(), more.to_string())]);
                body.push(' ');
                body.push_str(&self.text(lang, "sms.mine_more", &vars));
            }
            body
        };
        // the most pledges that fit (at least one: the outbox cuts a longer text)
        let shown = (1..=lines.len())
            .rev()
            .find(|&n| crate::domain::TextMeasure::of(&body(n)).sms_segments() <= max)
            .unwrap_or(1);
        Ok((Some(body(shown)), Kind::Reply, "mine".into()))
    }

    /// `CANCEL 1234567`: the household's pledge with that code cancelled, when nothing was
    /// received for it. A code that is not the household's gets the same answer as a wrong
    /// one.
    async fn cancel(
        &self,
        tx: &mut PgConnection,
        known: &Known,
        lang: Language,
        code: &str,
    ) -> Result<Reply, ConversationError> {
        let none = Vars::new();
        if known.household.is_none() {
            return Ok(self.reply(lang, "sms.not_registered", &none, "cancel: not registered"));
        }
        let done =
            actions::my_pledges::cancel(tx, self.phone, None, Some(code), "sms", self.now).await?;
        Ok(match done {
            actions::Cancelled::Done(p) => {
                let vars = actions::my_pledges::values_in(&self.state.menus, &p, lang);
                self.reply(lang, "sms.cancel_ok", &vars, "cancel: done")
            }
            actions::Cancelled::NotCancellable(p) => {
                let vars = actions::my_pledges::values_in(&self.state.menus, &p, lang);
                let key = if p.status == store::pledges::PledgeStatus::Cancelled {
                    "sms.cancel_already"
                } else {
                    "sms.cancel_paid"
                };
                self.reply(lang, key, &vars, "cancel: not cancellable")
            }
            actions::Cancelled::NotFound => {
                let vars = Vars::from([("pledge_code".to_owned(), code.to_owned())]);
                self.reply(lang, "sms.cancel_unknown", &vars, "cancel: unknown code")
            }
        })
    }

    async fn example_project(
        &self,
        tx: &mut PgConnection,
        known: &Known,
        lang: Language,
    ) -> Result<String, sqlx::Error> {
        let projects = match known.community {
            Some(c) => open_projects(tx, c).await?,
            None => Vec::new(),
        };
        Ok(if projects.is_empty() {
            // a word of the language the reply is in
            match lang {
                Language::Tg => "КӮПРУК",
                Language::Ru => "МОСТ",
                Language::En => "BRIDGE",
            }
            .to_owned()
        } else {
            keywords::project_word(&words_of(&projects), 0, lang)
        })
    }

    async fn join(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        code: &str,
        known: &Known,
        lang: Language,
    ) -> Result<Reply, ConversationError> {
        let none = Vars::new();
        if known.household.is_some() {
            return Ok(self.reply(lang, "sms.join_already", &none, "join: already registered"));
        }
        let hour_ago = self.now - chrono::Duration::hours(1);
        // The check and the count are atomic: every JOIN takes one lock for its transaction.
        join_limits::lock(tx).await?;
        // Read after the lock: each statement sees what the tries before it committed.
        let join_limits::Failures { mine, all } =
            join_limits::failures_since(tx, self.phone, hour_ago).await?;
        if mine >= JOIN_FAILURES_PER_HOUR {
            return Ok(self.reply(lang, "sms.join_limited", &none, "join: rate limited"));
        }
        if all >= JOIN_FAILURES_PER_HOUR_ALL {
            tracing::warn!(
                phone = %self.phone,
                failures = all,
                "join refused: the hour's budget of wrong codes from all numbers is spent"
            );
            return Ok(self.reply(
                lang,
                "sms.join_limited",
                &none,
                "join: rate limited (all numbers)",
            ));
        }
        let found = households::by_join_code(tx, code).await?;
        join_limits::record(tx, self.phone, found.is_some(), self.now).await?;
        let Some(target) = found else {
            tracing::info!(phone = %self.phone, "wrong join code");
            return Ok(self.reply(lang, "sms.join_bad", &none, "join: wrong code"));
        };
        let household = target.household.0;
        households::add_own_phone(tx, self.phone, target.household).await?;
        end_conversation(tx, self.phone).await?;
        // A migrant keeps the language they wrote in, unless the household has one.
        let lang = target.language.unwrap_or(lang);
        let community = target.community_name.get(lang).to_owned();
        tracing::info!(phone = %self.phone, household, "number joined a household");
        Ok(self.reply(
            lang,
            "sms.join_ok",
            &Vars::from([("community".to_owned(), community)]),
            "join: ok",
        ))
    }

    async fn pledge(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        known: &Known,
        lang: Language,
        said: Decimal,
        said_currency: Option<Currency>,
        word: Option<String>,
    ) -> Result<Reply, ConversationError> {
        let none = Vars::new();
        let Some(community) = known.community else {
            return Ok(self.reply(lang, "sms.not_registered", &none, "pledge: not registered"));
        };
        let projects = open_projects(tx, community).await?;
        let project = match self.pledge_project(lang, said, word.as_deref(), &projects) {
            Ok(p) => p,
            Err(reply) => return Ok(reply),
        };
        let project_currency = Currency::from_str(&project.currency).unwrap_or(Currency::TJS);
        let said_currency = said_currency.unwrap_or(project_currency);
        let (amount, rate) = if said_currency == project_currency {
            (said, None)
        } else {
            // the rate of the programme's local day (HASHAR_TIMEZONE), not of UTC's
            let today = self
                .now
                .with_timezone(&self.state.config.timezone)
                .date_naive();
            let rate = store::projects::exchange_rate(
                tx,
                said_currency.as_str(),
                project_currency.as_str(),
                today,
            )
            .await?;
            let Some(rate) = rate else {
                let vars = Vars::from([
                    ("said_currency".to_owned(), said_currency.to_string()),
                    ("currency".to_owned(), project_currency.to_string()),
                ]);
                return Ok(self.reply(lang, "sms.no_rate", &vars, "pledge: no rate"));
            };
            let converted = (said * rate)
                .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            (converted, Some(rate))
        };
        if let Some(reply) = self.out_of_bounds(lang, amount, project_currency) {
            return Ok(reply);
        }
        let key = self.effect_key();
        let said_currency_text = said_currency.to_string();
        let totals = store::pledges::create_by_sms(
            tx,
            project.id,
            self.phone.as_str(),
            amount,
            &key,
            rate.map(|rate| store::pledges::Said {
                amount: said,
                currency: &said_currency_text,
                rate,
            }),
        )
        .await;
        let vars = totals
            .map_err(|e| ConversationError::Action(actions::pledge_error(e, project.id.0)))?;
        Ok(self.pledged(
            lang,
            vars,
            amount,
            project,
            rate.map(|rate| (said, said_currency, rate)),
        ))
    }

    /// Any other text: a step of the household menus, kept as an SMS conversation.
    async fn conversation(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        text: &str,
        known: &Known,
    ) -> Result<Reply, ConversationError> {
        let ttl = chrono::Duration::seconds(
            i64::try_from(self.state.config.sms_conversation_ttl_secs).unwrap_or(1800),
        );
        let stored = store::conversations::lock(tx, self.phone).await?;
        let current = Caller {
            language: known.language,
            registered: known.household.is_some(),
            pin_ok: false,
        };
        // A stored conversation that cannot be read back (written by another version, say)
        // is dropped like an expired one, never a failed text.
        let going_on = stored.and_then(|c| {
            let read = serde_json::from_value::<Caller>(c.start_caller).and_then(|caller| {
                serde_json::from_value::<BTreeMap<String, Vars>>(c.results)
                    .map(|results| (caller, results))
            });
            match read {
                Ok((caller, results)) => Some((c.inputs, caller, results, c.started_at, c.updated_at)),
                Err(e) => {
                    tracing::warn!(phone = %self.phone, error = %e, "unreadable sms conversation dropped");
                    None
                }
            }
        });
        let (mut inputs, caller, results, started_at) = match going_on {
            Some((mut inputs, caller, results, started_at, updated_at))
                if updated_at > self.now - ttl && inputs.len() < MAX_CONVERSATION_TEXTS =>
            {
                let results: BTreeMap<usize, Vars> = results
                    .into_iter()
                    .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
                    .collect();
                inputs.push(stored_answer(text));
                (inputs, caller, results, started_at)
            }
            // A new conversation: the text that opens it is not an answer to anything. A
            // conversation that already holds MAX_CONVERSATION_TEXTS answers starts over too.
            _ => (Vec::new(), current.clone(), BTreeMap::new(), self.now),
        };
        // the totals list: open projects and those closed in the last year, marked; the
        // pledge list: those closed while a conversation of this length may have run keep
        // their place
        let listed = match known.community {
            Some(c) => listed_projects(tx, c, crate::news::shown_since(self.now)).await?,
            None => Vec::new(),
        };
        let total_projects: Vec<ListItem> = listed
            .iter()
            .map(|p| {
                let shown = crate::news::PhoneState::of(p.closed_at.is_some(), p.completed);
                let mut item = project_item(p.clone());
                item.labels =
                    Language::ALL.map(|l| shown.label(&self.state.menus, l, p.name.get(l)));
                item
            })
            .collect();
        let projects: Vec<ListItem> = listed
            .into_iter()
            .filter(|p| p.closed_at.is_none_or(|at| at > self.now - ttl))
            .map(project_item)
            .collect();
        let communities = if caller.registered {
            Vec::new()
        } else {
            all_communities(tx).await?
        };
        let engine = Engine::new(&self.state.menus, "household")
            .map_err(|e| ConversationError::Menu(e.to_string()))?;
        let lists = |source: ListSource| -> Vec<ListItem> {
            match source {
                ListSource::Communities => communities.clone(),
                ListSource::OpenProjects => projects.clone(),
                ListSource::TotalProjects => total_projects.clone(),
                // lazy: read by the transport only when their screen is reached
                ListSource::MyPledges | ListSource::Meetings => Vec::new(),
                // an SMS conversation walks the household menus only
                ListSource::CoordProjects | ListSource::CoordCommunities => Vec::new(),
            }
        };
        let scene = Scene {
            caller: caller.clone(),
            lists: &lists,
            globals: &self.state.globals,
            default_language: known.language.unwrap_or_else(|| {
                self.state
                    .hints
                    .guess(self.phone, self.state.config.default_language)
            }),
            max_amount: self.state.config.max_pledge,
            limits: crate::domain::text::ScreenLimits::sms(self.state.config.sms_max_segments),
        };
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let mut answers = Answers::with_results(results);
        let mut transport = TextSteps {
            tx,
            state: self.state,
            now: self.now,
            phone: self.phone,
            started_at,
        };
        let driven = drive(
            &engine,
            &scene,
            0,
            &refs,
            &mut answers,
            crate::engine::MAX_NEEDS,
            &mut transport,
        )
        .await;
        let reply = match driven {
            Ok(reply) => reply,
            // An effect refused with a reason the caller should hear (the project closed
            // while they answered): said, and the conversation ends, as a USSD session does.
            Err(ConversationError::Action(refused)) if refused.text_key().is_some() => {
                let language = caller.language.unwrap_or(scene.default_language);
                let key = refused.text_key().unwrap_or("nav.busy");
                tracing::info!(phone = %self.phone, error = %refused, "sms conversation: effect refused");
                crate::engine::Reply {
                    text: self.text(language, key, &Vars::new()),
                    end: true,
                    language,
                }
            }
            Err(e) => return Err(e),
        };
        if reply.end {
            end_conversation(tx, self.phone).await?;
            inputs.clear();
        } else {
            let results: BTreeMap<String, Vars> = answers
                .results
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            store::conversations::save(
                tx,
                self.phone,
                &store::conversations::Conversation {
                    inputs: inputs.clone(),
                    start_caller: serde_json::to_value(&caller).map_err(|e| {
                        ConversationError::Menu(format!("conversation not stored: {e}"))
                    })?,
                    results: serde_json::to_value(&results).map_err(|e| {
                        ConversationError::Menu(format!("conversation not stored: {e}"))
                    })?,
                    started_at,
                    updated_at: self.now,
                },
            )
            .await?;
        }
        let mut body = reply.text;
        // The first answer to an unknown number (not the last screen of its conversation,
        // whose inputs are cleared too): family abroad may join instead of registering.
        if !caller.registered && inputs.is_empty() && !reply.end {
            body.push('\n');
            body.push_str(&self.text(reply.language, "sms.join_hint", &Vars::new()));
        }
        self.state.hints.remember(self.phone, reply.language);
        Ok((Some(body), Kind::Reply, "conversation".into()))
    }
}

/// An SMS conversation's reads and effects: all in the text's transaction.
struct TextSteps<'a, 'c> {
    tx: &'a mut Transaction<'c, Postgres>,
    state: &'a AppState,
    now: DateTime<Utc>,
    phone: &'a Phone,
    started_at: DateTime<Utc>,
}

impl Transport for TextSteps<'_, '_> {
    type Error = ConversationError;

    async fn read(&mut self, need: ReadNeed<'_>) -> Result<Vars, ConversationError> {
        Ok(actions::run_read(
            self.tx,
            &self.state.menus,
            self.phone,
            need.action,
            need.vars,
        )
        .await?)
    }

    /// In a savepoint: a refused effect leaves the text's transaction usable for the reply.
    async fn effect(&mut self, need: EffectNeed<'_>) -> Result<Vars, ConversationError> {
        let key = format!(
            "sms:{}:{}:{}",
            self.phone.as_str(),
            self.started_at.timestamp_micros(),
            need.step
        );
        let ctx = effect_ctx(self.state, self.now, self.phone, &key, need.language);
        let mut savepoint = self.tx.begin().await?;
        match actions::run_effect(&mut savepoint, &ctx, need.action, need.arg, need.vars).await {
            Ok(result) => {
                savepoint.commit().await?;
                Ok(result)
            }
            Err(refused) => {
                savepoint.rollback().await?;
                Err(refused.into())
            }
        }
    }

    /// The household's pledges (those made during the conversation after the others, so a
    /// number chosen keeps its meaning) and its community's upcoming meetings, read when
    /// their screen is reached.
    async fn list(&mut self, need: ListNeed) -> Result<Vec<ListItem>, ConversationError> {
        Ok(match need.source {
            ListSource::MyPledges => {
                actions::my_pledges::list(
                    self.tx,
                    &self.state.menus,
                    self.phone,
                    self.started_at,
                    None,
                )
                .await?
            }
            ListSource::Meetings => {
                actions::meetings::list(
                    self.tx,
                    &self.state.menus,
                    self.state.config.timezone,
                    self.phone,
                    self.now,
                )
                .await?
            }
            ListSource::Communities
            | ListSource::OpenProjects
            | ListSource::TotalProjects
            | ListSource::CoordProjects
            | ListSource::CoordCommunities => Vec::new(),
        })
    }
}

/// The most answers an SMS conversation keeps: the menus are walked from the start at each
/// text, so a conversation that goes on and on (a phone answering "Invalid choice" to itself,
/// say) would cost more at every text. The next text after that many starts over at the
/// main menu; no walk through the household menus needs a tenth of it.
pub const MAX_CONVERSATION_TEXTS: usize = 30;

/// The longest answer a conversation keeps as typed. No answer in the menus is longer (an
/// option number, an amount, a 7-digit code); a longer text is kept as `~`, which no screen
/// accepts either, so the walk is the same and the conversation does not hold the text.
pub const MAX_ANSWER_CHARS: usize = 64;

/// The answer as the conversation keeps it: trimmed (the engine trims each answer), or `~`.
fn stored_answer(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > MAX_ANSWER_CHARS {
        "~".to_owned()
    } else {
        text.to_owned()
    }
}

/// A project as a list shows it (the store's row).
type ProjectRow = store::projects::ProjectItem;

fn project_item(p: ProjectRow) -> ListItem {
    ListItem {
        id: p.id.to_string(),
        labels: [p.name.tg, p.name.ru, p.name.en],
        extra: Vars::from([("currency".to_owned(), p.currency)]),
    }
}

/// The community's open projects (what a keyword names: a keyword has no conversation whose
/// list must keep its numbers).
async fn open_projects(
    tx: &mut PgConnection,
    community: i64,
) -> Result<Vec<ProjectRow>, sqlx::Error> {
    store::projects::open_in(tx, CommunityId(community)).await
}

/// The projects a conversation lists: open ones and those closed after `since` (the rule
/// USSD follows too: SQL function `listed_projects`).
async fn listed_projects(
    tx: &mut PgConnection,
    community: i64,
    since: DateTime<Utc>,
) -> Result<Vec<ProjectRow>, sqlx::Error> {
    store::projects::listed(tx, CommunityId(community), since).await
}

async fn all_communities(tx: &mut PgConnection) -> Result<Vec<ListItem>, sqlx::Error> {
    let rows = crate::store::communities::list(tx, None).await?;
    Ok(rows
        .into_iter()
        .map(|c| ListItem {
            id: c.id.to_string(),
            labels: [c.name.tg, c.name.ru, c.name.en],
            extra: Vars::new(),
        })
        .collect())
}

/// A project by its code (`BRIDGE`) or by a word of its name in any language (`МОСТ`).
fn find_project<'p>(projects: &'p [ProjectRow], word: &str) -> Option<&'p ProjectRow> {
    keywords::find_project(&words_of(projects), word).and_then(|i| projects.get(i))
}

fn words_of(projects: &[ProjectRow]) -> Vec<keywords::ProjectWords<'_>> {
    projects
        .iter()
        .map(|p| keywords::ProjectWords {
            code: &p.code,
            names: [&p.name.tg, &p.name.ru, &p.name.en],
        })
        .collect()
}

/// The projects as a reply in `lang` suggests them (see [`keywords::project_word`]).
fn codes(projects: &[ProjectRow], lang: Language) -> String {
    let words = words_of(projects);
    (0..projects.len())
        .map(|i| keywords::project_word(&words, i, lang))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ends the SMS conversation of `phone`, if any (its menus start again at the next text):
/// the number joined or left a household, or its household moved.
pub async fn end_conversation(conn: &mut PgConnection, phone: &Phone) -> Result<(), sqlx::Error> {
    store::conversations::end(conn, phone).await
}

/// Ends the SMS conversations of every number of a household (it moved to another
/// community: the conversations list the old community's projects).
pub async fn end_household_conversations(
    conn: &mut PgConnection,
    household: i64,
) -> Result<(), sqlx::Error> {
    store::conversations::end_for_household(conn, HouseholdId(household)).await
}
