//! Africa's Talking (aggregators.md §1): the USSD callback, inbound SMS, delivery reports
//! and the outbound SMS client.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use secrecy::{ExposeSecret, SecretString};

use super::ussd::{Hop, Screen};
use super::{
    read_capped, status_error, transport_error, Accepted, DeliveryReport, DeliveryState,
    InboundError, InboundSms, MessageRef, OutboundSms, SendError,
};
use crate::domain::{phone::mask, Phone};

pub const PROVIDER: &str = "africastalking";

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

pub fn parse_ussd(form: UssdForm) -> Result<Hop, InboundError> {
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
        provider: PROVIDER,
        session_id,
        phone,
        text,
    })
}

/// `CON <screen>` to wait for input, `END <screen>` to close the session.
pub fn render_ussd(screen: &Screen<'_>) -> String {
    let prefix = if screen.end { "END" } else { "CON" };
    format!("{prefix} {}", screen.text)
}

/// The first value of a form field, if any.
fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

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
pub fn parse_sms(form: &[(String, String)]) -> Result<InboundSms, InboundError> {
    let id = required(form, "id")?;
    let from = required(form, "from")?;
    let received_at = match field(form, "date").filter(|d| !d.trim().is_empty()) {
        Some(raw) => {
            let parsed = parse_date(raw);
            if parsed.is_none() {
                tracing::warn!(
                    provider = PROVIDER,
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
        provider: PROVIDER,
        provider_msg_id: id.to_owned(),
        from: from.to_owned(),
        to: field(form, "to").unwrap_or_default().trim().to_owned(),
        text: field(form, "text").unwrap_or_default().to_owned(),
        received_at,
    })
}

/// The delivery report callback (§1.5).
pub fn parse_delivery(form: &[(String, String)]) -> Result<DeliveryReport, InboundError> {
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
        provider: PROVIDER,
        message: MessageRef::Provider(id.to_owned()),
        state,
        provider_status: status.to_owned(),
        reason,
    })
}

pub const DEFAULT_BASE_URL: &str = "https://api.africastalking.com";

/// What the outbound client needs (§1.4).
#[derive(Clone)]
pub struct Settings {
    /// The app username (`sandbox` in the sandbox).
    pub username: String,
    pub api_key: SecretString,
    /// Sender ID or short code; `None` on shared short codes.
    pub sender: Option<String>,
    /// [`DEFAULT_BASE_URL`], the sandbox host, or a test server.
    pub base_url: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("username", &self.username)
            .field("api_key", &"<redacted>")
            .field("sender", &self.sender)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Sends SMS through `POST /version1/messaging`.
#[derive(Debug, Clone)]
pub struct Client {
    settings: Settings,
    http: reqwest::Client,
}

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

impl Client {
    pub fn new(settings: Settings, http: reqwest::Client) -> Client {
        Client { settings, http }
    }

    pub async fn send(&self, msg: &OutboundSms) -> Result<Accepted, SendError> {
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
        let response = self
            .http
            .post(url)
            .header("apiKey", self.settings.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = super::retry_after(status, response.headers(), chrono::Utc::now());
        let body = read_capped(response).await?;
        if !status.is_success() {
            tracing::warn!(provider = PROVIDER, outbox_id = msg.id, to = %msg.to, %status, "send refused");
            return Err(status_error(status, &body).retry_after(retry_after));
        }
        let result = interpret(&body);
        match &result {
            Ok(a) => tracing::debug!(
                provider = PROVIDER,
                outbox_id = msg.id,
                to = %msg.to,
                message_id = a.provider_msg_id.as_deref().unwrap_or(""),
                "sent"
            ),
            Err(e) => {
                tracing::warn!(provider = PROVIDER, outbox_id = msg.id, to = %msg.to, error = %e, "send failed")
            }
        }
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
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> UssdForm {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        serde_urlencoded_like(&encoded)
    }

    // Decode the way axum's `Form` does (serde over application/x-www-form-urlencoded).
    fn serde_urlencoded_like(body: &str) -> UssdForm {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        UssdForm {
            session_id: get("sessionId"),
            service_code: get("serviceCode"),
            phone_number: get("phoneNumber"),
            network_code: get("networkCode"),
            text: get("text"),
        }
    }

    #[test]
    fn request_cases() {
        struct Case {
            name: &'static str,
            fields: &'static [(&'static str, &'static str)],
            want: Result<(&'static str, &'static str, &'static str), InboundError>,
        }
        let cases = [
            Case {
                name: "first hop",
                fields: &[
                    ("sessionId", "ATUid_1"),
                    ("serviceCode", "*384*4274#"),
                    ("phoneNumber", "+992901234567"),
                    ("networkCode", "43604"),
                    ("text", ""),
                ],
                want: Ok(("ATUid_1", "+992901234567", "")),
            },
            Case {
                name: "history",
                fields: &[
                    ("sessionId", "ATUid_1"),
                    ("phoneNumber", "+992901234567"),
                    ("text", "1*2*500"),
                ],
                want: Ok(("ATUid_1", "+992901234567", "1*2*500")),
            },
            Case {
                name: "text missing is the first hop",
                fields: &[("sessionId", "s"), ("phoneNumber", "+79161234567")],
                want: Ok(("s", "+79161234567", "")),
            },
            Case {
                name: "no session",
                fields: &[("phoneNumber", "+992901234567"), ("text", "")],
                want: Err(InboundError::Missing("sessionId")),
            },
            Case {
                name: "no phone",
                fields: &[("sessionId", "s"), ("text", "")],
                want: Err(InboundError::Missing("phoneNumber")),
            },
            Case {
                name: "bad phone",
                fields: &[("sessionId", "s"), ("phoneNumber", "hello"), ("text", "")],
                want: Err(InboundError::Invalid {
                    field: "phoneNumber",
                    message: "not a phone number: invalid country code".into(),
                }),
            },
        ];
        for case in cases {
            let got = parse_ussd(form(case.fields));
            match (&got, &case.want) {
                (Ok(hop), Ok((session, phone, text))) => {
                    assert_eq!(hop.session_id, *session, "{}", case.name);
                    assert_eq!(hop.phone.as_str(), *phone, "{}", case.name);
                    assert_eq!(hop.text, *text, "{}", case.name);
                    assert_eq!(hop.provider, PROVIDER);
                }
                (Err(e), Err(want)) => {
                    if let (
                        InboundError::Invalid { field: f1, .. },
                        InboundError::Invalid { field: f2, .. },
                    ) = (e, want)
                    {
                        assert_eq!(f1, f2, "{}", case.name);
                    } else {
                        assert_eq!(e, want, "{}", case.name);
                    }
                }
                _ => panic!("{}: got {got:?}", case.name),
            }
        }
    }

    #[test]
    fn renders_con_and_end() {
        let r = |end| Screen {
            text: "Hi\n1 A",
            end,
        };
        assert_eq!(render_ussd(&r(false)), "CON Hi\n1 A");
        assert_eq!(render_ussd(&r(true)), "END Hi\n1 A");
    }

    // ---- inbound SMS and delivery reports ----

    use std::time::Duration;

    use chrono::TimeZone;
    use wiremock::{
        matchers::{header, method, path},
        Mock, MockServer, Request, ResponseTemplate,
    };

    use crate::domain::Encoding;

    type Fields = Vec<(&'static str, &'static str)>;
    /// Case name, request form, expected result.
    type SmsCase = (&'static str, Fields, Result<InboundSms, InboundError>);
    /// Request form, expected result.
    type ReportCase = (Fields, Result<DeliveryReport, InboundError>);

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single()
    }

    fn sms(id: &str, from: &str, to: &str, text: &str, when: Option<DateTime<Utc>>) -> InboundSms {
        InboundSms {
            provider: PROVIDER,
            provider_msg_id: id.into(),
            from: from.into(),
            to: to.into(),
            text: text.into(),
            received_at: when,
        }
    }

    #[test]
    fn inbound_sms_cases() {
        let cases: Vec<SmsCase> = vec![
            (
                "full, RFC 3339 date",
                vec![
                    ("linkId", "03ee8a6c-8b33-4de5-ae53-e6ee1d8be5e0"),
                    ("text", "Msg"),
                    ("to", "21512"),
                    ("id", "ec9d2d4b-1ab1-4f02-a2b8-c4dd2d1b40e8"),
                    ("date", "2017-05-03T06:04:45Z"),
                    ("from", "+254791541111"),
                    ("networkCode", "63902"),
                ],
                Ok(sms(
                    "ec9d2d4b-1ab1-4f02-a2b8-c4dd2d1b40e8",
                    "+254791541111",
                    "21512",
                    "Msg",
                    at(2017, 5, 3, 6, 4, 45),
                )),
            ),
            (
                "date with a space",
                vec![
                    ("id", "A1"),
                    ("from", "+992901234567"),
                    ("to", "4444"),
                    ("text", "Салом & 1*2"),
                    ("date", "2017-05-03 06:04:45"),
                ],
                Ok(sms(
                    "A1",
                    "+992901234567",
                    "4444",
                    "Салом & 1*2",
                    at(2017, 5, 3, 6, 4, 45),
                )),
            ),
            (
                "RFC 3339 with an offset and fraction",
                vec![
                    ("id", "A2"),
                    ("from", "+992901234567"),
                    ("date", "2017-05-03T09:04:45.120+03:00"),
                ],
                Ok(InboundSms {
                    received_at: Utc
                        .with_ymd_and_hms(2017, 5, 3, 6, 4, 45)
                        .single()
                        .map(|t| t + chrono::Duration::milliseconds(120)),
                    ..sms("A2", "+992901234567", "", "", None)
                }),
            ),
            (
                "empty text, no date",
                vec![
                    ("id", "A3"),
                    ("from", "+992901234567"),
                    ("to", "4444"),
                    ("text", ""),
                ],
                Ok(sms("A3", "+992901234567", "4444", "", None)),
            ),
            (
                "unreadable date is dropped, not refused",
                vec![
                    ("id", "A4"),
                    ("from", "+992901234567"),
                    ("text", "hi"),
                    ("date", "yesterday"),
                ],
                Ok(sms("A4", "+992901234567", "", "hi", None)),
            ),
            (
                "missing id",
                vec![("from", "+992901234567"), ("text", "hi")],
                Err(InboundError::Missing("id")),
            ),
            (
                "blank id",
                vec![("id", "  "), ("from", "+992901234567"), ("text", "hi")],
                Err(InboundError::Missing("id")),
            ),
            (
                "missing from",
                vec![("id", "A5"), ("text", "hi")],
                Err(InboundError::Missing("from")),
            ),
            (
                "empty from",
                vec![("id", "A6"), ("from", ""), ("text", "hi")],
                Err(InboundError::Missing("from")),
            ),
        ];
        for (name, fields, want) in cases {
            assert_eq!(parse_sms(&pairs(&fields)), want, "{name}");
        }
    }

    #[test]
    fn delivery_report_cases() {
        fn report(status: &str, state: DeliveryState, reason: Option<&str>) -> DeliveryReport {
            DeliveryReport {
                provider: PROVIDER,
                message: MessageRef::Provider("ATXid_1".into()),
                state,
                provider_status: status.into(),
                reason: reason.map(str::to_owned),
            }
        }
        let mut cases: Vec<ReportCase> = Vec::new();
        for (status, state) in [
            ("Sent", DeliveryState::Sent),
            ("Submitted", DeliveryState::Sent),
            ("Buffered", DeliveryState::Sent),
            ("Success", DeliveryState::Delivered),
            ("Rejected", DeliveryState::Failed),
            ("Failed", DeliveryState::Failed),
            ("Expired", DeliveryState::Failed),
        ] {
            cases.push((
                vec![
                    ("id", "ATXid_1"),
                    ("status", status),
                    ("phoneNumber", "+254711000111"),
                    ("networkCode", "63902"),
                    ("retryCount", "0"),
                ],
                Ok(report(status, state, None)),
            ));
        }
        cases.extend([
            (
                vec![
                    ("id", "ATXid_1"),
                    ("status", "Rejected"),
                    ("failureReason", "UserInBlackList"),
                ],
                Ok(report(
                    "Rejected",
                    DeliveryState::Failed,
                    Some("UserInBlackList"),
                )),
            ),
            (
                vec![
                    ("id", "ATXid_1"),
                    ("status", "Failed"),
                    ("failureReason", ""),
                ],
                Ok(report("Failed", DeliveryState::Failed, None)),
            ),
            (
                vec![("id", "ATXid_1"), ("status", "Delivered")],
                Err(InboundError::Invalid {
                    field: "status",
                    message: "unknown status \"Delivered\"".into(),
                }),
            ),
            (
                vec![("id", "ATXid_1"), ("status", "success")],
                Err(InboundError::Invalid {
                    field: "status",
                    message: "unknown status \"success\"".into(),
                }),
            ),
            (
                vec![("status", "Success")],
                Err(InboundError::Missing("id")),
            ),
            (
                vec![("id", "ATXid_1")],
                Err(InboundError::Missing("status")),
            ),
            (
                vec![("id", "ATXid_1"), ("status", "")],
                Err(InboundError::Missing("status")),
            ),
        ]);
        for (fields, want) in cases {
            assert_eq!(parse_delivery(&pairs(&fields)), want, "{fields:?}");
        }
    }

    // ---- outbound ----

    /// Matches a form body with exactly these fields (in any order).
    struct FormIs(Vec<(String, String)>);

    impl wiremock::Match for FormIs {
        fn matches(&self, request: &Request) -> bool {
            let mut got: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
                .into_owned()
                .collect();
            let mut want = self.0.clone();
            got.sort();
            want.sort();
            got == want
        }
    }

    fn outbound() -> OutboundSms {
        OutboundSms {
            id: 42,
            to: Phone::parse("+79161234567").expect("valid test number"),
            text: "Салом, 1 & 2".into(),
            encoding: Encoding::Ucs2,
            segments: 1,
        }
    }

    fn client(server: &MockServer, sender: Option<&str>) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(200))
            .build()
            .expect("client");
        Client::new(
            Settings {
                username: "hashar".into(),
                api_key: "atsk_secret".into(),
                sender: sender.map(str::to_owned),
                base_url: server.uri(),
            },
            http,
        )
    }

    fn recipients(code: i64, status: &str, id: &str) -> serde_json::Value {
        serde_json::json!({"SMSMessageData": {
            "Message": "Sent to 1/1 Total Cost: KES 0.8000",
            "Recipients": [{"statusCode": code, "number": "+79161234567", "status": status,
                            "cost": "KES 0.8000", "messageId": id}]}})
    }

    #[tokio::test]
    async fn send_posts_the_documented_request() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/version1/messaging"))
            .and(header("apiKey", "atsk_secret"))
            .and(header("accept", "application/json"))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .and(FormIs(pairs(&[
                ("username", "hashar"),
                ("to", "+79161234567"),
                ("message", "Салом, 1 & 2"),
                ("from", "HASHAR"),
                ("bulkSMSMode", "1"),
            ])))
            .respond_with(ResponseTemplate::new(201).set_body_json(recipients(
                101,
                "Success",
                "ATXid_7468c9a2",
            )))
            .expect(1)
            .mount(&server)
            .await;
        let got = client(&server, Some("HASHAR")).send(&outbound()).await;
        assert_eq!(
            got,
            Ok(Accepted {
                provider_msg_id: Some("ATXid_7468c9a2".into())
            })
        );
    }

    #[tokio::test]
    async fn send_without_sender_leaves_from_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/version1/messaging"))
            .and(FormIs(pairs(&[
                ("username", "hashar"),
                ("to", "+79161234567"),
                ("message", "Салом, 1 & 2"),
                ("bulkSMSMode", "1"),
            ])))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(recipients(102, "Success", "ATXid_q")),
            )
            .expect(1)
            .mount(&server)
            .await;
        let got = client(&server, None).send(&outbound()).await;
        assert_eq!(
            got,
            Ok(Accepted {
                provider_msg_id: Some("ATXid_q".into())
            })
        );
    }

    #[tokio::test]
    async fn send_answers() {
        enum Want {
            Accepted(&'static str),
            Fatal(&'static str),
            Retryable(&'static str),
        }
        let cases: Vec<(&str, ResponseTemplate, Want)> = vec![
            (
                "100 Processed",
                ResponseTemplate::new(201).set_body_json(recipients(100, "Success", "ATXid_p")),
                Want::Accepted("ATXid_p"),
            ),
            (
                "empty Recipients",
                ResponseTemplate::new(201).set_body_json(serde_json::json!(
                    {"SMSMessageData": {"Message": "InvalidSenderId", "Recipients": []}}
                )),
                Want::Fatal("InvalidSenderId"),
            ),
            (
                "403 InvalidPhoneNumber",
                ResponseTemplate::new(201).set_body_json(recipients(
                    403,
                    "InvalidPhoneNumber",
                    "None",
                )),
                Want::Fatal("statusCode 403: InvalidPhoneNumber"),
            ),
            (
                "406 UserInBlacklist",
                ResponseTemplate::new(201).set_body_json(recipients(
                    406,
                    "UserInBlacklist",
                    "None",
                )),
                Want::Fatal("UserInBlacklist"),
            ),
            (
                "502 RejectedByGateway",
                ResponseTemplate::new(201).set_body_json(recipients(
                    502,
                    "RejectedByGateway",
                    "None",
                )),
                Want::Fatal("RejectedByGateway"),
            ),
            (
                "500 InternalServerError",
                ResponseTemplate::new(201).set_body_json(recipients(
                    500,
                    "InternalServerError",
                    "None",
                )),
                Want::Retryable("InternalServerError"),
            ),
            (
                "501 GatewayError",
                ResponseTemplate::new(201).set_body_json(recipients(501, "GatewayError", "None")),
                Want::Retryable("GatewayError"),
            ),
            (
                "unreadable 201",
                ResponseTemplate::new(201).set_body_string("<html>oops</html>"),
                Want::Fatal("unreadable"),
            ),
            (
                "HTTP 401 bad key",
                ResponseTemplate::new(401)
                    .set_body_string("The supplied authentication is invalid"),
                Want::Fatal("401"),
            ),
            (
                "HTTP 429 throttled",
                ResponseTemplate::new(429).set_body_string("Too many requests"),
                Want::Retryable("429"),
            ),
            (
                "HTTP 500",
                ResponseTemplate::new(500).set_body_string("boom"),
                Want::Retryable("500"),
            ),
            (
                "timeout",
                ResponseTemplate::new(201)
                    .set_body_json(recipients(101, "Success", "ATXid_late"))
                    .set_delay(Duration::from_secs(2)),
                Want::Retryable("transport"),
            ),
        ];
        for (name, answer, want) in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/version1/messaging"))
                .respond_with(answer)
                .expect(1)
                .mount(&server)
                .await;
            let got = client(&server, Some("HASHAR")).send(&outbound()).await;
            match (&got, want) {
                (Ok(a), Want::Accepted(id)) => {
                    assert_eq!(a.provider_msg_id.as_deref(), Some(id), "{name}")
                }
                (Err(SendError::Fatal(m)), Want::Fatal(part))
                | (Err(SendError::Retryable(m)), Want::Retryable(part)) => {
                    assert!(m.contains(part), "{name}: {m}")
                }
                _ => panic!("{name}: got {got:?}"),
            }
        }
    }
}
