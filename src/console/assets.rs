//! The console's static files, embedded in the binary with `include_bytes!` (a missing file
//! fails the build) and served under names that carry a hash of their content:
//! `/console/static/{name}.{hash8}.{ext}`, where `hash8` is the first 8 hex digits of the
//! file's SHA-256, computed once at start. A new version is a new URL, so every file is
//! cached for a year as immutable; a name with another hash is 404.
//!
//! About five files: past a dozen, `rust-embed` (folder embedding) pays for itself.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// Where the files are served.
pub const PREFIX: &str = "/console/static/";

/// `Cache-Control` of every file: its URL changes with its content.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One embedded file: its name without extension, extension, type and bytes.
struct File {
    name: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The vendored htmx (npm `htmx.org` 2.0.11, 0BSD: `static/console/htmx-2.0.11.LICENSE`).
pub const HTMX: &str = "htmx-2.0.11.min.js";

const FILES: [File; 4] = [
    File {
        name: "htmx-2.0.11.min",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../static/console/htmx-2.0.11.min.js"),
    },
    File {
        name: "console",
        ext: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../static/console/console.css"),
    },
    File {
        name: "console",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../static/console/console.js"),
    },
    File {
        name: "favicon",
        ext: "svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../../static/console/favicon.svg"),
    },
];

/// The embedded files by their hashed names, and each file's hashed URL by its plain name.
#[derive(Debug)]
pub struct Assets {
    by_hashed: HashMap<String, (&'static str, &'static [u8])>,
    urls: HashMap<String, String>,
}

impl Assets {
    /// Hashes every file (once, at start).
    pub fn embedded() -> Assets {
        let mut by_hashed = HashMap::new();
        let mut urls = HashMap::new();
        for f in &FILES {
            let digest = Sha256::digest(f.bytes);
            let hash8: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
            let hashed = format!("{}.{hash8}.{}", f.name, f.ext);
            urls.insert(format!("{}.{}", f.name, f.ext), format!("{PREFIX}{hashed}"));
            by_hashed.insert(hashed, (f.content_type, f.bytes));
        }
        Assets { by_hashed, urls }
    }

    /// The URL of a file by its plain name (`console.css` → `/console/static/console.1a2b3c4d.css`);
    /// an unknown name (a mistake in a template) gives a URL that is 404.
    pub fn url(&self, plain: &str) -> String {
        self.urls
            .get(plain)
            .cloned()
            .unwrap_or_else(|| format!("{PREFIX}missing-{plain}"))
    }

    /// The type and bytes of a hashed name.
    pub fn get(&self, hashed: &str) -> Option<(&'static str, &'static [u8])> {
        self.by_hashed.get(hashed).copied()
    }

    /// Every served URL.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.urls.values().map(String::as_str)
    }
}

/// `GET /console/static/{file}`.
pub async fn serve(State(assets): State<Arc<Assets>>, Path(file): Path<String>) -> Response {
    match assets.get(&file) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            ],
            bytes,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            "not found\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored htmx is the npm registry's `htmx.org@2.0.11` `dist/htmx.min.js`: a
    /// changed file is a deliberate upgrade (with the browser tests), never an accident.
    #[test]
    fn vendored_htmx_is_pinned() {
        let bytes = FILES
            .iter()
            .find(|f| f.name == "htmx-2.0.11.min")
            .map(|f| f.bytes)
            .unwrap_or_default();
        let hex: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
        );
        let licence = include_str!("../../static/console/htmx-2.0.11.LICENSE");
        assert!(licence.contains("Zero-Clause BSD"), "{licence}");
    }

    #[test]
    fn urls_carry_eight_hex_digits_of_the_content_hash() {
        let assets = Assets::embedded();
        let url = assets.url(HTMX);
        assert_eq!(url, "/console/static/htmx-2.0.11.min.d6fdc75f.js");
        for plain in ["console.css", "console.js", "favicon.svg"] {
            let url = assets.url(plain);
            let hashed = url.strip_prefix(PREFIX).expect("under the prefix");
            let parts: Vec<&str> = hashed.split('.').collect();
            assert_eq!(parts.len(), 3, "{url}");
            assert_eq!(parts[1].len(), 8, "{url}");
            assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()), "{url}");
            assert!(assets.get(hashed).is_some(), "{url}");
        }
        assert!(assets.get("console.00000000.css").is_none());
        assert!(assets.url("nothing.css").contains("missing"));
    }

    /// §7 of the console design: CSS ≤ 12 KB as it travels (gzip, as the compression layer
    /// sends it: every page adds its rules, so the plain file grows past that), console.js ≤
    /// 3 KB and the favicon ≤ 2 KB even uncompressed (stricter than the budget).
    #[test]
    fn own_files_stay_within_their_budget() {
        use std::io::Write;
        for f in &FILES {
            let (limit, size) = match (f.name, f.ext) {
                ("console", "css") => {
                    let mut gz =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    gz.write_all(f.bytes).expect("gzip in memory");
                    (12 * 1024, gz.finish().expect("gzip in memory").len())
                }
                ("console", "js") => (3 * 1024, f.bytes.len()),
                ("favicon", "svg") => (2 * 1024, f.bytes.len()),
                _ => continue,
            };
            assert!(size <= limit, "{}.{}: {size} bytes", f.name, f.ext);
        }
    }

    /// Every rule block of `console.css` is closed (a merge that drops a `}` puts all later
    /// rules inside a media query, where a phone never sees them).
    #[test]
    fn the_stylesheet_has_balanced_braces() {
        let css = include_str!("../../static/console/console.css");
        let mut depth = 0i32;
        for (n, line) in css.lines().enumerate() {
            for c in line.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            assert!(depth >= 0, "console.css line {}: a `}}` too many", n + 1);
        }
        assert_eq!(depth, 0, "console.css: a `{{` is never closed");
    }

    /// The colour variables of `console.css`: `--name: #rrggbb;`.
    fn colours() -> HashMap<String, [f64; 3]> {
        let css = include_str!("../../static/console/console.css");
        let mut out = HashMap::new();
        for line in css.lines() {
            let Some((name, value)) = line
                .trim()
                .strip_prefix("--")
                .and_then(|l| l.split_once(':'))
            else {
                continue;
            };
            let hex = value.trim().trim_end_matches(';').trim_start_matches('#');
            if hex.len() != 6 {
                continue;
            }
            let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map(f64::from);
            if let (Ok(r), Ok(g), Ok(b)) = (channel(0), channel(2), channel(4)) {
                out.insert(name.trim().to_owned(), [r, g, b]);
            }
        }
        out
    }

    /// WCAG 2's relative luminance.
    fn luminance([r, g, b]: [f64; 3]) -> f64 {
        let linear = |c: f64| {
            let c = c / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    }

    fn contrast(a: [f64; 3], b: [f64; 3]) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    /// Every pair of text and background colours the stylesheet uses reaches 4.5:1.
    #[test]
    fn text_colours_contrast_with_their_backgrounds() {
        let c = colours();
        assert!((contrast([0.0; 3], [255.0; 3]) - 21.0).abs() < 0.01);
        assert!((contrast([118.0; 3], [255.0; 3]) - 4.54).abs() < 0.01);
        let pairs = [
            ("fg", "bg"),
            ("fg", "surface"),
            ("muted", "bg"),
            ("muted", "surface"),
            ("accent", "bg"),
            ("accent", "surface"),
            ("accent-fg", "accent"),
            ("bar-fg", "bar-bg"),
            ("error", "bg"),
            ("error", "surface"),
        ];
        for (text, background) in pairs {
            let (Some(t), Some(b)) = (c.get(text), c.get(background)) else {
                panic!("--{text} or --{background} is not a #rrggbb variable in console.css");
            };
            let ratio = contrast(*t, *b);
            assert!(ratio >= 4.5, "--{text} on --{background}: {ratio:.2}:1");
        }
        // the focus outline and field borders are not text: 3:1 (WCAG 1.4.11)
        for part in ["focus", "border"] {
            let ratio = contrast(c[part], c["bg"]);
            assert!(ratio >= 3.0, "--{part} on --bg: {ratio:.2}:1");
        }
    }
}
