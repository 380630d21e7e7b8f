//! The hardware boundary holds in the source: NVML is reached only through `src/hw`, so burn-in
//! and validate cannot read the GPUs two ways.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn nvml_is_named_only_under_src_hw() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let hw = root.join("src/hw");
    let outside: Vec<String> = files
        .iter()
        .filter(|f| !f.starts_with(&hw))
        .filter(|f| std::fs::read_to_string(f).expect("read").contains("nvml_wrapper"))
        .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
        .collect();
    assert!(outside.is_empty(), "nvml-wrapper used outside src/hw: {outside:?}");
}
