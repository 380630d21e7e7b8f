//! `kiln rack image` and `kiln agent` end to end, on 127.0.0.1 with per-test ports: the real
//! controller binary, the real agent binary writing into a disk file, the sushy-tools Redfish
//! emulator as the BMC (its own request log is the witness of what the controller asked, and in
//! which order), and the inventory read back from SQLite.
//!
//! The node is simulated honestly: once the emulator has served the reset, the test fetches what
//! the node's boot path gives it (its own iPXE script, or its virtual medium, from the node's or
//! its BMC's address, 127.0.0.1) and starts a real `kiln agent` (imaging mode) with that kernel
//! command line, as the node's installer would; then `kiln agent --mode booted`, as the installed
//! system would, with the boot token the imaging agent left on the disk. A spoofing peer sends the
//! same requests from 127.0.0.2 (and with wrong or old keys from 127.0.0.1). Every wait has a
//! deadline and fails the test with what it saw.

mod bmc_support;
mod image_support;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bmc_support::ipmisim::{self, IpmiSim};
use bmc_support::sushy::{Sushy, PASSWORD, USER};
use image_support::{have_qemu_img, qemu_compare, s, skip, tables_wiped, test_recipe, MIB};
use kiln::deploy::auth::{AgentAuth, NodeKey};
use kiln::inventory::{Inventory, StepOutcome};
use kiln::lifecycle::LifecycleState;

const PW_ENV: &str = "KILN_TEST_DEPLOY_BMC_PW";
/// The variable an IPMI-only rack names for its password (ipmi_sim's, not the emulator's).
const IPMI_PW_ENV: &str = "KILN_TEST_DEPLOY_IPMI_PW";

/// A child process whose stdout and stderr are drained by threads (so a full pipe can never
/// block it), killed if the test drops it still running.
struct Proc {
    what: String,
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

struct Done {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Done {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = into.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    })
}

fn kiln_proc(what: &str, args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_LOG")
        .env_remove("KILN_DB")
        .env_remove("KILN_RACK")
        .env(PW_ENV, PASSWORD)
        .env(IPMI_PW_ENV, ipmisim::PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln starts");
    let (out, err) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
    let readers = vec![
        drain(child.stdout.take().expect("stdout"), out.clone()),
        drain(child.stderr.take().expect("stderr"), err.clone()),
    ];
    Proc { what: what.to_string(), child, out, err, readers }
}

impl Proc {
    fn stderr_now(&self) -> String {
        self.err.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the process to end; past `limit` it is killed and the test fails with its output.
    fn wait(mut self, limit: Duration) -> Done {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.what,
                    self.out.lock().map(|s| s.clone()).unwrap_or_default(),
                    self.stderr_now()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout = self.out.lock().map(|s| s.clone()).unwrap_or_default();
        let stderr = self.stderr_now();
        Done { status, stdout, stderr }
    }

    /// Kill it now (an interrupted deployment: SIGKILL, no cleanup runs).
    fn kill(mut self) -> Done {
        let _ = self.child.kill();
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by its handle; it has usually exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `ready` until it holds; past `limit` fail with `what` and the controller's stderr.
fn wait_until(limit: Duration, what: &str, controller: &mut Proc, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            controller.running(),
            "the controller exited while waiting for {what}; stderr:\n{}",
            controller.stderr_now()
        );
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; controller stderr:\n{}",
            controller.stderr_now()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A built artifact (the shipped 32 MiB test recipe) in `dir/out`.
struct Artifact {
    manifest: PathBuf,
    image: PathBuf,
}

fn build_artifact(dir: &Path) -> Option<Artifact> {
    if !have_qemu_img() {
        skip("qemu-img not installed (Debian package qemu-utils)");
        return None;
    }
    let recipe = test_recipe(dir);
    let out = dir.join("out");
    let done = kiln_proc("kiln image build", &["image", "build", s(&recipe), "--out", s(&out)]).wait(LIMIT);
    assert_eq!(done.code(), Some(0), "build: {}", done.stderr);
    // What each node's iPXE script boots (never booted here: the test reads the script).
    std::fs::write(out.join("vmlinuz"), b"kernel").expect("kernel");
    std::fs::write(out.join("initrd.img"), b"initrd").expect("initrd");
    Some(Artifact { manifest: out.join("kiln-test.manifest.json"), image: out.join("kiln-test.raw") })
}

const LIMIT: Duration = Duration::from_secs(120);
const SHA: &str = "fe3576205e7c25047d0eeccfbd3477441de371cbb8ede00723e682739d413e01";

/// A rack manifest with nodes `(name, bmc)`, written to `dir/rack.toml`.
fn rack(dir: &Path, nodes: &[(&str, Option<&str>)]) -> PathBuf {
    let mut text = format!(
        "[rack]\nid = \"deploy-test\"\n\n[credentials]\nbmc_user = \"{USER}\"\nbmc_password_env = \"{PW_ENV}\"\n"
    );
    for (i, (name, bmc)) in nodes.iter().enumerate() {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nmacs = [\"{}\"]\n",
            mac(i + 1)
        ));
        if let Some(url) = bmc {
            text.push_str(&format!("bmc = \"{url}\"\n"));
        }
    }
    let path = dir.join("rack.toml");
    std::fs::write(&path, text).expect("write rack");
    path
}

/// The MAC of the `i`-th node of `rack` (from 1).
fn mac(i: usize) -> String {
    format!("52:54:00:00:00:{i:02x}")
}

/// The controller; each node's iPXE script boots the artifact directory's `vmlinuz` and
/// `initrd.img`.
fn controller(port: u16, rack: &Path, artifact: &Path, db: &Path, extra: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "rack",
        "image",
        "--rack",
        s(rack),
        "--artifact",
        s(artifact),
        "--listen",
        &listen,
        "--db",
        s(db),
        "--pxe-kernel",
        "vmlinuz",
        "--pxe-initrd",
        "initrd.img",
    ];
    args.extend_from_slice(extra);
    kiln_proc("kiln rack image", &args)
}

/// GET `url` from this host (127.0.0.1, the nodes' and the emulator's address): status and body.
fn fetch(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut r = agent.get(url).call().expect("controller answers");
    (r.status().as_u16(), r.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default())
}

/// Wait until `node`'s boot is due (its reset is recorded in deployment `run`, the inventory's
/// first, second, ...), then fetch its own iPXE script as the node's firmware would and keep the
/// `kiln.*` words of its kernel line in `dir/<node>.cmdline`, the imaging environment's
/// /proc/cmdline.
fn boot_words(port: u16, db: &Path, node: &str, mac: &str, dir: &Path, ctl: &mut Proc, run: i64) -> PathBuf {
    wait_until(LIMIT, &format!("{node}'s reset in deployment {run}"), ctl, || {
        let inv = Inventory::open(db).expect("open inventory");
        inv.deploy_steps(node).expect("steps").iter().any(|s| s.deploy_id == run && s.step == "reset")
    });
    let url = format!("http://127.0.0.1:{port}/boot/{}.ipxe", mac.replace(':', "-"));
    let (status, script) = fetch(&url);
    assert_eq!(status, 200, "{url}: {script}");
    let kernel =
        script.lines().find(|l| l.starts_with("kernel ")).unwrap_or_else(|| panic!("no kernel line: {script}"));
    assert!(kernel.contains(&format!("kiln.node={node} ")), "{kernel}");
    cmdline_file(dir, node, kernel)
}

/// The `kiln.*` words of `line`, as a kernel command line file for the agent's `--cmdline`.
fn cmdline_file(dir: &Path, node: &str, line: &str) -> PathBuf {
    let words: Vec<&str> = line.split_whitespace().filter(|w| w.starts_with("kiln.")).collect();
    let path = dir.join(format!("{node}.cmdline"));
    std::fs::write(&path, words.join(" ") + "\n").expect("cmdline file");
    path
}

/// The disk holds the image, and nothing else (the boot token was erased after the boot).
fn holds_image(image: &Path, disk: &Path) -> bool {
    let (image, disk) = (std::fs::read(image).expect("image"), std::fs::read(disk).expect("disk"));
    disk.len() >= image.len() && disk[..image.len()] == image[..] && disk[image.len()..].iter().all(|&b| b == 0)
}

fn agent(port: u16, extra: &[&str]) -> Proc {
    let url = format!("http://127.0.0.1:{port}");
    let mut args =
        vec!["agent", "--controller", &url, "--wait-for", "60s", "--image-json", "/nonexistent/kiln/image.json"];
    args.extend_from_slice(extra);
    kiln_proc("kiln agent", &args)
}

fn steps(db: &Path, node: &str) -> Vec<(String, StepOutcome)> {
    let inv = Inventory::open(db).expect("open inventory");
    inv.deploy_steps(node).expect("steps").into_iter().map(|s| (s.step, s.outcome)).collect()
}

fn step_names(steps: &[(String, StepOutcome)]) -> Vec<&str> {
    steps.iter().map(|(s, _)| s.as_str()).collect()
}

fn state(db: &Path, node: &str) -> LifecycleState {
    Inventory::open(db).expect("open inventory").state(node).expect("state")
}

/// Every virtual media slot of every manager, read straight from the emulator.
fn media_slots(sushy: &Sushy) -> Vec<serde_json::Value> {
    let members = |v: &serde_json::Value| -> Vec<String> {
        v["Members"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["@odata.id"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let mut slots = Vec::new();
    for manager in members(&sushy.get("/redfish/v1/Managers")) {
        let Some(collection) = sushy.get(&manager)["VirtualMedia"]["@odata.id"].as_str().map(str::to_string) else {
            continue;
        };
        for slot in members(&sushy.get(&collection)) {
            slots.push(sushy.get(&slot));
        }
    }
    slots
}

/// The emulator's changing requests (no GETs), named: insert, eject, boot-override, reset.
fn bmc_changes(sushy: &Sushy) -> Vec<String> {
    sushy
        .requests()
        .into_iter()
        .filter(|(method, _, _)| method != "GET" && method != "HEAD")
        .map(|(method, path, status)| {
            let what = if path.ends_with("InsertMedia") {
                "insert"
            } else if path.ends_with("EjectMedia") {
                "eject"
            } else if path.ends_with("ComputerSystem.Reset") {
                "reset"
            } else if method == "PATCH" && path.contains("/Systems/") {
                "boot-override"
            } else {
                "other"
            };
            format!("{what} {status}")
        })
        .collect()
}

#[test]
fn deploy_over_redfish_writes_the_image_and_confirms_the_boot() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    // The emulator downloads what it inserts: the controller serves the node's own copy.
    let iso = installer_iso(dir.path());
    let rack = rack(dir.path(), &[("n1", Some(&sushy.url))]);
    let (db, disk) = (dir.path().join("kiln.db"), dir.path().join("n1.disk"));
    let port = free_port();
    let media_url = format!("http://127.0.0.1:{port}/boot/media/n1/installer.iso");
    let mut ctl = controller(
        port,
        &rack,
        &art.manifest,
        &db,
        &[
            "--boot",
            "media",
            "--media",
            s(&iso),
            "--target",
            s(&disk),
            "--node-timeout",
            "120s",
            "--reboot-grace",
            "90s",
        ],
    );

    // The node "powers on" when the emulator has served the reset: only then is its agent started.
    wait_until(LIMIT, "the emulator to serve the reset", &mut ctl, || {
        sushy.requests().iter().any(|(m, p, _)| m == "POST" && p.ends_with("ComputerSystem.Reset"))
    });
    // While the controller waits for the agent, the emulator holds the installer and boots from CD.
    let system = sushy.system_path();
    assert_eq!(sushy.get(&system)["Boot"]["BootSourceOverrideTarget"], "Cd");
    let inserted = media_slots(&sushy).into_iter().filter(|m| m["Inserted"] == true).collect::<Vec<_>>();
    assert_eq!(inserted.len(), 1, "one slot holds the installer: {inserted:?}");
    assert_eq!(inserted[0]["Image"], media_url.as_str());
    // The node boots the medium: its kernel line is the placeholder's, filled with n1's words.
    let (status, medium) = fetch(&media_url);
    assert_eq!(status, 200, "{medium}");
    assert_eq!(medium.len() as u64, std::fs::metadata(&iso).expect("iso").len(), "the medium keeps its layout");
    let line = medium.lines().find(|l| l.contains("kiln.controller=")).expect("the filled placeholder");
    assert!(line.contains("kiln.node=n1 kiln.deploy=") && line.contains(" kiln.key="), "{line}");
    assert!(!std::fs::read_to_string(&iso).expect("iso").contains("kiln.key="), "the key is never on disk");
    let words = cmdline_file(dir.path(), "n1", line);

    let imaging = agent(port, &["--cmdline", s(&words)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "imaging agent: {}\n{}", imaging.stdout, imaging.stderr);
    assert!(imaging.stdout.contains("not rebooting without --reboot"), "{}", imaging.stdout);
    assert!(imaging.stdout.contains(SHA), "{}", imaging.stdout);

    let booted = agent(port, &["--target", s(&disk), "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "booted agent: {}\n{}", booted.stdout, booted.stderr);
    assert!(booted.stdout.contains(&format!("n1: node n1 booted image sha256 {SHA}")), "{}", booted.stdout);

    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(0), "controller: {}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("n1    booted"), "{}", done.stdout);

    // What the emulator saw, in order: media in, boot once from CD, reset; then media out and
    // boot once from disk before the agent heard "reboot".
    assert_eq!(
        bmc_changes(&sushy),
        ["insert 204", "boot-override 204", "reset 204", "eject 204", "boot-override 204"],
        "{:?}",
        sushy.requests()
    );
    let boot = &sushy.get(&system)["Boot"];
    assert_eq!(boot["BootSourceOverrideTarget"], "Hdd");
    for slot in &inserted {
        let path = slot["@odata.id"].as_str().expect("slot path");
        assert_eq!(sushy.get(path)["Inserted"], false, "the installer was ejected");
    }

    // The disk is the image, byte for byte.
    assert!(qemu_compare(&art.image, &disk), "disk differs from the image");
    assert!(holds_image(&art.image, &disk), "the disk holds more than the image");

    // Every step recorded, in order, and in the node's lifecycle history.
    let recorded = steps(&db, "n1");
    assert_eq!(step_names(&recorded), ["boot-set", "reset", "agent", "written", "reboot", "booted"]);
    assert!(recorded.iter().all(|(_, o)| *o == StepOutcome::Ok), "{recorded:?}");
    let history = Inventory::open(&db).expect("open").history("n1").expect("history");
    let causes: Vec<&str> = history.iter().map(|e| e.cause.as_str()).collect();
    let order: Vec<usize> = [
        "image: boot-set: ok",
        "image: reset: ok",
        "image: agent: ok",
        "image: written: ok",
        "image: reboot: ok",
        "image: booted: ok",
    ]
    .iter()
    .map(|p| causes.iter().position(|c| c.starts_with(p)).unwrap_or_else(|| panic!("no {p} in {causes:?}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{causes:?}");
    assert!(history.iter().all(|e| e.actor == "enrolled" || e.actor == "kiln rack image"), "{history:?}");
    assert_eq!(state(&db, "n1"), LifecycleState::Enrolled);

    // The BMC password and the node's key appear nowhere kiln wrote.
    let key = line.split_whitespace().find_map(|w| w.strip_prefix("kiln.key=")).expect("key").to_string();
    for text in [&done.stdout, &done.stderr, &imaging.stdout, &imaging.stderr, &booted.stdout, &booted.stderr] {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(!text.contains(&key), "the node's key leaked: {text}");
    }
    let db_bytes = std::fs::read(&db).expect("db");
    assert!(!db_bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "password in the database");
    assert!(!db_bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the node's key in the database");
}

/// An installer image whose boot loader's kernel line carries kiln's placeholder.
fn installer_iso(dir: &Path) -> PathBuf {
    let mut bytes = b"CD001 kiln installer\n".repeat(64);
    bytes.extend_from_slice(format!("linux /vmlinuz console=ttyS0 kiln.settings={}\n", "_".repeat(400)).as_bytes());
    bytes.extend_from_slice(&b"\0".repeat(4096));
    let path = dir.join("installer.iso");
    std::fs::write(&path, bytes).expect("iso");
    path
}

#[test]
fn a_bmc_that_refuses_virtual_media_fails_the_node_at_boot_set() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = rack(dir.path(), &[("n1", Some(&sushy.url))]);
    let db = dir.path().join("kiln.db");
    let iso = installer_iso(dir.path());
    // The controller says it is where nothing listens (port 9): the emulator cannot fetch the
    // image and answers 500.
    let ctl = controller(
        free_port(),
        &rack,
        &art.manifest,
        &db,
        &[
            "--boot",
            "media",
            "--media",
            s(&iso),
            "--advertise",
            "http://127.0.0.1:9",
            "--node-timeout",
            "60s",
            "--json",
        ],
    );
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(1), "{}\n{}", done.stdout, done.stderr);
    // The JSON document a pipeline reads: versioned, the node failed at boot-set.
    let doc: serde_json::Value = serde_json::from_str(&done.stdout).expect("--json prints one JSON document");
    assert_eq!((doc["schema_version"].as_u64(), doc["kind"].as_str()), (Some(1), Some("kiln.rack-image")));
    assert_eq!((doc["exit_code"].as_i64(), doc["boot"].as_str()), (Some(1), Some("media")));
    let node = &doc["nodes"][0];
    assert_eq!((node["node"].as_str(), node["status"].as_str()), (Some("n1"), Some("failed")));
    assert_eq!(
        (node["steps"][0]["step"].as_str(), node["steps"][0]["outcome"].as_str()),
        (Some("boot-set"), Some("failed"))
    );
    assert!(node["reason"].as_str().is_some_and(|r| r.starts_with("image: boot-set: ")), "{node}");
    let want = "image: boot-set: BMC refused virtual media: bmc ";
    assert!(done.stderr.contains(&format!("kiln: n1: {want}")), "{}", done.stderr);
    assert!(done.stderr.contains("InsertMedia answered 500 after 4 tries: Failed fetching image"), "{}", done.stderr);
    match state(&db, "n1") {
        LifecycleState::Failed { reason } => {
            assert!(reason.starts_with(want) && reason.contains("Failed fetching image"), "{reason}")
        }
        other => panic!("n1 is {other:?}"),
    }
    assert_eq!(steps(&db, "n1"), [("boot-set".to_string(), StepOutcome::Failed)]);
    // Nothing after the refusal: no boot override, no reset.
    let changes = bmc_changes(&sushy);
    assert!(changes.iter().all(|c| c.starts_with("insert")), "{changes:?}");
    assert!(!done.stderr.contains(PASSWORD) && !done.stdout.contains(PASSWORD));
}

/// Deploy with `--boot none` (no BMC) while a real agent writes into `disk`; returns the
/// controller's and the agent's outcomes.
fn deploy_without_bmc(dir: &Path, art: &Artifact, disk: &Path, db: &Path) -> (Done, Done) {
    let rack = rack(dir, &[("n1", None)]);
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, db, &["--boot", "none", "--node-timeout", "90s"]);
    let words = boot_words(port, db, "n1", &mac(1), dir, &mut ctl, 1);
    let imaging = agent(port, &["--cmdline", s(&words), "--target", s(disk)]).wait(LIMIT);
    (ctl.wait(LIMIT), imaging)
}

/// A disk that held an older system: its first and last MiB are not zero.
fn old_disk(path: &Path, size: u64) {
    let mut bytes = vec![0xA5u8; size as usize];
    bytes[510] = 0x55;
    bytes[511] = 0xAA;
    std::fs::write(path, bytes).expect("old disk");
}

#[test]
fn a_corrupt_image_fails_the_write_and_leaves_the_disk_wiped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    // Flip one byte inside the first mapped range (not a hole).
    let map = kiln::image::BlockMap::load(&dir.path().join("out/kiln-test.bmap.json")).expect("bmap");
    let at = map.ranges[0].start + 100;
    let mut image = std::fs::read(&art.image).expect("image");
    image[at as usize] ^= 0xFF;
    std::fs::write(&art.image, image).expect("corrupt");
    let (disk, db) = (dir.path().join("n1.disk"), dir.path().join("kiln.db"));
    old_disk(&disk, 40 * MIB);

    let (ctl, imaging) = deploy_without_bmc(dir.path(), &art, &disk, &db);
    assert_eq!(imaging.code(), Some(4), "agent: {}", imaging.stderr);
    assert!(imaging.stderr.contains("sha256") && imaging.stderr.contains("corrupt image"), "{}", imaging.stderr);
    assert_eq!(ctl.code(), Some(1), "controller: {}\n{}", ctl.stdout, ctl.stderr);
    match state(&db, "n1") {
        LifecycleState::Failed { reason } => {
            assert!(reason.starts_with("image: written: the agent's write failed: image http://"), "{reason}");
            assert!(reason.contains("corrupt image") && reason.ends_with("(target wiped)"), "{reason}");
        }
        other => panic!("n1 is {other:?}"),
    }
    let recorded = steps(&db, "n1");
    assert_eq!(step_names(&recorded), ["boot-set", "reset", "agent", "written"]);
    assert_eq!(recorded[3].1, StepOutcome::Failed);
    assert!(tables_wiped(&disk), "the disk still holds a partition table: it could boot a half-written image");
}

#[test]
fn a_truncated_image_fails_the_write_and_leaves_the_disk_wiped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let file = std::fs::OpenOptions::new().write(true).open(&art.image).expect("open image");
    file.set_len(16 * MIB).expect("truncate");
    let (disk, db) = (dir.path().join("n1.disk"), dir.path().join("kiln.db"));
    old_disk(&disk, 40 * MIB);

    let (ctl, imaging) = deploy_without_bmc(dir.path(), &art, &disk, &db);
    assert_eq!(imaging.code(), Some(4), "agent: {}", imaging.stderr);
    assert!(imaging.stderr.contains("truncated"), "{}", imaging.stderr);
    assert_eq!(ctl.code(), Some(1), "controller: {}", ctl.stderr);
    let reason = state(&db, "n1").reason().map(str::to_string).unwrap_or_default();
    assert!(reason.starts_with("image: written: ") && reason.contains("truncated"), "{reason}");
    assert!(tables_wiped(&disk), "the disk still holds a partition table");
}

#[test]
fn an_image_larger_than_the_disk_is_refused_and_the_disk_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let (disk, db) = (dir.path().join("n1.disk"), dir.path().join("kiln.db"));
    old_disk(&disk, 16 * MIB);
    let before = std::fs::read(&disk).expect("disk");

    let (ctl, imaging) = deploy_without_bmc(dir.path(), &art, &disk, &db);
    assert_eq!(imaging.code(), Some(4), "agent: {}", imaging.stderr);
    assert_eq!(ctl.code(), Some(1), "controller: {}", ctl.stderr);
    let reason = state(&db, "n1").reason().map(str::to_string).unwrap_or_default();
    assert!(reason.contains("is larger than target") && reason.ends_with("(target untouched)"), "{reason}");
    assert_eq!(std::fs::read(&disk).expect("disk"), before, "the disk was changed");
}

/// POST `body` to the controller's `route` from `from` (a local address this test binds, as a
/// host on the boot network would send it), with `auth` as the `Kiln-Agent-Auth` header.
fn post_from(port: u16, from: &str, route: &str, body: &str, auth: Option<&str>) -> (u16, String) {
    let header = auth.map(|a| format!("Kiln-Agent-Auth: {a}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{header}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_from(port, from, &request)
}

/// Send `request` from the local address `from` and answer the status and body.
fn raw_from(port: u16, from: &str, request: &str) -> (u16, String) {
    use socket2::{Domain, Socket, Type};
    use std::io::Write;
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local: std::net::SocketAddr = format!("{from}:0").parse().expect("address");
    socket.bind(&local.into()).expect("bind the spoofing address");
    let server: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    socket.connect(&server.into()).expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// The four requests that move a node, as a spoofer would send them for `node`.
fn the_four(node: &str, mac: &str) -> [(&'static str, String); 4] {
    [
        ("/agent/hello", format!(r#"{{"node":"{node}","macs":["{mac}"],"mode":"imaging"}}"#)),
        ("/agent/result", format!(r#"{{"node":"{node}","ok":true,"image_sha256":"{SHA}","bytes":5242880}}"#)),
        ("/agent/hello", format!(r#"{{"node":"{node}","macs":["{mac}"],"mode":"booted"}}"#)),
        ("/agent/booted", format!(r#"{{"node":"{node}","image_sha256":"{SHA}","source":"disk"}}"#)),
    ]
}

/// The node, deployment and key a node's kernel command line file gives it.
fn auth_of(words: &Path) -> AgentAuth {
    let text = std::fs::read_to_string(words).expect("words");
    let word = |k: &str| text.split_whitespace().find_map(|w| w.strip_prefix(k)).expect(k).to_string();
    let key = NodeKey::from_hex(&word("kiln.key=")).expect("a key");
    AgentAuth { node: word("kiln.node="), deploy: word("kiln.deploy="), key }
}

#[test]
fn a_spoofing_peer_moves_no_node_and_a_rerun_redoes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = rack(dir.path(), &[("n1", None)]);
    let (db, disk) = (dir.path().join("kiln.db"), dir.path().join("n1.disk"));
    const SPOOFER: &str = "127.0.0.2";

    // First run: only the spoofer speaks for n1.
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, &db, &["--boot", "none", "--node-timeout", "40s"]);
    wait_until(LIMIT, "n1's reset in the inventory", &mut ctl, || step_names(&steps(&db, "n1")).contains(&"reset"));
    let script = format!("GET /boot/{}.ipxe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", mac(1).replace(':', "-"));
    let (status, body) = raw_from(port, SPOOFER, &script);
    assert_eq!(status, 403, "the node's script (and key) is not given to another host: {body}");
    // What a sniffer on the boot network could have seen: the node's own script, key included.
    let sniffed = auth_of(&boot_words(port, &db, "n1", &mac(1), dir.path(), &mut ctl, 1));
    let random_key = AgentAuth { key: NodeKey::generate().expect("random"), ..sniffed.clone() };
    let mut tried = 0;
    for (route, body) in the_four("n1", &mac(1)) {
        for (from, auth, what) in [
            (SPOOFER, None, "no proof, from another host (its MAC, its name)"),
            ("127.0.0.1", None, "no proof, from the node's address"),
            ("127.0.0.1", Some(&random_key), "a wrong key, from the node's address"),
            (SPOOFER, Some(&sniffed), "the node's own key, from another host"),
        ] {
            let header = auth.map(|a| a.header(route, body.as_bytes()));
            let (status, answer) = post_from(port, from, route, &body, header.as_deref());
            assert_eq!(status, 403, "{route} with {what}: {answer}");
            tried += 1;
        }
    }
    assert_eq!(tried, 16);
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(1), "{}\n{}", done.stdout, done.stderr);
    assert!(done.stderr.contains("kiln: n1: image: agent: no hello from the node's imaging agent"), "{}", done.stderr);
    assert!(done.stderr.contains("refused POST /agent/result from 127.0.0.2"), "refusals are logged: {}", done.stderr);
    // Nothing was recorded as written or booted; the refusals are in n1's history.
    let recorded = steps(&db, "n1");
    assert_eq!(step_names(&recorded), ["boot-set", "reset", "agent"], "{recorded:?}");
    assert_eq!(recorded[2].1, StepOutcome::Failed);
    assert!(matches!(state(&db, "n1"), LifecycleState::Failed { .. }));
    let history = Inventory::open(&db).expect("open").history("n1").expect("history");
    let refused: Vec<&str> =
        history.iter().map(|e| e.cause.as_str()).filter(|c| c.starts_with("image: refused ")).collect();
    assert_eq!(refused.len(), kiln::deploy::MAX_NOTED, "{refused:#?}");
    assert!(
        refused.iter().any(|c| c.contains("from 127.0.0.2") && c.contains("not node n1's address")),
        "{refused:#?}"
    );
    let db_bytes = std::fs::read(&db).expect("db");
    let key = sniffed.key.to_hex();
    assert!(!db_bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the key is in the database");
    assert!(!done.stderr.contains(&key) && !done.stdout.contains(&key), "the key is in the output");

    // The rerun does not call n1 booted: it deploys it again. Requests signed for the first run
    // are refused even from the node's own address, and the real agent does the work.
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, &db, &["--boot", "none", "--node-timeout", "90s"]);
    let words = boot_words(port, &db, "n1", &mac(1), dir.path(), &mut ctl, 2);
    assert_ne!(auth_of(&words), sniffed, "a new deployment, a new key");
    for (route, body) in the_four("n1", &mac(1)) {
        let header = sniffed.header(route, body.as_bytes());
        let (status, answer) = post_from(port, "127.0.0.1", route, &body, Some(&header));
        assert_eq!(status, 403, "replayed {route}: {answer}");
        assert!(answer.contains("made for another deployment"), "{answer}");
    }
    let imaging = agent(port, &["--cmdline", s(&words), "--target", s(&disk)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "{}", imaging.stderr);
    let booted = agent(port, &["--target", s(&disk), "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "{}", booted.stderr);
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(0), "{}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("n1    booted") && !done.stdout.contains("already-booted"), "{}", done.stdout);
    assert!(holds_image(&art.image, &disk));
}

#[test]
fn an_agent_without_its_key_is_refused_and_a_silent_node_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = rack(dir.path(), &[("n1", None)]);
    let db = dir.path().join("kiln.db");
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, &db, &["--boot", "none", "--node-timeout", "8s"]);
    wait_until(Duration::from_secs(30), "the controller to listen", &mut ctl, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    // An agent booted some other way has no key and says so before asking anything.
    let keyless = agent(port, &["--node", "n1", "--cmdline", "/nonexistent/cmdline"]).wait(LIMIT);
    assert_eq!(keyless.code(), Some(2), "{}", keyless.stderr);
    assert!(keyless.stderr.contains("no kiln.node=, kiln.deploy= and kiln.key= on the kernel command line"));
    // Another node's words: refused by the controller (n9 is not being deployed).
    let foreign = dir.path().join("n9.cmdline");
    std::fs::write(&foreign, format!("kiln.node=n9 kiln.deploy=00 kiln.key={}\n", "ab".repeat(32))).expect("words");
    let stranger = agent(port, &["--cmdline", s(&foreign)]).wait(LIMIT);
    assert_eq!(stranger.code(), Some(4), "{}", stranger.stderr);
    assert!(
        stranger.stderr.contains("refused this agent (403)")
            && stranger.stderr.contains("\"n9\" is not being deployed")
    );
    // A malformed request with the node's proof is still a 400 naming the field.
    let words = boot_words(port, &db, "n1", &mac(1), dir.path(), &mut ctl, 1);
    let n1 = auth_of(&words);
    let body = r#"{"node":"n1","mode":"sideways"}"#;
    let header = n1.header("/agent/hello", body.as_bytes());
    let (status, answer) = post_from(port, "127.0.0.1", "/agent/hello", body, Some(&header));
    assert_eq!((status, answer.as_str()), (400, r#"{"error":"field `mode`: \"sideways\" is not imaging or booted"}"#));

    // No hello came, so the node times out at `agent`.
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr.contains("kiln: n1: image: agent: no hello from the node's imaging agent within 8s"),
        "{}",
        done.stderr
    );
    assert_eq!(step_names(&steps(&db, "n1")), ["boot-set", "reset", "agent"]);
}

#[test]
fn a_rerun_after_an_interrupted_deploy_skips_booted_nodes_and_restarts_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = rack(dir.path(), &[("n1", None), ("n2", None)]);
    let db = dir.path().join("kiln.db");
    let (disk1, disk2) = (dir.path().join("n1.disk"), dir.path().join("n2.disk"));
    let args = ["--boot", "none", "--parallel", "2", "--node-timeout", "90s"];

    // First run: n1 goes all the way; n2's agent never comes, and the controller is killed.
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, &db, &args);
    let words = boot_words(port, &db, "n1", &mac(1), dir.path(), &mut ctl, 1);
    let imaging = agent(port, &["--cmdline", s(&words), "--target", s(&disk1)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "{}", imaging.stderr);
    let booted = agent(port, &["--target", s(&disk1), "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "{}", booted.stderr);
    wait_until(Duration::from_secs(30), "n1's booted step in the inventory", &mut ctl, || {
        steps(&db, "n1").last().is_some_and(|(s, o)| s == "booted" && *o == StepOutcome::Ok)
    });
    ctl.kill();
    assert_eq!(step_names(&steps(&db, "n2")), ["boot-set", "reset"], "n2 was waiting for its agent");

    // Second run: n1 is skipped, n2 starts again from boot-set and completes.
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, &db, &args);
    let words = boot_words(port, &db, "n2", &mac(2), dir.path(), &mut ctl, 2);
    let imaging = agent(port, &["--cmdline", s(&words), "--target", s(&disk2)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "{}", imaging.stderr);
    let booted = agent(port, &["--target", s(&disk2), "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "{}", booted.stderr);
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(0), "{}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("n1    already-booted"), "{}", done.stdout);
    assert!(done.stdout.contains("n2    booted"), "{}", done.stdout);

    let all = ["boot-set", "reset", "agent", "written", "reboot", "booted"];
    assert_eq!(step_names(&steps(&db, "n1")), all, "n1 was not touched again");
    let n2 = steps(&db, "n2");
    assert_eq!(step_names(&n2), [&["boot-set", "reset"][..], &all[..]].concat(), "first run's steps kept");
    let history = Inventory::open(&db).expect("open").history("n1").expect("history");
    assert!(
        history.last().is_some_and(|e| e.cause.starts_with("image: skipped: already booted on sha256")),
        "{history:?}"
    );
    for disk in [&disk1, &disk2] {
        assert!(qemu_compare(&art.image, disk), "{} differs from the image", disk.display());
    }
}

/// A rack of one node `n1` whose only BMC is IPMI, at the simulator's port.
fn ipmi_rack(dir: &Path, port: u16) -> PathBuf {
    let text = format!(
        "[rack]\nid = \"deploy-test\"\n\n[credentials]\nbmc_user = \"{}\"\nbmc_password_env = \"{IPMI_PW_ENV}\"\n\n\
         [[nodes]]\nname = \"n1\"\naddress = \"127.0.0.1\"\nmacs = [\"52:54:00:00:00:01\"]\nipmi = \"127.0.0.1:{port}\"\n",
        ipmisim::USER
    );
    let path = dir.join("rack.toml");
    std::fs::write(&path, text).expect("write rack");
    path
}

/// The chassis-control calls that change the simulated host (boot device, power, reset), in
/// order, without the management controller's address: `set boot pxe`, `set reset 1`.
fn ipmi_changes(sim: &IpmiSim) -> Vec<String> {
    sim.calls().lines().filter_map(|l| l.split_once(" set ").map(|(_, rest)| format!("set {}", rest.trim()))).collect()
}

#[test]
fn deploy_over_ipmi_boots_pxe_resets_and_the_agent_writes_the_image() {
    let Some(sim) = IpmiSim::start_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    // The host is running (an old system): the controller must reset it, not power it on.
    sim.set_host_power("1");
    let rack = ipmi_rack(dir.path(), sim.port);
    let (db, disk) = (dir.path().join("kiln.db"), dir.path().join("n1.disk"));
    let port = free_port();
    let mut ctl = controller(
        port,
        &rack,
        &art.manifest,
        &db,
        &["--boot", "pxe", "--target", s(&disk), "--node-timeout", "120s", "--reboot-grace", "90s"],
    );

    // The node "boots from the network" once ipmi_sim has carried out the reset.
    wait_until(LIMIT, "ipmi_sim to reset the host", &mut ctl, || ipmi_changes(&sim).iter().any(|c| c == "set reset 1"));
    assert_eq!(ipmi_changes(&sim), ["set boot pxe", "set reset 1"], "{}", sim.calls());
    assert_eq!(sim.host_boot(), "pxe");

    let words = boot_words(port, &db, "n1", &mac(1), dir.path(), &mut ctl, 1);
    let imaging = agent(port, &["--cmdline", s(&words)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "imaging agent: {}\n{}", imaging.stdout, imaging.stderr);
    let booted = agent(port, &["--target", s(&disk), "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "booted agent: {}\n{}", booted.stdout, booted.stderr);
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(0), "controller: {}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("n1    booted"), "{}", done.stdout);

    // Boot once from the network, reset; then boot once from disk ("default" in ipmi_sim's
    // words) before the agent heard "reboot".
    assert_eq!(ipmi_changes(&sim), ["set boot pxe", "set reset 1", "set boot default"], "{}", sim.calls());
    assert!(qemu_compare(&art.image, &disk), "disk differs from the image");
    assert!(holds_image(&art.image, &disk), "the disk holds more than the image");
    let recorded = steps(&db, "n1");
    assert_eq!(step_names(&recorded), ["boot-set", "reset", "agent", "written", "reboot", "booted"]);
    assert!(recorded.iter().all(|(_, o)| *o == StepOutcome::Ok), "{recorded:?}");

    for text in [&done.stdout, &done.stderr, &imaging.stderr, &booted.stderr] {
        assert!(!text.contains(ipmisim::PASSWORD), "password leaked: {text}");
    }
    let db_bytes = std::fs::read(&db).expect("db");
    let pw = ipmisim::PASSWORD.as_bytes();
    assert!(!db_bytes.windows(pw.len()).any(|w| w == pw), "password in the database");
}

#[test]
fn virtual_media_on_an_ipmi_only_node_fails_at_boot_set_naming_the_field() {
    let Some(sim) = IpmiSim::start_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = ipmi_rack(dir.path(), sim.port);
    let db = dir.path().join("kiln.db");
    let iso = installer_iso(dir.path());
    let ctl = controller(
        free_port(),
        &rack,
        &art.manifest,
        &db,
        &["--boot", "media", "--media", s(&iso), "--node-timeout", "60s"],
    );
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(1), "{}\n{}", done.stdout, done.stderr);
    let want = "image: boot-set: virtual media needs a Redfish BMC (nodes[name=n1].bmc)";
    assert!(done.stderr.contains(&format!("kiln: n1: {want}")), "{}", done.stderr);
    match state(&db, "n1") {
        LifecycleState::Failed { reason } => assert!(reason.starts_with(want), "{reason}"),
        other => panic!("n1 is {other:?}"),
    }
    assert_eq!(steps(&db, "n1"), [("boot-set".to_string(), StepOutcome::Failed)]);
    // Nothing was asked of the BMC: no boot device, no power change.
    assert_eq!(ipmi_changes(&sim), Vec::<String>::new(), "{}", sim.calls());
    assert!(!done.stderr.contains(ipmisim::PASSWORD) && !done.stdout.contains(ipmisim::PASSWORD));
}
