//! Starts a private sushy-tools Redfish emulator (fake driver, basic auth) for one test.
//!
//! `Sushy::start_libvirt()` starts one on libvirt's test driver (`test:///default`, in the
//! emulator's own process, no daemon) instead: only that driver keeps firmware versions, so only
//! it implements `SimpleUpdate` (it raises `BiosVersion` from 1.0.0 to 1.1.0); the fake driver
//! answers 500 "Failed fetching BIOS information". Its Python binding comes from Debian's
//! python3-libvirt, made visible to the venv's Python alone through `PYTHONPATH` pointing at a
//! directory holding links to just the libvirt modules.
//!
//! The emulator is installed once into `target/venv` (or `KILN_TEST_VENV`) (python3 -m venv,
//! pip install sushy-tools). Each instance gets its own state directory, its
//! own htpasswd file with a bcrypt line made by the venv's `bcrypt`, and a free
//! port on 127.0.0.1. Dropping the handle kills the process.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "kiln-lab-pw";

static INSTALL: Mutex<()> = Mutex::new(());

pub struct Sushy {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Sushy {
    fn drop(&mut self) {
        // Our own child, by its handle; ignore the error if it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo xtask test` installs the emulator into one venv for every test
/// (`KILN_TEST_VENV`); a plain `cargo test` makes its own under target/.
fn venv_dir() -> PathBuf {
    match std::env::var_os("KILN_TEST_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv"),
    }
}

/// Create the venv and install sushy-tools, once. `Err` says why not.
fn ensure_installed() -> Result<PathBuf, String> {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let venv = venv_dir();
    let emulator = venv.join("bin/sushy-emulator");
    if emulator.is_file() {
        return Ok(venv);
    }
    let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(3).collect();
            Err(format!("{what} failed ({}): {}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" / ")))
        }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    )?;
    run(
        Command::new(venv.join("bin/pip")).args(["install", "--quiet", "--disable-pip-version-check", "sushy-tools"]),
        "pip install sushy-tools (needs PyPI)",
    )?;
    if !emulator.is_file() {
        return Err(format!("pip installed sushy-tools but {} is missing", emulator.display()));
    }
    Ok(venv)
}

/// Debian's libvirt Python modules, linked into one directory of their own under target/ (so
/// the venv sees libvirt and nothing else of the system's packages).
fn libvirt_binding() -> Result<PathBuf, String> {
    let system = Path::new("/usr/lib/python3/dist-packages");
    let modules: Vec<PathBuf> = std::fs::read_dir(system)
        .map_err(|e| format!("{}: {e} (Debian: apt-get install python3-libvirt)", system.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("libvirt") && (name.ends_with(".py") || name.ends_with(".so"))
        })
        .collect();
    if !modules.iter().any(|p| p.ends_with("libvirt.py")) {
        return Err("python3-libvirt is not installed (Debian: apt-get install python3-libvirt)".into());
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sushy-libvirt-python");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for m in &modules {
        let link = dir.join(m.file_name().unwrap_or_default());
        match std::os::unix::fs::symlink(m, &link) {
            Ok(()) => {}
            // Made already, perhaps by another test at the same moment.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("link {}: {e}", link.display())),
        }
    }
    let venv = ensure_installed()?;
    let check = Command::new(venv.join("bin/python"))
        .args(["-c", "import libvirt; libvirt.open('test:///default').close()"])
        .env("PYTHONPATH", &dir)
        .output()
        .map_err(|e| format!("cannot run the venv's python: {e}"))?;
    if !check.status.success() {
        let err = String::from_utf8_lossy(&check.stderr);
        return Err(format!("the venv's python cannot use libvirt: {}", err.lines().last().unwrap_or("")));
    }
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

fn bcrypt_line(venv: &Path, user: &str, password: &str) -> Result<String, String> {
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(rounds=4)).decode())",
        ])
        .arg(password)
        .output()
        .map_err(|e| format!("cannot run the venv's python: {e}"))?;
    if !out.status.success() {
        return Err(format!("bcrypt hash failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(format!("{user}:{}\n", String::from_utf8_lossy(&out.stdout).trim()))
}

impl Sushy {
    /// Start an emulator, or say why it cannot run here.
    /// A running emulator, or `None` after a SKIPPED line (a failure under
    /// `KILN_REQUIRE_PEERS=1`).
    pub fn start_or_skip() -> Option<Sushy> {
        Sushy::start().map_err(|why| super::skip(&format!("sushy-tools emulator unavailable: {why}"))).ok()
    }

    pub fn start() -> Result<Sushy, String> {
        Sushy::start_with("SUSHY_EMULATOR_FAKE_DRIVER = True", None)
    }

    /// An emulator on libvirt's test driver (see the module comment), or `None` after a SKIPPED
    /// line (a failure under `KILN_REQUIRE_PEERS=1`).
    pub fn start_libvirt_or_skip() -> Option<Sushy> {
        Sushy::start_libvirt().map_err(|why| super::skip(&format!("sushy-tools on libvirt unavailable: {why}"))).ok()
    }

    pub fn start_libvirt() -> Result<Sushy, String> {
        Sushy::start_with("SUSHY_EMULATOR_LIBVIRT_URI = 'test:///default'", Some(libvirt_binding()?))
    }

    fn start_with(driver: &str, python_path: Option<PathBuf>) -> Result<Sushy, String> {
        let venv = ensure_installed()?;
        let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
        let state = dir.path().join("state");
        std::fs::create_dir(&state).map_err(|e| format!("state dir: {e}"))?;
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, bcrypt_line(&venv, USER, PASSWORD)?).map_err(|e| format!("htpasswd: {e}"))?;
        let port = free_port()?;
        let config = dir.path().join("emulator.conf");
        let text = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             {driver}\nSUSHY_EMULATOR_STATE_DIR = '{}'\nSUSHY_EMULATOR_AUTH_FILE = '{}'\n",
            state.display(),
            htpasswd.display()
        );
        std::fs::write(&config, text).map_err(|e| format!("config: {e}"))?;
        let log = std::fs::File::create(dir.path().join("emulator.log")).map_err(|e| format!("log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut command = Command::new(venv.join("bin/sushy-emulator"));
        if let Some(dir) = &python_path {
            command.env("PYTHONPATH", dir);
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("cannot start sushy-emulator: {e}"))?;
        let mut sushy = Sushy { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        sushy.wait_ready()?;
        Ok(sushy)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut log = String::new();
                let _ =
                    std::fs::File::open(self._dir.path().join("emulator.log")).map(|mut f| f.read_to_string(&mut log));
                return Err(format!("sushy-emulator exited ({status}): {}", log.lines().last().unwrap_or("")));
            }
            if self.get_status("/redfish/v1").is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err("sushy-emulator did not answer within 30 s".into())
    }

    fn get_status(&self, path: &str) -> Option<u16> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        agent.get(&format!("{}{path}", self.url)).call().ok().map(|r| r.status().as_u16())
    }

    /// Read a resource straight from the emulator, independently of kiln's client.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let auth = format!(
            "Basic {}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{USER}:{PASSWORD}"))
        );
        let mut resp =
            agent.get(&format!("{}{path}", self.url)).header("Authorization", &auth).call().expect("emulator answers");
        let text = resp.body_mut().read_to_string().expect("body");
        serde_json::from_str(&text).expect("emulator answers JSON")
    }

    /// Every request the emulator logged, in the order it served them: `(method, path, status)`
    /// from its access log lines (`... "PATCH /redfish/v1/Systems/x HTTP/1.1" 204 -`). werkzeug
    /// colours the request of a non-200 answer with ANSI escapes, which are dropped first.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        let raw = std::fs::read_to_string(self._dir.path().join("emulator.log")).unwrap_or_default();
        let mut log = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // ESC [ parameters final-letter
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                log.push(c);
            }
        }
        log.lines()
            .filter_map(|line| {
                let quoted = line.split('"').nth(1)?;
                let mut words = quoted.split_whitespace();
                let (method, path, version) = (words.next()?, words.next()?, words.next()?);
                if !version.starts_with("HTTP/") {
                    return None;
                }
                let status = line.split('"').nth(2)?.split_whitespace().next()?.parse().ok()?;
                Some((method.to_string(), path.to_string(), status))
            })
            .collect()
    }

    /// The path of the emulator's single system.
    pub fn system_path(&self) -> String {
        let systems = self.get("/redfish/v1/Systems");
        systems["Members"][0]["@odata.id"].as_str().expect("one system").to_string()
    }
}
