//! One module per aggregator: parsing what it sends (USSD hops, inbound SMS, delivery
//! reports), checking its signature or shared secret, and its outbound SMS client. Adding
//! a provider means adding a module here, a variant of [`Sender`] and its routes in
//! `crate::http`.

pub mod africastalking;

use chrono::{DateTime, Utc};

use crate::domain::{Encoding, Phone};

/// Why an inbound request was refused; the message is returned to the sender as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// An SMS as a provider handed it over, before anything else is done with it. The sender is
/// kept raw: it is parsed (and may fail to parse) after the message is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    pub provider: &'static str,
    /// The provider's id for this message: the key retries are deduplicated on.
    pub provider_msg_id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub received_at: Option<DateTime<Utc>>,
}

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
}

/// Maps an HTTP status to the retry decision every provider shares: 429 and 5xx are worth
/// another try, any other 4xx is not.
pub fn status_error(status: reqwest::StatusCode, body: &str) -> SendError {
    let snippet: String = body.chars().take(300).collect();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        SendError::Retryable(format!("HTTP {status}: {snippet}"))
    } else {
        SendError::Fatal(format!("HTTP {status}: {snippet}"))
    }
}

/// Maps a transport error: timeouts and connection failures are retryable.
pub fn transport_error(e: reqwest::Error) -> SendError {
    SendError::Retryable(format!("transport: {e}"))
}
