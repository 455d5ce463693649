//! Infobip (aggregators.md §4): inbound SMS forwards, delivery reports and the
//! `POST /sms/3/messages` client.

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use secrecy::{ExposeSecret, SecretString};
use serde_json::value::RawValue;

use super::{
    log_sending, require_setting, send_request, webhook_url_with_secret, Accepted, Carrier,
    DeliveryReport, DeliveryState, HttpClient, InboundError, InboundSms, Kind, MessageRef,
    MissingSetting, OutboundSms, Parsed, Provider, ReceivesSms, Registered, ReportsDelivery,
    SendError, SendSms, WebhookRequest, Webhooks, MAX_MESSAGES_PER_REQUEST,
};
use crate::{
    config::{secret, Config},
    domain::{Phone, PhoneError},
};

/// Infobip: inbound SMS forwards and delivery reports as JSON, up to 100 per request; it
/// does not sign (our shared secret protects its webhooks).
pub struct Infobip;

impl Provider for Infobip {
    const NAME: &'static str = "infobip";
    const TITLE: &'static str = "Infobip";
    type Client = Client;

    fn client(config: &Config, http: reqwest::Client) -> Result<Client, MissingSetting> {
        let options = Infobip::options(config);
        let settings = Settings {
            api_key: require_setting::<Infobip, _>(
                &options.infobip_api_key,
                "HASHAR_INFOBIP_API_KEY",
            )?,
            sender: options.infobip_sender.clone(),
            base_url: options.infobip_base_url.clone(),
            delivery_url: webhook_url_with_secret::<Infobip>(config, Kind::Delivery),
        };
        Ok(Client::new(settings, http))
    }

    fn webhooks<W: Webhooks<Self>>(w: W) -> W {
        w.sms("sms", Carrier::Json)
            .delivery("delivery", Carrier::Json)
    }

    /// Infobip always writes numbers in international form without the `+`.
    fn sender(from: &str) -> Result<Phone, PhoneError> {
        Phone::parse_international(from)
    }
}

pub const DEFAULT_BASE_URL: &str = "https://api.infobip.com";

/// Infobip's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Options {
    #[arg(long, env = "HASHAR_INFOBIP_API_KEY", value_parser = secret, hide_env_values = true)]
    pub infobip_api_key: Option<SecretString>,
    #[arg(long, env = "HASHAR_INFOBIP_SENDER", default_value = "Hashar")]
    pub infobip_sender: String,
    #[arg(
        long,
        env = "HASHAR_INFOBIP_BASE_URL",
        default_value = DEFAULT_BASE_URL
    )]
    pub infobip_base_url: String,
}

// ---------------------------------------------------------------------------------------
// Inbound SMS (§4.3)

/// A forward or report body: its `results` kept as raw JSON, so that each message can be
/// stored on its own (never the whole body once per message) and their number is checked
/// before any of them is parsed.
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    results: Option<Vec<&'a RawValue>>,
}

/// The `results` of a body, at most [`MAX_MESSAGES_PER_REQUEST`] of them.
fn results(body: &[u8]) -> Result<Vec<&RawValue>, InboundError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(bad_json)?;
    let results = envelope.results.ok_or(InboundError::Missing("results"))?;
    if results.len() > MAX_MESSAGES_PER_REQUEST {
        return Err(InboundError::TooLarge(format!(
            "{} results in one request; at most {MAX_MESSAGES_PER_REQUEST}",
            results.len()
        )));
    }
    Ok(results)
}

/// Every result of a body read as an `R` and made into a message by `each`, with its own
/// JSON as it is stored (not the body it came in).
fn each_result<R: DeserializeOwned, T>(
    body: &[u8],
    each: impl Fn(R) -> Result<T, InboundError>,
) -> Parsed<T> {
    results(body)?
        .into_iter()
        .map(|raw| {
            let message = each(serde_json::from_str(raw.get()).map_err(bad_json)?)?;
            let stored = serde_json::from_str(raw.get()).map_err(bad_json)?;
            Ok((message, stored))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MoResult {
    message_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    text: Option<String>,
    received_at: Option<String>,
}

fn bad_json(e: serde_json::Error) -> InboundError {
    InboundError::Invalid {
        field: "body",
        message: format!("not valid JSON: {e}"),
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Infobip's timestamps: `2016-10-06T09:28:39.220+0000` (RFC 3339 is accepted too).
fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl ReceivesSms for Infobip {
    /// Parses an inbound SMS forward; one body may carry several messages, at most
    /// [`MAX_MESSAGES_PER_REQUEST`]. A message without `messageId` or `from` refuses the
    /// whole body. An unreadable `receivedAt` is dropped (logged) rather than losing the
    /// message. Each message is stored as its own JSON.
    fn parse_sms(request: &WebhookRequest<'_>) -> Parsed<InboundSms> {
        each_result(request.body, |r: MoResult| {
            let provider_msg_id =
                non_empty(r.message_id).ok_or(InboundError::Missing("messageId"))?;
            let from = non_empty(r.from).ok_or(InboundError::Missing("from"))?;
            let received_at = match r.received_at.as_deref() {
                None | Some("") => None,
                Some(raw) => {
                    let parsed = parse_time(raw);
                    if parsed.is_none() {
                        tracing::warn!(
                            provider = Infobip::NAME,
                            message_id = %provider_msg_id,
                            received_at = %raw,
                            "unreadable receivedAt, ignored"
                        );
                    }
                    parsed
                }
            };
            Ok(InboundSms {
                provider: Infobip::NAME,
                provider_msg_id,
                from,
                to: r.to.unwrap_or_default(),
                text: r.text.unwrap_or_default(),
                received_at,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Delivery reports (§4.2)

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DlrResult {
    message_id: Option<String>,
    status: Option<Status>,
    error: Option<ErrorInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    group_id: Option<i64>,
    group_name: Option<String>,
    name: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorInfo {
    group_id: Option<i64>,
    name: Option<String>,
    description: Option<String>,
}

/// Maps a status group (by name, else by id) to our state.
fn group_state(status: &Status) -> Option<DeliveryState> {
    let by_name =
        status
            .group_name
            .as_deref()
            .and_then(|n| match n.to_ascii_uppercase().as_str() {
                "PENDING" | "ACCEPTED" => Some(DeliveryState::Sent),
                "DELIVERED" => Some(DeliveryState::Delivered),
                "UNDELIVERABLE" | "EXPIRED" | "REJECTED" => Some(DeliveryState::Failed),
                _ => None,
            });
    by_name.or(match status.group_id {
        Some(1) => Some(DeliveryState::Sent),
        Some(3) => Some(DeliveryState::Delivered),
        Some(2 | 4 | 5) => Some(DeliveryState::Failed),
        _ => None,
    })
}

fn join_reason(name: Option<&str>, description: Option<&str>) -> Option<String> {
    let name = name.filter(|s| !s.is_empty());
    let description = description.filter(|s| !s.is_empty());
    match (name, description) {
        (Some(n), Some(d)) => Some(format!("{n}: {d}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

impl ReportsDelivery for Infobip {
    /// Parses a delivery report POST (up to [`MAX_MESSAGES_PER_REQUEST`] reports), each
    /// stored as its own JSON. `messageId` is our outbox id when it is a number (we send
    /// it), else the provider's.
    fn parse_delivery(request: &WebhookRequest<'_>) -> Parsed<DeliveryReport> {
        each_result(request.body, |r: DlrResult| {
            let message_id = non_empty(r.message_id).ok_or(InboundError::Missing("messageId"))?;
            let message = match message_id.trim().parse::<i64>() {
                Ok(id) => MessageRef::Ours(id),
                Err(_) => MessageRef::Provider(message_id),
            };
            let status = r.status.ok_or(InboundError::Missing("status"))?;
            let state = group_state(&status).ok_or_else(|| InboundError::Invalid {
                field: "status",
                message: format!(
                    "unknown status group {:?} ({:?})",
                    status.group_name, status.group_id
                ),
            })?;
            let provider_status = non_empty(status.name.clone())
                .or_else(|| non_empty(status.group_name.clone()))
                .or_else(|| status.group_id.map(|g| g.to_string()))
                .unwrap_or_default();
            let error_reason = r
                .error
                .filter(|e| e.group_id.unwrap_or(0) != 0)
                .and_then(|e| join_reason(e.name.as_deref(), e.description.as_deref()));
            let reason = match (error_reason, state) {
                (Some(reason), _) => Some(reason),
                (None, DeliveryState::Failed) => {
                    join_reason(status.name.as_deref(), status.description.as_deref())
                }
                (None, _) => None,
            };
            Ok(DeliveryReport {
                provider: Infobip::NAME,
                message,
                state,
                provider_status,
                reason,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Sending (§4.1, v3)

#[derive(Debug, Clone)]
pub struct Settings {
    pub api_key: SecretString,
    pub sender: String,
    /// `https://<id>.api.infobip.com` or [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// Where Infobip posts delivery reports for our messages; the account default otherwise.
    pub delivery_url: Option<SecretString>,
}

/// Sends SMS through `POST /sms/3/messages`.
pub type Client = HttpClient<Settings>;

#[derive(Serialize)]
struct SendRequest<'a> {
    messages: [SendMessage<'a>; 1],
}

#[derive(Serialize)]
struct SendMessage<'a> {
    sender: &'a str,
    destinations: [Destination<'a>; 1],
    content: Content<'a>,
    webhooks: Hooks<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Destination<'a> {
    to: &'a str,
    message_id: String,
}

#[derive(Serialize)]
struct Content<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Hooks<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliveryHook<'a>>,
    content_type: &'static str,
}

#[derive(Serialize)]
struct DeliveryHook<'a> {
    url: &'a str,
}

#[derive(Debug, Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SentMessage {
    message_id: Option<String>,
    status: Option<Status>,
}

impl SendSms for Client {
    async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
        let e164 = msg.to.as_str();
        let to = e164.strip_prefix('+').unwrap_or(e164);
        let request = SendRequest {
            messages: [SendMessage {
                sender: &self.settings.sender,
                destinations: [Destination {
                    to,
                    message_id: msg.id.to_string(),
                }],
                content: Content { text: &msg.text },
                webhooks: Hooks {
                    delivery: self.settings.delivery_url.as_ref().map(|url| DeliveryHook {
                        url: url.expose_secret(),
                    }),
                    content_type: "application/json",
                },
            }],
        };
        let url = format!(
            "{}/sms/3/messages",
            self.settings.base_url.trim_end_matches('/')
        );
        log_sending::<Infobip>(msg);
        let answer = send_request(
            self.http
                .post(&url)
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("App {}", self.settings.api_key.expose_secret()),
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&request),
        )
        .await?
        .success()?;
        interpret_answer(&answer.body)
    }
}

/// Reads a 2xx answer: accepted when the first message's status group is PENDING (1),
/// DELIVERED (3) or ACCEPTED.
fn interpret_answer(body: &str) -> Result<Accepted, SendError> {
    let snippet = || body.chars().take(300).collect::<String>();
    let parsed: SendResponse = serde_json::from_str(body)
        .map_err(|e| SendError::Fatal(format!("unreadable answer ({e}): {}", snippet())))?;
    let first = parsed
        .messages
        .into_iter()
        .next()
        .ok_or_else(|| SendError::Fatal(format!("no message in answer: {}", snippet())))?;
    let status = first.status.unwrap_or_default();
    let accepted = matches!(status.group_id, Some(1 | 3))
        || status
            .group_name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case("ACCEPTED"));
    if accepted {
        Ok(Accepted {
            provider_msg_id: non_empty(first.message_id),
        })
    } else {
        let what = [
            status.group_name.as_deref(),
            status.name.as_deref(),
            status.description.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
        Err(SendError::Fatal(if what.is_empty() {
            format!("not accepted: {}", snippet())
        } else {
            what
        }))
    }
}

#[cfg(test)]
mod tests;
