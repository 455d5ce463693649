//! The send contract between the outbox and the providers: the message the dispatcher
//! hands a provider's client, what the provider answers (accepted, or an error saying
//! whether to try again), and the delivery reports that come back later. The outbox owns
//! these types; `channels` implements them for each provider (and re-exports them).

use crate::domain::{Encoding, Phone};

/// How a provider names the message a delivery report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRef {
    /// The id the provider returned when we sent it (Africa's Talking, Twilio).
    Provider(String),
    /// Our outbox id, which we gave the provider (Infobip `messageId`, Kannel `dlr-url`).
    Ours(i64),
}

/// Where a message is, as far as delivery reports tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Accepted by the provider or the operator, not yet on the handset.
    Sent,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sent => "sent",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub provider: &'static str,
    pub message: MessageRef,
    pub state: DeliveryState,
    /// The provider's own status word, kept as is (`Success`, `undelivered`, `DELIVERED_TO_HANDSET`, `8`…).
    pub provider_status: String,
    /// Why it failed, when the provider says.
    pub reason: Option<String>,
}

/// One message for a provider to send.
#[derive(Debug, Clone)]
pub struct OutboundSms {
    /// Our outbox id.
    pub id: i64,
    pub to: Phone,
    pub text: String,
    pub encoding: Encoding,
    pub segments: u32,
}

/// The provider took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The provider's id for it, when the provider returns one.
    pub provider_msg_id: Option<String>,
}

/// Why a send failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Timeouts, connection errors, 429 and 5xx: try again later.
    #[error("temporary failure: {0}")]
    Retryable(String),
    /// Any other refusal (bad number, bad credentials, blacklisted): do not try again.
    #[error("rejected: {0}")]
    Fatal(String),
    /// A temporary failure (429 or 503) whose answer said when to come back (`Retry-After`):
    /// try again, but not before `after` has passed.
    #[error("temporary failure, retry after {}s: {reason}", .after.as_secs())]
    RetryAfter {
        reason: String,
        after: std::time::Duration,
    },
}

/// The longest `Retry-After` waited for; a longer one (or a date far ahead) is cut to this.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

impl SendError {
    /// A retryable error that came with a `Retry-After` becomes [`SendError::RetryAfter`];
    /// any other error is returned as it is.
    pub fn retry_after(self, after: Option<std::time::Duration>) -> SendError {
        match (self, after) {
            (SendError::Retryable(reason), Some(after)) => SendError::RetryAfter { reason, after },
            (e, _) => e,
        }
    }
}
