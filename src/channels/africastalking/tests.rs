use std::time::Duration;

use chrono::TimeZone;
use wiremock::{matchers::header, MockServer, ResponseTemplate};

use super::*;
use crate::channels::testkit::{
    self, accepted, check_form_cases, check_form_reports, check_send_answers, form_post, outbound,
    send_expecting, status_cases, ReportCase, SmsCase, Want,
};
use crate::domain::Encoding;

fn ussd_form(pairs: &[(&str, &str)]) -> UssdForm {
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
        let got = AfricasTalking::parse_ussd(ussd_form(case.fields));
        match (&got, &case.want) {
            (Ok(hop), Ok((session, phone, text))) => {
                assert_eq!(hop.session_id, *session, "{}", case.name);
                assert_eq!(hop.phone.as_str(), *phone, "{}", case.name);
                assert_eq!(hop.text, *text, "{}", case.name);
                assert_eq!(hop.provider, AfricasTalking::NAME);
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
    assert_eq!(AfricasTalking::render_ussd(&r(false)), "CON Hi\n1 A");
    assert_eq!(AfricasTalking::render_ussd(&r(true)), "END Hi\n1 A");
}

// ---- inbound SMS and delivery reports ----

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single()
}

fn sms(id: &str, from: &str, to: &str, text: &str, when: Option<DateTime<Utc>>) -> InboundSms {
    InboundSms {
        provider: AfricasTalking::NAME,
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
    check_form_cases(cases, AfricasTalking::parse_sms);
}

#[test]
fn delivery_report_cases() {
    let report = |status: &str, state, reason: Option<&str>| {
        let message = MessageRef::Provider("ATXid_1".into());
        testkit::report(AfricasTalking::NAME, message, state, status, reason)
    };
    let statuses = [
        ("Sent", DeliveryState::Sent),
        ("Submitted", DeliveryState::Sent),
        ("Buffered", DeliveryState::Sent),
        ("Success", DeliveryState::Delivered),
        ("Rejected", DeliveryState::Failed),
        ("Failed", DeliveryState::Failed),
        ("Expired", DeliveryState::Failed),
    ];
    let fields = |status| {
        vec![
            ("id", "ATXid_1"),
            ("status", status),
            ("phoneNumber", "+254711000111"),
            ("networkCode", "63902"),
            ("retryCount", "0"),
        ]
    };
    let mut cases: Vec<ReportCase> = status_cases(&statuses, fields, report);
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
    check_form_reports(cases, AfricasTalking::parse_delivery);
}

// ---- outbound ----

fn message() -> OutboundSms {
    outbound(42, "Салом, 1 & 2", Encoding::Ucs2)
}

fn client(server: &MockServer, sender: Option<&str>) -> Client {
    testkit::client(Settings {
        username: "hashar".into(),
        api_key: "atsk_secret".into(),
        sender: sender.map(str::to_owned),
        base_url: server.uri(),
    })
}

fn recipients(code: i64, status: &str, id: &str) -> serde_json::Value {
    serde_json::json!({"SMSMessageData": {
        "Message": "Sent to 1/1 Total Cost: KES 0.8000",
        "Recipients": [{"statusCode": code, "number": "+79161234567", "status": status,
                        "cost": "KES 0.8000", "messageId": id}]}})
}

#[tokio::test]
async fn send_posts_the_documented_request() {
    let request = form_post(
        "/version1/messaging",
        &[
            ("username", "hashar"),
            ("to", "+79161234567"),
            ("message", "Салом, 1 & 2"),
            ("from", "HASHAR"),
            ("bulkSMSMode", "1"),
        ],
    )
    .and(header("apiKey", "atsk_secret"))
    .and(header("accept", "application/json"));
    let answer =
        ResponseTemplate::new(201).set_body_json(recipients(101, "Success", "ATXid_7468c9a2"));
    let got = send_expecting(request, answer, |s| client(s, Some("HASHAR")), &message()).await;
    assert_eq!(got, accepted(Some("ATXid_7468c9a2")));
}

#[tokio::test]
async fn send_without_sender_leaves_from_out() {
    let request = form_post(
        "/version1/messaging",
        &[
            ("username", "hashar"),
            ("to", "+79161234567"),
            ("message", "Салом, 1 & 2"),
            ("bulkSMSMode", "1"),
        ],
    );
    let answer = ResponseTemplate::new(201).set_body_json(recipients(102, "Success", "ATXid_q"));
    let got = send_expecting(request, answer, |s| client(s, None), &message()).await;
    assert_eq!(got, accepted(Some("ATXid_q")));
}

#[tokio::test]
async fn send_answers() {
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
            ResponseTemplate::new(201).set_body_json(recipients(403, "InvalidPhoneNumber", "None")),
            Want::Fatal("statusCode 403: InvalidPhoneNumber"),
        ),
        (
            "406 UserInBlacklist",
            ResponseTemplate::new(201).set_body_json(recipients(406, "UserInBlacklist", "None")),
            Want::Fatal("UserInBlacklist"),
        ),
        (
            "502 RejectedByGateway",
            ResponseTemplate::new(201).set_body_json(recipients(502, "RejectedByGateway", "None")),
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
            ResponseTemplate::new(401).set_body_string("The supplied authentication is invalid"),
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
    check_send_answers(
        cases,
        ("POST", "/version1/messaging"),
        |server| client(server, Some("HASHAR")),
        &message(),
    )
    .await;
}
