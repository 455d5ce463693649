//! Africa's Talking (aggregators.md §1): the USSD callback.

use serde::Deserialize;

use super::InboundError;
use crate::{domain::Phone, engine::Reply, ussd::Hop};

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
pub fn render_ussd(reply: &Reply) -> String {
    let prefix = if reply.end { "END" } else { "CON" };
    format!("{prefix} {}", reply.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Language;

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
        let r = |end| Reply {
            text: "Hi\n1 A".into(),
            end,
            language: Language::En,
        };
        assert_eq!(render_ussd(&r(false)), "CON Hi\n1 A");
        assert_eq!(render_ussd(&r(true)), "END Hi\n1 A");
    }
}
