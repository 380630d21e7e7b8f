//! Keeps the kiln binary on a node the same as the one meant for it: compare checksums, push a
//! missing or different one (compressed when the node can unpack it), verify what will run.

use std::time::Duration;

use super::dist::Encoding;
use super::node_binary::RemoteBinary;
use super::outcome::BinaryState;
use super::transport::{shell_quote, Answer, CommandOutput, NodeTransport, RemoteExit, TransportError};

/// The file beside the binary holding its checksum and the `stat` identity
/// (size, mtime, inode, ctime) it had when that checksum was taken.
fn stamp_path(remote: &str) -> String {
    format!("{remote}.sha256")
}

const STAT_FORMAT: &str = "%s %.9Y %i %.9Z";

/// Shell defining `k FILE`, which prints FILE's SHA-256 (lowercase hex):
/// with `openssl` when the node has it (it uses the CPU's SHA instructions,
/// several times faster than coreutils' `sha256sum` on a 16 MB binary),
/// else with `sha256sum`, which every node has. The file is read on
/// standard input, so no name can be taken for an option.
const HASH_SHELL: &str = "k() { o=$(openssl dgst -sha256 -r < \"$1\" 2>/dev/null) && o=${o%% *} && [ ${#o} -eq 64 ] \
     && { echo \"$o\"; return 0; }; sha256sum < \"$1\" | cut -d' ' -f1; }";

/// Shell that sets `h` to the node binary's checksum (empty when the file
/// is missing): from the stamp when the binary's identity is unchanged since
/// it was hashed (any write or rename changes its ctime, which no one can set
/// back), else by hashing it (`HASH_SHELL`). Hashing a 50 MB binary on every
/// node at every run would cost more than the node command itself.
fn check_script(remote: &str) -> String {
    format!(
        "{HASH_SHELL}; p={p}; s={s}; h=; i=; \
         if [ -e \"$p\" ]; then id=$(stat -c '{f}' -- \"$p\") || exit 1; \
         if [ -r \"$s\" ]; then {{ read -r h; read -r i; }} < \"$s\"; fi; \
         if [ -z \"$h\" ] || [ \"$i\" != \"$id\" ]; then h=$(k \"$p\"); fi; fi",
        p = shell_quote(remote),
        s = shell_quote(&stamp_path(remote)),
        f = STAT_FORMAT,
    )
}

/// Shell that sets `a` to the node's `uname -m` and `z` to the unpackers it
/// has (`zstd,xz,gzip,`).
const PROBE_SHELL: &str =
    "a=$(uname -m); z=; for c in zstd xz gzip; do command -v \"$c\" >/dev/null 2>&1 && z=\"$z$c,\"; done";

/// What a node says about itself in one line: `h=<sha256|missing>
/// arch=<uname -m> unpack=<zstd,xz,gzip,>`, after `prefix`.
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

/// Exit codes of the guarded command when it stops before the node
/// command: at the check (nothing was sent, or the controller refused), and
/// after a push that was not installed.
const GUARD_EXIT: i32 = 97;
const INSTALL_EXIT: i32 = 98;
const GUARD_MARKER: &str = "kiln-binary-check:";
const PROBE_MARKER: &str = "kiln-probe:";
const INSTALL_MARKER: &str = "kiln-install:";

/// The one remote command of a step that keeps kiln current. When the
/// node's kiln is the one meant for its architecture (`expected`: `(arch,
/// sha256)` pairs) it runs `argv` at once. Otherwise it says on stderr what
/// the node has (checksum, `uname -m`, unpackers) and reads the controller's
/// reply on stdin: `keep` (run anyway: the binary is right after all),
/// `send ENCODING SHA256` followed by the packed binary, or anything else
/// (stop, exit 97). What is sent is unpacked beside the target, hashed in
/// full, and only when it is `SHA256` made executable, renamed over the
/// target (a node never runs a half-written binary) and stamped; then `argv`
/// runs. A push that is not installed stops with exit 98 and a line saying
/// why. So a node costs one command whether or not it needs a push.
pub(crate) fn guarded(remote: &str, expected: &[(&str, &str)], argv: &[String]) -> Vec<String> {
    let words: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    let cmd = format!("{} </dev/null", words.join(" "));
    let arms: String =
        expected.iter().map(|(arch, sha)| format!("{}) w={};; ", shell_quote(arch), shell_quote(sha))).collect();
    let fail = |why: &str| format!("{{ rm -f -- \"$n\"; echo \"{INSTALL_MARKER} {why}\" >&2; exit {INSTALL_EXIT}; }}");
    let script = format!(
        "{check}; {probe}; w=; case \"$a\" in {arms}esac; \
         if [ -n \"$w\" ] && [ \"$h\" = \"$w\" ]; then exec {cmd}; fi; {echo} >&2; \
         read -r v e w || exit {GUARD_EXIT}; \
         case \"$v\" in keep) exec {cmd};; send) ;; *) exit {GUARD_EXIT};; esac; \
         n=\"$p.new.$$\"; mkdir -p -- \"$(dirname -- \"$p\")\" || {mkdir_fail}; \
         case \"$e\" in zstd) zstd -dcq > \"$n\";; xz) xz -dc > \"$n\";; gzip) gzip -dc > \"$n\";; \
         none) cat > \"$n\";; *) false;; esac \
         || {unpack_fail}; \
         h=$(k \"$n\"); [ \"$h\" = \"$w\" ] || {hash_fail}; \
         chmod 755 \"$n\" && mv -f -- \"$n\" \"$p\" || {place_fail}; \
         printf '%s\\n%s\\n' \"$w\" \"$(stat -c '{f}' -- \"$p\")\" > \"$s.tmp.$$\" && mv -f \"$s.tmp.$$\" \"$s\" \
         || {stamp_fail}; \
         echo \"{INSTALL_MARKER} ok\" >&2; exec {cmd}",
        check = check_script(remote),
        probe = PROBE_SHELL,
        echo = probe_echo(GUARD_MARKER),
        f = STAT_FORMAT,
        mkdir_fail = fail("could not create the directory of $p"),
        unpack_fail = fail("could not unpack the pushed copy ($e)"),
        hash_fail = fail("the pushed copy unpacks to sha256 $h, expected $w"),
        place_fail = fail("could not put it at $p"),
        stamp_fail = fail("could not write the checksum stamp $s"),
    );
    vec!["sh".into(), "-c".into(), script]
}

/// The node's request, once its whole line has arrived on stderr.
fn request_in(stderr: &[u8]) -> Option<Result<NodeProbe, String>> {
    let text = String::from_utf8_lossy(stderr);
    let at = text.find(GUARD_MARKER)?;
    let line = text[at..].split_inclusive('\n').next().filter(|l| l.ends_with('\n'))?;
    Some(NodeProbe::parse(line, GUARD_MARKER).ok_or_else(|| format!("unexpected answer {:?}", line.trim())))
}

/// What the controller decided when the node asked.
enum Decision {
    Keep,
    Sent { encoding: Option<Encoding>, bytes: u64 },
    Refused(TransportError),
}

/// Runs `argv` on the node with the binary meant for it (see `guarded`):
/// sends it when the node asks, the packed copy the node can unpack that
/// `Encoding::ALL` prefers, chosen by the architecture the node reports. Returns what
/// happened to the node's binary and the node command's output.
pub(crate) fn run_current(
    t: &mut dyn NodeTransport,
    bins: &RemoteBinary,
    argv: &[String],
    timeout: Duration,
) -> Result<(BinaryState, CommandOutput), (TransportError, Option<BinaryState>)> {
    let script = guarded(&bins.remote_path, &bins.expected(), argv);
    let node = t.node().to_string();
    let mut decision = None;
    let mut answer = |stderr: &[u8]| -> Option<Answer> {
        let request = request_in(stderr)?;
        let (d, reply) = match decide(bins, &node, request) {
            Ok((d, reply)) => (d, reply),
            Err(e) => (Decision::Refused(e), Answer { header: b"refuse\n".to_vec(), body: None }),
        };
        decision = Some(d);
        Some(reply)
    };
    let out = t.run_answering(&script, timeout, &mut answer).map_err(|e| (e, None))?;
    let bad = |detail: String| TransportError::Install { node: node.clone(), path: bins.remote_path.clone(), detail };
    let (state, out) = match decision {
        None if stopped(&out, GUARD_EXIT, GUARD_MARKER) => {
            // It stopped at the check without asking in a way this kiln reads.
            return Err((bad(out.stderr_tail().unwrap_or_default()), None));
        }
        None => return Ok((BinaryState::Current, out)),
        Some(Decision::Refused(e)) => return Err((e, None)),
        Some(Decision::Keep) => (BinaryState::Current, out),
        Some(Decision::Sent { encoding, bytes }) => {
            let installed = String::from_utf8_lossy(&out.stderr).lines().any(|l| l == format!("{INSTALL_MARKER} ok"));
            if !installed {
                let detail = String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .rev()
                    .find_map(|l| l.strip_prefix(INSTALL_MARKER).map(|d| d.trim().to_string()))
                    .unwrap_or_else(|| format!("the node did not install it ({:?})", out.exit));
                return Err((bad(detail), None));
            }
            tracing::info!(
                node = %node,
                bytes,
                encoding = encoding.map(Encoding::program).unwrap_or("none"),
                "pushed kiln"
            );
            (BinaryState::Pushed, out)
        }
    };
    Ok((state, without_markers(out)))
}

/// The reply to a node's request: its binary, or why it gets none.
fn decide(
    bins: &RemoteBinary,
    node: &str,
    request: Result<NodeProbe, String>,
) -> Result<(Decision, Answer), TransportError> {
    let probe = request.map_err(|detail| TransportError::Checksum {
        node: node.to_string(),
        path: bins.remote_path.clone(),
        detail,
    })?;
    // A binary for the wrong architecture would only fail on the node with
    // "exec format error": the node is refused before anything is sent.
    let bin = bins.for_node(node, &probe.uname_m)?;
    let sha = bin.sha256().map_err(|detail| TransportError::Checksum {
        node: node.to_string(),
        path: bin.local.display().to_string(),
        detail,
    })?;
    if probe.sha256.as_deref() == Some(sha) {
        return Ok((Decision::Keep, Answer { header: b"keep\n".to_vec(), body: None }));
    }
    let wire = bin.wire_for(&probe.unpack);
    let encoding = wire.encoding.map(Encoding::program).unwrap_or("none");
    let header = format!("send {encoding} {sha}\n").into_bytes();
    tracing::info!(node, arch = %bin.arch, bytes = wire.bytes, encoding, "pushing kiln");
    Ok((
        Decision::Sent { encoding: wire.encoding, bytes: wire.bytes },
        Answer { header, body: Some(wire.path.to_path_buf()) },
    ))
}

fn stopped(out: &CommandOutput, code: i32, marker: &str) -> bool {
    out.exit == RemoteExit::Code(code) && String::from_utf8_lossy(&out.stderr).lines().any(|l| l.starts_with(marker))
}

/// The node command's output without the lines the check and the install printed.
fn without_markers(mut out: CommandOutput) -> CommandOutput {
    let ok = format!("{INSTALL_MARKER} ok");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    let kept: Vec<&str> =
        text.split_inclusive('\n').filter(|l| !l.starts_with(GUARD_MARKER) && l.trim_end() != ok).collect();
    out.stderr = kept.concat().into_bytes();
    out
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

/// `status`: whether the node's kiln is the binary meant for its
/// architecture. Sends nothing.
pub(crate) fn check(
    t: &mut dyn NodeTransport,
    bins: &RemoteBinary,
    timeout: Duration,
) -> Result<BinaryState, TransportError> {
    let probe = probe_node(t, &bins.remote_path, timeout)?;
    let bin = bins.for_node(t.node(), &probe.uname_m)?;
    let local = bin.sha256().map_err(|detail| TransportError::Checksum {
        node: t.node().to_string(),
        path: bin.local.display().to_string(),
        detail,
    })?;
    Ok(match probe.sha256 {
        Some(h) if h == local => BinaryState::Current,
        Some(_) => BinaryState::Differs,
        None => BinaryState::Missing,
    })
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

    fn echo_ran() -> Vec<String> {
        vec!["echo".to_string(), "ran".to_string()]
    }

    /// `run_current` with `echo ran` as the node command; the state, and
    /// whether the command ran.
    fn run(t: &mut LocalTransport, bins: &RemoteBinary) -> Result<(BinaryState, bool), TransportError> {
        run_current(t, bins, &echo_ran(), LIMIT).map(|(b, out)| (b, out.stdout == b"ran\n")).map_err(|(e, _)| e)
    }

    fn listing(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| r.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn a_stamp_is_trusted_only_while_the_binary_is_untouched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, testdist::binary(this_arch(), b"kiln v1")).expect("write");
        let remote = remote_in(dir.path());
        let bin = RemoteBinary::new(Some(&src), &remote).expect("binary");
        let mut t = LocalTransport::new("here");
        assert_eq!(check(&mut t, &bin, LIMIT).expect("check"), BinaryState::Missing);
        assert_eq!(run(&mut t, &bin).expect("run"), (BinaryState::Pushed, true));
        assert_eq!(run(&mut t, &bin).expect("run"), (BinaryState::Current, true));
        // Changing the binary in place (same size) changes its ctime: the
        // stamp no longer applies and the full hash finds the difference.
        std::fs::write(&remote, testdist::binary(this_arch(), b"kiln v2")).expect("tamper");
        assert_eq!(check(&mut t, &bin, LIMIT).expect("check"), BinaryState::Differs);
        assert_eq!(run(&mut t, &bin).expect("run"), (BinaryState::Pushed, true));
        assert_eq!(std::fs::read(&remote).expect("read"), testdist::binary(this_arch(), b"kiln v1"));
        assert_eq!(check(&mut t, &bin, LIMIT).expect("check"), BinaryState::Current);
    }

    #[test]
    fn a_compressed_copy_is_unpacked_on_the_node_and_what_runs_is_checked() {
        // One directory per encoding, holding only that packed copy: a node
        // that has the unpacker gets that copy (`wire_for`), so each arm of
        // the node's unpack step runs here. The test machine has all three
        // (`cargo xtask test` installs them).
        for program in ["zstd", "xz", "gzip"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let dist = dir.path().join("dist");
            testdist::write(
                &dist,
                &[
                    TestTarget { arch: this_arch(), payload: "kiln ".repeat(10_000).as_bytes(), packed: &[program] },
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
            let encoding = Encoding::from_program(program).expect("known");
            assert!(probe.unpack.contains(&encoding), "{program} is installed here: {probe:?}");
            let bin = set.for_node("here", &probe.uname_m).expect("binary");
            assert_eq!(bin.wire_for(&probe.unpack).encoding, Some(encoding));
            let (state, out) = run_current(&mut t, &set, &echo_ran(), LIMIT).map_err(|(e, _)| e).expect("push");
            assert_eq!(state, BinaryState::Pushed, "{program}");
            assert_eq!(out.stdout, b"ran\n");
            assert!(out.stderr.is_empty(), "the check's and the install's lines are not the command's: {out:?}");
            let want = testdist::path(&dist, this_arch(), "");
            assert_eq!(std::fs::read(&remote).expect("installed"), std::fs::read(&want).expect("binary"), "{program}");
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&remote).expect("meta").permissions().mode() & 0o777, 0o755);
            assert_eq!(
                listing(&dir.path().join("node/bin")),
                ["kiln".to_string(), stamp_path("kiln")],
                "nothing staged is left behind: the binary and its stamp"
            );
            assert_eq!(run(&mut t, &set).expect("again"), (BinaryState::Current, true));
        }
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
        let e = run(&mut t, &set).expect_err("refused on the node");
        let text = e.to_string();
        assert!(matches!(e, TransportError::Install { .. }), "{e:?}");
        assert!(text.contains("the pushed copy unpacks to sha256 "), "{text}");
        assert!(!std::path::Path::new(&remote).exists(), "nothing installed");
        assert_eq!(listing(&dir.path().join("node/bin")), Vec::<String>::new(), "the unpacked copy is removed");
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
        let e = run(&mut t, &set).expect_err("no binary for this node");
        assert!(
            matches!(&e, TransportError::NoBinaryForArch { node_arch, has, .. } if node_arch == this_arch() && has == other),
            "{e:?}"
        );
        assert!(!dir.path().join("node").exists(), "nothing was sent");
        // `status` says the same, without running anything.
        assert!(matches!(check(&mut t, &set, LIMIT), Err(TransportError::NoBinaryForArch { .. })));
    }

    #[test]
    fn the_guard_runs_the_command_only_for_the_binary_meant_for_the_node() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::write(&src, testdist::binary(this_arch(), b"kiln")).expect("write");
        let remote = remote_in(dir.path());
        let set = RemoteBinary::new(Some(&src), &remote).expect("binary");
        let mut t = LocalTransport::new("here");
        let sha = set.binaries()[0].sha256().expect("hash").to_string();
        assert_eq!(run(&mut t, &set).expect("push"), (BinaryState::Pushed, true));
        // The same checksum expected under another architecture is not this
        // node's binary: the guard stops and asks; unanswered (stdin closed)
        // it ends at the check, having run nothing.
        let out = t.run(&guarded(&remote, &[("riscv64", &sha)], &echo_ran()), LIMIT).expect("run");
        assert_eq!(out.exit, RemoteExit::Code(GUARD_EXIT), "{out:?}");
        assert!(out.stdout.is_empty());
        let probe = request_in(&out.stderr).expect("a request").expect("readable");
        assert_eq!((probe.sha256.as_deref(), probe.uname_m.as_str()), (Some(sha.as_str()), this_arch()));
        // Asked, the controller finds the binary current and says keep: one
        // command, nothing sent.
        let other = guarded(&remote, &[("riscv64", &sha)], &echo_ran());
        let mut asked = 0;
        let out = t
            .run_answering(&other, LIMIT, &mut |_| {
                asked += 1;
                Some(Answer { header: b"keep\n".to_vec(), body: None })
            })
            .expect("run");
        assert_eq!((asked, out.stdout.as_slice()), (1, b"ran\n".as_slice()));
        // Any other reply stops it.
        let out = t
            .run_answering(&other, LIMIT, &mut |_| Some(Answer { header: b"refuse\n".to_vec(), body: None }))
            .expect("run");
        assert_eq!((out.exit, out.stdout.is_empty()), (RemoteExit::Code(GUARD_EXIT), true));
    }

    #[test]
    fn the_node_hashes_with_openssl_or_sha256sum_alike() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A name that would be an option if it were passed as an argument.
        let file = dir.path().join("-n kiln");
        std::fs::write(&file, testdist::binary(this_arch(), &b"kiln ".repeat(50_000))).expect("write");
        let want = crate::fleet::local_sha256(&file).expect("hash");
        let hash = |prelude: &str| {
            let script = format!("{HASH_SHELL}; {prelude} k \"$1\"");
            let out = std::process::Command::new("sh").args(["-c", &script, "sh"]).arg(&file).output().expect("run sh");
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(hash(""), want, "with openssl, where the node has it");
        // A node without openssl (or one whose openssl fails) uses sha256sum.
        assert_eq!(hash("openssl() { return 127; };"), want, "without openssl");
        assert_eq!(hash("openssl() { echo 'SHA2-256(stdin)= short'; };"), want, "openssl printing something else");
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
        // A request is read only once its line is whole.
        let line = "kiln-binary-check: h=missing arch=aarch64 unpack=gzip,";
        assert!(request_in(line.as_bytes()).is_none(), "no newline yet");
        let whole = format!("{line}\n");
        assert_eq!(request_in(whole.as_bytes()).map(|r| r.map(|p| p.uname_m)), Some(Ok("aarch64".to_string())));
    }
}
