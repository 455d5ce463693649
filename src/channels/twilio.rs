//! Twilio (aggregators.md §2): the `X-Twilio-Signature` check, inbound SMS and status
//! callbacks, TwiML answers and the Messages API client.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use secrecy::{ExposeSecret, SecretString};

use super::{
    form_field as field, log_sent, one_in_form, require_setting, send_request, status_error,
    webhook_url, Accepted, Answer, Carrier, DeliveryReport, DeliveryState, HttpClient,
    InboundError, InboundSms, Kind, MessageRef, MissingSetting, OutboundSms, Parsed, Protection,
    Provider, ReceivesSms, Refused, Registered, ReportsDelivery, SendError, SendSms,
    WebhookRequest, Webhooks,
};
use crate::config::{secret, Config};

/// Twilio: signs every webhook; inbound SMS and status callbacks are forms.
pub struct Twilio;

impl Provider for Twilio {
    const NAME: &'static str = "twilio";
    const TITLE: &'static str = "Twilio";
    const PROTECTION: Protection =
        Protection::Signature("`X-Twilio-Signature` (auth token, `HASHAR_PUBLIC_URL` + path)");
    type Client = Client;

    fn client(config: &Config, http: reqwest::Client) -> Result<Client, MissingSetting> {
        let options = Twilio::options(config);
        let settings = Settings {
            account_sid: require_setting::<Twilio, _>(
                &options.twilio_account_sid,
                "HASHAR_TWILIO_ACCOUNT_SID",
            )?,
            auth_token: require_setting::<Twilio, _>(
                &options.twilio_auth_token,
                "HASHAR_TWILIO_AUTH_TOKEN",
            )?,
            from: require_setting::<Twilio, _>(&options.twilio_from, "HASHAR_TWILIO_FROM")?,
            base_url: options.twilio_base_url.clone(),
            status_callback: webhook_url::<Twilio>(config, Kind::Delivery),
        };
        Ok(Client::new(settings, http))
    }

    fn webhooks<W: Webhooks<Self>>(w: W) -> W {
        w.sms("sms", Carrier::Form)
            .delivery("status", Carrier::Form)
    }

    /// Without a valid `X-Twilio-Signature` over `HASHAR_PUBLIC_URL` + the path and query,
    /// and the form, nothing is stored.
    fn check_signature(config: &Config, request: &WebhookRequest<'_>) -> Result<(), Refused> {
        let Some(token) = Twilio::options(config)
            .twilio_auth_token
            .as_ref()
            .map(ExposeSecret::expose_secret)
        else {
            return Err(Refused("HASHAR_TWILIO_AUTH_TOKEN is not set"));
        };
        let signature = request
            .headers
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut url = format!(
            "{}{}",
            config.public_url.trim_end_matches('/'),
            request.path
        );
        if let Some(q) = request.query {
            url.push('?');
            url.push_str(q);
        }
        if verify_signature(token, &url, &request.form(), signature) {
            Ok(())
        } else {
            Err(Refused("bad signature"))
        }
    }
}

/// Twilio's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Options {
    #[arg(long, env = "HASHAR_TWILIO_ACCOUNT_SID")]
    pub twilio_account_sid: Option<String>,
    /// Also the key Twilio signs its webhooks with.
    #[arg(long, env = "HASHAR_TWILIO_AUTH_TOKEN", value_parser = secret, hide_env_values = true)]
    pub twilio_auth_token: Option<SecretString>,
    #[arg(long, env = "HASHAR_TWILIO_FROM")]
    pub twilio_from: Option<String>,
    #[arg(
        long,
        env = "HASHAR_TWILIO_BASE_URL",
        default_value = DEFAULT_BASE_URL
    )]
    pub twilio_base_url: String,
}

type HmacSha1 = Hmac<Sha1>;

/// The string Twilio signs (§2.2): the URL, then for each parameter name in byte order its
/// values in byte order, each distinct `name`+`value` pair once.
fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    // Tuple order = names byte-wise, then values byte-wise. Exact duplicates are dropped,
    // as the official SDKs do (the `IK+Dwps…` vector depends on it).
    pairs.sort_unstable();
    pairs.dedup();
    let mut s = String::with_capacity(
        url.len() + pairs.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>(),
    );
    s.push_str(url);
    for (n, v) in pairs {
        s.push_str(n);
        s.push_str(v);
    }
    s
}

fn mac(auth_token: &str, url: &str, params: &[(String, String)]) -> HmacSha1 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha1 as Mac>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(signed_string(url, params).as_bytes());
    mac
}

/// `X-Twilio-Signature` for a form request to `url` (§2.2): base64 of HMAC-SHA1 keyed with the
/// auth token. `params` are the POST parameters (empty for GET and JSON requests).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let bytes = mac(auth_token, url, params).finalize().into_bytes();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Checks `X-Twilio-Signature` in constant time. The signature may have been computed on the
/// URL as given, on the URL with the scheme's default port added, or with an explicit port
/// removed (§2.2 point 4). An empty or non-base64 header is refused.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    header: &str,
) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    if expected.is_empty() || auth_token.is_empty() {
        return false;
    }
    let mut ok = false;
    for candidate in url_variants(url) {
        // `verify_slice` compares in constant time; every candidate is checked.
        ok |= mac(auth_token, &candidate, params)
            .verify_slice(&expected)
            .is_ok();
    }
    ok
}

/// The URL as given, plus the same URL with the port toggled: the default port added when
/// there is none, or the explicit port removed.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let scheme = url[..scheme_end].to_ascii_lowercase();
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let authority = &url[authority_start..authority_end];
    // Skip user info; the host may be an IPv6 literal in brackets.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_colon = match host_port.rfind(':') {
        Some(i) if !host_port[i..].contains(']') => Some(i),
        _ => None,
    };
    let (before, after) = (&url[..authority_start + host_start], &url[authority_end..]);
    match port_colon {
        Some(i) => {
            let port = &host_port[i + 1..];
            if port.chars().all(|c| c.is_ascii_digit()) {
                out.push(format!("{before}{}{after}", &host_port[..i]));
            }
        }
        None => {
            let default = match scheme.as_str() {
                "https" => Some("443"),
                "http" => Some("80"),
                _ => None,
            };
            if let Some(port) = default {
                out.push(format!("{before}{host_port}:{port}{after}"));
            }
        }
    }
    out
}

/// The first of `names` that is present and not blank.
fn first_of<'a>(form: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .filter_map(|n| field(form, n))
        .map(str::trim)
        .find(|v| !v.is_empty())
}

impl ReceivesSms for Twilio {
    /// The inbound SMS webhook (§2.1), stored as its form.
    fn parse_sms(request: &WebhookRequest<'_>) -> Parsed<InboundSms> {
        one_in_form(request, parse_sms)
    }

    const ANSWER: Answer = Answer {
        content_type: "text/xml; charset=utf-8",
        body: twiml_empty(),
    };
}

impl ReportsDelivery for Twilio {
    /// The status callback (§2.4), stored as its form.
    fn parse_delivery(request: &WebhookRequest<'_>) -> Parsed<DeliveryReport> {
        one_in_form(request, parse_status)
    }
}

/// An inbound SMS (§2.1). `MessageSid` (or `SmsSid`) and `From` are required.
fn parse_sms(form: &[(String, String)]) -> Result<InboundSms, InboundError> {
    let sid = first_of(form, &["MessageSid", "SmsSid", "SmsMessageSid"])
        .ok_or(InboundError::Missing("MessageSid"))?;
    let from = first_of(form, &["From"]).ok_or(InboundError::Missing("From"))?;
    Ok(InboundSms {
        provider: Twilio::NAME,
        provider_msg_id: sid.to_owned(),
        from: from.to_owned(),
        to: field(form, "To").unwrap_or_default().trim().to_owned(),
        text: field(form, "Body").unwrap_or_default().to_owned(),
        // Twilio sends no timestamp with the webhook.
        received_at: None,
    })
}

/// A status callback (§2.4).
fn parse_status(form: &[(String, String)]) -> Result<DeliveryReport, InboundError> {
    let sid =
        first_of(form, &["MessageSid", "SmsSid"]).ok_or(InboundError::Missing("MessageSid"))?;
    let status = first_of(form, &["MessageStatus", "SmsStatus"])
        .ok_or(InboundError::Missing("MessageStatus"))?;
    let state = match status {
        "queued" | "accepted" | "scheduled" | "sending" | "sent" => DeliveryState::Sent,
        "delivered" | "read" => DeliveryState::Delivered,
        "undelivered" | "failed" | "canceled" => DeliveryState::Failed,
        other => {
            return Err(InboundError::Invalid {
                field: "MessageStatus",
                message: format!(
                    "unknown status {:?}",
                    other.chars().take(40).collect::<String>()
                ),
            })
        }
    };
    Ok(DeliveryReport {
        provider: Twilio::NAME,
        message: MessageRef::Provider(sid.to_owned()),
        state,
        provider_status: status.to_owned(),
        reason: first_of(form, &["ErrorCode"]).map(str::to_owned),
    })
}

/// TwiML for "no reply".
pub const fn twiml_empty() -> &'static str {
    r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
}

/// TwiML that replies with one SMS.
pub fn twiml_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 80);
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>"#);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out.push_str("</Message></Response>");
    out
}

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// What the outbound client needs (§2.3).
#[derive(Debug, Clone)]
pub struct Settings {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// The sending number (E.164) or alphanumeric sender.
    pub from: String,
    /// [`DEFAULT_BASE_URL`] or a test server.
    pub base_url: String,
    /// Our public status callback URL, sent as `StatusCallback`.
    pub status_callback: Option<String>,
}

/// Sends SMS through the Messages API.
pub type Client = HttpClient<Settings>;

#[derive(Debug, Deserialize)]
struct MessageAnswer {
    sid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorAnswer {
    code: Option<i64>,
    message: Option<String>,
}

impl SendSms for Client {
    async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.account_sid
        );
        let mut form: Vec<(&str, &str)> = vec![
            ("To", msg.to.as_str()),
            ("From", self.settings.from.as_str()),
            ("Body", msg.text.as_str()),
        ];
        if let Some(cb) = self
            .settings
            .status_callback
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            form.push(("StatusCallback", cb));
        }
        let answer = send_request(
            self.http
                .post(url)
                .basic_auth(
                    &self.settings.account_sid,
                    Some(self.settings.auth_token.expose_secret()),
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .form(&form),
        )
        .await?;
        let result =
            interpret(answer.status, &answer.body).map_err(|e| e.retry_after(answer.retry_after));
        log_sent::<Twilio>(msg, &result);
        result
    }
}

fn interpret(status: reqwest::StatusCode, body: &str) -> Result<Accepted, SendError> {
    if status.is_success() {
        return match serde_json::from_str::<MessageAnswer>(body) {
            Ok(MessageAnswer { sid: Some(sid) }) if !sid.trim().is_empty() => Ok(Accepted {
                provider_msg_id: Some(sid),
            }),
            // The message may exist: retrying could send it twice.
            _ => Err(SendError::Fatal(format!(
                "HTTP {status} without a message sid: {}",
                body.chars().take(200).collect::<String>()
            ))),
        };
    }
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        if let Ok(ErrorAnswer {
            code: Some(code),
            message,
        }) = serde_json::from_str::<ErrorAnswer>(body)
        {
            let message: String = message.unwrap_or_default().chars().take(300).collect();
            return Err(SendError::Fatal(format!(
                "HTTP {status}: Twilio error {code}: {message}"
            )));
        }
    }
    Err(status_error(status, body))
}

#[cfg(test)]
mod tests;
