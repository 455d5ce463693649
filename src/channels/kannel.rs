//! Kannel (aggregators.md §3): the smsbox get-url callback for inbound SMS, the dlr-url
//! callback for delivery reports, and the sendsms CGI client.
//!
//! Documented smsbox configuration (`sms-service` group):
//!
//! ```text
//! get-url = "http://HOST/webhooks/kannel/sms?id=%I&from=%p&to=%P&text=%a&time=%T&coding=%c&charset=%C&smsc=%i"
//! ```
//!
//! with `mo-recode = true` in the `smsbox` group so that UCS-2 texts arrive as UTF-8. Without
//! it a UCS-2 message arrives as raw UTF-16BE bytes (`coding=2&charset=UTF-16BE`), which is
//! decoded here as well. The dlr-url is set per message by [`Client::send`].

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use secrecy::{ExposeSecret, SecretString};

use super::{
    log_sending, one_in_query, require_setting, send_request, webhook_url_with_secret, Accepted,
    Carrier, DeliveryReport, DeliveryState, HttpClient, InboundError, InboundSms, Kind, MessageRef,
    MissingSetting, OutboundSms, Parsed, Provider, ReceivesSms, Registered, ReportsDelivery,
    SendError, SendSms, WebhookRequest, Webhooks,
};
use crate::{
    config::{secret, Config},
    domain::Encoding,
};

/// Kannel: the smsbox get-url and the dlr-url, each a GET with everything in the query; it
/// does not sign (our shared secret protects its webhooks).
pub struct Kannel;

impl Provider for Kannel {
    const NAME: &'static str = "kannel";
    const TITLE: &'static str = "Kannel";
    type Client = Client;

    fn client(config: &Config, http: reqwest::Client) -> Result<Client, MissingSetting> {
        let options = Kannel::options(config);
        let settings = Settings {
            sendsms_url: options.kannel_sendsms_url.clone(),
            username: options.kannel_username.clone(),
            password: require_setting::<Kannel, _>(
                &options.kannel_password,
                "HASHAR_KANNEL_PASSWORD",
            )?,
            // Kannel refuses a sendsms without `from` unless it has a global-sender.
            sender: Some(
                options
                    .kannel_sender
                    .clone()
                    .unwrap_or_else(|| config.sms_number.clone()),
            ),
            dlr_url_base: webhook_url_with_secret::<Kannel>(config, Kind::Delivery),
        };
        Ok(Client::new(settings, http))
    }

    fn webhooks<W: Webhooks<Self>>(w: W) -> W {
        w.sms("sms", Carrier::Query)
            .delivery("delivery", Carrier::Query)
    }
}

/// Kannel's settings.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Options {
    #[arg(
        long,
        env = "HASHAR_KANNEL_SENDSMS_URL",
        default_value = "http://127.0.0.1:13013/cgi-bin/sendsms"
    )]
    pub kannel_sendsms_url: String,
    #[arg(long, env = "HASHAR_KANNEL_USERNAME", default_value = "hashar")]
    pub kannel_username: String,
    #[arg(long, env = "HASHAR_KANNEL_PASSWORD", value_parser = secret, hide_env_values = true)]
    pub kannel_password: Option<SecretString>,
    /// `from` of what is sent; `HASHAR_SMS_NUMBER` when unset.
    #[arg(long, env = "HASHAR_KANNEL_SENDER")]
    pub kannel_sender: Option<String>,
}

/// Longest accepted inbound text in bytes; Kannel concatenates at most a few parts.
const MAX_TEXT_BYTES: usize = 8_000;

// ---------------------------------------------------------------------------------------
// Query decoding

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component to raw bytes: `+` is a
/// space, `%XX` a byte; a `%` not followed by two hex digits is kept as is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A raw query string split into names and raw (percent-decoded) values. The first
/// occurrence of a name wins.
struct Query(Vec<(String, Vec<u8>)>);

impl Query {
    fn parse(raw: &str) -> Query {
        let raw = raw.strip_prefix('?').unwrap_or(raw);
        Query(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (
                        String::from_utf8_lossy(&percent_decode(name)).into_owned(),
                        percent_decode(value),
                    )
                })
                .collect(),
        )
    }

    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// A value as (lossy) UTF-8, trimmed; `None` when absent or blank.
    fn text(&self, name: &str) -> Option<String> {
        self.bytes(name)
            .map(|b| String::from_utf8_lossy(b).trim().to_owned())
            .filter(|s| !s.is_empty())
    }
}

/// Decodes the message text according to `charset` (`%C`). UTF-16BE/UCS-2 is what smsbox
/// hands over for a UCS-2 message without `mo-recode`; Latin-1 for 8-bit ones. Invalid
/// sequences become U+FFFD rather than losing the message.
fn decode_text(raw: &[u8], charset: Option<&str>) -> String {
    let charset = charset.unwrap_or("UTF-8").to_ascii_uppercase();
    match charset.as_str() {
        "UTF-16BE" | "UTF-16" | "UCS-2" | "UCS-2BE" | "UCS2" => {
            let units: Vec<u16> = raw
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    // An odd trailing byte cannot be a character.
                    _ => 0xFFFD,
                })
                .collect();
            String::from_utf16_lossy(&units)
        }
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" => raw.iter().map(|&b| char::from(b)).collect(),
        _ => match String::from_utf8_lossy(raw) {
            Cow::Borrowed(s) => s.to_owned(),
            Cow::Owned(s) => {
                tracing::warn!(provider = Kannel::NAME, charset = %charset, "text is not valid UTF-8");
                s
            }
        },
    }
}

// ---------------------------------------------------------------------------------------
// Inbound SMS (get-url)

impl ReceivesSms for Kannel {
    /// The get-url callback, stored as its query string (without our shared secret).
    fn parse_sms(request: &WebhookRequest<'_>) -> Parsed<InboundSms> {
        one_in_query(request, parse_sms_query)
    }
}

impl ReportsDelivery for Kannel {
    /// The dlr-url callback, stored as its query string (without our shared secret).
    fn parse_delivery(request: &WebhookRequest<'_>) -> Parsed<DeliveryReport> {
        one_in_query(request, parse_delivery_query)
    }
}

/// Parses the raw query string of the get-url callback (see the module docs for the
/// parameters). `id` and `from` are required; `time` is unix seconds, dropped when unreadable.
fn parse_sms_query(raw_query: &str) -> Result<InboundSms, InboundError> {
    let q = Query::parse(raw_query);
    let provider_msg_id = q.text("id").ok_or(InboundError::Missing("id"))?;
    let from = q.text("from").ok_or(InboundError::Missing("from"))?;
    let to = q.text("to").unwrap_or_default();
    let raw_text = q.bytes("text").unwrap_or_default();
    if raw_text.len() > MAX_TEXT_BYTES {
        return Err(InboundError::Invalid {
            field: "text",
            message: format!("longer than {MAX_TEXT_BYTES} bytes"),
        });
    }
    let text = decode_text(raw_text, q.text("charset").as_deref());
    let received_at = q.text("time").and_then(|t| {
        let parsed = t
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
        if parsed.is_none() {
            tracing::warn!(provider = Kannel::NAME, time = %t, "unreadable time, ignored");
        }
        parsed
    });
    Ok(InboundSms {
        provider: Kannel::NAME,
        provider_msg_id,
        from,
        to,
        text,
        received_at,
    })
}

// ---------------------------------------------------------------------------------------
// Delivery reports (dlr-url)

/// Parses the raw query string of the dlr-url callback:
/// `msg=<our outbox id>&type=%d&reply=%A&smsc=%i&ts=%T`.
fn parse_delivery_query(raw_query: &str) -> Result<DeliveryReport, InboundError> {
    let q = Query::parse(raw_query);
    let msg = q.text("msg").ok_or(InboundError::Missing("msg"))?;
    let id = msg.parse::<i64>().map_err(|_| InboundError::Invalid {
        field: "msg",
        message: format!("not an outbox id: {msg:?}"),
    })?;
    let kind = q.text("type").ok_or(InboundError::Missing("type"))?;
    let state = match kind.as_str() {
        "1" => DeliveryState::Delivered,
        "2" | "16" => DeliveryState::Failed,
        "4" | "8" => DeliveryState::Sent,
        other => {
            return Err(InboundError::Invalid {
                field: "type",
                message: format!("unknown DLR type {other:?}"),
            })
        }
    };
    let reason = match state {
        DeliveryState::Failed => q.text("reply"),
        _ => None,
    };
    Ok(DeliveryReport {
        provider: Kannel::NAME,
        message: MessageRef::Ours(id),
        state,
        provider_status: kind,
        reason,
    })
}

// ---------------------------------------------------------------------------------------
// Sending (sendsms CGI, §3.2)

#[derive(Debug, Clone)]
pub struct Settings {
    /// `http://127.0.0.1:13013/cgi-bin/sendsms`
    pub sendsms_url: String,
    pub username: String,
    pub password: SecretString,
    /// `from`; Kannel's `faked-sender`/`global-sender` otherwise.
    pub sender: Option<String>,
    /// `{public_url}/webhooks/kannel/delivery`; no delivery reports are asked for without it.
    pub dlr_url_base: Option<SecretString>,
}

/// Sends SMS through the sendsms CGI.
pub type Client = HttpClient<Settings>;

/// All DLR kinds: delivered, undelivered, buffered, SMSC ack, SMSC nack.
const DLR_MASK: &str = "31";

impl Client {
    /// The dlr-url for one message. Kannel fills in the `%` escapes; they reach it literally
    /// because the whole URL is one (percent-encoded) query value.
    fn dlr_url(&self, id: i64) -> Option<String> {
        self.settings.dlr_url_base.as_ref().map(|base| {
            let base = base.expose_secret();
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}msg={id}&type=%d&reply=%A&smsc=%i&ts=%T")
        })
    }
}

impl SendSms for Client {
    async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
        let s = &self.settings;
        // E.164 with the `+`: Kannel's SMPP driver strips it and sets TON international;
        // without it the number would go out as TON national.
        let to = msg.to.as_str();
        let coding = match msg.encoding {
            Encoding::Ucs2 => "2",
            Encoding::Gsm7 => "0",
        };
        let mut query: Vec<(&str, Cow<'_, str>)> = vec![
            ("username", s.username.as_str().into()),
            ("password", s.password.expose_secret().into()),
            ("to", to.into()),
            ("text", msg.text.as_str().into()),
            ("coding", coding.into()),
            ("charset", "UTF-8".into()),
        ];
        if let Some(from) = s.sender.as_deref() {
            query.push(("from", from.into()));
        }
        if let Some(dlr_url) = self.dlr_url(msg.id) {
            query.push(("dlr-mask", DLR_MASK.into()));
            query.push(("dlr-url", dlr_url.into()));
        }
        log_sending::<Kannel>(msg);
        let answer = send_request(self.http.get(&s.sendsms_url).query(&query))
            .await?
            .success()?;
        let text = answer.body.trim();
        if text.starts_with("0:") || text.starts_with("3:") {
            Ok(Accepted {
                provider_msg_id: None,
            })
        } else {
            let snippet: String = text.chars().take(300).collect();
            Err(SendError::Fatal(format!(
                "HTTP {}: {snippet}",
                answer.status
            )))
        }
    }
}

#[cfg(test)]
mod tests;
