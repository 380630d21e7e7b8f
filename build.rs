//! Embeds every platform spec in `checks/platforms/` and every firmware recipe in
//! `checks/firmware/` into the binary, so each built-in list is its directory: a new `*.toml`
//! there is built in with no code change.

use std::io::Write;
use std::path::Path;

fn main() {
    embed("checks/platforms", "PLATFORMS", "spec", "builtin_platforms.rs");
    embed("checks/firmware", "RECIPES", "recipe", "builtin_firmware.rs");
}

/// Writes `OUT_DIR/<out>`: a `const <name>` listing each `*.toml` of `<dir>` (file name, text),
/// sorted by file name.
fn embed(dir: &str, name: &str, what: &str, out: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
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
    let mut text = format!("/// File name and text of each built-in {what}, sorted by file name.\n");
    text.push_str(&format!("pub const {name}: &[(&str, &str)] = &[\n"));
    for file in &files {
        let path = dir.join(file);
        text.push_str(&format!("    ({file:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    text.push_str("];\n");
    let Some(out_dir) = std::env::var_os("OUT_DIR") else { panic!("cargo sets OUT_DIR for build scripts") };
    let target = Path::new(&out_dir).join(out);
    let mut file = std::fs::File::create(&target).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
    file.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
