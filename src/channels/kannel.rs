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
    read_capped, status_error, transport_error, Accepted, DeliveryReport, DeliveryState,
    InboundError, InboundSms, MessageRef, OutboundSms, SendError,
};
use crate::domain::{phone::mask, Encoding};

pub const PROVIDER: &str = "kannel";

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
                tracing::warn!(provider = PROVIDER, charset = %charset, "text is not valid UTF-8");
                s
            }
        },
    }
}

// ---------------------------------------------------------------------------------------
// Inbound SMS (get-url)

/// Parses the raw query string of the get-url callback (see the module docs for the
/// parameters). `id` and `from` are required; `time` is unix seconds, dropped when unreadable.
pub fn parse_sms_query(raw_query: &str) -> Result<InboundSms, InboundError> {
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
            tracing::warn!(provider = PROVIDER, time = %t, "unreadable time, ignored");
        }
        parsed
    });
    Ok(InboundSms {
        provider: PROVIDER,
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
pub fn parse_delivery_query(raw_query: &str) -> Result<DeliveryReport, InboundError> {
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
        provider: PROVIDER,
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

pub struct Client {
    settings: Settings,
    http: reqwest::Client,
}

/// All DLR kinds: delivered, undelivered, buffered, SMSC ack, SMSC nack.
const DLR_MASK: &str = "31";

impl Client {
    pub fn new(settings: Settings, http: reqwest::Client) -> Client {
        Client { settings, http }
    }

    /// The dlr-url for one message. Kannel fills in the `%` escapes; they reach it literally
    /// because the whole URL is one (percent-encoded) query value.
    fn dlr_url(&self, id: i64) -> Option<String> {
        self.settings.dlr_url_base.as_ref().map(|base| {
            let base = base.expose_secret();
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}msg={id}&type=%d&reply=%A&smsc=%i&ts=%T")
        })
    }

    pub async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
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
        tracing::debug!(
            provider = PROVIDER,
            id = msg.id,
            to = %mask(to),
            encoding = ?msg.encoding,
            segments = msg.segments,
            "sending"
        );
        let response = self
            .http
            .get(&s.sendsms_url)
            .query(&query)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = super::retry_after(status, response.headers(), chrono::Utc::now());
        let body = read_capped(response).await?;
        if !status.is_success() {
            return Err(status_error(status, &body).retry_after(retry_after));
        }
        let answer = body.trim();
        if answer.starts_with("0:") || answer.starts_with("3:") {
            Ok(Accepted {
                provider_msg_id: None,
            })
        } else {
            let snippet: String = answer.chars().take(300).collect();
            Err(SendError::Fatal(format!("HTTP {status}: {snippet}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Phone;
    use std::time::Duration;
    use wiremock::matchers::{method, path, query_param, query_param_is_missing};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn sms(id: &str, from: &str, to: &str, text: &str, at: Option<i64>) -> InboundSms {
        InboundSms {
            provider: PROVIDER,
            provider_msg_id: id.into(),
            from: from.into(),
            to: to.into(),
            text: text.into(),
            received_at: at.and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)),
        }
    }

    /// Percent-encodes raw bytes the way Kannel does for a raw `%a`.
    fn encode_bytes(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn inbound_sms_cases() {
        let id = "14090b6c-f0f7-431e-975b-b0d4ed4bdf87";
        let utf16: Vec<u8> = "Салом ҳҷ"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        let utf16_query = format!(
            "id={id}&from=992901234567&to=1234&text={}&time=1795849072&coding=2&charset=UTF-16BE&smsc=FAKE",
            encode_bytes(&utf16)
        );
        // `Р` is U+0420: its second byte is a space, which Kannel may write as `+`.
        let utf16_plus_query =
            "id=x&from=992901234567&text=%04+%04%40&coding=2&charset=UTF-16BE".to_owned();
        let cases: Vec<(&str, String, Result<InboundSms, InboundError>)> = vec![
            (
                "ascii, + as space",
                format!("id={id}&from=992901234567&to=1234&text=hello+world&time=1795849072&coding=0&charset=UTF-8&smsc=FAKE"),
                Ok(sms(id, "992901234567", "1234", "hello world", Some(1795849072))),
            ),
            (
                "UTF-8 Cyrillic (mo-recode)",
                format!("id={id}&from=992901234567&to=1234&text=%D0%A1%D0%B0%D0%BB%D0%BE%D0%BC+%D2%B3%D2%B7&time=1795849072&coding=0&charset=UTF-8&smsc=FAKE"),
                Ok(sms(id, "992901234567", "1234", "Салом ҳҷ", Some(1795849072))),
            ),
            (
                "UTF-16BE raw (no mo-recode)",
                utf16_query,
                Ok(sms(id, "992901234567", "1234", "Салом ҳҷ", Some(1795849072))),
            ),
            (
                "UTF-16BE with + for a 0x20 byte",
                utf16_plus_query,
                Ok(sms("x", "992901234567", "", "Рр", None)),
            ),
            (
                "escaped specials",
                "id=a&from=%2B992901234567&to=1234&text=a*b%23c%2Bd%26e%3Df%25g+%C3%BC".into(),
                Ok(sms("a", "+992901234567", "1234", "a*b#c+d&e=f%g ü", None)),
            ),
            (
                "empty text, unreadable time",
                "id=a&from=992901234567&to=1234&text=&time=2026-11-28+06%3A57%3A52".into(),
                Ok(sms("a", "992901234567", "1234", "", None)),
            ),
            (
                "leading ? and stray %",
                "?id=a&from=992901234567&text=100%+sure".into(),
                Ok(sms("a", "992901234567", "", "100% sure", None)),
            ),
            (
                "missing id",
                "from=992901234567&to=1234&text=hi".into(),
                Err(InboundError::Missing("id")),
            ),
            (
                "empty id",
                "id=&from=992901234567&to=1234&text=hi".into(),
                Err(InboundError::Missing("id")),
            ),
            (
                "missing from",
                format!("id={id}&to=1234&text=hi"),
                Err(InboundError::Missing("from")),
            ),
        ];
        for (name, query, want) in cases {
            assert_eq!(parse_sms_query(&query), want, "{name}");
        }
        let long = format!("id=a&from=1&text={}", "a".repeat(MAX_TEXT_BYTES + 1));
        assert!(matches!(
            parse_sms_query(&long),
            Err(InboundError::Invalid { field: "text", .. })
        ));
    }

    #[test]
    fn odd_utf16_is_replaced_not_refused() {
        let got = parse_sms_query("id=a&from=1&text=%04%21%04&coding=2&charset=UTF-16BE");
        assert_eq!(got.map(|s| s.text), Ok("С\u{FFFD}".to_owned()));
    }

    #[test]
    fn delivery_cases() {
        let report = |state, status: &str, reason: Option<&str>| DeliveryReport {
            provider: PROVIDER,
            message: MessageRef::Ours(42),
            state,
            provider_status: status.into(),
            reason: reason.map(Into::into),
        };
        let cases: Vec<(&str, &str, Result<DeliveryReport, InboundError>)> = vec![
            (
                "1 delivered",
                "msg=42&type=1&reply=&smsc=FAKE&ts=1795849086",
                Ok(report(DeliveryState::Delivered, "1", None)),
            ),
            (
                "2 not delivered",
                "msg=42&type=2&reply=NACK%2F0x0000000b%2FInvalid+Destination+Address&smsc=FAKE&ts=1795849086",
                Ok(report(
                    DeliveryState::Failed,
                    "2",
                    Some("NACK/0x0000000b/Invalid Destination Address"),
                )),
            ),
            (
                "4 buffered",
                "msg=42&type=4&reply=&smsc=FAKE",
                Ok(report(DeliveryState::Sent, "4", None)),
            ),
            (
                "8 SMSC ack, reply not kept",
                "msg=42&type=8&reply=ACK%2F&smsc=FAKE&ts=1795849086",
                Ok(report(DeliveryState::Sent, "8", None)),
            ),
            (
                "16 SMSC reject",
                "msg=42&type=16&reply=NACK%2F&smsc=FAKE",
                Ok(report(DeliveryState::Failed, "16", Some("NACK/"))),
            ),
            (
                "16 without reply",
                "msg=42&type=16",
                Ok(report(DeliveryState::Failed, "16", None)),
            ),
            ("missing msg", "type=1", Err(InboundError::Missing("msg"))),
            ("missing type", "msg=42", Err(InboundError::Missing("type"))),
        ];
        for (name, query, want) in cases {
            assert_eq!(parse_delivery_query(query), want, "{name}");
        }
        for bad in ["msg=abc&type=1", "msg=42&type=32", "msg=42&type=x"] {
            assert!(
                matches!(parse_delivery_query(bad), Err(InboundError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    // ---- outbound ----

    fn outbound(text: &str, encoding: Encoding) -> OutboundSms {
        OutboundSms {
            id: 42,
            to: Phone::parse("+79161234567").expect("test number"),
            text: text.into(),
            encoding,
            segments: 1,
        }
    }

    fn client(server: &MockServer, sender: Option<&str>, dlr: bool) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .expect("http client");
        Client::new(
            Settings {
                sendsms_url: format!("{}/cgi-bin/sendsms", server.uri()),
                username: "tester".into(),
                password: "foo&bar".into(),
                sender: sender.map(Into::into),
                dlr_url_base: dlr.then(|| "https://gw.example/webhooks/kannel/delivery".into()),
            },
            http,
        )
    }

    const DLR_URL: &str =
        "https://gw.example/webhooks/kannel/delivery?msg=42&type=%d&reply=%A&smsc=%i&ts=%T";

    /// A port on 127.0.0.1 that nothing listens on (bound, then closed).
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_connection_error_names_no_password_secret_number_or_text() {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let client = Client::new(
            Settings {
                sendsms_url: format!("http://127.0.0.1:{}/cgi-bin/sendsms", closed_port()),
                username: "tester".into(),
                password: "kannel-password-123".into(),
                sender: Some("4274".into()),
                dlr_url_base: Some(
                    "https://gw.example/webhooks/kannel/delivery?secret=webhook-secret-456".into(),
                ),
            },
            http,
        );
        let got = client
            .send(&outbound("pledge 500 for the school", Encoding::Gsm7))
            .await;
        let Err(SendError::Retryable(message)) = &got else {
            panic!("expected a retryable error, got {got:?}");
        };
        let shown = format!("{} {:?}", got.clone().expect_err("error"), got);
        for leak in [
            "kannel-password-123",
            "webhook-secret-456",
            "79161234567",
            "pledge",
            "school",
            "sendsms",
        ] {
            assert!(!shown.contains(leak), "{leak:?} in {shown}");
        }
        // still says what went wrong
        assert!(message.contains("transport"), "{message}");
        assert!(message.to_lowercase().contains("connect"), "{message}");
    }

    #[tokio::test]
    async fn a_huge_answer_is_read_only_up_to_the_cap() {
        let server = MockServer::start().await;
        let mut body = String::from("0: Accepted for delivery ");
        body.push_str(&"x".repeat(8 * 1024 * 1024));
        Mock::given(method("GET"))
            .and(path("/cgi-bin/sendsms"))
            .respond_with(ResponseTemplate::new(202).set_body_string(body))
            .mount(&server)
            .await;
        let got = client(&server, None, false)
            .send(&outbound("hi", Encoding::Gsm7))
            .await;
        assert_eq!(
            got,
            Ok(Accepted {
                provider_msg_id: None
            })
        );
        // a refusal with a huge body keeps only a snippet
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cgi-bin/sendsms"))
            .respond_with(ResponseTemplate::new(400).set_body_string("y".repeat(8 * 1024 * 1024)))
            .mount(&server)
            .await;
        let got = client(&server, None, false)
            .send(&outbound("hi", Encoding::Gsm7))
            .await;
        let Err(SendError::Fatal(message)) = got else {
            panic!("expected a refusal, got {got:?}");
        };
        assert!(message.len() < 400, "{}", message.len());
    }

    #[tokio::test]
    async fn send_cyrillic_with_coding_2_and_literal_escapes() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cgi-bin/sendsms"))
            .and(query_param("username", "tester"))
            .and(query_param("password", "foo&bar"))
            .and(query_param("to", "+79161234567"))
            .and(query_param("text", "Салом ҳҷ 100% a+b"))
            .and(query_param("coding", "2"))
            .and(query_param("charset", "UTF-8"))
            .and(query_param("from", "1234"))
            .and(query_param("dlr-mask", "31"))
            .and(query_param("dlr-url", DLR_URL))
            .respond_with(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery"))
            .expect(1)
            .mount(&server)
            .await;
        let got = client(&server, Some("1234"), true)
            .send(&outbound("Салом ҳҷ 100% a+b", Encoding::Ucs2))
            .await;
        assert_eq!(
            got,
            Ok(Accepted {
                provider_msg_id: None
            })
        );
        // On the wire the escapes are `%25d`… so that Kannel, after decoding, sees `%d`.
        let requests = server.received_requests().await.unwrap_or_default();
        let raw = requests[0].url.query().unwrap_or_default().to_owned();
        assert!(raw.contains("type%3D%25d"), "{raw}");
        assert!(raw.contains("reply%3D%25A"), "{raw}");
        assert!(raw.contains("to=%2B79161234567"), "{raw}");
        assert!(raw.contains("coding=2"), "{raw}");
    }

    #[tokio::test]
    async fn send_gsm_without_sender_or_dlr() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cgi-bin/sendsms"))
            .and(query_param("text", "hello world"))
            .and(query_param("coding", "0"))
            .and(query_param_is_missing("from"))
            .and(query_param_is_missing("dlr-url"))
            .and(query_param_is_missing("dlr-mask"))
            .respond_with(
                ResponseTemplate::new(202).set_body_string("3: Queued for later delivery"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let got = client(&server, None, false)
            .send(&outbound("hello world", Encoding::Gsm7))
            .await;
        assert!(got.is_ok(), "{got:?}");
    }

    async fn send_answered(template: ResponseTemplate) -> Result<Accepted, SendError> {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/cgi-bin/sendsms"))
            .respond_with(template)
            .mount(&server)
            .await;
        client(&server, None, true)
            .send(&outbound("hello", Encoding::Gsm7))
            .await
    }

    #[tokio::test]
    async fn answers() {
        let forbidden = send_answered(
            ResponseTemplate::new(403).set_body_string("Authorization failed for sendsms"),
        )
        .await;
        assert!(
            matches!(&forbidden, Err(SendError::Fatal(m)) if m.contains("Authorization failed")),
            "{forbidden:?}"
        );
        let bad = send_answered(
            ResponseTemplate::new(400).set_body_string("Missing receiver number, rejected"),
        )
        .await;
        assert!(matches!(bad, Err(SendError::Fatal(_))), "{bad:?}");
        let odd = send_answered(ResponseTemplate::new(202).set_body_string("what?")).await;
        assert!(matches!(odd, Err(SendError::Fatal(_))), "{odd:?}");
        for code in [429, 500, 503] {
            let got = send_answered(ResponseTemplate::new(code).set_body_string("busy")).await;
            assert!(
                matches!(got, Err(SendError::Retryable(_))),
                "{code}: {got:?}"
            );
        }
        let slow = send_answered(
            ResponseTemplate::new(202)
                .set_body_string("0: Accepted for delivery")
                .set_delay(Duration::from_millis(1_000)),
        )
        .await;
        assert!(matches!(slow, Err(SendError::Retryable(_))), "{slow:?}");
    }
}
