//! The programme's outreach topics (issue 11 point 6): what a household can be informed
//! about, by a counsellor's call, an information session, or its own reading of the
//! safe-migration screens. The codes are the callback queue's topics (`callback_requests.
//! topics`, without `other`, which informs about nothing in particular).

/// Every topic, in the order the figures show them.
pub const TOPICS: [&str; 4] = ["legal_stay", "trafficking", "hiv", "remittances"];

/// The programme's target of households informed, unless an admin sets another.
pub const DEFAULT_PROGRAMME_TARGET: i32 = 2000;

/// Whether `code` names a topic.
pub fn is_topic(code: &str) -> bool {
    TOPICS.contains(&code)
}
