//! Africa's Talking (aggregators.md §1): the USSD callback, inbound SMS, delivery reports
//! and the outbound SMS client.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use secrecy::{ExposeSecret, SecretString};

use super::ussd::{Hop, Screen};
use super::{
    form_field as field, log_sent, one_in_form, require_setting, send_request, Accepted, Carrier,
    DeliveryReport, DeliveryState, HttpClient, InboundError, InboundSms, MessageRef,
    MissingSetting, OutboundSms, Parsed, Provider, ReceivesSms, Registered, ReportsDelivery,
    SendError, SendSms, Ussd, WebhookRequest, Webhooks,
};
use crate::{
    config::{secret, Config},
    domain::{phone::mask, Phone},
};

/// Africa's Talking: USSD, inbound SMS and delivery reports, all forms; it does not sign
/// (our shared secret protects its webhooks).
pub struct AfricasTalking;

impl Provider for AfricasTalking {
    const NAME: &'static str = "africastalking";
    const TITLE: &'static str = "Africa's Talking";
    type Client = Client;

    fn client(config: &Config, http: reqwest::Client) -> Result<Client, MissingSetting> {
        let options = AfricasTalking::options(config);
        let settings = Settings {
            username: options.at_username.clone(),
            api_key: require_setting::<AfricasTalking, _>(
                &options.at_api_key,
                "HASHAR_AT_API_KEY",
            )?,
            sender: options.at_sender.clone(),
            base_url: options.at_base_url.clone(),
        };
        Ok(Client::new(settings, http))
    }

    fn webhooks<W: Webhooks<Self>>(w: W) -> W {
        w.ussd("ussd")
            .sms("sms", Carrier::Form)
            .delivery("delivery", Carrier::Form)
    }
}

/// Africa's Talking's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Options {
    #[arg(long, env = "HASHAR_AT_USERNAME", default_value = "sandbox")]
    pub at_username: String,
    #[arg(long, env = "HASHAR_AT_API_KEY", value_parser = secret, hide_env_values = true)]
    pub at_api_key: Option<SecretString>,
    #[arg(long, env = "HASHAR_AT_SENDER")]
    pub at_sender: Option<String>,
    #[arg(
        long,
        env = "HASHAR_AT_BASE_URL",
        default_value = DEFAULT_BASE_URL
    )]
    pub at_base_url: String,
}

impl Ussd for AfricasTalking {
    type Form = UssdForm;

    /// A USSD callback (§1.1).
    fn parse_ussd(form: UssdForm) -> Result<Hop, InboundError> {
        let session_id = form
            .session_id
            .filter(|s| !s.trim().is_empty())
            .ok_or(InboundError::Missing("sessionId"))?;
        if session_id.len() > 200 {
            return Err(InboundError::Invalid {
                field: "sessionId",
                message: "longer than 200 characters".into(),
            });
        }
        let raw_phone = form
            .phone_number
            .ok_or(InboundError::Missing("phoneNumber"))?;
        let phone = Phone::parse(&raw_phone).map_err(|e| InboundError::Invalid {
            field: "phoneNumber",
            message: e.to_string(),
        })?;
        let text = form.text.unwrap_or_default();
        if text.len() > MAX_TEXT {
            return Err(InboundError::Invalid {
                field: "text",
                message: format!("longer than {MAX_TEXT} characters"),
            });
        }
        Ok(Hop {
            provider: AfricasTalking::NAME,
            session_id,
            phone,
            text,
        })
    }

    /// `CON <screen>` to wait for input, `END <screen>` to close the session.
    fn render_ussd(screen: &Screen<'_>) -> String {
        let prefix = if screen.end { "END" } else { "CON" };
        format!("{prefix} {}", screen.text)
    }
}

impl ReceivesSms for AfricasTalking {
    /// The inbound SMS callback (§1.3), stored as its form.
    fn parse_sms(request: &WebhookRequest<'_>) -> Parsed<InboundSms> {
        one_in_form(request, parse_sms)
    }
}

/// The form fields of a USSD callback. All optional here so that a missing one gets a
/// clear error instead of a generic rejection.
#[derive(Debug, Default, Deserialize)]
pub struct UssdForm {
    #[serde(rename = "sessionId")]
    pub session_id: Option<String>,
    #[serde(rename = "serviceCode")]
    pub service_code: Option<String>,
    #[serde(rename = "phoneNumber")]
    pub phone_number: Option<String>,
    #[serde(rename = "networkCode")]
    pub network_code: Option<String>,
    pub text: Option<String>,
}

/// Longest accepted history; a real session is a few dozen characters.
const MAX_TEXT: usize = 2_000;

/// A field that must be present and not blank.
fn required<'a>(form: &'a [(String, String)], name: &'static str) -> Result<&'a str, InboundError> {
    field(form, name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(InboundError::Missing(name))
}

/// `2017-05-03T06:04:45Z` (RFC 3339) or `2017-05-03 06:04:45` (UTC).
fn parse_date(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// The inbound SMS callback (§1.3). `id` and `from` are required; `text` may be empty.
///
/// A `date` that cannot be read is dropped rather than refused: refusing would make AT retry
/// for ten minutes and then lose the message.
fn parse_sms(form: &[(String, String)]) -> Result<InboundSms, InboundError> {
    let id = required(form, "id")?;
    let from = required(form, "from")?;
    let received_at = match field(form, "date").filter(|d| !d.trim().is_empty()) {
        Some(raw) => {
            let parsed = parse_date(raw);
            if parsed.is_none() {
                tracing::warn!(
                    provider = AfricasTalking::NAME,
                    id,
                    from = %mask(from),
                    date = raw,
                    "unreadable date in inbound SMS"
                );
            }
            parsed
        }
        None => None,
    };
    Ok(InboundSms {
        provider: AfricasTalking::NAME,
        provider_msg_id: id.to_owned(),
        from: from.to_owned(),
        to: field(form, "to").unwrap_or_default().trim().to_owned(),
        text: field(form, "text").unwrap_or_default().to_owned(),
        received_at,
    })
}

impl ReportsDelivery for AfricasTalking {
    /// The delivery report callback (§1.5), stored as its form.
    fn parse_delivery(request: &WebhookRequest<'_>) -> Parsed<DeliveryReport> {
        one_in_form(request, parse_delivery)
    }
}

/// The delivery report callback (§1.5).
fn parse_delivery(form: &[(String, String)]) -> Result<DeliveryReport, InboundError> {
    let id = required(form, "id")?;
    let status = required(form, "status")?;
    let state = match status {
        "Sent" | "Submitted" | "Buffered" => DeliveryState::Sent,
        "Success" => DeliveryState::Delivered,
        "Rejected" | "Failed" | "Expired" => DeliveryState::Failed,
        other => {
            return Err(InboundError::Invalid {
                field: "status",
                message: format!(
                    "unknown status {:?}",
                    other.chars().take(40).collect::<String>()
                ),
            })
        }
    };
    let reason = field(form, "failureReason")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    Ok(DeliveryReport {
        provider: AfricasTalking::NAME,
        message: MessageRef::Provider(id.to_owned()),
        state,
        provider_status: status.to_owned(),
        reason,
    })
}

pub const DEFAULT_BASE_URL: &str = "https://api.africastalking.com";

/// What the outbound client needs (§1.4).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The app username (`sandbox` in the sandbox).
    pub username: String,
    pub api_key: SecretString,
    /// Sender ID or short code; `None` on shared short codes.
    pub sender: Option<String>,
    /// [`DEFAULT_BASE_URL`], the sandbox host, or a test server.
    pub base_url: String,
}

/// Sends SMS through `POST /version1/messaging`.
pub type Client = HttpClient<Settings>;

#[derive(Debug, Deserialize)]
struct SendAnswer {
    #[serde(rename = "SMSMessageData")]
    data: SmsMessageData,
}

#[derive(Debug, Deserialize)]
struct SmsMessageData {
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "Recipients", default)]
    recipients: Vec<Recipient>,
}

#[derive(Debug, Deserialize)]
struct Recipient {
    #[serde(rename = "statusCode", default)]
    status_code: Option<serde_json::Value>,
    #[serde(default)]
    status: String,
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
}

impl Recipient {
    /// `statusCode` is a number; accept a numeric string too.
    fn code(&self) -> Option<i64> {
        match self.status_code.as_ref()? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl SendSms for Client {
    async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
        let url = format!(
            "{}/version1/messaging",
            self.settings.base_url.trim_end_matches('/')
        );
        let mut form: Vec<(&str, &str)> = vec![
            ("username", self.settings.username.as_str()),
            ("to", msg.to.as_str()),
            ("message", msg.text.as_str()),
        ];
        if let Some(sender) = self.settings.sender.as_deref().filter(|s| !s.is_empty()) {
            form.push(("from", sender));
        }
        form.push(("bulkSMSMode", "1"));
        let answer = send_request(
            self.http
                .post(url)
                .header("apiKey", self.settings.api_key.expose_secret())
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form),
        )
        .await?;
        if !answer.status.is_success() {
            tracing::warn!(provider = AfricasTalking::NAME, outbox_id = msg.id, to = %msg.to, status = %answer.status, "send refused");
            return Err(answer.refusal());
        }
        let result = interpret(&answer.body);
        log_sent::<AfricasTalking>(msg, &result);
        result
    }
}

/// Reads a 2xx answer: accepted only if a recipient has statusCode 100 (Processed), 101 (Sent)
/// or 102 (Queued).
fn interpret(body: &str) -> Result<Accepted, SendError> {
    let answer: SendAnswer = serde_json::from_str(body).map_err(|e| {
        // The message may have gone out: retrying could send it twice.
        SendError::Fatal(format!(
            "unreadable answer ({e}): {}",
            body.chars().take(200).collect::<String>()
        ))
    })?;
    let recipients = answer.data.recipients;
    if let Some(ok) = recipients
        .iter()
        .find(|r| matches!(r.code(), Some(100..=102)))
    {
        return Ok(Accepted {
            provider_msg_id: ok
                .message_id
                .as_deref()
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != "None")
                .map(str::to_owned),
        });
    }
    let Some(first) = recipients.first() else {
        let text = if answer.data.message.is_empty() {
            "no recipients".to_owned()
        } else {
            answer.data.message
        };
        return Err(SendError::Fatal(text));
    };
    let code = first.code();
    let detail = format!(
        "statusCode {}: {}",
        code.map_or_else(|| "?".to_owned(), |c| c.to_string()),
        first.status
    );
    match code {
        Some(500 | 501) => Err(SendError::Retryable(detail)),
        _ => Err(SendError::Fatal(detail)),
    }
}

#[cfg(test)]
mod tests;
