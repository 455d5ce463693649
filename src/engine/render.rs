//! Splitting a screen into pages that fit the USSD limits, never cutting text off.

use crate::domain::text::ScreenLimits;

/// One piece of a screen: body text may be split between words, options may not.
#[derive(Debug, Clone)]
pub enum Unit {
    Text(String),
    Option(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a line does not fit on one screen even alone: {0:?}")]
pub struct TooLong(pub String);

/// Lays `units` out on pages. Every page ends with the `back` line when `back_on_first` or
/// the page is not the first, and with the `more` line when another page follows.
pub fn paginate(
    units: &[Unit],
    back: &str,
    more: &str,
    back_on_first: bool,
    limits: &ScreenLimits,
) -> Result<Vec<String>, TooLong> {
    let join = |lines: &[String]| lines.join("\n");
    // Everything on one page?
    let mut single: Vec<String> = units.iter().map(|u| unit_text(u).to_owned()).collect();
    if back_on_first {
        single.push(back.to_owned());
    }
    if limits.fits(&join(&single)) {
        return Ok(vec![join(&single)]);
    }
    // Reserve room for both navigation lines on every page.
    let footer = [back.to_owned(), more.to_owned()];
    let fits_page = |body: &[String]| {
        let mut lines = body.to_vec();
        lines.extend(footer.iter().cloned());
        limits.fits(&join(&lines))
    };
    let mut pieces: Vec<String> = Vec::new();
    for unit in units {
        match unit {
            Unit::Option(line) => {
                if !fits_page(std::slice::from_ref(line)) {
                    return Err(TooLong(line.clone()));
                }
                pieces.push(line.clone());
            }
            Unit::Text(text) => {
                for line in text.split('\n') {
                    split_words(line, &fits_page, &mut pieces)?;
                }
            }
        }
    }
    let mut pages: Vec<Vec<String>> = vec![Vec::new()];
    for piece in pieces {
        let current = pages.last_mut().map(|p| {
            let mut candidate = p.clone();
            candidate.push(piece.clone());
            (fits_page(&candidate), candidate)
        });
        match current {
            Some((true, candidate)) => {
                if let Some(last) = pages.last_mut() {
                    *last = candidate;
                }
            }
            _ => pages.push(vec![piece]),
        }
    }
    let count = pages.len();
    Ok(pages
        .into_iter()
        .enumerate()
        .map(|(i, mut lines)| {
            if i > 0 || back_on_first {
                lines.push(back.to_owned());
            }
            if i + 1 < count {
                lines.push(more.to_owned());
            }
            join(&lines)
        })
        .collect())
}

fn unit_text(u: &Unit) -> &str {
    match u {
        Unit::Text(s) | Unit::Option(s) => s,
    }
}

/// Splits one line into pieces that each fit a page, at spaces where possible.
fn split_words(
    line: &str,
    fits: &dyn Fn(&[String]) -> bool,
    out: &mut Vec<String>,
) -> Result<(), TooLong> {
    if fits(&[line.to_owned()]) {
        out.push(line.to_owned());
        return Ok(());
    }
    let mut current = String::new();
    for word in line.split(' ') {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if fits(std::slice::from_ref(&candidate)) {
            current = candidate;
            continue;
        }
        if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if fits(&[word.to_owned()]) {
            current = word.to_owned();
        } else {
            // A word longer than a page: split it between characters.
            for c in word.chars() {
                let mut candidate = current.clone();
                candidate.push(c);
                if fits(std::slice::from_ref(&candidate)) {
                    current = candidate;
                } else if current.is_empty() {
                    return Err(TooLong(word.to_owned()));
                } else {
                    out.push(std::mem::replace(&mut current, c.to_string()));
                }
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_screen_is_one_page() {
        let units = [Unit::Text("Hi".into()), Unit::Option("1 A".into())];
        let pages =
            paginate(&units, "0 Back", "99 More", true, &ScreenLimits::default()).expect("fits");
        assert_eq!(pages, vec!["Hi\n1 A\n0 Back"]);
    }

    #[test]
    fn long_cyrillic_text_is_paged_between_words() {
        let text = "Слово ".repeat(40);
        let units = [Unit::Text(text.trim().to_owned())];
        let limits = ScreenLimits::default();
        let pages = paginate(&units, "0 Назад", "99 Ещё", false, &limits).expect("pages");
        assert!(pages.len() > 1);
        for (i, p) in pages.iter().enumerate() {
            assert!(limits.fits(p), "page {i} too long: {p}");
            assert_eq!(p.ends_with("99 Ещё"), i + 1 < pages.len());
        }
        let words: usize = pages.iter().map(|p| p.matches("Слово").count()).sum();
        assert_eq!(words, 40, "no word lost or cut");
    }

    #[test]
    fn options_are_never_split() {
        let units: Vec<Unit> = (1..=12)
            .map(|i| Unit::Option(format!("{i} Проект номер {i}")))
            .collect();
        let limits = ScreenLimits::default();
        let pages = paginate(&units, "0 Назад", "99 Ещё", true, &limits).expect("pages");
        let all: Vec<&str> = pages
            .iter()
            .flat_map(|p| p.lines())
            .filter(|l| l.contains("Проект"))
            .collect();
        assert_eq!(all.len(), 12);
    }

    #[test]
    fn an_option_that_cannot_fit_is_an_error() {
        let units = [Unit::Option(format!("1 {}", "ж".repeat(90)))];
        assert!(paginate(&units, "0 Назад", "99 Ещё", true, &ScreenLimits::default()).is_err());
    }
}
