//! `kiln rack image` and `kiln agent` end to end, on 127.0.0.1 with per-test ports: the real
//! controller binary, the real agent binary writing into a disk file, the sushy-tools Redfish
//! emulator as the BMC (its own request log is the witness of what the controller asked, and in
//! which order), and the inventory read back from SQLite.
//!
//! The node is simulated honestly: once the emulator has served the reset, the test starts a real
//! `kiln agent` (imaging mode), as the node's installer would; then `kiln agent --mode booted`, as
//! the installed system would. Every wait has a deadline and fails the test with what it saw.

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
            "\n[[nodes]]\nname = \"{name}\"\naddress = \"192.0.2.{}\"\nmacs = [\"52:54:00:00:00:{:02x}\"]\n",
            i + 1,
            i + 1
        ));
        if let Some(url) = bmc {
            text.push_str(&format!("bmc = \"{url}\"\n"));
        }
    }
    let path = dir.join("rack.toml");
    std::fs::write(&path, text).expect("write rack");
    path
}

fn controller(port: u16, rack: &Path, artifact: &Path, db: &Path, extra: &[&str]) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let mut args =
        vec!["rack", "image", "--rack", s(rack), "--artifact", s(artifact), "--listen", &listen, "--db", s(db)];
    args.extend_from_slice(extra);
    kiln_proc("kiln rack image", &args)
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
    let boot_dir = dir.path().join("boot");
    std::fs::create_dir(&boot_dir).expect("boot dir");
    // The emulator downloads what it inserts: the controller serves it from --boot-dir.
    std::fs::write(boot_dir.join("installer.iso"), b"CD001 kiln installer\n".repeat(64)).expect("iso");
    let rack = rack(dir.path(), &[("n1", Some(&sushy.url))]);
    let (db, disk) = (dir.path().join("kiln.db"), dir.path().join("n1.disk"));
    let port = free_port();
    let media_url = format!("http://127.0.0.1:{port}/files/installer.iso");
    let mut ctl = controller(
        port,
        &rack,
        &art.manifest,
        &db,
        &[
            "--boot",
            "media",
            "--media-url",
            &media_url,
            "--boot-dir",
            s(&boot_dir),
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

    let imaging = agent(port, &["--node", "n1"]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "imaging agent: {}\n{}", imaging.stdout, imaging.stderr);
    assert!(imaging.stdout.contains("not rebooting without --reboot"), "{}", imaging.stdout);
    assert!(imaging.stdout.contains(SHA), "{}", imaging.stdout);

    let booted = agent(port, &["--node", "n1", "--mode", "booted"]).wait(LIMIT);
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
    assert_eq!(std::fs::read(&art.image).expect("image"), std::fs::read(&disk).expect("disk"));

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

    // The BMC password appears nowhere kiln wrote.
    for text in [&done.stdout, &done.stderr, &imaging.stderr, &booted.stderr] {
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
    }
    let db_bytes = std::fs::read(&db).expect("db");
    assert!(!db_bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()), "password in the database");
}

#[test]
fn a_bmc_that_refuses_virtual_media_fails_the_node_at_boot_set() {
    let Some(sushy) = Sushy::start_or_skip() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = rack(dir.path(), &[("n1", Some(&sushy.url))]);
    let db = dir.path().join("kiln.db");
    // Nothing listens on port 9: the emulator cannot fetch the image and answers 500.
    let ctl = controller(
        free_port(),
        &rack,
        &art.manifest,
        &db,
        &["--boot", "media", "--media-url", "http://127.0.0.1:9/missing.iso", "--node-timeout", "60s", "--json"],
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
    let ctl = controller(port, &rack, &art.manifest, db, &["--boot", "none", "--node-timeout", "90s"]);
    let imaging = agent(port, &["--node", "n1", "--target", s(disk)]).wait(LIMIT);
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

#[test]
fn an_unknown_agent_gets_a_404_and_a_silent_node_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(art) = build_artifact(dir.path()) else { return };
    let rack = rack(dir.path(), &[("n1", None)]);
    let db = dir.path().join("kiln.db");
    let port = free_port();
    let mut ctl = controller(port, &rack, &art.manifest, &db, &["--boot", "none", "--node-timeout", "8s"]);
    wait_until(Duration::from_secs(30), "the controller to listen", &mut ctl, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let stranger = agent(port, &["--node", "n9"]).wait(LIMIT);
    assert_eq!(stranger.code(), Some(4), "{}", stranger.stderr);
    assert!(
        stranger.stderr.contains("refused this agent (404): no node of rack deploy-test matches node \"n9\""),
        "{}",
        stranger.stderr
    );
    // By MAC and by address alike: nothing of the rack matches.
    let post = |body: &str| -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut r = agent
            .post(&format!("http://127.0.0.1:{port}/agent/hello"))
            .header("Content-Type", "application/json")
            .send(body)
            .expect("controller answers");
        (r.status().as_u16(), r.body_mut().read_to_string().expect("body"))
    };
    let (status, body) = post(r#"{"macs":["02:00:00:00:00:99"],"mode":"imaging"}"#);
    assert_eq!(status, 404, "{body}");
    let (status, body) = post(r#"{"node":"n1","mode":"sideways"}"#);
    assert_eq!((status, body.as_str()), (400, r#"{"error":"field `mode`: \"sideways\" is not imaging or booted"}"#));
    // A known MAC is n1, told to write (n1 waits for its agent).
    let (status, body) = post(r#"{"macs":["52:54:00:00:00:01"],"mode":"imaging"}"#);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""action":"write""#) && body.contains(r#""node":"n1""#), "{body}");

    // The hello counted as the agent; no result comes, so the node times out at `written`.
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(1), "{}", done.stderr);
    assert!(
        done.stderr.contains("kiln: n1: image: written: no write result from the agent within 8s"),
        "{}",
        done.stderr
    );
    assert_eq!(step_names(&steps(&db, "n1")), ["boot-set", "reset", "agent", "written"]);
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
    let imaging = agent(port, &["--node", "n1", "--target", s(&disk1)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "{}", imaging.stderr);
    let booted = agent(port, &["--node", "n1", "--target", s(&disk1), "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "{}", booted.stderr);
    wait_until(Duration::from_secs(30), "n1's booted step in the inventory", &mut ctl, || {
        steps(&db, "n1").last().is_some_and(|(s, o)| s == "booted" && *o == StepOutcome::Ok)
    });
    ctl.kill();
    assert_eq!(step_names(&steps(&db, "n2")), ["boot-set", "reset"], "n2 was waiting for its agent");

    // Second run: n1 is skipped, n2 starts again from boot-set and completes.
    let port = free_port();
    let ctl = controller(port, &rack, &art.manifest, &db, &args);
    let imaging = agent(port, &["--node", "n2", "--target", s(&disk2)]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "{}", imaging.stderr);
    let booted = agent(port, &["--node", "n2", "--target", s(&disk2), "--mode", "booted"]).wait(LIMIT);
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
         [[nodes]]\nname = \"n1\"\naddress = \"192.0.2.1\"\nmacs = [\"52:54:00:00:00:01\"]\nipmi = \"127.0.0.1:{port}\"\n",
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

    let imaging = agent(port, &["--node", "n1"]).wait(LIMIT);
    assert_eq!(imaging.code(), Some(0), "imaging agent: {}\n{}", imaging.stdout, imaging.stderr);
    let booted = agent(port, &["--node", "n1", "--mode", "booted"]).wait(LIMIT);
    assert_eq!(booted.code(), Some(0), "booted agent: {}\n{}", booted.stdout, booted.stderr);
    let done = ctl.wait(LIMIT);
    assert_eq!(done.code(), Some(0), "controller: {}\n{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("n1    booted"), "{}", done.stdout);

    // Boot once from the network, reset; then boot once from disk ("default" in ipmi_sim's
    // words) before the agent heard "reboot".
    assert_eq!(ipmi_changes(&sim), ["set boot pxe", "set reset 1", "set boot default"], "{}", sim.calls());
    assert!(qemu_compare(&art.image, &disk), "disk differs from the image");
    assert_eq!(std::fs::read(&art.image).expect("image"), std::fs::read(&disk).expect("disk"));
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
    let ctl = controller(
        free_port(),
        &rack,
        &art.manifest,
        &db,
        &["--boot", "media", "--media-url", "http://127.0.0.1:9/installer.iso", "--node-timeout", "60s"],
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
