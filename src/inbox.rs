//! The inbox: every inbound text and delivery report is stored raw first, in
//! `inbound_messages`, deduplicated on (provider, kind, the provider's id), so that an
//! aggregator's retry is recognised and handled once. The SQL of that table is in
//! [`crate::store::inbox`]; [`crate::sms`] handles a stored text, and a delivery report is
//! applied to the outbox here, in the transaction that stores it.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::{
    channels::{DeliveryReport, InboundSms, MessageRef},
    outbox, store,
};

/// `msg` as `inbound_messages` stores it, received `now`.
pub fn new_sms<'a>(
    msg: &'a InboundSms,
    raw: &'a serde_json::Value,
    now: DateTime<Utc>,
) -> store::inbox::NewSms<'a> {
    store::inbox::NewSms {
        provider: msg.provider,
        provider_msg_id: &msg.provider_msg_id,
        sender: &msg.from,
        raw,
        text: &msg.text,
        now,
    }
}

/// What [`store_sms`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, with this id.
    New(i64),
    /// Stored before and never handled (a quick path's process died between its two
    /// statements, `crate::sms`): to be handled now, under the caller's lock of the row.
    Unhandled(i64),
    /// A retry of a text handled already.
    Handled,
}

/// Stores a text with its raw form, inside the caller's transaction; a text with the same
/// provider and id stored before is locked and reported as it stands.
pub async fn store_sms(
    conn: &mut PgConnection,
    msg: &InboundSms,
    raw: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Stored, sqlx::Error> {
    let stored = store::inbox::insert_sms(conn, &new_sms(msg, raw, now)).await?;
    if let Some(id) = stored {
        return Ok(Stored::New(id));
    }
    Ok(
        match store::inbox::lock_sms(conn, msg.provider, &msg.provider_msg_id).await? {
            Some((id, false)) => Stored::Unhandled(id),
            // handled, or (a row deleted meanwhile, which nothing does) gone: nothing to do
            Some((_, true)) | None => Stored::Handled,
        },
    )
}

/// What became of a delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// A retry of a report already stored (same message, same status): nothing done again.
    Duplicate,
    /// Stored and applied, or kept until the send it names is recorded.
    Applied,
    /// Refused and stored nowhere: by our id it names no message, or one never handed to
    /// the provider.
    Refused,
}

/// One report in one transaction: stored raw and applied together, so a report whose
/// update failed is not left stored (a retry would be taken for a duplicate and never
/// applied). Reports are deduplicated on the message and its status.
pub async fn deliver(
    pool: &PgPool,
    report: &DeliveryReport,
    raw: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Delivered, sqlx::Error> {
    let key = match &report.message {
        MessageRef::Ours(id) => format!("ours:{id}:{}", report.provider_status),
        MessageRef::Provider(id) => format!("{id}:{}", report.provider_status),
    };
    let mut tx = pool.begin().await?;
    let fresh = store::inbox::insert_delivery(
        &mut tx,
        report.provider,
        &key,
        raw,
        report.state.as_str(),
        now,
    )
    .await?;
    let Some(inbound_id) = fresh else {
        tx.commit().await?;
        return Ok(Delivered::Duplicate);
    };
    let mut found = outbox::apply_delivery(&mut tx, report, now).await?;
    if !found {
        // Perhaps the dispatcher has not recorded the provider's id yet: keep it for then.
        found = outbox::keep_early_report(&mut tx, inbound_id, report, now).await?;
    }
    if !found {
        // Neither applied nor kept: refused. Nothing of it is stored, so that it cannot
        // pass for a duplicate of a genuine report that comes later.
        tx.rollback().await?;
        return Ok(Delivered::Refused);
    }
    tx.commit().await?;
    Ok(Delivered::Applied)
}
