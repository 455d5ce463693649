use std::time::Duration;

use wiremock::{
    matchers::{basic_auth, header},
    MockServer, ResponseTemplate,
};

use super::*;
use crate::channels::testkit::{
    self, accepted, body, check_form_cases, check_form_reports, check_send_answers, form_post,
    outbound, pairs, send_expecting, single, status_cases, ReportCase, SmsCase, Want,
};
use crate::domain::Encoding;

// ---- §2.2 official vectors (twilio-python tests/unit/test_request_validator.py) ----

const TOKEN: &str = "12345";
const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

fn vector_params() -> Vec<(String, String)> {
    // Deliberately not in sorted order.
    pairs(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ])
}

fn repeated_params() -> Vec<(String, String)> {
    pairs(&[
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ])
}

#[test]
fn signs_the_official_vector() {
    assert_eq!(
        signed_string(URL, &vector_params()),
        "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
    );
    assert_eq!(
        signature(TOKEN, URL, &vector_params()),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    assert!(verify_signature(
        TOKEN,
        URL,
        &vector_params(),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    ));
}

#[test]
fn port_vectors() {
    let p = vector_params();
    let https_443 = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    let http_plain = "http://mycompany.com/myapp.php?foo=1&bar=2";
    let http_80 = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
    let http_1234 = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
    let https_1234 = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";

    assert_eq!(
        signature(TOKEN, https_443, &p),
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    );
    assert_eq!(
        signature(TOKEN, http_80, &p),
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    );
    assert_eq!(
        signature(TOKEN, http_1234, &p),
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    );

    // Twilio signed with the default port, we see the URL without it: port added.
    assert!(verify_signature(
        TOKEN,
        URL,
        &p,
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    ));
    assert!(verify_signature(
        TOKEN,
        http_plain,
        &p,
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    ));
    // Twilio signed without the port, we see it with one: port removed.
    assert!(verify_signature(
        TOKEN,
        https_443,
        &p,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    ));
    assert!(verify_signature(
        TOKEN,
        https_1234,
        &p,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    ));
    // As given.
    assert!(verify_signature(
        TOKEN,
        https_443,
        &p,
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    ));
    assert!(verify_signature(
        TOKEN,
        http_80,
        &p,
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    ));
    assert!(verify_signature(
        TOKEN,
        http_1234,
        &p,
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    ));

    // The port toggle is the only leeway: another port, or another scheme, fails.
    assert!(!verify_signature(
        TOKEN,
        http_1234,
        &p,
        "0ZXoZLH/DfblKGATFgpif+LLRf4="
    ));
    assert!(!verify_signature(
        TOKEN,
        http_plain,
        &p,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    ));
    assert!(!verify_signature(
        TOKEN,
        URL,
        &p,
        "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
    ));
}

#[test]
fn repeated_names_are_sorted_and_deduplicated() {
    assert!(signed_string(URL, &repeated_params())
        .ends_with("bar=2Digits1234Digits5678SidCA123SidAccountAC123"));
    assert_eq!(
        signature(TOKEN, URL, &repeated_params()),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
    assert!(verify_signature(
        TOKEN,
        URL,
        &repeated_params(),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    ));
}

#[test]
fn json_body_vector_signs_the_url_only() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
    assert_eq!(signature(TOKEN, url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
    assert!(verify_signature(
        TOKEN,
        url,
        &[],
        "a9nBmqA0ju/hNViExpshrM61xv4="
    ));
}

#[test]
fn refuses_bad_signatures() {
    let good = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    let p = vector_params();
    assert!(!verify_signature("54321", URL, &p, good), "wrong token");
    assert!(!verify_signature("", URL, &p, good), "empty token");

    let mut tampered = p.clone();
    tampered[1].1 = "9999".into();
    assert!(
        !verify_signature(TOKEN, URL, &tampered, good),
        "tampered param"
    );
    let mut added = p.clone();
    added.push(("Extra".into(), "1".into()));
    assert!(!verify_signature(TOKEN, URL, &added, good), "added param");
    assert!(
        !verify_signature(TOKEN, URL, &p[1..], good),
        "dropped param"
    );
    assert!(
        !verify_signature(TOKEN, &format!("{URL}&extra=1"), &p, good),
        "changed query"
    );
    assert!(
        !verify_signature(
            TOKEN,
            "https://mycompany.com/other.php?foo=1&bar=2",
            &p,
            good
        ),
        "changed path"
    );

    assert!(!verify_signature(TOKEN, URL, &p, ""), "missing header");
    assert!(!verify_signature(TOKEN, URL, &p, "   "), "blank header");
    assert!(
        !verify_signature(TOKEN, URL, &p, "not base64 王"),
        "garbage"
    );
    assert!(
        !verify_signature(TOKEN, URL, &p, "RSOYDt4T1cUTdK1P"),
        "truncated"
    );
    assert!(
        !verify_signature(TOKEN, URL, &p, "RSOYDt4T1cUTdK1PDd93/VVr8B8=AAAA"),
        "too long"
    );
}

#[test]
fn url_port_variants() {
    let cases: &[(&str, &[&str])] = &[
        (
            "https://a.example/x",
            &["https://a.example/x", "https://a.example:443/x"],
        ),
        (
            "http://a.example?q=1",
            &["http://a.example?q=1", "http://a.example:80?q=1"],
        ),
        (
            "https://a.example:8443/x",
            &["https://a.example:8443/x", "https://a.example/x"],
        ),
        (
            "https://u:p@a.example/x",
            &["https://u:p@a.example/x", "https://u:p@a.example:443/x"],
        ),
        (
            "https://[::1]:8443/x",
            &["https://[::1]:8443/x", "https://[::1]/x"],
        ),
        (
            "https://[::1]/x",
            &["https://[::1]/x", "https://[::1]:443/x"],
        ),
        ("ftp://a.example/x", &["ftp://a.example/x"]),
        ("not a url", &["not a url"]),
    ];
    for (url, want) in cases {
        assert_eq!(url_variants(url), *want, "{url}");
    }
}

// ---- inbound ----

#[test]
fn inbound_sms_cases() {
    let sms = |sid: &str, from: &str, to: &str, text: &str| InboundSms {
        provider: Twilio::NAME,
        provider_msg_id: sid.into(),
        from: from.into(),
        to: to.into(),
        text: text.into(),
        received_at: None,
    };
    let captured = "ToCountry=US&ToState=&SmsMessageSid=SMe287d7109a5a925f182f0e07fe5b223b&NumMedia=0&ToCity=&FromZip=01022&SmsSid=SMe287d7109a5a925f182f0e07fe5b223b&FromState=MA&SmsStatus=received&FromCity=CHICOPEE&Body=Msg&FromCountry=US&To=%2B12028831111&ToZip=&NumSegments=1&MessageSid=SMe287d7109a5a925f182f0e07fe5b223b&AccountSid=acctid&From=%2B14133881111&ApiVersion=2010-04-01";
    assert_eq!(
        single(Twilio::parse_sms(&body(captured).view())),
        Ok(sms(
            "SMe287d7109a5a925f182f0e07fe5b223b",
            "+14133881111",
            "+12028831111",
            "Msg"
        )),
        "captured body"
    );

    let cases: Vec<SmsCase> = vec![
        (
            "unicode body",
            vec![
                ("MessageSid", "SM1"),
                ("From", "+992901234567"),
                ("To", "+12028831111"),
                ("Body", "Салом <b> & \"1\""),
            ],
            Ok(sms(
                "SM1",
                "+992901234567",
                "+12028831111",
                "Салом <b> & \"1\"",
            )),
        ),
        (
            "SmsSid fallback",
            vec![("SmsSid", "SM2"), ("From", "+14133881111"), ("Body", "x")],
            Ok(sms("SM2", "+14133881111", "", "x")),
        ),
        (
            "empty MessageSid falls back to SmsSid",
            vec![
                ("MessageSid", ""),
                ("SmsSid", "SM3"),
                ("From", "+14133881111"),
            ],
            Ok(sms("SM3", "+14133881111", "", "")),
        ),
        (
            "no body",
            vec![
                ("MessageSid", "MM4"),
                ("From", "+14133881111"),
                ("NumMedia", "1"),
            ],
            Ok(sms("MM4", "+14133881111", "", "")),
        ),
        (
            "missing sid",
            vec![("From", "+14133881111"), ("Body", "x")],
            Err(InboundError::Missing("MessageSid")),
        ),
        (
            "missing From",
            vec![("MessageSid", "SM5"), ("Body", "x")],
            Err(InboundError::Missing("From")),
        ),
        (
            "blank From",
            vec![("MessageSid", "SM6"), ("From", " "), ("Body", "x")],
            Err(InboundError::Missing("From")),
        ),
    ];
    check_form_cases(cases, Twilio::parse_sms);
}

#[test]
fn status_callback_cases() {
    let report = |status: &str, state, reason: Option<&str>| {
        let message = MessageRef::Provider("SM1".into());
        testkit::report(Twilio::NAME, message, state, status, reason)
    };
    let statuses = [
        ("queued", DeliveryState::Sent),
        ("accepted", DeliveryState::Sent),
        ("scheduled", DeliveryState::Sent),
        ("sending", DeliveryState::Sent),
        ("sent", DeliveryState::Sent),
        ("delivered", DeliveryState::Delivered),
        ("read", DeliveryState::Delivered),
        ("undelivered", DeliveryState::Failed),
        ("failed", DeliveryState::Failed),
        ("canceled", DeliveryState::Failed),
    ];
    let fields = |status| {
        vec![
            ("SmsSid", "SM1"),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", "+14133881111"),
            ("MessageSid", "SM1"),
            ("AccountSid", "AC1"),
            ("From", "+12028831111"),
            ("ApiVersion", "2010-04-01"),
        ]
    };
    let mut cases: Vec<ReportCase> = status_cases(&statuses, fields, report);
    cases.extend([
        (
            vec![
                ("MessageSid", "SM1"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", "30003"),
            ],
            Ok(report("undelivered", DeliveryState::Failed, Some("30003"))),
        ),
        (
            vec![
                ("MessageSid", "SM1"),
                ("MessageStatus", "failed"),
                ("ErrorCode", ""),
            ],
            Ok(report("failed", DeliveryState::Failed, None)),
        ),
        (
            vec![("SmsSid", "SM1"), ("SmsStatus", "delivered")],
            Ok(report("delivered", DeliveryState::Delivered, None)),
        ),
        (
            vec![("MessageSid", "SM1"), ("MessageStatus", "received")],
            Err(InboundError::Invalid {
                field: "MessageStatus",
                message: "unknown status \"received\"".into(),
            }),
        ),
        (
            vec![("MessageSid", "SM1"), ("MessageStatus", "Delivered")],
            Err(InboundError::Invalid {
                field: "MessageStatus",
                message: "unknown status \"Delivered\"".into(),
            }),
        ),
        (
            vec![("MessageStatus", "delivered")],
            Err(InboundError::Missing("MessageSid")),
        ),
        (
            vec![("MessageSid", "SM1")],
            Err(InboundError::Missing("MessageStatus")),
        ),
    ]);
    check_form_reports(cases, Twilio::parse_delivery);
}

#[test]
fn twiml() {
    assert_eq!(
        twiml_empty(),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
    );
    assert_eq!(
        twiml_message("Hi"),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Hi</Message></Response>"#
    );
    assert_eq!(
        twiml_message(r#"a & b < c > d "e" 'f' Салом"#),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos; Салом</Message></Response>"#
    );
    assert_eq!(
        twiml_message("</Message><Redirect>x</Redirect>"),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>&lt;/Message&gt;&lt;Redirect&gt;x&lt;/Redirect&gt;</Message></Response>"#
    );
}

// ---- outbound ----

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const MESSAGES: &str = "/2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef/Messages.json";

fn message() -> OutboundSms {
    outbound(7, "Салом & +1", Encoding::Ucs2)
}

fn client(server: &MockServer, status_callback: Option<&str>) -> Client {
    testkit::client(Settings {
        account_sid: SID.into(),
        auth_token: "tok_secret".into(),
        from: "+12028831111".into(),
        base_url: format!("{}/", server.uri()),
        status_callback: status_callback.map(str::to_owned),
    })
}

fn message_json(sid: &str) -> serde_json::Value {
    serde_json::json!({"sid": sid, "status": "queued", "num_segments": "1",
                       "error_code": null, "error_message": null})
}

#[tokio::test]
async fn send_posts_the_documented_request() {
    let callback = "https://gw.example/twilio/status?x=1";
    let request = form_post(
        MESSAGES,
        &[
            ("To", "+79161234567"),
            ("From", "+12028831111"),
            ("Body", "Салом & +1"),
            ("StatusCallback", callback),
        ],
    )
    .and(basic_auth(SID, "tok_secret"))
    .and(header("accept", "application/json"));
    let answer = ResponseTemplate::new(201).set_body_json(message_json("SM123"));
    let got = send_expecting(request, answer, |s| client(s, Some(callback)), &message()).await;
    assert_eq!(got, accepted(Some("SM123")));
}

#[tokio::test]
async fn send_without_status_callback_leaves_it_out() {
    let request = form_post(
        MESSAGES,
        &[
            ("To", "+79161234567"),
            ("From", "+12028831111"),
            ("Body", "Салом & +1"),
        ],
    )
    .and(basic_auth(SID, "tok_secret"));
    let answer = ResponseTemplate::new(201).set_body_json(message_json("SM124"));
    let got = send_expecting(request, answer, |s| client(s, None), &message()).await;
    assert_eq!(got, accepted(Some("SM124")));
}

#[tokio::test]
async fn send_answers() {
    let error = |status: u16, code: i64, message: &str| {
        ResponseTemplate::new(status).set_body_json(serde_json::json!({
            "code": code, "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status}))
    };
    let cases: Vec<(&str, ResponseTemplate, Want)> = vec![
        (
            "200 with sid",
            ResponseTemplate::new(200).set_body_json(message_json("SM200")),
            Want::Accepted("SM200"),
        ),
        (
            "201 without sid",
            ResponseTemplate::new(201).set_body_json(serde_json::json!({"status": "queued"})),
            Want::Fatal("without a message sid"),
        ),
        (
            "21211 invalid To",
            error(
                400,
                21211,
                "The 'To' number +7916 is not a valid phone number.",
            ),
            Want::Fatal("Twilio error 21211: The 'To' number"),
        ),
        (
            "21610 unsubscribed",
            error(400, 21610, "Attempt to send to unsubscribed recipient"),
            Want::Fatal("21610"),
        ),
        (
            "401 bad credentials",
            error(401, 20003, "Authenticate"),
            Want::Fatal("20003"),
        ),
        (
            "404 without JSON",
            ResponseTemplate::new(404).set_body_string("not found"),
            Want::Fatal("HTTP 404"),
        ),
        (
            "429 throttled",
            error(429, 20429, "Too Many Requests"),
            Want::Retryable("429"),
        ),
        (
            "500",
            ResponseTemplate::new(500).set_body_string("boom"),
            Want::Retryable("500"),
        ),
        (
            "503",
            error(503, 20500, "Service unavailable"),
            Want::Retryable("503"),
        ),
        (
            "timeout",
            ResponseTemplate::new(201)
                .set_body_json(message_json("SMlate"))
                .set_delay(Duration::from_secs(2)),
            Want::Retryable("transport"),
        ),
    ];
    check_send_answers(
        cases,
        ("POST", MESSAGES),
        |server| client(server, None),
        &message(),
    )
    .await;
}
