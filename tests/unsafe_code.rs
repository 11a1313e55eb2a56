//! The workspace denies `unsafe_code`; the one exception is the thread-count setting in
//! `src/main.rs`, made before any thread starts. This test keeps it the only one.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | ".git" | "node_modules") {
                rust_files(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_only_allowed_unsafe_code_is_in_main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(root, &mut files);
    assert!(files.len() > 50, "only {} Rust files found", files.len());
    let needle = ["allow(", "unsafe_code)"].concat();
    let allowed: Vec<String> = files
        .iter()
        .filter(|path| std::fs::read_to_string(path).is_ok_and(|text| text.contains(&needle)))
        .map(|path| {
            path.strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(allowed, vec!["src/main.rs".to_string()]);
    let main = std::fs::read_to_string(root.join("src/main.rs")).unwrap_or_default();
    assert_eq!(
        main.matches(&needle).count(),
        1,
        "one exception in src/main.rs"
    );
}
