//! Running the lab's commands, starting its long-lived daemons detached, and stopping exactly those.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Runs a command to completion; an error carries its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like `run`, for cleanup: failures are ignored (the thing may already be gone).
pub fn run_quiet(cmd: &mut Command) {
    let _ = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// Quotes one word for `sh -c`.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

/// Starts `argv` in its own session, detached from this process (a shell
/// backgrounds it and exits, so it is nobody's zombie when it dies), with
/// stdout and stderr appended to `log`. Returns its pid: the programs it is
/// used with exec one another (nsenter, unshare, sh, sshd) and keep the pid.
pub fn spawn_detached(argv: &[String], log: &Path) -> anyhow::Result<u32> {
    let words: Vec<String> = argv.iter().map(|a| quote(a)).collect();
    let script = format!("setsid {} </dev/null >>{} 2>&1 & echo $!", words.join(" "), quote(&log.to_string_lossy()));
    let out = run(Command::new("sh").arg("-c").arg(&script))?;
    out.trim().parse::<u32>().with_context(|| format!("read the pid of {}", argv.join(" ")))
}

/// Alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and every process below it.
fn tree(pid: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, parent(p)?)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(all.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// Stops the process `pid` and everything it started, if its command line
/// still contains `expect` (so a recycled pid is never hit): TERM, then KILL
/// after two seconds.
pub fn kill_tree(pid: u32, expect: &str) {
    if !alive(pid) || !cmdline(pid).contains(expect) {
        return;
    }
    let pids = tree(pid);
    let signal = |sig: &str, pids: &[u32]| {
        let mut cmd = Command::new("kill");
        cmd.arg(format!("-{sig}"));
        for p in pids {
            cmd.arg(p.to_string());
        }
        run_quiet(&mut cmd);
    };
    signal("TERM", &pids);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    if !left.is_empty() {
        signal("KILL", &left);
    }
}

/// Waits until `addr` accepts a TCP connection.
pub fn wait_tcp(addr: &str, limit: Duration) -> anyhow::Result<()> {
    let sock: std::net::SocketAddr = addr.parse().with_context(|| format!("parse {addr}"))?;
    let deadline = Instant::now() + limit;
    loop {
        if std::net::TcpStream::connect_timeout(&sock, Duration::from_millis(300)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{addr} did not accept a connection within {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
