//! Property tests: amounts read and written back (`domain::money`), and USSD paging
//! (`engine::render::paginate`): every page fits its encoding, option numbers stay global,
//! no text is lost.

use std::str::FromStr;

use hashar::{
    domain::{
        money::{format_amount, parse_amount, AmountError},
        text::{Encoding, ScreenLimits, TextMeasure},
    },
    engine::render::{paginate, TooLong, Unit},
};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are reported with their input; nothing is written into the repository.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Amounts

/// An amount in cents from 0.01 to `max`.
fn cents(max: i64) -> impl Strategy<Value = Decimal> {
    (1..=max * 100).prop_map(|c| Decimal::new(c, 2))
}

/// `12345` → `12 345` (groups of three, as people type them).
fn group(whole: &str, sep: &str) -> String {
    let digits: Vec<char> = whole.chars().collect();
    let mut out = String::new();
    for (i, c) in digits.iter().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(*c);
    }
    out
}

proptest! {
    #![proptest_config(config(512))]

    /// What is shown on a screen reads back as the same amount.
    #[test]
    fn formatted_amounts_read_back(value in cents(1_000_000_000)) {
        let max = Decimal::from(1_000_000_000);
        let shown = format_amount(value);
        prop_assert_eq!(parse_amount(&shown, max), Ok(value.normalize()), "shown as {}", shown);
    }

    /// Any decimal formats as its rounding to cents: digits, at most one point and then
    /// exactly two decimals.
    #[test]
    fn formatting_rounds_to_cents(mantissa in 1..i64::MAX, scale in 0u32..=10) {
        let value = Decimal::new(mantissa, scale);
        let shown = format_amount(value);
        let rounded = value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        prop_assert_eq!(Decimal::from_str(&shown).ok(), Some(rounded.normalize()));
        match shown.split_once('.') {
            Some((whole, frac)) => {
                prop_assert!(whole.chars().all(|c| c.is_ascii_digit()) && !whole.is_empty());
                prop_assert_eq!(frac.len(), 2);
                prop_assert!(frac != "00");
            }
            None => prop_assert!(shown.chars().all(|c| c.is_ascii_digit())),
        }
    }

    /// The ways people type an amount (spaces between groups of three, a comma or a point
    /// before the cents, blanks around) all read as the amount.
    #[test]
    fn typed_spellings_read_as_the_amount(
        value in cents(100_000),
        space in prop::sample::select(vec![" ", "\u{a0}", ""]),
        point in prop::sample::select(vec![".", ","]),
        pad in prop::sample::select(vec!["", " ", "  "]),
    ) {
        let max = Decimal::from(100_000);
        let whole = value.trunc().to_string();
        let frac = (value.fract() * Decimal::from(100)).trunc();
        let typed = if frac.is_zero() {
            format!("{pad}{}{pad}", group(&whole, space))
        } else {
            format!("{pad}{}{point}{frac:0>2}{pad}", group(&whole, space))
        };
        prop_assert_eq!(parse_amount(&typed, max), Ok(value.normalize()), "typed {:?}", typed);
    }

    /// Whatever is accepted is positive, within the maximum and in cents, and reads back
    /// from its screen form.
    #[test]
    fn parsing_any_text_keeps_its_promises(raw in "[0-9 .,\\-a]{0,14}", max in 1i64..1_000_000) {
        let max = Decimal::from(max);
        if let Ok(value) = parse_amount(&raw, max) {
            prop_assert!(value > Decimal::ZERO && value <= max && value.scale() <= 2);
            prop_assert_eq!(parse_amount(&format_amount(value), max), Ok(value));
        }
    }

    /// Amounts above the maximum are refused as too large, never read as something smaller.
    #[test]
    fn amounts_above_the_maximum_are_refused(value in cents(1_000_000), max in 1i64..1_000_000) {
        let max = Decimal::from(max);
        prop_assume!(value > max);
        prop_assert_eq!(parse_amount(&format_amount(value), max), Err(AmountError::TooLarge));
    }
}

// ---------------------------------------------------------------------------------------
// Paging

/// Words in the scripts screens are written in: GSM-7 Latin (with two-septet extension
/// characters), Cyrillic and Tajik letters (UCS-2), and an emoji (two UTF-16 units).
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9]{1,12}",
        3 => "[а-яА-ЯҳҷӣқӯғҲҶӢҚӮҒ]{1,12}",
        1 => "[€\\[\\]{}^~|\\\\]{1,3}",
        1 => "[a-z😀]{1,4}",
        1 => "[a-zA-Z]{60,200}",
    ]
}

fn body_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            word(),
            prop::sample::select(vec![" ", " ", " ", "\n", "  "]),
        ),
        0..40,
    )
    .prop_map(|words| {
        let mut s = String::new();
        for (i, (w, sep)) in words.iter().enumerate() {
            if i > 0 {
                s.push_str(sep);
            }
            s.push_str(w);
        }
        s
    })
}

fn label() -> impl Strategy<Value = String> {
    prop::collection::vec(
        word().prop_filter("short", |w| w.chars().count() <= 12),
        1..4,
    )
    .prop_map(|w| w.join(" "))
}

/// A screen: body texts and options, in any order (info screens put options after the
/// text; lists put them after a title).
fn screen() -> impl Strategy<Value = (Vec<(bool, String)>, String, String, bool, ScreenLimits)> {
    (
        prop::collection::vec(
            prop_oneof![
                body_text().prop_map(|t| (false, t)),
                label().prop_map(|l| (true, l))
            ],
            0..25,
        ),
        prop::sample::select(vec!["0 Back", "0 Назад", "0 Ба қафо"]),
        prop::sample::select(vec!["99 More", "99 Ещё", "99 Боз"]),
        any::<bool>(),
        prop_oneof![
            Just(ScreenLimits::default()),
            (1u32..=3).prop_map(ScreenLimits::sms)
        ],
    )
        .prop_map(|(items, back, more, back_on_first, limits)| {
            (
                items,
                back.to_owned(),
                more.to_owned(),
                back_on_first,
                limits,
            )
        })
}

/// Everything but blanks, in order.
fn ink(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

// Fewer cases: each builds and pages a whole screen, unoptimised in the test profile.
proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn pages_fit_keep_every_word_and_number_options_globally(
        (items, back, more, back_on_first, limits) in screen()
    ) {
        // Options are numbered across the whole screen, as the engine does.
        let mut n = 0;
        let units: Vec<Unit> = items
            .iter()
            .map(|(is_option, text)| {
                if *is_option {
                    n += 1;
                    Unit::Option(format!("{n} {text}"))
                } else {
                    Unit::Text(text.clone())
                }
            })
            .collect();
        let footer_fits = |line: &str| limits.fits(&format!("{line}\n{back}\n{more}"));
        let pages = match paginate(&units, &back, &more, back_on_first, &limits) {
            Ok(pages) => pages,
            Err(TooLong(line)) => {
                // Only an option too long for a page of its own (with both navigation
                // lines) may be refused; text is always split.
                let is_option = units.iter().any(|u| matches!(u, Unit::Option(o) if *o == line));
                prop_assert!(is_option && !footer_fits(&line), "refused {:?}", line);
                return Ok(());
            }
        };
        prop_assert!(!pages.is_empty());
        let count = pages.len();
        let mut bodies: Vec<String> = Vec::new();
        for (i, page) in pages.iter().enumerate() {
            // Every page fits the limit of the encoding it needs.
            let m = TextMeasure::of(page);
            let limit = match m.encoding {
                Encoding::Gsm7 => limits.gsm7,
                Encoding::Ucs2 => limits.ucs2,
            };
            prop_assert!(m.units <= limit, "page {} is {:?} units over {}: {:?}", i, m, limit, page);
            // Navigation: `more` ends every page but the last; `back` comes before it on
            // every page but the first (and on the first when asked).
            let mut lines: Vec<&str> = page.split('\n').collect();
            if i + 1 < count {
                prop_assert_eq!(lines.pop(), Some(more.as_str()), "page {}", i);
            }
            if i > 0 || back_on_first {
                prop_assert_eq!(lines.pop(), Some(back.as_str()), "page {}", i);
            }
            bodies.extend(lines.iter().map(|l| (*l).to_owned()));
        }
        // Option lines are whole, in order, each once, with their global numbers.
        let options: Vec<&String> = units
            .iter()
            .filter_map(|u| match u {
                Unit::Option(o) => Some(o),
                Unit::Text(_) => None,
            })
            .collect();
        let mut at = 0;
        for option in &options {
            let found = bodies[at..].iter().position(|l| l == *option);
            prop_assert!(found.is_some(), "option {:?} lost or cut", option);
            at += found.unwrap_or(0) + 1;
        }
        // No text is lost, reordered or duplicated (blanks aside: a long line is split at
        // a space, or between characters when one word is longer than a page).
        let all: String = units
            .iter()
            .map(|u| match u {
                Unit::Text(s) | Unit::Option(s) => ink(s),
            })
            .collect();
        prop_assert_eq!(ink(&bodies.concat()), all);
    }
}

/// Words no longer than 12 characters, in every script screens are written in.
fn short_word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z0-9]{1,12}",
        3 => "[а-яА-ЯҳҷӣқӯғҲҶӢҚӮҒ]{1,12}",
        1 => "[€\\[\\]{}^~|\\\\]{1,3}",
        1 => "[a-z😀]{1,4}",
    ]
}

// Issue 11, point 1: long texts page in balanced pieces.
proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn no_page_of_a_long_text_holds_a_lone_word(
        words in prop::collection::vec(short_word(), 2..120),
        back in prop::sample::select(vec!["0 Back", "0 Назад", "0 Бозгашт"]),
        more in prop::sample::select(vec!["99 More", "99 Далее", "99 Давом"]),
        back_on_first in any::<bool>(),
        limits in prop_oneof![
            Just(ScreenLimits::default()),
            (1u32..=3).prop_map(ScreenLimits::sms)
        ],
    ) {
        let text = words.join(" ");
        let pages = paginate(&[Unit::Text(text)], back, more, back_on_first, &limits)
            .expect("short words always page");
        let count = pages.len();
        if count > 1 {
            for (i, page) in pages.iter().enumerate() {
                let mut lines: Vec<&str> = page.split('\n').collect();
                if i + 1 < count {
                    lines.pop();
                }
                if i > 0 || back_on_first {
                    lines.pop();
                }
                let on_page: usize = lines.iter().map(|l| l.split_whitespace().count()).sum();
                prop_assert!(on_page >= 2, "page {} of {:?} holds {} word(s)", i, pages, on_page);
            }
        }
    }
}
