//! How much room a text takes on a phone: GSM-7 septets or UCS-2 code units.
//!
//! Written by hand: the GSM 03.38 tables are two short strings, and the crates that carry
//! them (`gsm7`, `gsm7-alt`) pack septets for PDUs but do not count segments the way the
//! aggregators do; the few lines here are checked against aggregators.md §5.

/// GSM 03.38 basic alphabet (one septet each); LF and CR included.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// GSM 03.38 extension table: ESC + code, two septets each.
const GSM7_EXTENDED: &str = "^{}\\[~]|€\u{c}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// Units per segment of a concatenated SMS (the rest of 140 bytes is the UDH).
const GSM7_PER_SEGMENT: usize = 153;
const UCS2_PER_SEGMENT: usize = 67;

/// The size of a text in the units of the encoding it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextMeasure {
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count two), UTF-16 code units for UCS-2.
    pub units: usize,
}

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

impl TextMeasure {
    pub fn of(text: &str) -> TextMeasure {
        let mut septets = 0;
        for c in text.chars() {
            match gsm7_septets(c) {
                Some(n) => septets += n,
                None => {
                    return TextMeasure {
                        encoding: Encoding::Ucs2,
                        units: text.encode_utf16().count(),
                    }
                }
            }
        }
        TextMeasure {
            encoding: Encoding::Gsm7,
            units: septets,
        }
    }

    /// SMS segments for this text (aggregators.md §5.2).
    pub fn sms_segments(&self) -> usize {
        let (single, multi) = match self.encoding {
            Encoding::Gsm7 => (160, GSM7_PER_SEGMENT),
            Encoding::Ucs2 => (70, UCS2_PER_SEGMENT),
        };
        if self.units <= single {
            1
        } else {
            self.units.div_ceil(multi)
        }
    }
}

/// Largest USSD screens (aggregators.md §5.3), in the units of [`TextMeasure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenLimits {
    pub gsm7: usize,
    pub ucs2: usize,
}

impl Default for ScreenLimits {
    fn default() -> Self {
        // 182 septets is the protocol maximum; 160 leaves room for networks that cut earlier.
        ScreenLimits {
            gsm7: 160,
            ucs2: 80,
        }
    }
}

impl ScreenLimits {
    /// A menu screen sent as an SMS of at most `segments` concatenated parts.
    pub fn sms(segments: u32) -> ScreenLimits {
        let n = segments.max(1) as usize;
        ScreenLimits {
            gsm7: GSM7_PER_SEGMENT * n,
            ucs2: UCS2_PER_SEGMENT * n,
        }
    }

    pub fn fits(&self, text: &str) -> bool {
        let m = TextMeasure::of(text);
        match m.encoding {
            Encoding::Gsm7 => m.units <= self.gsm7,
            Encoding::Ucs2 => m.units <= self.ucs2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_gsm7_with_extension_characters() {
        assert_eq!(
            TextMeasure::of("Hello"),
            TextMeasure {
                encoding: Encoding::Gsm7,
                units: 5
            }
        );
        assert_eq!(TextMeasure::of("5€ {x}").units, 9);
        assert_eq!(TextMeasure::of("a\nb").units, 3);
    }

    #[test]
    fn cyrillic_and_tajik_force_ucs2() {
        let m = TextMeasure::of("Салом ҳамватан");
        assert_eq!(m.encoding, Encoding::Ucs2);
        assert_eq!(m.units, 14);
        // a single lookalike Cyrillic letter switches the whole text
        assert_eq!(TextMeasure::of("PLEDGE 500 А").encoding, Encoding::Ucs2);
        // emoji take two UTF-16 units
        assert_eq!(TextMeasure::of("😀").units, 2);
    }

    #[test]
    fn counts_segments_like_kannel() {
        assert_eq!(TextMeasure::of(&"a".repeat(160)).sms_segments(), 1);
        assert_eq!(TextMeasure::of(&"a".repeat(200)).sms_segments(), 2);
        assert_eq!(TextMeasure::of(&"д".repeat(70)).sms_segments(), 1);
        assert_eq!(TextMeasure::of(&"д".repeat(100)).sms_segments(), 2);
    }

    #[test]
    fn screen_limits() {
        let l = ScreenLimits::default();
        assert!(l.fits(&"a".repeat(160)));
        assert!(!l.fits(&"a".repeat(161)));
        assert!(l.fits(&"ж".repeat(80)));
        assert!(!l.fits(&"ж".repeat(81)));
    }
}
