use super::*;
use crate::channels::testkit::{self, check_cases, closed_port, messages, send_expecting};
use crate::domain::Encoding;
use chrono::TimeZone;
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The texts of an inbound-SMS request with this body.
fn parsed_sms(body: &[u8]) -> Result<Vec<InboundSms>, InboundError> {
    messages(Infobip::parse_sms(&testkit::body(body).view()))
}

/// The reports of a delivery-report request with this body.
fn parsed_reports(body: &[u8]) -> Result<Vec<DeliveryReport>, InboundError> {
    messages(Infobip::parse_delivery(&testkit::body(body).view()))
}

type SmsCase = (&'static str, String, Result<Vec<InboundSms>, InboundError>);
type DlrCase = (
    &'static str,
    serde_json::Value,
    Result<Vec<DeliveryReport>, InboundError>,
);

fn sms(id: &str, from: &str, to: &str, text: &str, at: Option<DateTime<Utc>>) -> InboundSms {
    InboundSms {
        provider: Infobip::NAME,
        provider_msg_id: id.into(),
        from: from.into(),
        to: to.into(),
        text: text.into(),
        received_at: at,
    }
}

#[test]
fn inbound_sms_cases() {
    let at = Utc
        .with_ymd_and_hms(2016, 10, 6, 9, 28, 39)
        .single()
        .map(|t| t + chrono::Duration::milliseconds(220));
    let cases: Vec<SmsCase> =
        vec![
        (
            "single",
            json!({"results":[{"messageId":"817790313235066447","from":"992901234567","to":"4444",
                "text":"QUIZ Paris","cleanText":"Paris","keyword":"QUIZ",
                "receivedAt":"2016-10-06T09:28:39.220+0000","smsCount":1,
                "price":{"pricePerMessage":0,"currency":"EUR"}}],
                "messageCount":1,"pendingMessageCount":0})
            .to_string(),
            Ok(vec![sms("817790313235066447", "992901234567", "4444", "QUIZ Paris", at)]),
        ),
        (
            "several, Cyrillic, other offset",
            json!({"results":[
                {"messageId":"a","from":"992901234567","to":"4444","text":"Салом ҳҷ",
                 "receivedAt":"2016-10-06T12:28:39.220+0300"},
                {"messageId":"b","from":"79161234567","to":"4444","text":""}],
                "messageCount":2,"pendingMessageCount":0})
            .to_string(),
            Ok(vec![
                sms("a", "992901234567", "4444", "Салом ҳҷ", at),
                sms("b", "79161234567", "4444", "", None),
            ]),
        ),
        (
            "unreadable receivedAt is dropped",
            json!({"results":[{"messageId":"a","from":"992901234567","to":"4444","text":"hi",
                "receivedAt":"yesterday"}]})
            .to_string(),
            Ok(vec![sms("a", "992901234567", "4444", "hi", None)]),
        ),
        (
            "empty batch",
            json!({"results":[],"messageCount":0,"pendingMessageCount":0}).to_string(),
            Ok(vec![]),
        ),
        (
            "no messageId",
            json!({"results":[{"from":"992901234567","to":"4444","text":"hi"}]}).to_string(),
            Err(InboundError::Missing("messageId")),
        ),
        (
            "no from",
            json!({"results":[{"messageId":"a","to":"4444","text":"hi"}]}).to_string(),
            Err(InboundError::Missing("from")),
        ),
        (
            "no results",
            json!({"messageCount":0}).to_string(),
            Err(InboundError::Missing("results")),
        ),
    ];
    check_cases(cases, |json| parsed_sms(json.as_bytes()));
    for bad in ["{not json", "", "[1,2]", r#"{"results":"x"}"#] {
        assert!(
            matches!(
                parsed_sms(bad.as_bytes()),
                Err(InboundError::Invalid { field: "body", .. })
            ),
            "{bad}"
        );
    }
}

fn dlr(
    message: MessageRef,
    state: DeliveryState,
    status: &str,
    reason: Option<&str>,
) -> DeliveryReport {
    testkit::report(Infobip::NAME, message, state, status, reason)
}

fn report(id: &str, status: serde_json::Value, error: serde_json::Value) -> serde_json::Value {
    json!({"bulkId":"b1","messageId":id,"to":"992901234567","sender":"InfoSMS",
        "sentAt":"2024-01-01T10:00:00.000+0000","doneAt":"2024-01-01T10:00:05.000+0000",
        "messageCount":1,"mccMnc":"43604","price":{"pricePerMessage":0.01,"currency":"EUR"},
        "status":status,"error":error})
}

/// Found by the `phone` fuzz target: a short foreign sender written without `+` (as
/// Infobip writes numbers) was read as a Tajik national number. The raw `from` is kept.
#[test]
fn a_short_infobip_sender_keeps_its_country() {
    let body = br#"{"results":[{"messageId":"m1","from":"988364467","to":"4274","text":"HELP"}]}"#;
    let messages = parsed_sms(body).expect("parsed");
    assert_eq!(messages[0].from, "988364467");
    assert_eq!(
        messages[0].sender().map(|p| p.as_str().to_owned()),
        Ok("+988364467".to_owned())
    );
}

/// Found by the `infobip` fuzz target: a blank `groupName` with a known `groupId` gave
/// a report with an empty status word; the group id is the status then.
#[test]
fn a_blank_group_name_falls_back_to_the_group_id() {
    let body = br#"{"results":[{"messageId":"abc","status":{"groupId":5,"groupName":"","sdescription":"Absent"}}]}"#;
    let reports = parsed_reports(body).expect("parsed");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].state, DeliveryState::Failed);
    assert_eq!(reports[0].provider_status, "5");
}

#[test]
fn delivery_report_cases() {
    let no_error = json!({"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR",
        "description":"No Error","permanent":false});
    let delivered = json!({"groupId":3,"groupName":"DELIVERED","id":5,
        "name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"});
    let pending = json!({"groupId":1,"groupName":"PENDING","id":3,
        "name":"PENDING_WAITING_DELIVERY","description":"Message sent, waiting for delivery report"});
    let undeliverable = json!({"groupId":2,"groupName":"UNDELIVERABLE","id":9,
        "name":"UNDELIVERABLE_NOT_DELIVERED","description":"Message sent not delivered"});
    let absent = json!({"groupId":1,"groupName":"HANDSET_ERRORS","id":27,
        "name":"EC_ABSENT_SUBSCRIBER","description":"Absent Subscriber","permanent":false});
    let expired = json!({"groupId":4,"groupName":"EXPIRED","id":15,
        "name":"EXPIRED_EXPIRED","description":"Message expired"});
    let rejected_by_id = json!({"groupId":5,"id":12,"name":"REJECTED_NOT_ENOUGH_CREDITS"});

    let cases: Vec<DlrCase> =
        vec![
        (
            "delivered, our id",
            json!({"results":[report("42", delivered.clone(), no_error.clone())]}),
            Ok(vec![dlr(
                MessageRef::Ours(42),
                DeliveryState::Delivered,
                "DELIVERED_TO_HANDSET",
                None,
            )]),
        ),
        (
            "batch: pending, undeliverable with error, expired, rejected by group id, foreign id",
            json!({"results":[
                report("1", pending, no_error.clone()),
                report("2", undeliverable, absent),
                report("3", expired, no_error.clone()),
                report("4", rejected_by_id, json!(null)),
                report("2034072219640523072", delivered.clone(), no_error.clone()),
                report("ib-uuid-1", delivered.clone(), no_error.clone()),
            ]}),
            Ok(vec![
                dlr(MessageRef::Ours(1), DeliveryState::Sent, "PENDING_WAITING_DELIVERY", None),
                dlr(
                    MessageRef::Ours(2),
                    DeliveryState::Failed,
                    "UNDELIVERABLE_NOT_DELIVERED",
                    Some("EC_ABSENT_SUBSCRIBER: Absent Subscriber"),
                ),
                dlr(
                    MessageRef::Ours(3),
                    DeliveryState::Failed,
                    "EXPIRED_EXPIRED",
                    Some("EXPIRED_EXPIRED: Message expired"),
                ),
                dlr(
                    MessageRef::Ours(4),
                    DeliveryState::Failed,
                    "REJECTED_NOT_ENOUGH_CREDITS",
                    Some("REJECTED_NOT_ENOUGH_CREDITS"),
                ),
                dlr(
                    MessageRef::Ours(2034072219640523072),
                    DeliveryState::Delivered,
                    "DELIVERED_TO_HANDSET",
                    None,
                ),
                dlr(
                    MessageRef::Provider("ib-uuid-1".into()),
                    DeliveryState::Delivered,
                    "DELIVERED_TO_HANDSET",
                    None,
                ),
            ]),
        ),
        (
            "no messageId",
            json!({"results":[{"status":delivered.clone()}]}),
            Err(InboundError::Missing("messageId")),
        ),
        (
            "no status",
            json!({"results":[{"messageId":"1"}]}),
            Err(InboundError::Missing("status")),
        ),
        ("no results", json!({}), Err(InboundError::Missing("results"))),
    ];
    check_cases(cases, |json| parsed_reports(json.to_string().as_bytes()));
    let unknown = json!({"results":[{"messageId":"1","status":{"groupId":9,"groupName":"ODD"}}]});
    assert!(matches!(
        parsed_reports(unknown.to_string().as_bytes()),
        Err(InboundError::Invalid {
            field: "status",
            ..
        })
    ));
    assert!(matches!(
        parsed_reports(b"{\"results\":[{"),
        Err(InboundError::Invalid { field: "body", .. })
    ));
}

// ---- outbound ----

fn outbound(text: &str, encoding: Encoding) -> OutboundSms {
    testkit::outbound(42, text, encoding)
}

fn client(server: &MockServer, delivery_url: Option<&str>) -> Client {
    testkit::client(Settings {
        api_key: "secret-key".into(),
        sender: "InfoSMS".into(),
        base_url: format!("{}/", server.uri()),
        delivery_url: delivery_url.map(Into::into),
    })
}

fn answer(group_id: i64, group_name: &str, name: &str) -> serde_json::Value {
    json!({"bulkId":"bulk-1","messages":[{"messageId":"42","destination":"79161234567",
        "status":{"groupId":group_id,"groupName":group_name,"id":26,"name":name,
                  "description":"Message sent to next instance"},
        "details":{"messageCount":1}}]})
}

#[tokio::test]
async fn send_builds_the_v3_request() {
    let delivery_url = "https://gw.example/webhooks/infobip/delivery";
    let request = Mock::given(method("POST"))
        .and(path("/sms/3/messages"))
        .and(header("authorization", "App secret-key"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({"messages":[{
            "sender":"InfoSMS",
            "destinations":[{"to":"79161234567","messageId":"42"}],
            "content":{"text":"Салом ҳҷ"},
            "webhooks":{"delivery":{"url":delivery_url},
                        "contentType":"application/json"}}]})));
    let got = send_expecting(
        request,
        ResponseTemplate::new(200).set_body_json(answer(1, "PENDING", "PENDING_ACCEPTED")),
        |s| client(s, Some(delivery_url)),
        &outbound("Салом ҳҷ", Encoding::Ucs2),
    )
    .await;
    assert_eq!(got, testkit::accepted(Some("42")));
}

#[tokio::test]
async fn send_without_delivery_url_omits_it() {
    let request = Mock::given(method("POST"))
        .and(path("/sms/3/messages"))
        .and(body_json(json!({"messages":[{
            "sender":"InfoSMS",
            "destinations":[{"to":"79161234567","messageId":"42"}],
            "content":{"text":"hello"},
            "webhooks":{"contentType":"application/json"}}]})));
    let got = send_expecting(
        request,
        ResponseTemplate::new(200).set_body_json(answer(0, "ACCEPTED", "ACCEPTED")),
        |s| client(s, None),
        &outbound("hello", Encoding::Gsm7),
    )
    .await;
    assert!(got.is_ok(), "{got:?}");
}

async fn send_answered(template: ResponseTemplate) -> Result<Accepted, SendError> {
    testkit::send_answered(
        template,
        ("POST", "/sms/3/messages"),
        |server| client(server, None),
        &outbound("hello", Encoding::Gsm7),
    )
    .await
}

#[tokio::test]
async fn answers() {
    let ok = send_answered(ResponseTemplate::new(200).set_body_json(answer(
        3,
        "DELIVERED",
        "DELIVERED_TO_HANDSET",
    )))
    .await;
    assert!(ok.is_ok(), "{ok:?}");

    let rejected = send_answered(ResponseTemplate::new(200).set_body_json(answer(
        5,
        "REJECTED",
        "REJECTED_DESTINATION_NOT_REGISTERED",
    )))
    .await;
    assert!(
        matches!(&rejected, Err(SendError::Fatal(m)) if m.contains("REJECTED_DESTINATION_NOT_REGISTERED")),
        "{rejected:?}"
    );

    let garbage = send_answered(ResponseTemplate::new(200).set_body_string("<html>")).await;
    assert!(matches!(garbage, Err(SendError::Fatal(_))), "{garbage:?}");

    let unauthorized = send_answered(ResponseTemplate::new(401).set_body_json(
        json!({"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}),
    ))
    .await;
    assert!(
        matches!(&unauthorized, Err(SendError::Fatal(m)) if m.contains("401")),
        "{unauthorized:?}"
    );

    let bad_request = send_answered(ResponseTemplate::new(400).set_body_string("{}")).await;
    assert!(matches!(bad_request, Err(SendError::Fatal(_))));

    for code in [429, 500, 503] {
        let got = send_answered(ResponseTemplate::new(code)).await;
        assert!(
            matches!(got, Err(SendError::Retryable(_))),
            "{code}: {got:?}"
        );
    }

    let slow = send_answered(
        ResponseTemplate::new(200)
            .set_body_json(answer(1, "PENDING", "PENDING_ACCEPTED"))
            .set_delay(Duration::from_millis(1_000)),
    )
    .await;
    assert!(matches!(slow, Err(SendError::Retryable(_))), "{slow:?}");
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let port = closed_port();
    let c = Client::new(
        Settings {
            api_key: "k".into(),
            sender: "s".into(),
            base_url: format!("http://127.0.0.1:{port}"),
            delivery_url: None,
        },
        reqwest::Client::new(),
    );
    let got = c.send(&outbound("hello", Encoding::Gsm7)).await;
    assert!(matches!(got, Err(SendError::Retryable(_))), "{got:?}");
}
