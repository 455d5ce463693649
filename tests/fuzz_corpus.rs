//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`, `fuzz/seeds/<target>/`)
//! through the same function the cargo-fuzz target calls, so that the inputs the fuzzers
//! found (and every crash they found, once fixed) stay checked on the stable toolchain.
//! The fuzzers themselves are run by hand: see `docs/FUZZING.md`.

use std::path::Path;

use hashar::fuzzing;

/// Runs `target` over every file of its corpus and seed folders; returns how many.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for folder in ["corpus", "seeds"] {
        let dir = root.join(folder).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("corpus file readable");
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "no corpus for {target}");
    count
}

#[test]
fn phone_corpus() {
    replay("phone", fuzzing::phone);
}

#[test]
fn amount_corpus() {
    replay("amount", fuzzing::amount);
}

#[test]
fn keywords_corpus() {
    replay("keywords", fuzzing::keywords);
}

#[test]
fn africastalking_corpus() {
    replay("africastalking", fuzzing::africastalking);
}

#[test]
fn twilio_corpus() {
    replay("twilio", fuzzing::twilio);
}

#[test]
fn infobip_corpus() {
    replay("infobip", fuzzing::infobip);
}

#[test]
fn kannel_corpus() {
    replay("kannel", fuzzing::kannel);
}

#[test]
fn menu_corpus() {
    replay("menu", fuzzing::menu);
}

#[test]
fn engine_corpus() {
    replay("engine", fuzzing::engine);
}
