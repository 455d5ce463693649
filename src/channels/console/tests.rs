use super::*;
use crate::channels::testkit;
use crate::domain::Encoding;

fn outbound(id: i64, text: &str) -> OutboundSms {
    testkit::outbound(id, text, Encoding::Ucs2)
}

#[tokio::test]
async fn send_accepts_and_remembers() {
    let client = Client::new();
    let got = client.send(&outbound(7, "Салом")).await;
    assert_eq!(
        got,
        Ok(Accepted {
            provider_msg_id: Some("console-7".into())
        })
    );
    let recent = client.recent();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].id, 7);
    assert_eq!(recent[0].to, "+79161234567");
    assert_eq!(recent[0].text, "Салом");
}

#[tokio::test]
async fn keeps_only_the_last_200() {
    let client = Client::new();
    for id in 0..(KEEP as i64 + 5) {
        let _ = client.send(&outbound(id, "x")).await;
    }
    let recent = client.recent();
    assert_eq!(recent.len(), KEEP);
    assert_eq!(recent.first().map(|m| m.id), Some(5));
    assert_eq!(recent.last().map(|m| m.id), Some(KEEP as i64 + 4));
}
