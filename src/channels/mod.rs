//! One module per aggregator: parsing what it sends (USSD hops, inbound SMS, delivery
//! reports), checking its signature or shared secret, and its outbound SMS client. Adding
//! a provider means adding a module here, a variant of [`Sender`] and its routes in
//! `crate::http`.

pub mod africastalking;
pub mod console;
pub mod infobip;
pub mod kannel;
pub mod twilio;
pub mod ussd;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

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

/// The `Retry-After` of a 429 or 503 answer (seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`]; `None` for other statuses or a missing or unreadable header.
pub fn retry_after(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    if status != reqwest::StatusCode::TOO_MANY_REQUESTS
        && status != reqwest::StatusCode::SERVICE_UNAVAILABLE
    {
        return None;
    }
    let raw = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let after = match raw.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
            (at - now).to_std().unwrap_or(std::time::Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
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

/// Maps a transport error: timeouts and connection failures are retryable. The URL is
/// dropped first: reqwest's message names the request URL, which for Kannel holds the
/// password, the recipient, the text and the delivery URL with our webhook secret (and for
/// Twilio the account id). What remains is stored in `outbox.last_error` and logged.
pub fn transport_error(e: reqwest::Error) -> SendError {
    let e = e.without_url();
    // The chain of causes says why (refused, reset, timed out), and names no URL.
    let mut message = format!("transport: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::Retryable(message)
}

/// Most of a provider's answer we read: a status line or a small JSON document is all we
/// need, and a broken or hostile endpoint must not make us buffer an unbounded body.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Reads a provider's answer, at most [`MAX_RESPONSE_BYTES`] of it (the rest is dropped
/// unread, and the answer is then judged on what was read: a cut JSON answer does not
/// parse, and is refused as unreadable like any other).
pub async fn read_capped(mut response: reqwest::Response) -> Result<String, SendError> {
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        let room = MAX_RESPONSE_BYTES - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            tracing::warn!(
                limit = MAX_RESPONSE_BYTES,
                "provider answer longer than the limit; the rest is not read"
            );
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
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
        let need_secret = |value: &Option<SecretString>, missing: &'static str| {
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
                    api_key: need_secret(&config.at_api_key, "HASHAR_AT_API_KEY")?,
                    sender: config.at_sender.clone(),
                    base_url: config.at_base_url.clone(),
                },
                http,
            )),
            SmsProvider::Twilio => Sender::Twilio(twilio::Client::new(
                twilio::Settings {
                    account_sid: need(&config.twilio_account_sid, "HASHAR_TWILIO_ACCOUNT_SID")?,
                    auth_token: need_secret(&config.twilio_auth_token, "HASHAR_TWILIO_AUTH_TOKEN")?,
                    from: need(&config.twilio_from, "HASHAR_TWILIO_FROM")?,
                    base_url: config.twilio_base_url.clone(),
                    status_callback: Some(format!("{public}/webhooks/twilio/status")),
                },
                http,
            )),
            SmsProvider::Infobip => Sender::Infobip(infobip::Client::new(
                infobip::Settings {
                    api_key: need_secret(&config.infobip_api_key, "HASHAR_INFOBIP_API_KEY")?,
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
                    password: need_secret(&config.kannel_password, "HASHAR_KANNEL_PASSWORD")?,
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

/// A webhook URL we hand to a provider, with the shared secret when one is set. It is a
/// secret itself: it is only ever sent to the provider, never logged.
fn with_secret(url: &str, config: &crate::config::Config) -> SecretString {
    match config.webhook_secret() {
        Some(secret) => {
            let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            SecretString::from(format!("{url}?secret={encoded}"))
        }
        None => SecretString::from(url),
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
                Err(SendError::Retryable(_) | SendError::RetryAfter { .. }) => "retryable",
                Err(SendError::Fatal(_)) => "fatal",
            };
            crate::metrics::provider_send(self.name(), outcome, started.elapsed());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::{matchers::method, Mock, MockServer, ResponseTemplate};

    #[tokio::test]
    async fn a_provider_answer_is_read_up_to_the_cap_only() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("z".repeat(16 * 1024 * 1024)))
            .mount(&server)
            .await;
        let response = reqwest::get(server.uri()).await.expect("answer");
        let body = read_capped(response).await.expect("read");
        assert_eq!(body.len(), MAX_RESPONSE_BYTES);
        // a small one is read whole
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("0: Accepted"))
            .mount(&server)
            .await;
        let response = reqwest::get(server.uri()).await.expect("answer");
        assert_eq!(read_capped(response).await.expect("read"), "0: Accepted");
    }

    #[test]
    fn provider_settings_print_no_secret() {
        let kannel = kannel::Settings {
            sendsms_url: "http://127.0.0.1:13013/cgi-bin/sendsms".into(),
            username: "hashar".into(),
            password: "kannel-password-123".into(),
            sender: None,
            dlr_url_base: Some("https://x/webhooks/kannel/delivery?secret=hook-secret-456".into()),
        };
        let infobip = infobip::Settings {
            api_key: "infobip-key-789".into(),
            sender: "Hashar".into(),
            base_url: "https://api.infobip.com".into(),
            delivery_url: Some("https://x/webhooks/infobip/delivery?secret=hook-secret-456".into()),
        };
        let shown = format!("{kannel:?} {infobip:?}");
        for leak in ["kannel-password-123", "hook-secret-456", "infobip-key-789"] {
            assert!(!shown.contains(leak), "{leak} in {shown}");
        }
    }
}

#[cfg(test)]
mod retry_after_tests {
    use super::*;
    use reqwest::{header::HeaderMap, StatusCode};
    use std::time::Duration;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::RETRY_AFTER,
            value.parse().expect("header value"),
        );
        h
    }

    #[test]
    fn retry_after_is_read_from_429_and_503_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let cases: [(StatusCode, &str, Option<Duration>); 7] = [
            (
                StatusCode::TOO_MANY_REQUESTS,
                "2",
                Some(Duration::from_secs(2)),
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                " 30 ",
                Some(Duration::from_secs(30)),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Wed, 21 Oct 2015 07:28:10 GMT",
                Some(Duration::from_secs(10)),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "Wed, 21 Oct 2015 07:27:00 GMT",
                Some(Duration::ZERO),
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                "99999999",
                Some(MAX_RETRY_AFTER),
            ),
            (StatusCode::TOO_MANY_REQUESTS, "soon", None),
            (StatusCode::INTERNAL_SERVER_ERROR, "2", None),
        ];
        for (status, value, want) in cases {
            assert_eq!(
                retry_after(status, &headers(value), now),
                want,
                "{status} {value}"
            );
        }
        assert_eq!(
            retry_after(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), now),
            None
        );
    }

    #[test]
    fn only_retryable_errors_take_a_retry_after() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            SendError::Retryable("HTTP 429".into()).retry_after(after),
            SendError::RetryAfter {
                reason: "HTTP 429".into(),
                after: Duration::from_secs(3)
            }
        );
        assert_eq!(
            SendError::Fatal("HTTP 400".into()).retry_after(after),
            SendError::Fatal("HTTP 400".into())
        );
        assert_eq!(
            SendError::Retryable("HTTP 500".into()).retry_after(None),
            SendError::Retryable("HTTP 500".into())
        );
    }
}
