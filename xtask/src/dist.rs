//! `cargo xtask dist`: node binaries per architecture for `kiln rack --dist DIR`: each installed
//! target built with the `dist` profile (no debug information, no symbols), packed with zstd, xz
//! and gzip, and `DIR/manifest.json` (`kind: kiln.dist`, docs/fleet.md "Node binaries") listing each
//! file's size and SHA-256.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// The targets a GB200 NVL72 and an HGX rack need, built when none is asked for.
pub const DEFAULT_TARGETS: &[&str] = &["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];

pub const MANIFEST: &str = "manifest.json";

const USAGE: &str = "usage: cargo xtask dist [--target T]... [--out DIR] [--no-build]";

/// How hard to pack. `cargo xtask dist` packs as small as the tools go;
/// tests pack fast.
#[derive(Debug, Clone, Copy)]
pub struct PackLevels {
    pub zstd: u8,
    pub xz: u8,
    pub gzip: u8,
}

impl PackLevels {
    pub const SMALLEST: PackLevels = PackLevels { zstd: 19, xz: 9, gzip: 9 };
    pub const FAST: PackLevels = PackLevels { zstd: 1, xz: 0, gzip: 1 };
}

#[derive(Debug, Clone, Serialize)]
pub struct DistManifest {
    pub schema_version: u32,
    pub kind: &'static str,
    pub kiln_version: Option<String>,
    pub git_commit: Option<String>,
    pub targets: Vec<TargetEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetEntry {
    pub target: String,
    pub arch: String,
    pub binary: FileEntry,
    pub compressed: Vec<CompressedEntry>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileEntry {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CompressedEntry {
    pub encoding: &'static str,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The CPU a target's binaries run on, in `uname -m`'s words (what the
/// node reports and what kiln matches against the binary's ELF header).
pub fn arch_of_target(target: &str) -> String {
    let first = target.split('-').next().unwrap_or(target);
    match first {
        "powerpc64le" => "ppc64le".into(),
        "powerpc64" => "ppc64".into(),
        "riscv64gc" => "riscv64".into(),
        "i586" | "i686" => "i686".into(),
        other => other.to_string(),
    }
}

/// The Debian cross toolchain prefix for a Linux target (`aarch64-linux-gnu`).
fn gnu_prefix(target: &str) -> Option<String> {
    let arch = target.split('-').next()?;
    let cpu = match arch {
        "riscv64gc" => "riscv64",
        "powerpc64le" => "powerpc64le",
        other => other,
    };
    target.ends_with("-linux-gnu").then(|| format!("{cpu}-linux-gnu"))
}

/// Debian's architecture name for a target (for `libssl-dev:ARCH`).
fn debian_arch(target: &str) -> &'static str {
    match arch_of_target(target).as_str() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "ppc64le" => "ppc64el",
        "riscv64" => "riscv64",
        "i686" => "i386",
        _ => "ARCH",
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The target rustc builds for by default (`rustc -vV`, `host:`).
pub fn host_target() -> Result<String> {
    let out = Command::new("rustc").arg("-vV").output().context("run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host line")
}

/// Targets whose standard library is installed: `rustup target list
/// --installed`, or without rustup the targets in rustc's sysroot.
pub fn installed_targets() -> Result<BTreeSet<String>> {
    if let Ok(out) = Command::new("rustup").args(["target", "list", "--installed"]).stderr(Stdio::null()).output() {
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect());
        }
    }
    let out = Command::new("rustc").args(["--print", "sysroot"]).output().context("run rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let mut found = BTreeSet::new();
    for e in std::fs::read_dir(sysroot.join("lib/rustlib")).context("read rustc's sysroot")?.flatten() {
        if e.path().join("lib").is_dir() {
            found.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(found)
}

/// What installing `target` takes, for the message naming a missing one.
fn how_to_add(target: &str) -> String {
    let mut s = format!("  add it with: rustup target add {target}\n");
    if let Some(prefix) = gnu_prefix(target) {
        s.push_str(&format!(
            "  a cross build also needs a linker and C compiler for it (SQLite, ring and libssh2 are C):\n    \
             apt-get install gcc-{prefix}   (Debian, Ubuntu)\n  \
             and OpenSSL for it (the SSH client links it):\n    \
             dpkg --add-architecture {deb} && apt-get update && apt-get install libssl-dev:{deb}\n",
            prefix = prefix.replace('_', "-"),
            deb = debian_arch(target),
        ));
    }
    s.push_str(&format!(
        "  or build it on a node of that architecture ({}) and copy it in: docs/fleet.md, \
         \"Building on a Grace node\"\n",
        arch_of_target(target)
    ));
    s
}

/// Environment a cross build of `target` needs that is not set yet: the
/// linker (`CARGO_TARGET_<T>_LINKER`) and pkg-config's path to the
/// target's OpenSSL, when Debian's cross toolchain and multiarch packages are
/// where Debian puts them. Errors name what is missing.
fn cross_env(target: &str) -> Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    let upper = target.to_uppercase().replace('-', "_");
    let linker_var = format!("CARGO_TARGET_{upper}_LINKER");
    if std::env::var_os(&linker_var).is_none() {
        let prefix = gnu_prefix(target).context("only Linux GNU targets can be cross-built here")?;
        let gcc = format!("{prefix}-gcc");
        if !have(&gcc) {
            bail!("{target}: no linker: {gcc} is not installed and {linker_var} is not set\n{}", how_to_add(target));
        }
        env.push((linker_var, gcc));
    }
    let lower = target.replace('-', "_");
    if std::env::var_os(format!("PKG_CONFIG_PATH_{lower}")).is_none() {
        if let Some(prefix) = gnu_prefix(target) {
            let pc = PathBuf::from(format!("/usr/lib/{prefix}/pkgconfig"));
            if pc.join("openssl.pc").exists() {
                env.push((format!("PKG_CONFIG_PATH_{lower}"), pc.display().to_string()));
                env.push(("PKG_CONFIG_ALLOW_CROSS".into(), "1".into()));
            }
        }
    }
    Ok(env)
}

/// The workspace root (the directory above `xtask/`).
pub fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs a command, echoing it, and fails unless it exits 0.
fn run(cmd: &mut Command) -> Result<()> {
    let shown = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("$ {shown}");
    let st = cmd.status().with_context(|| format!("could not start {shown}"))?;
    if !st.success() {
        bail!("{shown} exited with {}", st.code().unwrap_or(128));
    }
    Ok(())
}

pub(crate) fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

/// Builds kiln for `target` with the `dist` profile and returns the binary.
pub fn build(root: &Path, target: &str, host: &str) -> Result<PathBuf> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root).args([
        "build",
        "--package",
        "kiln",
        "--bin",
        "kiln",
        "--profile",
        "dist",
        "--target",
        target,
    ]);
    if target != host {
        for (k, v) in cross_env(target)? {
            cmd.env(k, v);
        }
    }
    run(&mut cmd)?;
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    Ok(dir.join(target).join("dist").join("kiln"))
}

fn sha256_of(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg("--").arg(path).output().context("run sha256sum")?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().next().map(str::to_string).context("sha256sum printed nothing")
}

fn file_entry(out: &Path, rel: &str) -> Result<FileEntry> {
    let p = out.join(rel);
    let bytes = std::fs::metadata(&p).with_context(|| format!("stat {}", p.display()))?.len();
    Ok(FileEntry { path: rel.to_string(), bytes, sha256: sha256_of(&p)? })
}

/// `program -LEVEL -c < from > to` (through a temporary name, renamed into place).
fn pack(program: &str, level: u8, from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    let mut cmd = Command::new(program);
    cmd.arg(format!("-{level}")).args(["-c", "-q"]);
    match program {
        // One thread: the same bytes in, the same bytes out on any machine.
        "xz" => {
            cmd.arg("-T1");
        }
        // No name or time stamp in the header, for the same reason.
        "gzip" => {
            cmd.arg("-n");
        }
        _ => {}
    }
    let input = std::fs::File::open(from).with_context(|| format!("open {}", from.display()))?;
    let output = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let st = cmd.stdin(input).stdout(output).status().with_context(|| format!("run {program}"))?;
    if !st.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("{program} -{level} {} failed", from.display());
    }
    std::fs::rename(&tmp, to).with_context(|| format!("rename {}", tmp.display()))
}

/// True when `packed` unpacks (with `program -dc`) to bytes whose SHA-256 is `want`.
fn unpacks_to(program: &str, packed: &Path, want: &str) -> bool {
    if !packed.is_file() {
        return false;
    }
    // `-t` first: a pipeline's status is the hasher's, not the unpacker's.
    let script = format!("{program} -t -- \"$1\" && {program} -dc -- \"$1\" | sha256sum");
    let out = Command::new("sh").arg("-c").arg(script).arg("sh").arg(packed).stderr(Stdio::null()).output();
    out.is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).split_whitespace().next() == Some(want))
}

/// Puts `binary` (already built for `target`) into `out/<target>/kiln` and
/// packs it. `cargo xtask dist` calls this for what it built; tests call it
/// with the debug binary.
pub fn package(binary: &Path, target: &str, out: &Path) -> Result<()> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let dest = dir.join("kiln");
    let tmp = dir.join("kiln.tmp");
    std::fs::copy(binary, &tmp).with_context(|| format!("copy {} to {}", binary.display(), tmp.display()))?;
    std::fs::rename(&tmp, &dest).with_context(|| format!("rename {}", tmp.display()))?;
    Ok(())
}

/// Writes `out/manifest.json` for every `out/<target>/kiln` there (built
/// here or copied in from a build on another machine), packing each binary
/// with zstd, xz and gzip where a packed copy is missing or does not unpack to it.
pub fn index(out: &Path, levels: PackLevels) -> Result<DistManifest> {
    let mut targets = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(out)
        .with_context(|| format!("read {}", out.display()))?
        .flatten()
        .filter(|e| e.path().join("kiln").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    for target in entries {
        let rel = format!("{target}/kiln");
        let binary = file_entry(out, &rel)?;
        let mut compressed = Vec::new();
        for (program, suffix, level) in
            [("zstd", "zst", levels.zstd), ("xz", "xz", levels.xz), ("gzip", "gz", levels.gzip)]
        {
            if !have(program) {
                eprintln!("xtask: {target}: {program} is not installed here; no .{suffix} copy");
                continue;
            }
            let prel = format!("{rel}.{suffix}");
            let path = out.join(&prel);
            if !unpacks_to(program, &path, &binary.sha256) {
                pack(program, level, &out.join(&rel), &path)?;
                if !unpacks_to(program, &path, &binary.sha256) {
                    bail!("{}: does not unpack to {rel}", path.display());
                }
            }
            let f = file_entry(out, &prel)?;
            compressed.push(CompressedEntry { encoding: program, path: f.path, bytes: f.bytes, sha256: f.sha256 });
        }
        targets.push(TargetEntry { arch: arch_of_target(&target), target, binary, compressed });
    }
    if targets.is_empty() {
        bail!("{}: no <target>/kiln to list", out.display());
    }
    let manifest = DistManifest {
        schema_version: 1,
        kind: "kiln.dist",
        kiln_version: kiln_version(),
        git_commit: git_commit(),
        targets,
    };
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    let tmp = out.join("manifest.json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, out.join(MANIFEST)).context("rename the manifest into place")?;
    Ok(manifest)
}

/// kiln's version from its Cargo.toml (the first `version = "..."`, in `[package]`).
fn kiln_version() -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')).map(str::to_string))
}

/// The commit built, with `-dirty` when the work tree has changes.
fn git_commit() -> Option<String> {
    let root = repo_root();
    let head = Command::new("git").current_dir(&root).args(["rev-parse", "HEAD"]).output().ok()?;
    if !head.status.success() {
        return None;
    }
    let mut commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        commit.push_str("-dirty");
    }
    Some(commit)
}

/// `cargo xtask dist [--target T]... [--out DIR] [--no-build]`. Exit 0 when
/// every target asked for is in the directory; 1 when a target named with
/// `--target` could not be built (the others are still built and listed).
pub fn cli(args: &[String]) -> Result<u8> {
    let root = repo_root();
    let mut asked = Vec::new();
    let mut out = root.join("target/kiln-dist");
    let mut build_them = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => asked.push(it.next().context(USAGE)?.clone()),
            "--out" => out = PathBuf::from(it.next().context(USAGE)?),
            "--no-build" => build_them = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(0);
            }
            other => {
                eprintln!("xtask: dist: unknown argument {other:?}\n{USAGE}");
                return Ok(2);
            }
        }
    }
    let explicit = !asked.is_empty();
    if !explicit {
        asked = DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect();
    }
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let mut missing = Vec::new();
    if build_them {
        let installed = installed_targets()?;
        let host = host_target()?;
        for target in &asked {
            if !installed.contains(target) {
                eprintln!("xtask: {target}: not built: its standard library is not installed\n{}", how_to_add(target));
                missing.push(target.clone());
                continue;
            }
            match build(&root, target, &host).and_then(|bin| package(&bin, target, &out)) {
                Ok(()) => {}
                Err(e) => {
                    eprintln!("xtask: {target}: not built: {e:#}");
                    missing.push(target.clone());
                }
            }
        }
    }
    let manifest = match index(&out, PackLevels::SMALLEST) {
        Ok(m) => m,
        Err(e) if missing.len() == asked.len() => {
            bail!("no node binary built ({e:#})");
        }
        Err(e) => return Err(e),
    };
    print!("{}", summary(&out, &manifest));
    let listed: BTreeSet<&str> = manifest.targets.iter().map(|t| t.target.as_str()).collect();
    let absent: Vec<&String> = asked.iter().filter(|t| !listed.contains(t.as_str())).collect();
    if !absent.is_empty() {
        let names: Vec<&str> = absent.iter().map(|s| s.as_str()).collect();
        let hint = if build_them { " (see above for why and how to add them)" } else { "" };
        eprintln!("xtask: not in {}: {}{hint}", out.display(), names.join(", "));
        if explicit {
            return Ok(1);
        }
    }
    Ok(0)
}

fn summary(out: &Path, m: &DistManifest) -> String {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    let mut s = format!("{}\n", out.join(MANIFEST).display());
    s.push_str(&format!(
        "{:<28} {:<8} {:>9} {:>9} {:>9} {:>9}  sha256\n",
        "target", "arch", "binary", "zstd", "xz", "gzip"
    ));
    for t in &m.targets {
        let of = |enc: &str| t.compressed.iter().find(|c| c.encoding == enc).map(|c| mb(c.bytes)).unwrap_or("-".into());
        s.push_str(&format!(
            "{:<28} {:<8} {:>9} {:>9} {:>9} {:>9}  {}\n",
            t.target,
            t.arch,
            mb(t.binary.bytes),
            of("zstd"),
            of("xz"),
            of("gzip"),
            &t.binary.sha256[..16.min(t.binary.sha256.len())]
        ));
    }
    s
}

/// For `cargo xtask test`: `cargo check` of kiln for every installed
/// target besides the host whose cross toolchain is present, so code that
/// only builds for one architecture is caught where CI can see it.
pub fn check_other_targets(root: &Path) -> Result<bool> {
    let host = host_target()?;
    let others: Vec<String> = installed_targets()?.into_iter().filter(|t| *t != host).collect();
    if others.is_empty() {
        eprintln!("xtask: SKIPPED: cargo check for other targets: none installed besides {host}");
        return Ok(true);
    }
    let mut ok = true;
    for target in others {
        let env = match cross_env(&target) {
            Ok(env) => env,
            Err(e) => {
                eprintln!("xtask: SKIPPED: cargo check --target {target}: {e:#}");
                continue;
            }
        };
        let mut cmd = Command::new(cargo());
        cmd.current_dir(root).args(["check", "--package", "kiln", "--all-targets", "--target", &target]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if run(&mut cmd).is_err() {
            ok = false;
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_their_architecture_and_toolchain() {
        assert_eq!(arch_of_target("aarch64-unknown-linux-gnu"), "aarch64");
        assert_eq!(arch_of_target("x86_64-unknown-linux-gnu"), "x86_64");
        assert_eq!(arch_of_target("riscv64gc-unknown-linux-gnu"), "riscv64");
        assert_eq!(gnu_prefix("aarch64-unknown-linux-gnu").as_deref(), Some("aarch64-linux-gnu"));
        assert_eq!(gnu_prefix("aarch64-unknown-linux-musl"), None);
        let how = how_to_add("aarch64-unknown-linux-gnu");
        assert!(how.contains("rustup target add aarch64-unknown-linux-gnu"), "{how}");
        assert!(how.contains("apt-get install gcc-aarch64-linux-gnu"), "{how}");
        assert!(how.contains("libssl-dev:arm64"), "{how}");
    }
}
