//! The HTML rack report rendered by headless Chromium: the page must draw (a real, varied
//! picture, not a blank or error page). Prints SKIPPED without chromium (fails under
//! KILN_REQUIRE_PEERS=1). The screenshot is kept at target/report-screenshot.png to look at.

mod report_support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kiln::inventory::Inventory;
use kiln::rack::RackManifest;
use kiln::report::{build_rack_report, render_html};

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Decode an RGB(A) PNG: width, height, and the pixels as RGB triples.
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).expect("open the screenshot"));
    let mut reader = decoder.read_info().expect("a PNG header");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buf[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, pixels)
}

#[test]
fn the_html_report_renders_in_chromium() {
    let Some(browser) = chromium() else {
        if std::env::var("KILN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
            panic!("KILN_REQUIRE_PEERS=1 but chromium is not installed (apt-get install chromium)");
        }
        println!("SKIPPED: chromium not installed (apt-get install chromium)");
        return;
    };
    let s = report_support::build();
    let inv = Inventory::open_existing(&s.db).expect("open");
    let manifest = RackManifest::load(&s.manifest).expect("manifest");
    let report = build_rack_report(&inv, Some(&manifest), time::OffsetDateTime::now_utc(), &report_support::burnin)
        .expect("build the report");
    let html = s.dir.path().join("rack.html");
    std::fs::write(&html, render_html(&report)).expect("write the page");
    let png_path = s.dir.path().join("rack.png");
    let profile = s.dir.path().join("chromium-profile");
    let started = Instant::now();
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg("--window-size=1400,2000")
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    assert!(png_path.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("chromium took {:.1} s", started.elapsed().as_secs_f64());
    let keep = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    let _ = std::fs::copy(&png_path, &keep);
    std::fs::write(keep.with_extension("html"), render_html(&report)).expect("keep the html");

    let size = std::fs::metadata(&png_path).expect("stat").len();
    assert!(size > 50_000, "a page with a rack, tables and charts is more than {size} bytes");
    let (w, h, pixels) = decode(&png_path);
    assert_eq!((w, h), (1400, 2000));
    let distinct: HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(distinct.len() > 500, "only {} colours: a blank or error page", distinct.len());
    // The state colours of the rack drawing are on the page: handed off
    // (dark green), failed (red) and quarantined (orange).
    for (name, rgb) in
        [("handed_off", [0x2E, 0x7D, 0x32]), ("failed", [0xC6, 0x28, 0x28]), ("quarantined", [0xEF, 0x6C, 0x00])]
    {
        let count = pixels.iter().filter(|p| **p == rgb).count();
        assert!(count > 2_000, "{name} colour covers only {count} pixels");
    }
    // Not one colour filling the page: the most common colour (background) leaves room for content.
    let mut counts = std::collections::HashMap::new();
    for p in &pixels {
        *counts.entry(*p).or_insert(0usize) += 1;
    }
    let top = counts.values().max().copied().unwrap_or(0);
    assert!(top < pixels.len() * 8 / 10, "one colour covers {top} of {} pixels", pixels.len());
}
