use super::*;
use crate::channels::testkit::{self, check_cases, closed_port, query, send_expecting, single};
use std::time::Duration;
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The text of a get-url request with this query string.
fn parsed_sms(raw_query: &str) -> Result<InboundSms, InboundError> {
    single(Kannel::parse_sms(&query(raw_query).view()))
}

/// The report of a dlr-url request with this query string.
fn parsed_report(raw_query: &str) -> Result<DeliveryReport, InboundError> {
    single(Kannel::parse_delivery(&query(raw_query).view()))
}

fn sms(id: &str, from: &str, to: &str, text: &str, at: Option<i64>) -> InboundSms {
    InboundSms {
        provider: Kannel::NAME,
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
    check_cases(cases, |query| parsed_sms(&query));
    let long = format!("id=a&from=1&text={}", "a".repeat(MAX_TEXT_BYTES + 1));
    assert!(matches!(
        parsed_sms(&long),
        Err(InboundError::Invalid { field: "text", .. })
    ));
}

#[test]
fn odd_utf16_is_replaced_not_refused() {
    let got = parsed_sms("id=a&from=1&text=%04%21%04&coding=2&charset=UTF-16BE");
    assert_eq!(got.map(|s| s.text), Ok("С\u{FFFD}".to_owned()));
}

#[test]
fn delivery_cases() {
    let report = |state, status: &str, reason: Option<&str>| {
        testkit::report(Kannel::NAME, MessageRef::Ours(42), state, status, reason)
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
    check_cases(cases, parsed_report);
    for bad in ["msg=abc&type=1", "msg=42&type=32", "msg=42&type=x"] {
        assert!(
            matches!(parsed_report(bad), Err(InboundError::Invalid { .. })),
            "{bad}"
        );
    }
}

// ---- outbound ----

fn outbound(text: &str, encoding: Encoding) -> OutboundSms {
    testkit::outbound(42, text, encoding)
}

fn client(server: &MockServer, sender: Option<&str>, dlr: bool) -> Client {
    testkit::client(Settings {
        sendsms_url: format!("{}/cgi-bin/sendsms", server.uri()),
        username: "tester".into(),
        password: "foo&bar".into(),
        sender: sender.map(Into::into),
        dlr_url_base: dlr.then(|| "https://gw.example/webhooks/kannel/delivery".into()),
    })
}

const DLR_URL: &str =
    "https://gw.example/webhooks/kannel/delivery?msg=42&type=%d&reply=%A&smsc=%i&ts=%T";

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
    let request = Mock::given(method("GET"))
        .and(path("/cgi-bin/sendsms"))
        .and(query_param("text", "hello world"))
        .and(query_param("coding", "0"))
        .and(query_param_is_missing("from"))
        .and(query_param_is_missing("dlr-url"))
        .and(query_param_is_missing("dlr-mask"));
    let got = send_expecting(
        request,
        ResponseTemplate::new(202).set_body_string("3: Queued for later delivery"),
        |s| client(s, None, false),
        &outbound("hello world", Encoding::Gsm7),
    )
    .await;
    assert!(got.is_ok(), "{got:?}");
}

async fn send_answered(template: ResponseTemplate) -> Result<Accepted, SendError> {
    testkit::send_answered(
        template,
        ("GET", "/cgi-bin/sendsms"),
        |server| client(server, None, true),
        &outbound("hello", Encoding::Gsm7),
    )
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
