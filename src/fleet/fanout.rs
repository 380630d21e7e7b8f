//! Runs one step on many nodes at once: connect, keep kiln current, run the node command, judge its
//! exit code and JSON. A node that fails in any way becomes an outcome; the others go on.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::node_binary::RemoteBinary;
use super::outcome::{BinaryState, FailureKind, NodeOutcome, NodeStatus, Step};
use super::pool::map_bounded;
use super::push::{check, run_current};
use super::transport::{CommandOutput, Connector, NodeTransport, RemoteExit, TransportError};
use crate::exit;
use crate::rack::RackNode;

/// What each node runs for a step. The command is a template: an argument
/// `{root_args}` becomes `--root <kiln_root>` (or nothing when the node has
/// none), and `{kiln}` and `{root}` inside any argument become the remote
/// binary path and the node's kiln_root.
#[derive(Debug, Clone)]
pub struct Plan {
    pub step: Step,
    pub command: Vec<String>,
    /// Push kiln when missing or different (`status` only looks).
    pub push: bool,
}

impl Plan {
    /// `kiln <step> --json [--root R] [extra...]`; for `status`, `uname -n`.
    /// `validate` also asks for the inspected node (`--with-node`), which the
    /// controller records with the run and compares across the rack.
    pub fn for_step(step: Step, extra_args: &[String]) -> Plan {
        let command = match step {
            Step::Status => vec!["uname".to_string(), "-n".to_string()],
            _ => {
                let mut c = vec!["{kiln}".to_string(), step.as_str().to_string(), "--json".into()];
                if step == Step::Validate {
                    c.push("--with-node".into());
                }
                c.push("{root_args}".into());
                c.extend(extra_args.iter().cloned());
                c
            }
        };
        Plan { step, command, push: step != Step::Status }
    }

    /// The command for one node, placeholders filled in.
    pub fn argv(&self, node: &RackNode, remote_binary: &str) -> Vec<String> {
        let root = node.kiln_root.clone().unwrap_or_default();
        let mut argv = Vec::with_capacity(self.command.len() + 1);
        for arg in &self.command {
            if arg == "{root_args}" {
                if let Some(r) = &node.kiln_root {
                    argv.push("--root".to_string());
                    argv.push(r.clone());
                }
            } else {
                argv.push(arg.replace("{kiln}", remote_binary).replace("{root}", &root));
            }
        }
        argv
    }
}

/// Which nodes not to run: the reason shown for a node to skip, `None` to run it.
pub type Skip<'a> = dyn Fn(&str) -> Option<String> + Sync + 'a;

#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// At most this many nodes in flight.
    pub parallel: usize,
    /// Limit for each command on a node (the node command, checksum, push).
    pub command_timeout: Duration,
    pub binary: RemoteBinary,
}

/// Where a node is, for progress display.
#[derive(Debug, Clone, Copy)]
pub enum Phase<'a> {
    Connecting,
    CheckingBinary,
    Running,
    Done(&'a NodeOutcome),
}

impl Phase<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Connecting => "connecting",
            Phase::CheckingBinary => "checking_binary",
            Phase::Running => "running",
            Phase::Done(_) => "done",
        }
    }
}

/// Runs `plan` on `nodes`, at most `opts.parallel` at once, and returns one
/// outcome per node in the order given. `skip` says which nodes not to run
/// (their step already passed) by returning the reason shown for them;
/// `progress` is told of each node's phases from the worker threads.
pub fn run_step(
    nodes: &[&RackNode],
    plan: &Plan,
    opts: &FanoutOptions,
    connector: &dyn Connector,
    skip: Option<&Skip<'_>>,
    progress: &(dyn Fn(&str, Phase<'_>) + Sync),
) -> Vec<NodeOutcome> {
    map_bounded(nodes, opts.parallel, |node| {
        let phase = |name: &str, p: Phase<'_>| {
            tracing::debug!(node = name, phase = p.name(), "fan-out phase");
            progress(name, p)
        };
        let outcome = run_node(node, plan, opts, connector, skip, &phase);
        phase(&node.name, Phase::Done(&outcome));
        outcome
    })
}

struct Clock {
    started: OffsetDateTime,
    t0: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock { started: OffsetDateTime::now_utc(), t0: Instant::now() }
    }

    fn outcome(&self, node: &RackNode, step: Step, status: NodeStatus) -> NodeOutcome {
        NodeOutcome {
            node: node.name.clone(),
            step,
            status,
            started: self.started,
            finished: OffsetDateTime::now_utc(),
            duration_ms: self.t0.elapsed().as_millis() as u64,
            remote_exit: None,
            verdict: None,
            failure: None,
            reason: None,
            binary: None,
            report: None,
            recorded: None,
        }
    }
}

fn run_node(
    node: &RackNode,
    plan: &Plan,
    opts: &FanoutOptions,
    connector: &dyn Connector,
    skip: Option<&Skip<'_>>,
    progress: &(dyn Fn(&str, Phase<'_>) + Sync),
) -> NodeOutcome {
    let clock = Clock::start();
    if let Some(reason) = skip.and_then(|s| s(&node.name)) {
        let mut o = clock.outcome(node, plan.step, NodeStatus::Skipped);
        o.reason = Some(reason);
        return o;
    }
    let peer_error = |e: TransportError, binary: Option<BinaryState>| {
        tracing::info!(node = %node.name, error = %e, "node failed");
        let mut o = clock.outcome(node, plan.step, NodeStatus::PeerError);
        o.failure = Some(e.kind());
        o.reason = Some(e.to_string());
        o.binary = binary;
        o
    };
    progress(&node.name, Phase::Connecting);
    let mut transport: Box<dyn NodeTransport> = match connector.connect(node) {
        Ok(t) => t,
        Err(e) => return peer_error(e, None),
    };
    let argv = plan.argv(node, &opts.binary.remote_path);
    let (binary, out) = match binary_then_run(transport.as_mut(), plan, opts, &argv, &|p| progress(&node.name, p)) {
        Ok(r) => r,
        Err((e, binary)) => return peer_error(e, binary),
    };
    let mut o = if plan.step == Step::Status {
        status_outcome(&clock, node, &out, binary, &opts.binary)
    } else {
        judge(clock.outcome(node, plan.step, NodeStatus::Error), &out)
    };
    o.binary = Some(binary);
    o.finished = OffsetDateTime::now_utc();
    o.duration_ms = clock.t0.elapsed().as_millis() as u64;
    o
}

/// Makes sure the node runs the kiln meant for it, then runs `argv`. With
/// `push` both happen in one remote command (`push::guarded`): the binary
/// goes out on that command's input only when the node asks for it.
/// Without, the node's binary is only looked at.
fn binary_then_run(
    t: &mut dyn NodeTransport,
    plan: &Plan,
    opts: &FanoutOptions,
    argv: &[String],
    progress: &dyn Fn(Phase<'_>),
) -> Result<(BinaryState, CommandOutput), (TransportError, Option<BinaryState>)> {
    let timeout = opts.command_timeout;
    if plan.push {
        progress(Phase::Running);
        return run_current(t, &opts.binary, argv, timeout);
    }
    progress(Phase::CheckingBinary);
    let binary = check(t, &opts.binary, timeout).map_err(|e| (e, None))?;
    progress(Phase::Running);
    let out = t.run(argv, timeout).map_err(|e| (e, Some(binary)))?;
    Ok((binary, out))
}

/// `status`: the node answered; say what it calls itself and whether its kiln is current.
fn status_outcome(
    clock: &Clock,
    node: &RackNode,
    out: &CommandOutput,
    binary: BinaryState,
    bin: &RemoteBinary,
) -> NodeOutcome {
    let mut o = clock.outcome(node, Step::Status, NodeStatus::Pass);
    let hostname = String::from_utf8_lossy(&out.stdout).trim().to_string();
    o.remote_exit = match out.exit {
        RemoteExit::Code(c) => Some(c),
        RemoteExit::Signal(_) => None,
    };
    o.report = Some(serde_json::json!({
        "hostname": hostname,
        "kiln_path": bin.remote_path,
        "kiln": binary,
    }));
    if binary != BinaryState::Current {
        o.reason = Some(format!(
            "kiln at {} is {}",
            bin.remote_path,
            if binary == BinaryState::Missing { "missing" } else { "not this version" }
        ));
    }
    o
}

/// Turns a node command's exit code and JSON into the node's status.
pub(crate) fn judge(mut o: NodeOutcome, out: &CommandOutput) -> NodeOutcome {
    let json: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    o.verdict = json.as_ref().and_then(|j| j.get("verdict")).and_then(|v| v.as_str()).map(str::to_string);
    let tail = out.stderr_tail();
    let code = match &out.exit {
        RemoteExit::Signal(sig) => {
            o.status = NodeStatus::Error;
            o.failure = Some(FailureKind::Remote);
            o.reason = Some(format!("kiln on the node was killed by signal {sig}{}", suffix(&tail)));
            o.report = json;
            return o;
        }
        RemoteExit::Code(c) => *c,
    };
    o.remote_exit = Some(code);
    let verdict_code = matches!(code, exit::OK | exit::CHECK_FAILED | exit::CHECK_ERROR | exit::SKIPPED);
    if verdict_code && json.is_none() {
        o.status = NodeStatus::Error;
        o.failure = Some(FailureKind::Remote);
        o.reason = Some(format!("kiln on the node exited {code} but printed no JSON{}", suffix(&tail)));
        return o;
    }
    match code {
        exit::OK => o.status = NodeStatus::Pass,
        exit::CHECK_FAILED => {
            o.status = NodeStatus::Fail;
            o.reason = Some(findings_reason(json.as_ref(), "fail").or(tail).unwrap_or_else(|| "a check failed".into()));
        }
        exit::CHECK_ERROR => {
            o.status = NodeStatus::Error;
            o.reason = Some(
                findings_reason(json.as_ref(), "error").or(tail).unwrap_or_else(|| "a check could not run".into()),
            );
        }
        exit::SKIPPED => {
            o.status = NodeStatus::Skipped;
            let said = json.as_ref().and_then(|j| j.get("reason")).and_then(|r| r.as_str()).map(str::to_string);
            let said = said.or_else(|| skipped_result(json.as_ref()));
            o.reason = Some(said.or(tail).unwrap_or_else(|| "the node command had nothing to do".into()));
        }
        other => {
            o.status = NodeStatus::Error;
            o.failure = Some(FailureKind::Remote);
            o.reason = Some(format!("kiln on the node exited {other} ({}){}", exit_meaning(other), suffix(&tail)));
        }
    }
    o.report = json;
    o
}

fn suffix(tail: &Option<String>) -> String {
    tail.as_ref().map(|t| format!(": {t}")).unwrap_or_default()
}

fn exit_meaning(code: i32) -> &'static str {
    match code {
        exit::USAGE => "usage error: this kiln may not know the command",
        exit::BAD_INPUT => "bad input",
        exit::DATABASE => "database",
        exit::PEER => "peer",
        exit::BUSY => "another burn-in is running on the node",
        exit::INTERNAL => "internal error",
        126 => "not executable",
        127 => "command not found",
        _ => "unknown code",
    }
}

/// "test skipped: reason (+N more)" for the first skipped result of a burn-in report (a GPU
/// test without a driver, or on a replayed capture).
fn skipped_result(json: Option<&serde_json::Value>) -> Option<String> {
    let results = json?.get("results")?.as_array()?;
    let skipped: Vec<&serde_json::Value> =
        results.iter().filter(|r| r.get("status").and_then(|s| s.as_str()) == Some("skipped")).collect();
    let first = skipped.first()?;
    let test = first.get("test").and_then(|t| t.as_str()).unwrap_or("?");
    let reason = first.get("reason").and_then(|r| r.as_str()).unwrap_or("no reason given");
    let more = if skipped.len() > 1 { format!(" (+{} more)", skipped.len() - 1) } else { String::new() };
    Some(format!("{test} skipped: {reason}{more}"))
}

/// "check component: message (+N more)" for the first finding with `outcome`.
pub(super) fn findings_reason(json: Option<&serde_json::Value>, outcome: &str) -> Option<String> {
    let findings = json?.get("findings")?.as_array()?;
    let matching: Vec<&serde_json::Value> =
        findings.iter().filter(|f| f.get("outcome").and_then(|o| o.as_str()) == Some(outcome)).collect();
    let first = matching.first()?;
    let check = first.get("check").and_then(|c| c.as_str()).unwrap_or("?");
    let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let component = first
        .get("component")
        .and_then(|c| serde_json::from_value::<crate::checks::Component>(c.clone()).ok())
        .map(|c| format!(" {}", c.label()))
        .unwrap_or_default();
    let more = if matching.len() > 1 { format!(" (+{} more)", matching.len() - 1) } else { String::new() };
    Some(format!("{check}{component}: {message}{more}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::LocalConnector;

    fn node(name: &str, root: Option<&str>) -> RackNode {
        RackNode { kiln_root: root.map(str::to_string), ..RackNode::new(name, "127.0.0.1") }
    }

    /// A "kiln" for the local backend: a shell script that prints a validate
    /// report whose verdict depends on the root it is given, like the real one.
    fn fake_kiln(dir: &std::path::Path) -> std::path::PathBuf {
        let script = dir.join("kiln-src");
        std::fs::write(
            &script,
            r#"#!/bin/sh
root=""
while [ $# -gt 0 ]; do case "$1" in --root) root="$2"; shift;; esac; shift; done
case "$root" in
  *bad*) echo '{"verdict":"fail","findings":[{"check":"gpu.count","outcome":"fail","severity":"critical","component":{"kind":"node"},"message":"7 GPUs, expected 8"}]}'; exit 1;;
  *crash*) echo "thread main panicked" >&2; exit 10;;
  *slow*) sleep 30;;
  *) echo '{"verdict":"pass","findings":[]}'; exit 0;;
esac
"#,
        )
        .expect("write script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        script
    }

    #[test]
    fn judges_each_node_and_goes_on_past_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = fake_kiln(dir.path());
        let remote = dir.path().join("node-bin/kiln");
        let binary = RemoteBinary::unchecked(&src, std::env::consts::ARCH, remote.to_str().expect("utf8"));
        let opts = FanoutOptions { parallel: 4, command_timeout: Duration::from_secs(1), binary };
        let nodes =
            [node("a", Some("/good")), node("b", Some("/bad")), node("c", Some("/crash")), node("d", Some("/slow"))];
        let refs: Vec<&RackNode> = nodes.iter().collect();
        let plan = Plan::for_step(Step::Validate, &[]);
        let out = run_step(&refs, &plan, &opts, &LocalConnector, None, &|_, _| {});
        let status: Vec<NodeStatus> = out.iter().map(|o| o.status).collect();
        assert_eq!(status, [NodeStatus::Pass, NodeStatus::Fail, NodeStatus::Error, NodeStatus::PeerError]);
        assert_eq!(out[0].verdict.as_deref(), Some("pass"));
        // The first node to run found no binary and pushed it; the same path is shared here.
        assert!(out.iter().any(|o| o.binary == Some(BinaryState::Pushed)));
        assert_eq!(out[1].reason.as_deref(), Some("gpu.count node: 7 GPUs, expected 8"));
        assert!(out[2].reason.as_deref().unwrap_or("").contains("exited 10 (internal error): thread main panicked"));
        assert_eq!(out[3].failure, Some(FailureKind::Timeout));
        assert_eq!(crate::fleet::exit_code(&out, &[]), exit::CHECK_FAILED);
    }

    #[test]
    fn a_burnin_that_skipped_its_tests_says_which_and_why() {
        let node = node("a", None);
        let blank = Clock::start().outcome(&node, Step::Burnin, NodeStatus::Error);
        let json = br#"{"verdict":"pass","incomplete":true,"results":[
            {"test":"host","status":"pass"},
            {"test":"gemm","status":"skipped","reason":"no NVIDIA driver"},
            {"test":"memtest","status":"skipped","reason":"no NVIDIA driver"}]}"#;
        let out = CommandOutput { stdout: json.to_vec(), stderr: Vec::new(), exit: RemoteExit::Code(exit::SKIPPED) };
        let o = judge(blank.clone(), &out);
        assert_eq!(o.status, NodeStatus::Skipped);
        assert_eq!(o.reason.as_deref(), Some("gemm skipped: no NVIDIA driver (+1 more)"));
        // A document's own reason wins; without either, stderr's last line.
        let said = br#"{"reason":"nothing to burn in"}"#;
        let out = CommandOutput { stdout: said.to_vec(), stderr: b"x\n".to_vec(), exit: RemoteExit::Code(7) };
        assert_eq!(judge(blank, &out).reason.as_deref(), Some("nothing to burn in"));
    }

    #[test]
    fn skip_leaves_nodes_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = fake_kiln(dir.path());
        let remote = dir.path().join("node-bin/kiln");
        let binary = RemoteBinary::unchecked(&src, std::env::consts::ARCH, remote.to_str().expect("utf8"));
        let opts = FanoutOptions { parallel: 2, command_timeout: Duration::from_secs(5), binary };
        let nodes = [node("a", Some("/bad")), node("b", Some("/good"))];
        let refs: Vec<&RackNode> = nodes.iter().collect();
        let skip = |n: &str| (n == "a").then(|| "validate already passed".to_string());
        let out =
            run_step(&refs, &Plan::for_step(Step::Validate, &[]), &opts, &LocalConnector, Some(&skip), &|_, _| {});
        assert_eq!(out[0].status, NodeStatus::Skipped);
        assert_eq!(out[0].reason.as_deref(), Some("validate already passed"));
        assert_eq!(out[0].remote_exit, None);
        assert_eq!(out[1].status, NodeStatus::Pass);
        assert_eq!(crate::fleet::exit_code(&out, &[]), exit::OK);
    }
}
