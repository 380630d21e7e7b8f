//! `kiln image write` end to end with the real binary on real files and loop
//! devices: equality by `qemu-img compare`, sparse writes, interrupted writes,
//! bad images, a target too small, the inventory record.

mod image_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image_support::*;
use kiln::image::BlockMap;
use serde_json::Value;

/// Build the test recipe into `dir/out`; answers (manifest, raw, bmap).
fn artifact(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let recipe = test_recipe(dir);
    let out = kiln(&["image", "build", s(&recipe), "--out", s(&dir.join("out"))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let o = dir.join("out");
    (o.join("kiln-test.manifest.json"), o.join("kiln-test.raw"), o.join("kiln-test.bmap.json"))
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("json summary: {e}: {}", stdout(out)))
}

#[test]
fn a_built_artifact_writes_to_a_file_that_compares_equal() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, _) = artifact(dir.path());
    let disk = dir.path().join("disk.img");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(qemu_compare(&raw, &disk));
    let v = json_of(&out);
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["ranges_verified"].as_u64(), Some(5));
    assert_eq!(v["image_sha256"], "fe3576205e7c25047d0eeccfbd3477441de371cbb8ede00723e682739d413e01");
    // Quiet in a pipe: no progress line on stderr.
    assert!(!stderr(&out).contains("write "), "{}", stderr(&out));
}

#[test]
fn through_the_page_cache_the_target_is_read_back_after_the_flush() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, _) = artifact(dir.path());
    let disk = dir.path().join("disk.img");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--no-direct", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(qemu_compare(&raw, &disk));
    let v = json_of(&out);
    assert_eq!(v["direct_io"], false);
    assert!(v["verify_seconds"].as_f64().is_some_and(|t| t > 0.0));
}

#[test]
fn a_sparse_image_writes_only_its_mapped_ranges_and_reads_back_equal() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("sparse.raw");
    synth(&image, 64, 100, 9);
    let mapped = BlockMap::scan(&std::fs::File::open(&image).expect("open"), &image).expect("scan").mapped_bytes;
    // A target that held other data everywhere: the unmapped ranges must
    // come out as zeros, not as the old bytes.
    let disk = dir.path().join("disk.img");
    std::fs::write(&disk, vec![0xA5u8; (64 * MIB) as usize]).expect("old data");
    let out = kiln(&["image", "write", s(&image), s(&disk), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(qemu_compare(&image, &disk));
    let v = json_of(&out);
    assert_eq!(v["bytes_written"].as_u64(), Some(mapped));
    assert_eq!(v["zeroed_bytes"].as_u64(), Some(64 * MIB - mapped));
    // Only the mapped part is allocated on the target (filesystems may round
    // up a little).
    let alloc = allocated(&disk);
    assert!(alloc >= mapped && alloc <= mapped + 2 * MIB, "allocated {alloc}, mapped {mapped}");
}

#[test]
fn standard_input_with_a_block_map_writes_the_same_image() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, raw, bmap) = artifact(dir.path());
    let disk = dir.path().join("disk.img");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["image", "write", "-", s(&disk), "--bmap", s(&bmap)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let bytes = std::fs::read(&raw).expect("raw");
    child.stdin.take().expect("stdin").write_all(&bytes).expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(qemu_compare(&raw, &disk));
}

#[test]
fn a_write_killed_midway_leaves_no_partition_table_and_a_rerun_ends_equal() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("dense.raw");
    synth(&image, 48, 1000, 5);
    let bmap = dir.path().join("dense.bmap.json");
    let map = BlockMap::create(&std::fs::File::open(&image).expect("open"), &image).expect("bmap");
    map.save(&bmap).expect("save");
    let disk = dir.path().join("disk.img");
    // First a good write, so the disk holds valid partition tables.
    let out = kiln(&["image", "write", s(&image), s(&disk)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!tables_wiped(&disk));

    // Then a write fed slowly through a pipe, killed with SIGKILL halfway:
    // no cleanup code runs, the order of the writes alone must protect.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["image", "write", "-", s(&disk), "--bmap", s(&bmap)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let bytes = std::fs::read(&image).expect("image");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&bytes[..bytes.len() * 3 / 5]).expect("feed 60%");
    // Wait until a good part of the bulk is on the target.
    let deadline = Instant::now() + Duration::from_secs(20);
    while allocated(&disk) < 16 * MIB && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(allocated(&disk) >= 16 * MIB, "the write did not progress");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    drop(stdin);
    assert!(tables_wiped(&disk), "a killed write left a partition table behind");
    assert!(read_at(&disk, 10 * MIB, 4096).iter().any(|&b| b != 0), "the kill came before any bulk data");

    // Re-running the write completes it.
    let out = kiln(&["image", "write", s(&image), s(&disk), "--bmap", s(&bmap)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(qemu_compare(&image, &disk));
}

/// Write the artifact once so the target holds a full image, then return it.
fn written_disk(dir: &Path, manifest: &Path) -> PathBuf {
    written_disk_named(dir, manifest, "disk.img")
}

fn written_disk_named(dir: &Path, manifest: &Path, name: &str) -> PathBuf {
    let disk = dir.join(name);
    let out = kiln(&["image", "write", s(manifest), s(&disk)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!tables_wiped(&disk));
    disk
}

#[test]
fn a_corrupt_image_fails_its_checksum_and_the_target_is_wiped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, bmap) = artifact(dir.path());
    let disk = written_disk(dir.path(), &manifest);
    let map = BlockMap::load(&bmap).expect("bmap");
    let victim = &map.ranges[map.ranges.len() / 2];
    let f = std::fs::OpenOptions::new().write(true).open(&raw).expect("open raw");
    std::os::unix::fs::FileExt::write_all_at(&f, b"corrupt", victim.start + 100).expect("corrupt");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("bytes {}..{} have sha256", victim.start, victim.end)), "{err}");
    assert!(err.contains("target wiped"), "{err}");
    assert_eq!(json_of(&out)["target_state"], "wiped");
    assert!(tables_wiped(&disk));
}

#[test]
fn a_truncated_image_is_refused_and_the_target_is_wiped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, bmap) = artifact(dir.path());
    let disk = written_disk(dir.path(), &manifest);
    let piped_disk = written_disk_named(dir.path(), &manifest, "piped.img");
    let bytes = std::fs::read(&raw).expect("raw");
    std::fs::OpenOptions::new().write(true).open(&raw).expect("open").set_len(20 * MIB).expect("truncate");
    let out = kiln(&["image", "write", s(&raw), s(&disk), "--bmap", s(&bmap)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("is truncated"), "{}", stderr(&out));
    assert!(tables_wiped(&disk));

    // The same through a pipe that ends early.
    let disk = piped_disk;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["image", "write", "-", s(&disk), "--bmap", s(&bmap)])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(&bytes[..(12 * MIB) as usize]).expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("standard input is truncated"), "{}", stderr(&out));
    assert!(tables_wiped(&disk));
}

#[test]
fn an_image_larger_than_the_target_is_refused_before_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, _, _) = artifact(dir.path());
    let disk = dir.path().join("small.img");
    let old: Vec<u8> = (0..16 * MIB).map(|i| (i % 253) as u8).collect();
    std::fs::write(&disk, &old).expect("small disk");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("is larger than target") && err.contains("nothing was written"), "{err}");
    assert_eq!(json_of(&out)["target_state"], "untouched");
    assert_eq!(std::fs::read(&disk).expect("disk"), old, "the target was changed");
}

#[test]
fn preserve_on_error_leaves_the_target_alone_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, _) = artifact(dir.path());
    let disk = written_disk(dir.path(), &manifest);
    std::fs::OpenOptions::new().write(true).open(&raw).expect("open").set_len(20 * MIB).expect("truncate");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--preserve-on-error", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(json_of(&out)["target_state"], "preserved");
}

#[test]
fn writes_are_recorded_in_the_inventory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, _) = artifact(dir.path());
    let db = dir.path().join("kiln.db");
    let disk = dir.path().join("disk.img");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::OpenOptions::new().write(true).open(&raw).expect("open").set_len(8 * MIB).expect("truncate");
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(4));
    let rows = kiln::inventory::Inventory::open_existing(&db).expect("db").images_written().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].outcome.as_str(), rows[0].target_state.as_deref()), ("failed", Some("wiped")));
    assert!(rows[0].error.as_deref().is_some_and(|e| e.contains("truncated")));
    assert_eq!(rows[1].outcome, "ok");
    assert_eq!(
        rows[1].image_sha256.as_deref(),
        Some("fe3576205e7c25047d0eeccfbd3477441de371cbb8ede00723e682739d413e01")
    );
    assert_eq!(rows[1].bytes_written, 5 * MIB);
}

#[test]
fn a_loop_device_is_written_with_direct_io_and_reads_back_equal() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, _) = artifact(dir.path());
    let backing = dir.path().join("backing.img");
    std::fs::write(&backing, vec![0x5Au8; (40 * MIB) as usize]).expect("backing");
    let Some(lo) = Loop::attach(&backing) else { return };
    let out = kiln(&["image", "write", s(&manifest), s(&lo.dev), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json_of(&out);
    assert_eq!(v["target_kind"], "block-device");
    assert_eq!(v["direct_io"], true);
    assert_eq!(v["target_size"].as_u64(), Some(40 * MIB));
    // The image fills the first 32 MiB; the device's last MiB (a stale
    // backup GPT would live there) was zeroed too.
    let first = read_at(&lo.dev, 0, (32 * MIB) as usize);
    assert_eq!(first, std::fs::read(&raw).expect("raw"));
    assert!(read_at(&lo.dev, 39 * MIB, MIB as usize).iter().all(|&b| b == 0));

    // A corrupt image on the device: refused, wiped.
    let map = BlockMap::load(&raw.with_extension("bmap.json")).expect("bmap");
    let victim = &map.ranges[1];
    let f = std::fs::OpenOptions::new().write(true).open(&raw).expect("open raw");
    std::os::unix::fs::FileExt::write_all_at(&f, b"x", victim.start).expect("corrupt");
    let out = kiln(&["image", "write", s(&manifest), s(&lo.dev)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(tables_wiped(&lo.dev));
}

#[test]
fn an_image_is_never_written_onto_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("i.raw");
    synth(&image, 4, 500, 2);
    let before = std::fs::read(&image).expect("image");
    let link = dir.path().join("link.raw");
    std::os::unix::fs::symlink(&image, &link).expect("symlink");
    let out = kiln(&["image", "write", s(&image), s(&link)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("are the same file"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&image).expect("image"), before);
}

#[test]
fn the_wipe_command_zeroes_both_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("d.img");
    std::fs::write(&disk, vec![1u8; (8 * MIB) as usize]).expect("disk");
    let out = kiln(&["image", "wipe", s(&disk)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(tables_wiped(&disk));
    assert!(read_at(&disk, 4 * MIB, 16).iter().all(|&b| b == 1));
    let out = kiln(&["image", "wipe", s(&dir.path().join("missing"))]);
    assert_eq!(out.status.code(), Some(4));
    assert!(!dir.path().join("missing").exists());
}

/// A block map like `bmap` but without its `drop`-th range, `mapped_bytes` adjusted to agree (so
/// the map is well formed), saved as `name` beside it; with `sha`, its `image_sha256` set to that.
fn doctored_map(bmap: &Path, drop: usize, sha: Option<&str>, name: &str) -> PathBuf {
    let mut v: Value = serde_json::from_slice(&std::fs::read(bmap).expect("bmap")).expect("bmap json");
    if let Some(ranges) = v["ranges"].as_array_mut() {
        let gone = ranges.remove(drop);
        let len = gone["end"].as_u64().expect("end") - gone["start"].as_u64().expect("start");
        v["mapped_bytes"] = (v["mapped_bytes"].as_u64().expect("mapped") - len).into();
    }
    if let Some(sha) = sha {
        v["image_sha256"] = sha.into();
    }
    let path = bmap.with_file_name(name);
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write map");
    BlockMap::load(&path).expect("the doctored map is well formed");
    path
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("digest").to_string()
}

/// The write failed closed: exit 4 naming the whole-image digest, the target wiped, and the
/// inventory holding a failed write with no digest.
fn assert_refused_as_a_whole(out: &std::process::Output, disk: &Path, db: &Path, reference: &str) {
    assert_eq!(out.status.code(), Some(4), "{}", stderr(out));
    let err = stderr(out);
    assert!(err.contains("what was written has sha256") && err.contains(&format!("but {reference} says")), "{err}");
    assert!(err.contains("target wiped"), "{err}");
    assert_eq!(json_of(out)["target_state"], "wiped");
    assert!(tables_wiped(disk), "the target still holds a partition table");
    let rows = kiln::inventory::Inventory::open_existing(db).expect("db").images_written().expect("rows");
    assert_eq!((rows[0].outcome.as_str(), rows[0].image_sha256.as_deref()), ("failed", None), "{:?}", rows[0]);
    assert!(!stdout(out).contains("\"outcome\": \"ok\""), "{}", stdout(out));
}

#[test]
fn a_block_map_that_leaves_out_a_range_fails_the_write_and_wipes_the_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, bmap) = artifact(dir.path());
    let db = dir.path().join("kiln.db");
    // The map keeps the true image_sha256; only the ranges lie.
    let short = doctored_map(&bmap, 2, None, "short.bmap.json");
    let disk = written_disk(dir.path(), &manifest);
    let out = kiln(&["image", "write", s(&raw), s(&disk), "--bmap", s(&short), "--json", "--db", s(&db)]);
    assert_refused_as_a_whole(&out, &disk, &db, "its block map");
}

#[test]
fn a_wrong_image_sha256_in_the_block_map_fails_the_write_and_wipes_the_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, bmap) = artifact(dir.path());
    let db = dir.path().join("kiln.db");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&bmap).expect("bmap")).expect("json");
    v["image_sha256"] = "00".repeat(32).into();
    let wrong = dir.path().join("out/wrong.bmap.json");
    std::fs::write(&wrong, serde_json::to_string(&v).expect("json")).expect("write");
    let disk = written_disk(dir.path(), &manifest);
    let out = kiln(&["image", "write", s(&raw), s(&disk), "--bmap", s(&wrong), "--json", "--db", s(&db)]);
    assert_refused_as_a_whole(&out, &disk, &db, "its block map");
}

#[test]
fn an_artifact_proves_its_image_by_the_manifest_not_by_the_block_map() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (manifest, raw, bmap) = artifact(dir.path());
    let db = dir.path().join("kiln.db");
    let disk = written_disk(dir.path(), &manifest);
    // A map that leaves out a range and claims the digest of the image it describes (the image
    // with that range zeroed): consistent with itself, so only the manifest can catch it.
    let map = BlockMap::load(&bmap).expect("bmap");
    let gone = &map.ranges[2];
    let mut zeroed = std::fs::read(&raw).expect("raw");
    zeroed[gone.start as usize..gone.end as usize].fill(0);
    let zeroed_path = dir.path().join("zeroed.raw");
    std::fs::write(&zeroed_path, &zeroed).expect("zeroed");
    let lie = doctored_map(&bmap, 2, Some(&sha256_of(&zeroed_path)), "lie.bmap.json");

    // Named by a manifest that does not name it: refused before anything is written.
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--bmap", s(&lie), "--json", "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("its manifest says"), "{}", stderr(&out));
    assert!(!tables_wiped(&disk), "refused before the target was touched");

    // A manifest that names the lying map by its digest still records the image's own digest.
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).expect("manifest")).expect("json");
    m["bmap"]["file"] = "lie.bmap.json".into();
    m["bmap"]["sha256"] = sha256_of(&lie).into();
    let rebound = dir.path().join("out/rebound.manifest.json");
    std::fs::write(&rebound, serde_json::to_string_pretty(&m).expect("json")).expect("write");
    let out = kiln(&["image", "write", s(&rebound), s(&disk), "--json", "--db", s(&db)]);
    assert_refused_as_a_whole(&out, &disk, &db, "the artifact manifest");

    // The honest artifact still writes, and its digest is what was recomputed.
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--json", "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["image_sha256"].as_str(), Some(sha256_of(&raw).as_str()));
    assert!(qemu_compare(&raw, &disk));
}
