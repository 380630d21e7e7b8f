//! `kiln image build` end to end: the shipped test recipe over an image the
//! test makes, qcow2 conversion, checksum and recipe errors, an unreachable URL.

mod image_support;

use std::path::Path;
use std::process::Command;

use image_support::*;
use kiln::image::{BlockMap, Digest, Manifest};
use serde_json::Value;

fn build(recipe: &Path, out: &Path) -> std::process::Output {
    kiln(&["image", "build", s(recipe), "--out", s(out)])
}

#[test]
fn the_test_recipe_builds_an_artifact_whose_image_equals_its_base() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = test_recipe(dir.path());
    let out_dir = dir.path().join("out");
    let out = build(&recipe, &out_dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let manifest_path = out_dir.join("kiln-test.manifest.json");
    let m = Manifest::load(&manifest_path).expect("manifest");
    let (image, bmap) = m.files(&manifest_path);
    assert!(qemu_compare(&dir.path().join("kiln-test.raw"), &image), "built image differs from its base");
    let base = std::fs::read(dir.path().join("kiln-test.raw")).expect("base");
    assert_eq!(m.image.sha256, Digest::of(&base));
    assert_eq!(m.image.size, 32 * MIB);
    // The conversion kept the holes: about 10% of the image is mapped.
    let map = BlockMap::load(&bmap).expect("bmap");
    assert_eq!(m.image.mapped_bytes, Some(map.mapped_bytes));
    assert!(map.mapped_bytes <= 6 * MIB, "mapped {}", map.mapped_bytes);
    assert!(allocated(&image) <= 7 * MIB, "allocated {}", allocated(&image));
    assert_eq!(m.bmap.sha256, Digest::of(&std::fs::read(&bmap).expect("bmap bytes")));

    let user_data = std::fs::read_to_string(out_dir.join("kiln-test.seed/user-data")).expect("user-data");
    let body: Value = serde_json::from_str(user_data.strip_prefix("#cloud-config\n").expect("header")).expect("json");
    assert_eq!(body["ssh_authorized_keys"].as_array().map(Vec::len), Some(1));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("kiln-test.seed/meta-data")).expect("meta"))
            .expect("meta json");
    assert!(meta["instance-id"].as_str().expect("id").starts_with("kiln-kiln-test-"));
}

#[test]
fn a_qcow2_base_is_converted_to_the_same_raw_image() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("src.raw");
    synth(&raw, 16, 250, 3);
    let qcow = dir.path().join("base.qcow2");
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(&qcow)])
        .status()
        .expect("qemu-img");
    assert!(st.success());
    let sha = Digest::of(&std::fs::read(&qcow).expect("qcow2"));
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("images/kiln-test.toml"))
        .expect("recipe")
        .replace("path = \"kiln-test.raw\"", "path = \"base.qcow2\"")
        .replace("format = \"raw\"", "format = \"qcow2\"")
        .replace("fe3576205e7c25047d0eeccfbd3477441de371cbb8ede00723e682739d413e01", &sha.to_string())
        .replace("name = \"kiln-test\"", "name = \"from-qcow2\"");
    let recipe = dir.path().join("q.toml");
    std::fs::write(&recipe, text).expect("write recipe");
    let out = build(&recipe, &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let built = dir.path().join("out/from-qcow2.raw");
    assert!(qemu_compare(&raw, &built));
    assert_eq!(std::fs::read(&raw).expect("raw"), std::fs::read(&built).expect("built"));
}

#[test]
fn a_base_with_the_wrong_checksum_names_the_recipe_and_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = test_recipe(dir.path());
    // Change one byte of the base.
    let base = dir.path().join("kiln-test.raw");
    let f = std::fs::OpenOptions::new().write(true).open(&base).expect("open");
    std::os::unix::fs::FileExt::write_all_at(&f, b"X", 600).expect("write");
    let out = build(&recipe, &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("recipe kiln-test") && err.contains("kiln-test.raw") && err.contains("sha256"), "{err}");
    assert!(!dir.path().join("out/kiln-test.raw").exists(), "nothing is built from a bad base");
}

#[test]
fn an_unreachable_url_is_a_clear_peer_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Port 9 on loopback: nothing listens, the connection is refused at once.
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("images/kiln-test.toml"))
        .expect("recipe")
        .replace("path = \"kiln-test.raw\"", "url = \"http://127.0.0.1:9/base.raw\"");
    let recipe = dir.path().join("u.toml");
    std::fs::write(&recipe, text).expect("write");
    let out = build(&recipe, &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("download base image http://127.0.0.1:9/base.raw"), "{err}");
}

#[test]
fn a_malformed_recipe_names_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("images/kiln-test.toml"))
        .expect("recipe")
        .replace("format = \"raw\"", "format = \"vhd\"");
    let recipe = dir.path().join("bad.toml");
    std::fs::write(&recipe, &text).expect("write");
    let line = text.lines().position(|l| l.contains("\"vhd\"")).expect("line") + 1;
    let out = build(&recipe, &dir.path().join("out"));
    assert_eq!(out.status.code(), Some(4));
    let err = stderr(&out);
    assert!(err.contains(&format!("bad.toml:{line}:")) && err.contains("field `base.format`"), "{err}");
}
