//! The layers of `docs/ARCHITECTURE.md`, checked: a module of the library may use what is
//! to its right (or beside it), never what is to its left:
//!
//! ```text
//! edge (http, api, console, workers, server, provision, demo, fuzzing, cli)
//!   ─▶ conversation (ussd, sms, conversation, keywords, inbox) / channels / service
//!   ─▶ engine / actions (and receipts, broadcasts, meetings, news, outbox, hints, cache)
//!   ─▶ store ─▶ domain
//! ```
//!
//! `app` (the state handed to every request), `config` (settings, read once at start),
//! `clock` and `metrics` are wiring: every layer may use them. Each exception below names
//! why it is there; ARCHITECTURE.md lists the same ones.
//!
//! The scan reads the source as text: every `crate::NAME` path and every name at the top of
//! a `crate::{…}` group, outside comments. It is written by hand because a parser (syn with
//! its `full` feature) would be a second, slower build of a large crate for a check that
//! needs only paths that start with `crate::`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layer of each top-level module: higher is further left.
fn rank(module: &str) -> Option<u8> {
    Some(match module {
        "app" | "config" | "clock" | "metrics" => return None, // wiring
        "domain" => 1,
        "store" => 2,
        "engine" | "actions" | "receipts" | "broadcasts" | "meetings" | "news" | "outbox"
        | "hints" | "cache" => 3,
        "ussd" | "sms" | "conversation" | "keywords" | "inbox" | "channels" | "service" => 4,
        "http" | "api" | "console" | "workers" | "server" | "provision" | "demo" | "fuzzing"
        | "cli" => 5,
        other => {
            panic!("module {other} has no layer: add it to tests/layering.rs and ARCHITECTURE.md")
        }
    })
}

/// Imports against the direction that are there on purpose: (from, to, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/store/money.rs` → `store`).
fn module_of(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a path below src/")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its comments (line comments and doc comments; this crate has
/// no block comments, and a `//` inside a string only shortens what is scanned).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules `code` names after `crate::`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let after = rest.trim_start();
        if let Some(group) = after.strip_prefix('{') {
            // the names at depth 0 of the group: `crate::{a, b::{c, d}, e::f}` → a, b, e
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && (c.is_ascii_alphabetic() || c == '_') => {
                        used.insert(ident(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() {
                used.insert(name.to_owned());
            }
        }
    }
    used
}

#[test]
fn no_module_imports_against_the_direction_of_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    // the crate's modules; other names after `crate::` are items of the crate root
    // (`MIGRATOR`), which belong to no layer
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs is readable");
    let modules: BTreeSet<String> = code(&lib)
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("pub mod ")
                .or(l.trim().strip_prefix("mod "))
        })
        .map(|rest| ident(rest).to_owned())
        .collect();
    let mut wrong = Vec::new();
    let mut exceptions_used = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("below src/");
        let from = module_of(relative);
        // the binaries and the crate root are the edge of everything
        if from == "bin" || from == "lib" || from == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        let Some(from_rank) = rank(&from) else {
            continue;
        };
        for to in used_modules(&code(&text)) {
            if to == from || !modules.contains(&to) {
                continue;
            }
            let Some(to_rank) = rank(&to) else {
                continue;
            };
            if to_rank <= from_rank {
                continue;
            }
            match EXCEPTIONS.iter().find(|(f, t, _)| *f == from && *t == to) {
                Some(e) => {
                    exceptions_used.insert(*e);
                }
                None => wrong.push(format!(
                    "src/{} ({from}, layer {from_rank}) uses crate::{to} (layer {to_rank})",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers (see docs/ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
    let stale: Vec<_> = EXCEPTIONS
        .iter()
        .filter(|e| !exceptions_used.contains(*e))
        .collect();
    assert!(stale.is_empty(), "exceptions no longer needed: {stale:?}");
}

#[test]
fn the_scan_reads_paths_groups_and_skips_comments() {
    let text = "use crate::store::{self, Foo};\nuse crate::{domain::Phone, engine::{Vars, Reply}, app};\n// crate::http in a comment\nlet x = crate::sms::go(); /// crate::ussd";
    let used = used_modules(&code(text));
    let want: BTreeSet<String> = ["store", "domain", "engine", "app", "sms"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(used, want);
}
