//! One module per aggregator: parsing what it sends (USSD hops, inbound SMS, delivery
//! reports), checking its signature or shared secret, and its outbound SMS client. Adding
//! a provider means adding a module here, a variant of [`Sender`] and its routes in
//! `crate::http`.

pub mod africastalking;
pub mod console;
pub mod infobip;
pub mod kannel;
pub mod twilio;

use chrono::{DateTime, Utc};

use crate::domain::{Encoding, Phone};

/// Longest inbound SMS text taken, in characters: about ten concatenated segments
/// (10 × 153 GSM-7 characters, 10 × 67 UCS-2), more than any phone sends as one message. A
/// longer text is refused whole (413) and stored nowhere, so a provider's retry of it is
/// refused again; nothing real is that long.
pub const MAX_TEXT_CHARS: usize = 1600;

/// Most messages (or delivery reports) one webhook request may carry: Infobip sends at most
/// 100 per request; the form and query providers send one.
pub const MAX_MESSAGES_PER_REQUEST: usize = 100;

/// Largest body of a form webhook (USSD hops, Africa's Talking and Twilio texts and reports).
pub const FORM_BODY_LIMIT: usize = 64 * 1024;

/// Largest body of an Infobip JSON webhook: 100 messages of [`MAX_TEXT_CHARS`] each, every
/// character escaped as `\uXXXX`, with room for the other fields.
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

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
    /// More than the limits above: answered 413.
    #[error("too large: {0}")]
    TooLarge(String),
}

/// Refuses a text longer than [`MAX_TEXT_CHARS`].
pub fn check_text(msg: &InboundSms) -> Result<(), InboundError> {
    // counting stops at the limit: a huge text costs no more than a long one
    if msg.text.chars().nth(MAX_TEXT_CHARS).is_some() {
        Err(InboundError::TooLarge(format!(
            "text longer than {MAX_TEXT_CHARS} characters"
        )))
    } else {
        Ok(())
    }
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

impl InboundSms {
    /// The sender as a phone number. Infobip always writes numbers in international form
    /// without the `+`; the others send E.164 or what the operator gave (Kannel).
    pub fn sender(&self) -> Result<Phone, crate::domain::PhoneError> {
        if self.provider == infobip::PROVIDER {
            Phone::parse_international(&self.from)
        } else {
            Phone::parse(&self.from)
        }
    }
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

/// The configured outbound provider.
pub enum Sender {
    Console(console::Client),
    AfricasTalking(africastalking::Client),
    Twilio(twilio::Client),
    Infobip(infobip::Client),
    Kannel(kannel::Client),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("HASHAR_SMS_PROVIDER={provider} needs {missing}")]
pub struct MissingSetting {
    pub provider: &'static str,
    pub missing: &'static str,
}

impl Sender {
    /// Builds the client `config` asks for; a provider without its credentials is an error.
    pub fn from_config(
        config: &crate::config::Config,
        http: reqwest::Client,
    ) -> Result<Sender, MissingSetting> {
        use crate::config::SmsProvider;
        let need = |value: &Option<String>, missing: &'static str| {
            value.clone().ok_or(MissingSetting {
                provider: config.sms_provider.name(),
                missing,
            })
        };
        let public = config.public_url.trim_end_matches('/');
        Ok(match config.sms_provider {
            SmsProvider::Console => Sender::Console(console::Client::new()),
            SmsProvider::Africastalking => Sender::AfricasTalking(africastalking::Client::new(
                africastalking::Settings {
                    username: config.at_username.clone(),
                    api_key: need(&config.at_api_key, "HASHAR_AT_API_KEY")?,
                    sender: config.at_sender.clone(),
                    base_url: config.at_base_url.clone(),
                },
                http,
            )),
            SmsProvider::Twilio => Sender::Twilio(twilio::Client::new(
                twilio::Settings {
                    account_sid: need(&config.twilio_account_sid, "HASHAR_TWILIO_ACCOUNT_SID")?,
                    auth_token: need(&config.twilio_auth_token, "HASHAR_TWILIO_AUTH_TOKEN")?,
                    from: need(&config.twilio_from, "HASHAR_TWILIO_FROM")?,
                    base_url: config.twilio_base_url.clone(),
                    status_callback: Some(format!("{public}/webhooks/twilio/status")),
                },
                http,
            )),
            SmsProvider::Infobip => Sender::Infobip(infobip::Client::new(
                infobip::Settings {
                    api_key: need(&config.infobip_api_key, "HASHAR_INFOBIP_API_KEY")?,
                    sender: config.infobip_sender.clone(),
                    base_url: config.infobip_base_url.clone(),
                    delivery_url: Some(with_secret(
                        &format!("{public}/webhooks/infobip/delivery"),
                        config,
                    )),
                },
                http,
            )),
            SmsProvider::Kannel => Sender::Kannel(kannel::Client::new(
                kannel::Settings {
                    sendsms_url: config.kannel_sendsms_url.clone(),
                    username: config.kannel_username.clone(),
                    password: need(&config.kannel_password, "HASHAR_KANNEL_PASSWORD")?,
                    // Kannel refuses a sendsms without `from` unless it has a global-sender.
                    sender: Some(
                        config
                            .kannel_sender
                            .clone()
                            .unwrap_or_else(|| config.sms_number.clone()),
                    ),
                    dlr_url_base: Some(with_secret(
                        &format!("{public}/webhooks/kannel/delivery"),
                        config,
                    )),
                },
                http,
            )),
        })
    }
}

/// A webhook URL we hand to a provider, with the shared secret when one is set.
fn with_secret(url: &str, config: &crate::config::Config) -> String {
    match &config.webhook_secret {
        Some(secret) => {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            format!("{url}?secret={encoded}")
        }
        None => url.to_owned(),
    }
}

impl crate::outbox::Gateway for Sender {
    fn name(&self) -> &'static str {
        match self {
            Sender::Console(_) => console::PROVIDER,
            Sender::AfricasTalking(_) => africastalking::PROVIDER,
            Sender::Twilio(_) => twilio::PROVIDER,
            Sender::Infobip(_) => infobip::PROVIDER,
            Sender::Kannel(_) => kannel::PROVIDER,
        }
    }

    fn send<'a>(
        &'a self,
        msg: &'a OutboundSms,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Accepted, SendError>> + Send + 'a>>
    {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = match self {
                Sender::Console(c) => c.send(msg).await,
                Sender::AfricasTalking(c) => c.send(msg).await,
                Sender::Twilio(c) => c.send(msg).await,
                Sender::Infobip(c) => c.send(msg).await,
                Sender::Kannel(c) => c.send(msg).await,
            };
            let outcome = match &result {
                Ok(_) => "accepted",
                Err(SendError::Retryable(_)) => "retryable",
                Err(SendError::Fatal(_)) => "fatal",
            };
            crate::metrics::provider_send(self.name(), outcome, started.elapsed());
            result
        })
    }
}
