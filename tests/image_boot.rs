//! Network boot pieces end to end: the iPXE script, the dnsmasq
//! configuration (checked by dnsmasq itself), and `kiln image serve` with a
//! real HTTP client, including writing an image straight from it.

mod image_support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use image_support::*;

#[test]
fn pxe_config_takes_the_command_line_from_the_manifest() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = test_recipe(dir.path());
    let out = kiln(&["image", "build", s(&recipe), "--out", s(&dir.path().join("out"))]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let manifest = dir.path().join("out/kiln-test.manifest.json");
    let out = kiln(&[
        "image",
        "pxe-config",
        "--server",
        "http://10.0.0.1:8080",
        "--manifest",
        s(&manifest),
        "--append",
        "kiln.image=http://10.0.0.1:8080/kiln-test.raw",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let script = stdout(&out);
    assert!(script.starts_with("#!ipxe\n"), "{script}");
    assert!(
        script.contains("kernel http://10.0.0.1:8080/boot/vmlinuz initrd=initrd.img console=ttyS0 kiln.image="),
        "{script}"
    );
    let out = kiln(&["image", "pxe-config", "--server", "ftp://x", "--cmdline", "quiet"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("must start with http://"), "{}", stderr(&out));
}

#[test]
fn the_dnsmasq_configuration_passes_dnsmasqs_own_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("kiln-dnsmasq.conf");
    let out = kiln(&[
        "image",
        "dnsmasq",
        "--interface",
        "lo",
        "--range",
        "10.77.0.100,10.77.0.200",
        "--tftp-root",
        s(dir.path()),
        "--script-url",
        "http://10.77.0.1:8080/boot.ipxe",
        "--host",
        "52:54:00:12:34:56,10.77.0.11,node01",
        "--out",
        s(&conf),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&conf).expect("conf");
    assert!(text.contains("dhcp-host=52:54:00:12:34:56,10.77.0.11,node01"), "{text}");
    assert!(text.contains("dhcp-boot=tag:ipxe,http://10.77.0.1:8080/boot.ipxe"), "{text}");
    let out = kiln(&[
        "image",
        "dnsmasq",
        "--interface",
        "lo",
        "--range",
        "10.0.0.9,10.0.0.1",
        "--tftp-root",
        "/srv",
        "--script-url",
        "http://x/b.ipxe",
    ]);
    assert_eq!(out.status.code(), Some(4), "a reversed range is refused");

    let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"].into_iter().find(|p| std::path::Path::new(p).exists());
    let Some(dnsmasq) = dnsmasq else {
        return skip("dnsmasq not installed (Debian package dnsmasq-base): configuration not checked by dnsmasq");
    };
    let check =
        Command::new(dnsmasq).arg("--test").arg(format!("--conf-file={}", conf.display())).output().expect("dnsmasq");
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success() && said.contains("syntax check OK"), "{said}");
}

/// `kiln image serve DIR --listen 127.0.0.1:0`, killed on drop.
struct Served {
    child: Child,
    base: String,
}

impl Served {
    fn start(dir: &std::path::Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["image", "serve", s(dir), "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let base = line.trim().rsplit(' ').next().expect("url").to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        Served { child, base }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str, range: Option<&str>) -> Result<(u16, Vec<u8>, Option<String>), ureq::Error> {
    let mut req = ureq::get(url);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let resp = req.call()?;
    let status = resp.status().as_u16();
    let content_range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).map(String::from);
    let mut body = Vec::new();
    resp.into_body().into_reader().read_to_end(&mut body).expect("body");
    Ok((status, body, content_range))
}

#[test]
fn serve_answers_files_ranges_and_nothing_outside_its_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("boot")).expect("mkdir");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("boot/vmlinuz"), &data).expect("kernel");
    std::fs::write(dir.path().join("secret"), b"do not serve").expect("secret");
    let server = Served::start(&root);

    let (status, body, _) = get(&format!("{}/boot/vmlinuz", server.base), None).expect("get");
    assert_eq!((status, body.len()), (200, data.len()));
    assert_eq!(body, data);
    let (status, body, cr) = get(&format!("{}/boot/vmlinuz", server.base), Some("bytes=1000-1999")).expect("range");
    assert_eq!(status, 206);
    assert_eq!(body, &data[1000..2000]);
    assert_eq!(cr.as_deref(), Some("bytes 1000-1999/100000"));
    for path in ["/nope", "/../secret", "/boot/%2e%2e/%2e%2e/secret", "/boot"] {
        match get(&format!("{}{path}", server.base), None) {
            Err(ureq::Error::StatusCode(404)) => {}
            other => panic!("{path}: expected 404, got {:?}", other.map(|(s, b, _)| (s, b.len()))),
        }
    }
    match get(&format!("{}/boot/vmlinuz", server.base), Some("bytes=200000-")) {
        Err(ureq::Error::StatusCode(416)) => {}
        other => panic!("expected 416, got {:?}", other.map(|(s, _, _)| s)),
    }
}

#[test]
fn an_image_is_written_straight_from_the_server() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = test_recipe(dir.path());
    let out_dir = dir.path().join("out");
    let out = kiln(&["image", "build", s(&recipe), "--out", s(&out_dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let server = Served::start(&out_dir);
    let disk = dir.path().join("disk.img");
    let image_url = format!("{}/kiln-test.raw", server.base);
    let bmap_url = format!("{}/kiln-test.bmap.json", server.base);
    let out = kiln(&["image", "write", &image_url, s(&disk), "--bmap", &bmap_url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(qemu_compare(&out_dir.join("kiln-test.raw"), &disk));

    let out = kiln(&["image", "write", &format!("{}/missing.raw", server.base), s(&disk), "--bmap", &bmap_url]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.raw"), "{}", stderr(&out));
}

#[test]
fn a_password_in_an_image_url_is_never_printed_or_recorded() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    const PW: &str = "img-Pa55-4410";
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = test_recipe(dir.path());
    let out_dir = dir.path().join("out");
    let out = kiln(&["image", "build", s(&recipe), "--out", s(&out_dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let server = Served::start(&out_dir);
    let with_user = server.base.replace("http://", &format!("http://reader:{PW}@"));
    let (disk, db) = (dir.path().join("disk.img"), dir.path().join("kiln.db"));
    let bmap_url = format!("{with_user}/kiln-test.bmap.json");
    let mut said = String::new();
    for (image, want) in [("kiln-test.raw", 0), ("missing.raw", 6)] {
        let url = format!("{with_user}/{image}");
        for json in [false, true] {
            let mut args = vec!["image", "write", &url, s(&disk), "--bmap", &bmap_url, "--db", s(&db)];
            if json {
                args.push("--json");
            }
            let out =
                Command::new(env!("CARGO_BIN_EXE_kiln")).args(&args).env("KILN_LOG", "debug").output().expect("run");
            assert_eq!(out.status.code(), Some(want), "{}", stderr(&out));
            said.push_str(&String::from_utf8_lossy(&out.stdout));
            said.push_str(&stderr(&out));
        }
    }
    assert!(said.contains("http://***@127.0.0.1:"), "the URL is still named, hidden: {said}");
    assert!(!said.contains(PW) && !said.contains("reader:"), "{said}");
    let rows = kiln::inventory::Inventory::open_existing(&db).expect("db").images_written().expect("rows");
    assert_eq!(rows.len(), 2, "the two writes that fetched an image");
    let bytes = std::fs::read(&db).expect("db");
    assert!(!bytes.windows(PW.len()).any(|w| w == PW.as_bytes()), "the password is in the database");
}

#[test]
fn a_fetched_block_map_must_be_the_one_its_manifest_names() {
    if !have_qemu_img() {
        return skip("qemu-img not installed (Debian package qemu-utils)");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = test_recipe(dir.path());
    let out_dir = dir.path().join("out");
    let out = kiln(&["image", "build", s(&recipe), "--out", s(&out_dir)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The same map with one byte of whitespace more: well formed, but not the manifest's.
    let map = std::fs::read_to_string(out_dir.join("kiln-test.bmap.json")).expect("bmap");
    std::fs::write(out_dir.join("other.bmap.json"), format!("{map} ")).expect("other");
    let server = Served::start(&out_dir);
    let manifest = out_dir.join("kiln-test.manifest.json");
    let disk = dir.path().join("disk.img");
    let other = format!("{}/other.bmap.json", server.base);
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--bmap", &other]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("other.bmap.json has sha256") && stderr(&out).contains("its manifest says"));
    assert!(!disk.exists(), "refused before the target was created");
    let good = format!("{}/kiln-test.bmap.json", server.base);
    let out = kiln(&["image", "write", s(&manifest), s(&disk), "--bmap", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
