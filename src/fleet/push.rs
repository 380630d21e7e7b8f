//! Keeps the kiln binary on a node the same as the one meant for it: compare checksums, push a
//! missing or different one (compressed when the node can unpack it), verify what will run.

use std::time::Duration;

use super::dist::Encoding;
use super::node_binary::{NodeBinary, RemoteBinary};
use super::outcome::BinaryState;
use super::transport::{shell_quote, upload_tmp_name, CommandOutput, NodeTransport, RemoteExit, TransportError};

/// The file beside the binary holding its checksum and the `stat` identity
/// (size, mtime, inode, ctime) it had when that checksum was taken.
fn stamp_path(remote: &str) -> String {
    format!("{remote}.sha256")
}

const STAT_FORMAT: &str = "%s %.9Y %i %.9Z";

/// Shell that sets `h` to the node binary's checksum (empty when the file
/// is missing): from the stamp when the binary's identity is unchanged since
/// it was hashed (any write or rename changes its ctime, which no one can set
/// back), else by `sha256sum`. Hashing a 50 MB binary on every node at every
/// run would cost more than the node command itself.
fn check_script(remote: &str) -> String {
    format!(
        "p={p}; s={s}; h=; i=; \
         if [ -e \"$p\" ]; then id=$(stat -c '{f}' -- \"$p\") || exit 1; \
         if [ -r \"$s\" ]; then {{ read -r h; read -r i; }} < \"$s\"; fi; \
         if [ -z \"$h\" ] || [ \"$i\" != \"$id\" ]; then h=$(sha256sum -- \"$p\" | cut -d' ' -f1); fi; fi",
        p = shell_quote(remote),
        s = shell_quote(&stamp_path(remote)),
        f = STAT_FORMAT,
    )
}

/// Exit code and stderr marker of a guarded command whose binary check failed.
/// Shell that sets `a` to the node's `uname -m` and `z` to the unpackers it
/// has (`xz,gzip,`).
const PROBE_SHELL: &str =
    "a=$(uname -m); z=; for c in xz gzip; do command -v \"$c\" >/dev/null 2>&1 && z=\"$z$c,\"; done";

/// What a node says about itself in one line: `h=<sha256|missing>
/// arch=<uname -m> unpack=<xz,gzip,>`, after `prefix`.
fn probe_echo(prefix: &str) -> String {
    format!("echo \"{prefix} h=${{h:-missing}} arch=$a unpack=$z\"")
}

/// A node's answer to the binary check: its kiln's checksum, its
/// architecture and the unpackers it has, all from one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeProbe {
    pub sha256: Option<String>,
    pub uname_m: String,
    pub unpack: Vec<Encoding>,
}

impl NodeProbe {
    /// Reads the line `probe_echo(prefix)` printed; `None` when it is not one.
    fn parse(line: &str, prefix: &str) -> Option<NodeProbe> {
        let rest = line.trim().strip_prefix(prefix)?;
        let (mut sha256, mut uname_m, mut unpack) = (None, None, Vec::new());
        for word in rest.split_whitespace() {
            match word.split_once('=')? {
                ("h", "missing") => sha256 = Some(None),
                ("h", hex) if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                    sha256 = Some(Some(hex.to_ascii_lowercase()))
                }
                ("arch", a) => uname_m = Some(a.to_string()),
                ("unpack", list) => unpack = list.split(',').filter_map(Encoding::from_program).collect(),
                _ => return None,
            }
        }
        Some(NodeProbe { sha256: sha256?, uname_m: uname_m.unwrap_or_default(), unpack })
    }
}

/// Exit code and stderr marker of a guarded command whose binary check failed.
const GUARD_EXIT: i32 = 97;
const GUARD_MARKER: &str = "kiln-binary-check:";
const PROBE_MARKER: &str = "kiln-probe:";
const INSTALL_MARKER: &str = "kiln-install:";

/// `argv` behind the binary check, as one remote command: it runs only when
/// the node's kiln is the one meant for the node's architecture (`expected`:
/// `(arch, sha256)` pairs), else it exits with a marker line saying what the
/// node has. In the steady state a node then costs one command, not two.
pub(crate) fn guarded(remote: &str, expected: &[(&str, &str)], argv: &[String]) -> Vec<String> {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let arms: String =
        expected.iter().map(|(arch, sha)| format!("{}) w={};; ", shell_quote(arch), shell_quote(sha))).collect();
    let script = format!(
        "{check}; {probe}; w=; case \"$a\" in {arms}esac; \
         if [ -n \"$w\" ] && [ \"$h\" = \"$w\" ]; then exec {cmd}; fi; {echo} >&2; exit {GUARD_EXIT}",
        check = check_script(remote),
        probe = PROBE_SHELL,
        cmd = words.join(" "),
        echo = probe_echo(GUARD_MARKER),
    );
    vec!["sh".into(), "-c".into(), script]
}

/// True when a guarded command stopped at the binary check.
pub(crate) fn stopped_by_guard(out: &CommandOutput) -> bool {
    out.exit == RemoteExit::Code(GUARD_EXIT) && out.stderr_tail().is_some_and(|l| l.starts_with(GUARD_MARKER))
}

/// What a guarded command that stopped at the check said about the node.
pub(crate) fn guard_probe(out: &CommandOutput) -> Option<NodeProbe> {
    out.stderr_tail().and_then(|l| NodeProbe::parse(&l, GUARD_MARKER))
}

/// Asks the node for its kiln's checksum, its architecture and its unpackers.
fn probe_node(t: &mut dyn NodeTransport, remote: &str, timeout: Duration) -> Result<NodeProbe, TransportError> {
    let script = format!("{}; {}; {}", check_script(remote), PROBE_SHELL, probe_echo(PROBE_MARKER));
    let out = t.run(&["sh".into(), "-c".into(), script], timeout)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad =
        |detail: String| TransportError::Checksum { node: t.node().to_string(), path: remote.to_string(), detail };
    if out.exit != RemoteExit::Code(0) {
        return Err(bad(out.stderr_tail().unwrap_or_else(|| format!("{:?}", out.exit))));
    }
    text.lines()
        .rev()
        .find_map(|l| NodeProbe::parse(l, PROBE_MARKER))
        .ok_or_else(|| bad(format!("unexpected answer {:?}", text.trim())))
}

/// Shell run on the node after the upload: unpack `staging` beside the
/// target, hash the result in full, and only when it is the binary meant
/// for the node put it in place (a rename: a node never runs a half-written
/// binary) and record its stamp.
fn install_script(remote: &str, staging: &str, encoding: Option<Encoding>, sha256: &str) -> String {
    let unpack = match encoding {
        Some(e) => format!("{} -dc < \"$u\" > \"$n\"", e.program()),
        None => "mv -f -- \"$u\" \"$n\"".to_string(),
    };
    format!(
        "p={p}; u={u}; s={s}; w={w}; n=\"$p.new.$$\"; \
         if ! {unpack}; then rm -f -- \"$u\" \"$n\"; echo \"{m} could not unpack the pushed copy\" >&2; exit 1; fi; \
         rm -f -- \"$u\"; h=$(sha256sum -- \"$n\" | cut -d' ' -f1); \
         if [ \"$h\" != \"$w\" ]; then rm -f -- \"$n\"; \
         echo \"{m} the pushed copy unpacks to sha256 $h, expected $w\" >&2; exit 1; fi; \
         chmod 755 \"$n\" && mv -f -- \"$n\" \"$p\" || {{ rm -f -- \"$n\"; echo \"{m} could not put it at $p\" >&2; exit 1; }}; \
         printf '%s\\n%s\\n' \"$w\" \"$(stat -c '{f}' -- \"$p\")\" > \"$s.tmp.$$\" && mv -f \"$s.tmp.$$\" \"$s\" \
         || {{ echo \"{m} could not write the checksum stamp $s\" >&2; exit 1; }}; echo \"{m} ok\"",
        p = shell_quote(remote),
        u = shell_quote(staging),
        s = shell_quote(&stamp_path(remote)),
        w = shell_quote(sha256),
        f = STAT_FORMAT,
        m = INSTALL_MARKER,
    )
}

/// Sends the binary meant for the node (its smallest compressed copy the
/// node can unpack) and installs it, verified.
fn install(
    t: &mut dyn NodeTransport,
    bin: &NodeBinary,
    sha256: &str,
    remote: &str,
    unpack: &[Encoding],
    timeout: Duration,
) -> Result<(), TransportError> {
    let wire = bin.wire_for(unpack);
    let suffix = match wire.encoding {
        Some(Encoding::Gzip) => ".gz",
        Some(Encoding::Xz) => ".xz",
        None => "",
    };
    let staging = format!("{}{suffix}", upload_tmp_name(remote));
    tracing::info!(
        node = t.node(),
        path = %remote,
        arch = %bin.arch,
        bytes = wire.bytes,
        encoding = wire.encoding.map(Encoding::program).unwrap_or("none"),
        "pushing kiln"
    );
    t.upload(wire.path, &staging, 0o600, timeout)?;
    let out = t.run(&["sh".into(), "-c".into(), install_script(remote, &staging, wire.encoding, sha256)], timeout)?;
    let said_ok = String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == format!("{INSTALL_MARKER} ok"));
    if out.exit != RemoteExit::Code(0) || !said_ok {
        let detail = out
            .stderr_tail()
            .map(|l| l.strip_prefix(INSTALL_MARKER).map(str::trim).unwrap_or(&l).to_string())
            .unwrap_or_else(|| format!("the install command ended with {:?}", out.exit));
        return Err(TransportError::Install { node: t.node().to_string(), path: remote.to_string(), detail });
    }
    Ok(())
}

/// Checks the node's copy against the binary meant for its architecture
/// (`probe`: what a guarded command already learnt; asked for when `None`);
/// with `push`, replaces a missing or different one and verifies it. Without
/// `push` only reports.
pub(crate) fn ensure(
    t: &mut dyn NodeTransport,
    bins: &RemoteBinary,
    push: bool,
    timeout: Duration,
    probe: Option<NodeProbe>,
) -> Result<BinaryState, TransportError> {
    let probe = match probe {
        Some(p) => p,
        None => probe_node(t, &bins.remote_path, timeout)?,
    };
    // A binary for the wrong architecture would only fail on the node with
    // "exec format error"; the node is refused before anything is sent.
    let bin = bins.for_node(t.node(), &probe.uname_m)?;
    let local = bin.sha256().map_err(|detail| TransportError::Checksum {
        node: t.node().to_string(),
        path: bin.local.display().to_string(),
        detail,
    })?;
    match (&probe.sha256, push) {
        (Some(h), _) if h == local => return Ok(BinaryState::Current),
        (None, false) => return Ok(BinaryState::Missing),
        (Some(_), false) => return Ok(BinaryState::Differs),
        _ => {}
    }
    install(t, bin, local, &bins.remote_path, &probe.unpack, timeout)?;
    Ok(BinaryState::Pushed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::dist::testdist::{self, TestTarget};
    use crate::fleet::LocalTransport;

    const LIMIT: Duration = Duration::from_secs(10);

    fn remote_in(dir: &std::path::Path) -> String {
        dir.join("node/bin/kiln").to_str().expect("utf8").to_string()
    }

    /// This machine's `uname -m`, as a node would report it.
    fn this_arch() -> &'static str {
        std::env::consts::ARCH
    }

    #[test]
    fn a_stamp_is_trusted_only_while_the_binary_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, testdist::binary(this_arch(), b"kiln v1")).expect("write");
        let remote = remote_in(dir.path());
        let bin = RemoteBinary::new(Some(&src), &remote).expect("binary");
        let mut t = LocalTransport::new("here");
        assert_eq!(ensure(&mut t, &bin, false, LIMIT, None).expect("ensure"), BinaryState::Missing);
        assert_eq!(ensure(&mut t, &bin, true, LIMIT, None).expect("ensure"), BinaryState::Pushed);
        assert_eq!(ensure(&mut t, &bin, true, LIMIT, None).expect("ensure"), BinaryState::Current);
        // Changing the binary in place (same size) changes its ctime: the
        // stamp no longer applies and the full hash finds the difference.
        std::fs::write(&remote, testdist::binary(this_arch(), b"kiln v2")).expect("tamper");
        assert_eq!(ensure(&mut t, &bin, false, LIMIT, None).expect("ensure"), BinaryState::Differs);
        assert_eq!(ensure(&mut t, &bin, true, LIMIT, None).expect("ensure"), BinaryState::Pushed);
        assert_eq!(std::fs::read(&remote).expect("read"), testdist::binary(this_arch(), b"kiln v1"));
    }

    #[test]
    fn a_compressed_copy_is_unpacked_on_the_node_and_what_runs_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dist = dir.path().join("dist");
        testdist::write(
            &dist,
            &[
                TestTarget { arch: this_arch(), payload: "kiln ".repeat(10_000).as_bytes(), packed: &["gzip", "xz"] },
                TestTarget { arch: "riscv64", payload: b"not for this node", packed: &["gzip"] },
            ],
        );
        let remote = remote_in(dir.path());
        let set = RemoteBinary::from_dist(&dist, &remote).expect("dist");
        let mut t = LocalTransport::new("here");
        // The probe answers in one round trip with what the node is.
        let probe = probe_node(&mut t, &remote, LIMIT).expect("probe");
        assert_eq!(probe.sha256, None);
        assert_eq!(crate::fleet::elf::node_arch(&probe.uname_m), this_arch());
        assert!(probe.unpack.contains(&Encoding::Gzip), "gzip is on every node: {probe:?}");
        assert_eq!(ensure(&mut t, &set, true, LIMIT, Some(probe)).expect("push"), BinaryState::Pushed);
        let want = testdist::path(&dist, this_arch(), "");
        assert_eq!(std::fs::read(&remote).expect("installed"), std::fs::read(&want).expect("binary"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&remote).expect("meta").permissions().mode() & 0o777, 0o755);
        let left: Vec<String> = std::fs::read_dir(dir.path().join("node/bin"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, ["kiln", "kiln.sha256"], "nothing staged is left behind");
        assert_eq!(ensure(&mut t, &set, true, LIMIT, None).expect("again"), BinaryState::Current);
    }

    #[test]
    fn a_copy_that_unpacks_to_another_binary_is_never_installed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dist = dir.path().join("dist");
        let mut manifest =
            testdist::write(&dist, &[TestTarget { arch: this_arch(), payload: b"the right one", packed: &["gzip"] }]);
        // A consistent-looking directory whose gzip copy holds another
        // binary: the manifest's checksums match every file, but the node's
        // check of the unpacked result does not.
        let other = dir.path().join("other");
        std::fs::write(&other, testdist::binary(this_arch(), b"the wrong one")).expect("write");
        let gz = testdist::path(&dist, this_arch(), ".gz");
        testdist::pack("gzip", &other, &gz);
        let entry = &mut manifest["targets"][0]["compressed"][0];
        entry["bytes"] = std::fs::metadata(&gz).expect("gz").len().into();
        entry["sha256"] = crate::fleet::local_sha256(&gz).expect("hash").into();
        testdist::rewrite(&dist, &manifest);
        let remote = remote_in(dir.path());
        let set = RemoteBinary::from_dist(&dist, &remote).expect("dist");
        let mut t = LocalTransport::new("here");
        let e = ensure(&mut t, &set, true, LIMIT, None).expect_err("refused on the node");
        let text = e.to_string();
        assert!(matches!(e, TransportError::Install { .. }), "{e:?}");
        assert!(text.contains("the pushed copy unpacks to sha256 "), "{text}");
        assert!(!std::path::Path::new(&remote).exists(), "nothing installed");
        let left = std::fs::read_dir(dir.path().join("node/bin")).expect("dir").count();
        assert_eq!(left, 0, "the staged and unpacked copies are removed");
    }

    #[test]
    fn a_node_of_an_architecture_without_a_binary_is_sent_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dist = dir.path().join("dist");
        let other = if this_arch() == "aarch64" { "x86_64" } else { "aarch64" };
        testdist::write(&dist, &[TestTarget { arch: other, payload: b"for the other kind", packed: &["gzip"] }]);
        let remote = remote_in(dir.path());
        let set = RemoteBinary::from_dist(&dist, &remote).expect("dist");
        let mut t = LocalTransport::new("here");
        let e = ensure(&mut t, &set, true, LIMIT, None).expect_err("no binary for this node");
        assert!(
            matches!(&e, TransportError::NoBinaryForArch { node_arch, has, .. } if node_arch == this_arch() && has == other),
            "{e:?}"
        );
        assert!(!dir.path().join("node").exists(), "nothing was sent");
    }

    #[test]
    fn the_guard_runs_the_command_only_for_the_binary_meant_for_the_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, testdist::binary(this_arch(), b"kiln")).expect("write");
        let remote = remote_in(dir.path());
        let set = RemoteBinary::new(Some(&src), &remote).expect("binary");
        let mut t = LocalTransport::new("here");
        let argv = vec!["echo".to_string(), "ran".to_string()];
        let sha = set.binaries()[0].sha256().expect("hash").to_string();
        // Missing: stopped, saying so, with the node's architecture.
        let out = t.run(&guarded(&remote, &[(this_arch(), &sha)], &argv), LIMIT).expect("run");
        assert!(stopped_by_guard(&out), "{out:?}");
        let probe = guard_probe(&out).expect("probe line");
        assert_eq!((probe.sha256.as_deref(), probe.uname_m.as_str()), (None, this_arch()));
        assert_eq!(ensure(&mut t, &set, true, LIMIT, Some(probe)).expect("push"), BinaryState::Pushed);
        // Current: the command runs, in the same round trip.
        let out = t.run(&guarded(&remote, &[(this_arch(), &sha)], &argv), LIMIT).expect("run");
        assert_eq!((out.exit.clone(), out.stdout.as_slice()), (RemoteExit::Code(0), b"ran\n".as_slice()));
        // The same checksum under another architecture is not this node's binary.
        let out = t.run(&guarded(&remote, &[("riscv64", &sha)], &argv), LIMIT).expect("run");
        assert!(stopped_by_guard(&out), "{out:?}");
        assert_eq!(guard_probe(&out).expect("probe").sha256.as_deref(), Some(sha.as_str()));
    }

    #[test]
    fn probe_lines_are_read_strictly() {
        let h = "ab".repeat(32);
        let p =
            NodeProbe::parse(&format!("kiln-probe: h={h} arch=aarch64 unpack=xz,gzip,"), PROBE_MARKER).expect("parsed");
        assert_eq!(p.sha256.as_deref(), Some(h.as_str()));
        assert_eq!((p.uname_m.as_str(), p.unpack.as_slice()), ("aarch64", [Encoding::Xz, Encoding::Gzip].as_slice()));
        let none = NodeProbe::parse("kiln-probe: h=missing arch=x86_64 unpack=", PROBE_MARKER).expect("parsed");
        assert_eq!((none.sha256, none.unpack.len()), (None, 0));
        assert_eq!(NodeProbe::parse("kiln-probe: h=xyz arch=x86_64 unpack=", PROBE_MARKER), None);
        assert_eq!(NodeProbe::parse("kiln-probe: arch=x86_64", PROBE_MARKER), None, "no checksum word");
        assert_eq!(NodeProbe::parse("something else", PROBE_MARKER), None);
    }
}
