//! Splitting a screen into pages that fit the USSD limits, never cutting text off.
//!
//! A screen that fits is one page, as written. One that does not is laid out on as few pages
//! as the greedy layout needs, and among the layouts with that many pages the one chosen
//! (in this order) has no page holding a single word or a single option (a lone "1 Next tip"),
//! breaks pages between lines rather than inside one (so a screen's first line, its
//! headline, stays whole on the first page when it can), and has its fullest page as empty
//! as possible (the pages are balanced, not full, full, and a word).

use crate::domain::text::{ScreenLimits, TextMeasure};

/// One piece of a screen: body text may be split between words, options may not.
#[derive(Debug, Clone)]
pub enum Unit {
    Text(String),
    Option(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a line does not fit on one screen even alone: {0:?}")]
pub struct TooLong(pub String);

/// What joins a piece to the one before it on the same page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    /// A new line (a new line of text, or an option).
    Line,
    /// A space between two words of a line.
    Space,
    /// Nothing: the pieces of a word longer than a page.
    Glue,
}

/// The smallest piece a page break may fall after: a word, a piece of a long word, an option.
#[derive(Debug, Clone)]
struct Atom {
    text: String,
    sep: Sep,
    /// Septets, or `None` when the text needs UCS-2.
    septets: Option<usize>,
    /// UTF-16 code units.
    utf16: usize,
}

impl Atom {
    fn new(text: String, sep: Sep) -> Atom {
        let m = TextMeasure::of(&text);
        let septets = match m.encoding {
            crate::domain::Encoding::Gsm7 => Some(m.units),
            crate::domain::Encoding::Ucs2 => None,
        };
        Atom {
            utf16: text.encode_utf16().count(),
            text,
            sep,
            septets,
        }
    }
}

/// Running sums over the atoms, to measure any run of them at once.
struct Sums {
    /// Septets of atoms `..i` (GSM-7 atoms only).
    septets: Vec<usize>,
    utf16: Vec<usize>,
    /// Atoms `..i` that need UCS-2.
    ucs2: Vec<usize>,
    /// Separators of atoms `..i` that take a character (a space or a new line).
    seps: Vec<usize>,
}

impl Sums {
    fn of(atoms: &[Atom]) -> Sums {
        let mut s = Sums {
            septets: vec![0],
            utf16: vec![0],
            ucs2: vec![0],
            seps: vec![0],
        };
        for a in atoms {
            let last = |v: &Vec<usize>| v.last().copied().unwrap_or(0);
            s.septets.push(last(&s.septets) + a.septets.unwrap_or(0));
            s.utf16.push(last(&s.utf16) + a.utf16);
            s.ucs2
                .push(last(&s.ucs2) + usize::from(a.septets.is_none()));
            s.seps.push(last(&s.seps) + usize::from(a.sep != Sep::Glue));
        }
        s
    }
}

/// The room a page of atoms `i..j` takes, with the navigation lines every page reserves.
struct Measure<'a> {
    sums: Sums,
    limits: &'a ScreenLimits,
    /// "\n" + back + "\n" + more: septets (`None`: needs UCS-2) and UTF-16 units.
    footer_septets: Option<usize>,
    footer_utf16: usize,
}

impl Measure<'_> {
    /// The page's units and its limit, or `None` when atoms `i..j` do not fit one page.
    fn page(&self, i: usize, j: usize) -> Option<(usize, usize)> {
        let s = &self.sums;
        // the first atom's separator is not written
        let seps = s.seps[j] - s.seps[i + 1];
        let gsm = s.ucs2[j] == s.ucs2[i] && self.footer_septets.is_some();
        let (body, footer, limit) = if gsm {
            (
                s.septets[j] - s.septets[i] + seps,
                self.footer_septets.unwrap_or(0),
                self.limits.gsm7,
            )
        } else {
            (
                s.utf16[j] - s.utf16[i] + seps,
                self.footer_utf16,
                self.limits.ucs2,
            )
        };
        (body + footer <= limit).then_some((body, limit))
    }

    /// Whether atoms `i..j` are too long for a page in any encoding (a character takes at
    /// least one unit of either): then so is every run that holds them.
    fn too_long(&self, i: usize, j: usize) -> bool {
        let s = &self.sums;
        s.utf16[j] - s.utf16[i] + s.seps[j] - s.seps[i + 1] > self.limits.gsm7.max(self.limits.ucs2)
    }
}

/// How good a layout is; smaller is better, compared in field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Score {
    /// Pages holding one word or one option only (when the screen has more).
    lone: usize,
    /// Pages that begin inside a line of text.
    broken_lines: usize,
    /// The fullest page, in thousandths of its limit.
    fullest: usize,
}

impl Score {
    fn then(self, page: Score) -> Score {
        Score {
            lone: self.lone + page.lone,
            broken_lines: self.broken_lines + page.broken_lines,
            fullest: self.fullest.max(page.fullest),
        }
    }
}

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
    // Every page reserves room for both navigation lines.
    let footer = format!("\n{back}\n{more}");
    let fits_alone = |text: &str| limits.fits(&format!("{text}{footer}"));
    let atoms = atoms(units, &fits_alone)?;
    let footer_measure = TextMeasure::of(&footer);
    let measure = Measure {
        sums: Sums::of(&atoms),
        limits,
        footer_septets: match footer_measure.encoding {
            crate::domain::Encoding::Gsm7 => Some(footer_measure.units),
            crate::domain::Encoding::Ucs2 => None,
        },
        footer_utf16: footer.encode_utf16().count(),
    };
    let breaks = layout(&atoms, &measure);
    let count = breaks.len().saturating_sub(1);
    Ok(breaks
        .windows(2)
        .enumerate()
        .map(|(page, w)| {
            let mut text = String::new();
            for (k, atom) in atoms[w[0]..w[1]].iter().enumerate() {
                if k > 0 {
                    match atom.sep {
                        Sep::Line => text.push('\n'),
                        Sep::Space => text.push(' '),
                        Sep::Glue => {}
                    }
                }
                text.push_str(&atom.text);
            }
            if page > 0 || back_on_first {
                text.push('\n');
                text.push_str(back);
            }
            if page + 1 < count {
                text.push('\n');
                text.push_str(more);
            }
            text
        })
        .collect())
}

fn unit_text(u: &Unit) -> &str {
    match u {
        Unit::Text(s) | Unit::Option(s) => s,
    }
}

/// The screen as atoms: options whole, text split into words, a word longer than a page
/// into pieces that each fit one.
fn atoms(units: &[Unit], fits_alone: &dyn Fn(&str) -> bool) -> Result<Vec<Atom>, TooLong> {
    let mut out = Vec::new();
    for unit in units {
        match unit {
            Unit::Option(line) => {
                if !fits_alone(line) {
                    return Err(TooLong(line.clone()));
                }
                out.push(Atom::new(line.clone(), Sep::Line));
            }
            Unit::Text(text) => {
                for line in text.split('\n') {
                    let mut sep = Sep::Line;
                    for word in line.split(' ').filter(|w| !w.is_empty()) {
                        if fits_alone(word) {
                            out.push(Atom::new(word.to_owned(), sep));
                        } else {
                            split_word(word, sep, fits_alone, &mut out)?;
                        }
                        sep = Sep::Space;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A word longer than a page, in pieces between characters that each fit one.
fn split_word(
    word: &str,
    sep: Sep,
    fits_alone: &dyn Fn(&str) -> bool,
    out: &mut Vec<Atom>,
) -> Result<(), TooLong> {
    let mut sep = sep;
    let mut current = String::new();
    for c in word.chars() {
        let mut candidate = current.clone();
        candidate.push(c);
        if fits_alone(&candidate) {
            current = candidate;
        } else if current.is_empty() {
            return Err(TooLong(word.to_owned()));
        } else {
            out.push(Atom::new(
                std::mem::replace(&mut current, c.to_string()),
                sep,
            ));
            sep = Sep::Glue;
        }
    }
    if !current.is_empty() {
        out.push(Atom::new(current, sep));
    }
    Ok(())
}

/// Where the pages begin (and, last, the number of atoms): as few pages as possible, and
/// among those the layout with the best [`Score`].
fn layout(atoms: &[Atom], measure: &Measure<'_>) -> Vec<usize> {
    let n = atoms.len();
    if n == 0 {
        return vec![0, 0];
    }
    // The fewest pages: greedy (every atom fits a page alone).
    let mut greedy = vec![0];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && measure.page(start, end + 1).is_some() {
            end += 1;
        }
        greedy.push(end);
        start = end;
    }
    let pages = greedy.len() - 1;
    let page_score = |i: usize, j: usize| -> Option<Score> {
        let (units, limit) = measure.page(i, j)?;
        Some(Score {
            lone: usize::from(j - i == 1 && n > 1),
            broken_lines: usize::from(i > 0 && atoms[i].sep != Sep::Line),
            fullest: units * 1000 / limit.max(1),
        })
    };
    // best[k][j]: the best layout of atoms ..j on k pages, and where its last page begins.
    let mut best: Vec<Vec<Option<(Score, usize)>>> = vec![vec![None; n + 1]; pages + 1];
    best[0][0] = Some((
        Score {
            lone: 0,
            broken_lines: 0,
            fullest: 0,
        },
        0,
    ));
    for k in 1..=pages {
        for j in 1..=n {
            let mut choice: Option<(Score, usize)> = None;
            for i in (0..j).rev() {
                if measure.too_long(i, j) {
                    break; // and so is every longer page
                }
                let Some(page) = page_score(i, j) else {
                    continue;
                };
                let Some((before, _)) = best[k - 1][i] else {
                    continue;
                };
                let score = before.then(page);
                if choice.is_none_or(|(s, _)| score < s) {
                    choice = Some((score, i));
                }
            }
            best[k][j] = choice;
        }
    }
    let mut breaks = vec![n];
    let mut j = n;
    for k in (1..=pages).rev() {
        // a layout on `pages` pages exists (the greedy one), so every step has a choice
        let Some((_, i)) = best[k][j] else {
            return greedy;
        };
        breaks.push(i);
        j = i;
    }
    breaks.reverse();
    breaks
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

    /// The body lines of a page (without the navigation lines).
    fn body<'p>(page: &'p str, nav: &[&str]) -> Vec<&'p str> {
        page.lines().filter(|l| !nav.contains(l)).collect()
    }

    #[test]
    fn a_last_word_is_not_left_alone_on_a_page() {
        // A page holds 11 such words with the navigation lines: the greedy layout fills
        // two pages and leaves "конец" alone on a third.
        let limits = ScreenLimits::default();
        let nav = ["0 Назад", "99 Ещё"];
        let text = format!("{} конец", "слово ".repeat(22).trim());
        let units = [Unit::Text(text)];
        let pages = paginate(&units, nav[0], nav[1], false, &limits).expect("pages");
        assert_eq!(pages.len(), 3, "{pages:?}");
        for p in &pages {
            let words: usize = body(p, &nav).iter().map(|l| l.split(' ').count()).sum();
            assert!(words >= 4, "an unbalanced page: {p:?} of {pages:?}");
        }
    }

    #[test]
    fn next_tip_is_never_alone_on_a_page() {
        let limits = ScreenLimits::default();
        let nav = ["0 Назад", "99 Ещё"];
        // a tip that fills one page exactly, then its option
        let mut tip = String::new();
        while limits.fits(&format!("{tip} слово\n{}\n{}", nav[0], nav[1])) {
            tip.push_str(" слово");
        }
        let units = [
            Unit::Text(tip.trim().to_owned()),
            Unit::Option("1 Следующий совет".into()),
        ];
        let pages = paginate(&units, nav[0], nav[1], true, &limits).expect("pages");
        assert_eq!(pages.len(), 2);
        let last = body(&pages[1], &nav);
        assert!(last.len() > 1, "the option alone: {:?}", pages[1]);
        assert_eq!(last.last(), Some(&"1 Следующий совет"));
    }

    #[test]
    fn a_headline_stays_whole_on_the_first_page() {
        let limits = ScreenLimits::default();
        let nav = ["0 Назад", "99 Далее"];
        let headline = "Собрано 24000 из 150000 TJS (16%)";
        let details = "Пешеходный мост: обещано 30000, получено 12000.";
        let units = [Unit::Text(format!("{headline}\n{details}"))];
        let pages = paginate(&units, nav[0], nav[1], true, &limits).expect("pages");
        assert_eq!(pages.len(), 2, "{pages:?}");
        assert_eq!(body(&pages[0], &nav), vec![headline]);
        assert_eq!(body(&pages[1], &nav), vec![details]);
    }

    #[test]
    fn list_pages_are_balanced() {
        let limits = ScreenLimits::default();
        let nav = ["0 Назад", "99 Ещё"];
        let mut units = vec![Unit::Text("Выберите проект:".into())];
        units.extend((1..=11).map(|i| Unit::Option(format!("{i} Проект {i:02}"))));
        let pages = paginate(&units, nav[0], nav[1], true, &limits).expect("pages");
        let sizes: Vec<usize> = pages.iter().map(|p| body(p, &nav).len()).collect();
        let (min, max) = (
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
        );
        assert!(max - min <= 1, "unbalanced pages {sizes:?}: {pages:?}");
    }

    #[test]
    fn an_option_that_cannot_fit_is_an_error() {
        let units = [Unit::Option(format!("1 {}", "ж".repeat(90)))];
        assert!(paginate(&units, "0 Назад", "99 Ещё", true, &ScreenLimits::default()).is_err());
    }
}
