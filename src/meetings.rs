//! The reminder of a meeting the day before, to each household that said it will come: once
//! per household and meeting (`meeting_reminders`, keyed by both), to the number that
//! answered, in that number's language, outside the quiet hours, through the outbox.
//!
//! A reminder is due from 24 hours before the meeting until it begins. The broadcast
//! scheduler runs [`run_due`] on each round; several instances share the work (the answers
//! are locked with SKIP LOCKED) and the key keeps a second reminder from being queued.

use chrono::{DateTime, Duration, Utc};
use sqlx::Acquire;

use crate::{
    actions::meetings::when,
    app::AppState,
    domain::{Language, Phone},
    engine::{menu::fill, Vars},
    outbox::{self, Kind, NewMessage},
    store::{self, OutboxId},
};

/// How long before a meeting its reminder is due.
pub const AHEAD: Duration = Duration::hours(24);
/// The most reminders one transaction queues.
const BATCH: i64 = 200;

/// Queues the reminders due at `now`, unless it is quiet hours now; returns how many.
pub async fn run_due(state: &AppState, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    if state.settings.quiet_hours.contains(now) {
        return Ok(0);
    }
    let mut done = 0;
    loop {
        let mut tx = state.pool.begin().await?;
        let due = store::meetings::lock_due_reminders(&mut tx, now, now + AHEAD, BATCH).await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(done);
        }
        for r in &due {
            let lang: Language = r
                .language
                .as_deref()
                .and_then(|l| l.parse().ok())
                .unwrap_or(state.config.default_language);
            let values = Vars::from([
                ("when".to_owned(), when(r.at, state.config.timezone, lang)),
                ("place".to_owned(), r.place.clone()),
            ]);
            let body = fill(state.menus.text(lang, "sms.meeting_reminder"), |name| {
                values.get(name).cloned()
            });
            let phone = Phone::from_e164_unchecked(r.phone.clone());
            // a savepoint: should the reminder have been recorded meanwhile, its message goes
            let mut one = tx.begin().await?;
            let outbox_id = outbox::enqueue(
                &mut one,
                &NewMessage {
                    to: &phone,
                    body: &body,
                    kind: Kind::Broadcast,
                    inbound_id: None,
                },
                state.config.sms_provider.name(),
                state.config.sms_max_segments,
                now,
            )
            .await?;
            if store::meetings::record_reminder(&mut one, r, OutboxId(outbox_id), now).await? {
                one.commit().await?;
                done += 1;
                tracing::info!(phone = %phone, broadcast = r.broadcast.0, household = r.household.0, "meeting reminder queued");
            } else {
                one.rollback().await?;
            }
        }
        tx.commit().await?;
    }
}
