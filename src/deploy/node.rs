//! The controller's state machine for one node: boot-set, reset, agent, written, reboot, booted.
//!
//! Each step either ends and is recorded, or fails: then it is recorded failed, the node's
//! lifecycle state becomes `failed` with `image: <step>: <cause>`, and nothing after it is done.
//! Every wait ends at the node's deadline (`--node-timeout` from the node's start).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::board::{Board, Phase};
use super::protocol::ResultReply;
use super::step::{NodeReport, NodeStatus, Step, StepLine};
use crate::bmc::{Bmc, BootTarget, PowerAction, PowerState};
use crate::error::chain;
use crate::inventory::StepOutcome;

/// How the node is brought into the imaging environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BootVia {
    /// Insert the node's own virtual medium (`--media`, served per node) and boot once from CD.
    Media,
    /// Boot once from the network.
    Pxe,
    /// Touch no BMC: the node is started some other way (a person, a VM harness).
    None,
}

impl BootVia {
    pub fn as_str(self) -> &'static str {
        match self {
            BootVia::Media => "media",
            BootVia::Pxe => "pxe",
            BootVia::None => "none",
        }
    }
}

/// Where each step is written. The deploy run's implementation writes the inventory; an `Err`
/// stops the node (nothing is done unrecorded).
pub trait StepSink: Sync {
    fn record(&self, node: &str, step: Step, outcome: StepOutcome, detail: &str) -> Result<(), String>;
}

/// What the driver needs for one node.
pub struct NodeJob<'a> {
    pub node: &'a str,
    /// The node's BMC: `None` when the manifest gives none, `Err` when it cannot be used
    /// (a missing password, say), with why.
    pub bmc: Option<Result<Box<dyn Bmc + 'a>, String>>,
    pub boot: BootVia,
    pub media_url: Option<&'a str>,
    pub timeout: Duration,
    /// How long after "reboot" to wait for the booted agent before restarting through the BMC.
    pub reboot_grace: Duration,
}

/// A step that failed, with its cause.
struct Failed(Step, String);

struct Driver<'a, 'j> {
    job: &'j NodeJob<'a>,
    board: &'j Board,
    sink: &'j dyn StepSink,
    deadline: Instant,
    steps: Vec<StepLine>,
}

/// Deploy one node; the board must list it. Returns how it ended (already recorded).
pub fn deploy_node(job: &NodeJob<'_>, board: &Board, sink: &dyn StepSink) -> NodeReport {
    let mut d = Driver { job, board, sink, deadline: Instant::now() + job.timeout, steps: Vec::new() };
    tracing::info!(node = job.node, boot = job.boot.as_str(), "deploying");
    let result = d.run();
    // Whatever happened, agents of this node get no more work from this run.
    board.decide(job.node, ResultReply::Stay);
    board.set_phase(job.node, Phase::Done);
    match result {
        Ok(()) => NodeReport { node: job.node.into(), status: NodeStatus::Booted, reason: None, steps: d.steps },
        Err(Failed(step, cause)) => {
            let reason = crate::inventory::deploy_failure_reason(step.as_str(), &cause);
            tracing::warn!(node = job.node, %reason, "deploy failed");
            // The sink may have failed itself; the report still names the step and cause.
            let _ = d.record(step, StepOutcome::Failed, &cause);
            NodeReport { node: job.node.into(), status: NodeStatus::Failed, reason: Some(reason), steps: d.steps }
        }
    }
}

impl<'a, 'j> Driver<'a, 'j> {
    fn record(&mut self, step: Step, outcome: StepOutcome, detail: &str) -> Result<(), Failed> {
        self.steps.push(StepLine { step, outcome, detail: detail.to_string() });
        self.sink
            .record(self.job.node, step, outcome, detail)
            .map_err(|e| Failed(step, format!("could not be recorded, so the deploy stops here: {e}")))
    }

    fn ok(&mut self, step: Step, detail: &str) -> Result<(), Failed> {
        self.record(step, StepOutcome::Ok, detail)
    }

    fn bmc(&self, step: Step) -> Result<Option<&'j (dyn Bmc + 'a)>, Failed> {
        let job: &'j NodeJob<'a> = self.job;
        match &job.bmc {
            None => Ok(None),
            Some(Ok(b)) => Ok(Some(b.as_ref())),
            Some(Err(why)) => Err(Failed(step, format!("BMC unusable: {why}"))),
        }
    }

    fn needs_bmc(&self, step: Step) -> Result<&'j (dyn Bmc + 'a), Failed> {
        self.bmc(step)?.ok_or_else(|| {
            Failed(
                step,
                format!(
                    "--boot {} needs the node's BMC, and the manifest gives none (nodes[name={}].bmc)",
                    self.job.boot.as_str(),
                    self.job.node
                ),
            )
        })
    }

    fn left(&self) -> String {
        humanize(self.job.timeout)
    }

    fn run(&mut self) -> Result<(), Failed> {
        let node = self.job.node;
        // From here the node's boot files (its iPXE script, its virtual medium) are served to it.
        self.board.set_phase(node, Phase::Booting);
        // boot-set
        match self.job.boot {
            BootVia::Media => {
                let bmc = self.needs_bmc(Step::BootSet)?;
                if !bmc.has_virtual_media() {
                    return Err(Failed(
                        Step::BootSet,
                        format!(
                            "virtual media needs a Redfish BMC (nodes[name={node}].bmc); {} offers none",
                            bmc.label()
                        ),
                    ));
                }
                let url = self.job.media_url.unwrap_or_default();
                bmc.insert_media(url)
                    .map_err(|e| Failed(Step::BootSet, format!("BMC refused virtual media: {}", chain(&e))))?;
                bmc.set_boot_once(BootTarget::Cd)
                    .map_err(|e| Failed(Step::BootSet, format!("BMC refused boot override cd: {}", chain(&e))))?;
                let shown = crate::redact::userinfo(url);
                self.ok(Step::BootSet, &format!("virtual media {shown} inserted, next boot cd"))?;
            }
            BootVia::Pxe => {
                let bmc = self.needs_bmc(Step::BootSet)?;
                bmc.set_boot_once(BootTarget::Pxe)
                    .map_err(|e| Failed(Step::BootSet, format!("BMC refused boot override pxe: {}", chain(&e))))?;
                self.ok(Step::BootSet, "next boot pxe")?;
            }
            BootVia::None => self.record(Step::BootSet, StepOutcome::Skipped, "--boot none")?,
        }
        // reset
        if self.job.boot == BootVia::None {
            self.record(Step::Reset, StepOutcome::Skipped, "--boot none: the node is started by other means")?;
        } else {
            let bmc = self.needs_bmc(Step::Reset)?;
            let state =
                bmc.power_state().map_err(|e| Failed(Step::Reset, format!("read power state: {}", chain(&e))))?;
            let (action, detail) = if state == PowerState::Off {
                (PowerAction::On, "powered on (it was off)")
            } else {
                (PowerAction::Reset, "reset (ForceRestart)")
            };
            bmc.power(action)
                .map_err(|e| Failed(Step::Reset, format!("BMC refused {}: {}", action.as_str(), chain(&e))))?;
            self.ok(Step::Reset, detail)?;
        }
        // agent
        self.board.set_phase(node, Phase::AwaitAgent);
        if !self.board.wait_hello(node, self.deadline) {
            return Err(Failed(Step::Agent, format!("no hello from the node's imaging agent within {}", self.left())));
        }
        self.ok(Step::Agent, "imaging agent said hello; told to write")?;
        // written
        let Some(result) = self.board.wait_result(node, self.deadline) else {
            return Err(Failed(Step::Written, format!("no write result from the agent within {}", self.left())));
        };
        let want = self.board.offer().image_sha256.clone();
        if !result.ok {
            let state = result.target_state.as_deref().map(|s| format!(" (target {s})")).unwrap_or_default();
            let error = result.error.as_deref().unwrap_or("no error given");
            return Err(Failed(Step::Written, format!("the agent's write failed: {error}{state}")));
        }
        match result.image_sha256.as_deref() {
            Some(got) if got == want => {}
            got => {
                return Err(Failed(
                    Step::Written,
                    format!("the agent verified sha256 {}, the image is {want}", got.unwrap_or("(none)")),
                ))
            }
        }
        self.ok(
            Step::Written,
            &format!("{} bytes written and verified in {:.1}s, sha256 {want}", result.bytes, result.seconds),
        )?;
        // reboot: the next boot is set before the agent hears "reboot", so it cannot boot the
        // installer again.
        let bmc = self.bmc(Step::Reboot)?;
        let mut detail = String::new();
        if let Some(bmc) = bmc {
            if self.job.boot == BootVia::Media {
                bmc.eject_media()
                    .map_err(|e| Failed(Step::Reboot, format!("BMC refused to eject virtual media: {}", chain(&e))))?;
                detail.push_str("virtual media ejected, ");
            }
            bmc.set_boot_once(BootTarget::Hdd)
                .map_err(|e| Failed(Step::Reboot, format!("BMC refused boot override hdd: {}", chain(&e))))?;
            detail.push_str("next boot hdd, ");
        }
        detail.push_str("agent told to reboot");
        self.board.decide(node, ResultReply::Reboot);
        self.ok(Step::Reboot, &detail)?;
        // booted
        let grace = (Instant::now() + self.job.reboot_grace).min(self.deadline);
        let mut report = self.board.wait_booted(node, grace);
        if report.is_none() && Instant::now() < self.deadline {
            if let Some(bmc) = bmc {
                bmc.power(PowerAction::Reset).map_err(|e| {
                    Failed(Step::Reboot, format!("no booted report, and the BMC refused reset: {}", chain(&e)))
                })?;
                let why = format!("no booted report within {}: reset through the BMC", humanize(self.job.reboot_grace));
                self.ok(Step::Reboot, &why)?;
            }
            report = self.board.wait_booted(node, self.deadline);
        }
        let Some(report) = report else {
            return Err(Failed(Step::Booted, format!("no booted report from the node within {}", self.left())));
        };
        if report.image_sha256 != want {
            return Err(Failed(
                Step::Booted,
                format!(
                    "the node booted with sha256 {} (from {}), the image is {want}",
                    report.image_sha256,
                    report.source.as_str()
                ),
            ));
        }
        self.ok(Step::Booted, &format!("booted on sha256 {want} (from {})", report.source.as_str()))
    }
}

/// `90s`, `5m`, `1h30m` for messages.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        if d.subsec_millis() > 0 && s < 10 {
            return format!("{:.1}s", d.as_secs_f64());
        }
        return format!("{s}s");
    }
    let (h, m, rest) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if rest > 0 {
        out.push_str(&format!("{rest}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::bmc::{BmcError, FirmwareItem, Identity};
    use crate::deploy::testing::{self, node, SHA};

    /// A BMC that keeps what it was asked, in order, and whose host is on.
    #[derive(Default)]
    struct FakeBmc {
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl FakeBmc {
        fn log(&self, what: &str) {
            self.calls.lock().expect("calls").push(what.to_string());
        }
    }

    impl Bmc for FakeBmc {
        fn label(&self) -> &str {
            "fake (n1)"
        }
        fn power_state(&self) -> Result<PowerState, BmcError> {
            Ok(PowerState::On)
        }
        fn power(&self, action: PowerAction) -> Result<(), BmcError> {
            self.log(&format!("power {}", action.as_str()));
            Ok(())
        }
        fn set_boot_once(&self, target: BootTarget) -> Result<(), BmcError> {
            self.log(&format!("boot {}", target.as_str()));
            Ok(())
        }
        fn insert_media(&self, url: &str) -> Result<(), BmcError> {
            self.log(&format!("insert {url}"));
            Ok(())
        }
        fn eject_media(&self) -> Result<(), BmcError> {
            self.log("eject");
            Ok(())
        }
        fn firmware_inventory(&self) -> Result<Vec<FirmwareItem>, BmcError> {
            Ok(Vec::new())
        }
        fn identity(&self) -> Result<Identity, BmcError> {
            Ok(Identity::default())
        }
    }

    #[derive(Default)]
    struct Steps(Mutex<Vec<String>>);

    impl StepSink for Steps {
        fn record(&self, _: &str, step: Step, outcome: StepOutcome, _: &str) -> Result<(), String> {
            self.0.lock().expect("steps").push(format!("{} {}", step.as_str(), outcome.as_str()));
            Ok(())
        }
    }

    fn board() -> Board {
        testing::board(vec![node("n1", "10.0.0.1", &[], Some("https://bmc"))], &["n1"]).0
    }

    /// A request of n1's agent, signed with its key, from its address.
    fn post(b: &Board, path: &str, body: &str) -> serde_json::Value {
        testing::post(b, path, body, "10.0.0.1", Some(&testing::agent("n1"))).1
    }

    #[test]
    fn a_node_that_does_not_come_back_is_reset_through_its_bmc_then_confirmed() {
        let board = Arc::new(board());
        let bmc = FakeBmc::default();
        let calls = bmc.calls.clone();
        let sink = Steps::default();
        // The node: hello and a good write; it comes back only after the BMC resets it again.
        let node_side = {
            let (board, calls) = (board.clone(), calls.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                while post(&board, "/agent/hello", r#"{"node":"n1","mode":"imaging"}"#)["action"] != "write" {
                    assert!(Instant::now() < deadline, "never told to write");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let result = format!(r#"{{"node":"n1","ok":true,"image_sha256":"{SHA}","bytes":4096}}"#);
                assert_eq!(post(&board, "/agent/result", &result)["action"], "reboot");
                while calls.lock().expect("calls").iter().filter(|c| *c == "power reset").count() < 2 {
                    assert!(Instant::now() < deadline, "never reset again");
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert_eq!(post(&board, "/agent/hello", r#"{"node":"n1","mode":"booted"}"#)["action"], "report");
                let report = format!(r#"{{"node":"n1","image_sha256":"{SHA}","source":"disk"}}"#);
                assert_eq!(post(&board, "/agent/booted", &report)["ok"], true);
            })
        };
        let job = NodeJob {
            node: "n1",
            bmc: Some(Ok(Box::new(bmc))),
            boot: BootVia::Pxe,
            media_url: None,
            timeout: Duration::from_secs(20),
            reboot_grace: Duration::from_millis(200),
        };
        let report = deploy_node(&job, &board, &sink);
        node_side.join().expect("node side");
        assert_eq!(report.status, NodeStatus::Booted, "{report:?}");
        assert_eq!(*calls.lock().expect("calls"), ["boot pxe", "power reset", "boot hdd", "power reset"]);
        assert_eq!(
            *sink.0.lock().expect("steps"),
            ["boot-set ok", "reset ok", "agent ok", "written ok", "reboot ok", "reboot ok", "booted ok"]
        );
    }

    #[test]
    fn media_without_a_bmc_fails_at_boot_set_naming_the_field() {
        let board = board();
        let sink = Steps::default();
        let job = NodeJob {
            node: "n1",
            bmc: None,
            boot: BootVia::Media,
            media_url: Some("http://c/files/x.iso"),
            timeout: Duration::from_secs(1),
            reboot_grace: Duration::from_secs(1),
        };
        let report = deploy_node(&job, &board, &sink);
        assert_eq!(report.status, NodeStatus::Failed);
        assert_eq!(
            report.reason.as_deref(),
            Some(
                "image: boot-set: --boot media needs the node's BMC, and the manifest gives none (nodes[name=n1].bmc)"
            )
        );
        assert_eq!(*sink.0.lock().expect("steps"), ["boot-set failed"]);
    }
}
