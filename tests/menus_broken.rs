//! Each folder in tests/menus/broken/ is a broken menu (`menu.toml`, optionally `overlay.toml`
//! with extra texts for every language) paired with the exact errors `menus check` must give
//! (`expected.err`; `BASE` stands for the folder holding the cases).

use std::path::{Path, PathBuf};

use hashar::{
    domain::{text::ScreenLimits, Language},
    engine::{check::check, MenuSet},
};

fn errors_for(case: &Path, locales: &Path) -> Vec<String> {
    let mut set = match MenuSet::load_files(&[case.join("menu.toml")], locales) {
        Ok(set) => set,
        Err(e) => return vec![e.to_string()],
    };
    let overlay = case.join("overlay.toml");
    if overlay.exists() {
        let text = std::fs::read_to_string(&overlay).expect("overlay readable");
        let table: toml::Table = toml::from_str(&text).expect("overlay parses");
        for lang in Language::ALL {
            let locale = set.locales.get_mut(&lang).expect("every language loaded");
            for (k, v) in &table {
                locale.insert(k, v.as_str().expect("overlay texts are strings"));
            }
        }
    }
    check(&set, ScreenLimits::default())
}

#[test]
fn each_broken_menu_gives_its_exact_error() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = root.join("tests/menus/broken");
    let locales = root.join("menus/locales");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&base)
        .expect("broken cases folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the broken-menu cases, found {}",
        cases.len()
    );
    for case in cases {
        let expected = std::fs::read_to_string(case.join("expected.err"))
            .expect("expected.err")
            .replace("BASE", &base.display().to_string());
        let got = errors_for(&case, &locales).join("\n");
        assert_eq!(got.trim(), expected.trim(), "case {}", case.display());
    }
}

#[test]
fn the_real_menus_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let set = MenuSet::load_dir(&root.join("menus")).expect("menus load");
    assert_eq!(check(&set, ScreenLimits::default()), Vec::<String>::new());
}
