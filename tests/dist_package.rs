//! `cargo xtask dist`'s directory read back by `kiln rack --dist`: the manifest the xtask writes is
//! the one kiln loads, every packed copy unpacks to the binary, and a rebuilt binary gets new copies.

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::fleet::{local_sha256, Encoding, RemoteBinary, DEFAULT_REMOTE_PATH};
use xtask::dist::{self, PackLevels};

/// A small real ELF executable of this machine to stand in for a built kiln:
/// coreutils' `true` (any Debian or Ubuntu has it).
fn small_elf() -> PathBuf {
    ["/usr/bin/true", "/bin/true"].iter().map(PathBuf::from).find(|p| p.exists()).expect("coreutils true")
}

fn host() -> String {
    dist::host_target().expect("rustc -vV")
}

fn unpack(program: &str, packed: &Path) -> Vec<u8> {
    let out = Command::new(program).arg("-dc").arg(packed).output().expect("unpack");
    assert!(out.status.success(), "{program} -dc {}", packed.display());
    out.stdout
}

#[test]
fn what_xtask_dist_writes_kiln_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    let target = host();
    dist::package(&small_elf(), &target, &out).expect("package");
    let manifest = dist::index(&out, PackLevels::FAST).expect("index");
    assert_eq!(manifest.targets.len(), 1);
    assert_eq!(manifest.targets[0].arch, std::env::consts::ARCH);

    let set = RemoteBinary::from_dist(&out, DEFAULT_REMOTE_PATH).expect("kiln loads the xtask's manifest");
    let b = set.for_node("n", std::env::consts::ARCH).expect("this machine's binary");
    assert_eq!(b.local, out.join(&target).join("kiln"));
    assert_eq!(b.sha256().expect("hash matches the manifest"), local_sha256(&small_elf()).expect("hash"));
    let original = std::fs::read(small_elf()).expect("read");
    let encodings: Vec<Encoding> = b.packed.iter().map(|p| p.encoding).collect();
    assert!(encodings.contains(&Encoding::Gzip), "{encodings:?}");
    for p in &b.packed {
        assert_eq!(unpack(p.encoding.program(), &p.path), original, "{} unpacks to the binary", p.path.display());
    }
}

#[test]
fn indexing_again_repacks_only_what_no_longer_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("dist");
    let target = host();
    dist::package(&small_elf(), &target, &out).expect("package");
    dist::index(&out, PackLevels::FAST).expect("index");
    let gz = out.join(&target).join("kiln.gz");
    let first = std::fs::metadata(&gz).and_then(|m| m.modified()).expect("mtime");
    // Unchanged: the copies are checked, not rewritten.
    dist::index(&out, PackLevels::FAST).expect("index again");
    assert_eq!(std::fs::metadata(&gz).and_then(|m| m.modified()).expect("mtime"), first);
    // A new binary (here: another small ELF) makes the old copies stale.
    let other = ["/usr/bin/false", "/bin/false"].iter().map(PathBuf::from).find(|p| p.exists()).expect("false");
    dist::package(&other, &target, &out).expect("package again");
    let m = dist::index(&out, PackLevels::FAST).expect("reindex");
    assert_eq!(m.targets[0].binary.sha256, local_sha256(&other).expect("hash"));
    assert_eq!(unpack("gzip", &gz), std::fs::read(&other).expect("read"));
    RemoteBinary::from_dist(&out, DEFAULT_REMOTE_PATH).expect("loads");
}

/// `kiln rack` with a `--dist` directory it cannot use refuses before it
/// touches a node: bad input (exit 4), the file and field named.
#[test]
fn a_bad_dist_directory_is_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = dir.path().join("rack.toml");
    // 192.0.2.0/24 is TEST-NET-1: nothing answers there, so a node reached
    // by mistake would show as a peer error (6), not as 4.
    std::fs::write(&rack, "[rack]\nid = \"r1\"\n\n[[nodes]]\nname = \"n1\"\naddress = \"192.0.2.1\"\n").expect("rack");
    let run = |dist: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["rack", "inspect", "--connect-timeout", "1", "--rack"])
            .arg(&rack)
            .arg("--db")
            .arg(dir.path().join("kiln.db"))
            .arg("--dist")
            .arg(dist)
            .output()
            .expect("run kiln")
    };
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = run(&empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{stderr}");
    assert!(stderr.contains("manifest.json: read the node-binary manifest"), "{stderr}");
    std::fs::write(empty.join("manifest.json"), "{\"schema_version\": 1, \"kind\": \"kiln.dist\"}").expect("write");
    let out = run(&empty);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(kiln::exit::BAD_INPUT), "{stderr}");
    assert!(stderr.contains("manifest.json:1:") && stderr.contains("missing field `targets`"), "{stderr}");
}
