//! Embeds every platform spec in `checks/platforms/` into the binary, so the built-in list is the
//! directory itself: a new `*.toml` there is built in with no code change.

use std::io::Write;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/platforms");
    // A directory: Cargo reruns this when any file in it is added, removed or changed.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".toml"))
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.sort();
    let mut out = String::from("/// File name and text of each built-in spec, sorted by file name.\n");
    out.push_str("pub const PLATFORMS: &[(&str, &str)] = &[\n");
    for name in &files {
        let path = dir.join(name);
        out.push_str(&format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    out.push_str("];\n");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else { panic!("cargo sets OUT_DIR for build scripts") };
    let target = Path::new(&out_dir).join("builtin_platforms.rs");
    let mut file = std::fs::File::create(&target).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
    file.write_all(out.as_bytes()).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
