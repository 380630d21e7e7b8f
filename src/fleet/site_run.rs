//! Many racks at once: each rack's step (`run_rack_step`: its nodes, recording, rack checks and
//! gate) run concurrently with the others under one bound on SSH sessions across the site and one
//! per rack; one document and one exit code for the whole run.

use std::sync::Arc;

use serde::Serialize;

use super::fanout::Phase;
use super::outcome::{RackOutcome, Step};
use super::pool::{map_bounded, SessionPermit, Sessions};
use super::rack_run::{run_rack_step, RackStep};
use super::transport::{Answerer, CommandOutput, Connector, NodeTransport, TransportError};
use crate::exit;
use crate::inventory::{Inventory, InventoryError};
use crate::rack::RackNode;

/// Version of the site outcome JSON (`kiln rack ... --site | --rack A --rack B --json`).
pub const SITE_SCHEMA_VERSION: u32 = 1;

/// One rack of a site run: its step (with `opts.parallel` the rack's own bound) and how its
/// nodes are reached (its manifest's credentials).
pub struct SiteRackStep<'a> {
    pub step: RackStep<'a>,
    pub connector: &'a dyn Connector,
    /// Leave out the nodes' own step (`kiln rack burnin --collective only`): the rack's outcome
    /// starts empty and `after` does the rack's work.
    pub skip_nodes: bool,
    /// What runs after the rack's step, in the rack's own thread, with its inventory: the
    /// collective across its trays (`cmd::rack_collective::after_step`, as one rack alone
    /// runs it). It reaches the nodes through the rack's connector, outside the site's bound
    /// on sessions: every rank of a collective must run at once.
    pub after: Option<&'a AfterRack<'a>>,
}

/// Work after a rack's step, given how its nodes are reached, its inventory and its outcome to
/// fold the work into.
pub type AfterRack<'a> = dyn Fn(&dyn Connector, Option<&mut Inventory>, &mut RackOutcome) + Sync + 'a;

/// Where the site run's inventory comes from: a connection of its own for each rack (SQLite
/// serializes their writes), opened in that rack's thread.
pub type OpenInventory<'a> = dyn Fn() -> Result<Inventory, InventoryError> + Sync + 'a;

/// A step over many racks.
pub struct SiteStep<'a> {
    /// `[site] id`, when the racks came from a site manifest that gives one.
    pub site: Option<&'a str>,
    pub step: Step,
    pub racks: &'a [SiteRackStep<'a>],
    /// At most this many SSH sessions at once, across every rack.
    pub parallel: usize,
}

/// The whole run, as `--json` prints it: every rack's outcome, in the order given.
#[derive(Debug, Clone, Serialize)]
pub struct SiteOutcome {
    pub schema_version: u32,
    pub kind: &'static str,
    pub site: Option<String>,
    pub step: Step,
    /// The worst rack's exit code (`worst_exit`).
    pub exit_code: i32,
    /// The site-wide bound on SSH sessions the run had.
    pub parallel: usize,
    /// The most sessions that were open at once.
    pub peak_sessions: usize,
    pub racks: Vec<RackOutcome>,
}

/// How many racks run at once: enough for their own bounds to fill the site's, and one more so
/// that a rack waiting on its last nodes leaves no session idle. More would only hold more
/// racks' node reports in memory at once (each rack's until its rack checks have run).
pub fn racks_at_once(parallel: usize, per_rack: usize, racks: usize) -> usize {
    (parallel.max(1).div_ceil(per_rack.max(1)) + 1).min(racks.max(1))
}

/// Runs every rack's step, `racks_at_once` racks at a time, every node under one site-wide
/// bound of `parallel` sessions (counted from connecting to the end of the node's command).
/// Each rack is recorded as `run_rack_step` records it, with a connection of its own
/// (`open_inventory`; `None` records nothing). A rack whose inventory cannot be opened or read
/// runs no node and is `DATABASE` with why as its `record_error`; the others go on. Once a
/// rack is recorded and judged, its nodes' reports are dropped (kept only for `status`, which
/// records nothing), and so are the telemetry samples of each recorded tray of its collective:
/// what a site run holds grows with the racks in flight, not the site.
///
/// `progress` is told `(rack id, node, phase)` from the worker threads.
pub fn run_site_step(
    site: &SiteStep<'_>,
    open_inventory: Option<&OpenInventory<'_>>,
    at_once: usize,
    progress: &(dyn Fn(&str, &str, Phase<'_>) + Sync),
) -> SiteOutcome {
    let sessions = Arc::new(Sessions::new(site.parallel));
    let peak = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let racks = map_bounded(site.racks, at_once, |r| {
        let rack = r.step.rack;
        let bounded = Bounded { inner: r.connector, sessions: Arc::clone(&sessions), peak: Arc::clone(&peak) };
        let mut inventory = match open_inventory.map(|open| open()) {
            Some(Ok(inv)) => Some(inv),
            Some(Err(e)) => return unrun(rack, site.step, format!("inventory: {e}")),
            None => None,
        };
        let on_phase = |node: &str, phase: Phase<'_>| progress(rack, node, phase);
        let stepped = match r.skip_nodes {
            true => Ok(RackOutcome::new(rack, site.step, Vec::new(), Vec::new())),
            false => run_rack_step(&r.step, &bounded, inventory.as_mut(), &on_phase),
        };
        match stepped {
            Ok(mut outcome) => {
                // Before the nodes' reports are dropped: the collective reads the platform
                // they name when the manifest names none.
                if let Some(after) = r.after {
                    after(r.connector, inventory.as_mut(), &mut outcome);
                }
                if site.step != Step::Status {
                    for n in &mut outcome.nodes {
                        n.report = None;
                    }
                    // Each tray's telemetry samples are the bulk of a collective (one per GPU
                    // per sample period): once in the inventory, the site does not hold them.
                    let trays = outcome.collective.iter_mut().flat_map(|c| c.trays.iter_mut());
                    for t in trays.filter(|t| t.run_id.is_some()) {
                        for g in t.report.iter_mut().flat_map(|r| r.telemetry.iter_mut()) {
                            g.samples = Vec::new();
                        }
                    }
                }
                outcome
            }
            Err(e) => unrun(rack, site.step, format!("inventory: {e}")),
        }
    });
    SiteOutcome {
        schema_version: SITE_SCHEMA_VERSION,
        kind: "kiln.site",
        site: site.site.map(str::to_string),
        step: site.step,
        exit_code: worst_exit(racks.iter().map(|r| r.exit_code)),
        parallel: sessions.limit(),
        peak_sessions: peak.load(std::sync::atomic::Ordering::Relaxed),
        racks,
    }
}

/// A rack that ran no node because its inventory could not be used.
fn unrun(rack: &str, step: Step, why: String) -> RackOutcome {
    tracing::warn!(rack, error = %why, "rack not run");
    let mut o = RackOutcome::new(rack, step, Vec::new(), Vec::new());
    o.exit_code = exit::DATABASE;
    o.record_error = Some(why);
    o
}

/// The worst of several racks' exit codes, in the rack order of severity (docs/exit-codes.md,
/// docs/fleet.md): 1, then 6, 5, 3, 7, 0. A code no rack step gives ranks above them all, so that
/// nothing is ever hidden; no rack at all is 0.
pub fn worst_exit(codes: impl IntoIterator<Item = i32>) -> i32 {
    const ORDER: [i32; 6] =
        [exit::CHECK_FAILED, exit::PEER, exit::DATABASE, exit::CHECK_ERROR, exit::SKIPPED, exit::OK];
    let rank = |c: i32| ORDER.iter().position(|&o| o == c).map_or(0, |p| p + 1);
    codes.into_iter().min_by_key(|&c| rank(c)).unwrap_or(exit::OK)
}

/// A connector whose transports each hold one of the site's sessions while they live.
struct Bounded<'a> {
    inner: &'a dyn Connector,
    sessions: Arc<Sessions>,
    peak: Arc<std::sync::atomic::AtomicUsize>,
}

impl Connector for Bounded<'_> {
    fn connect(&self, node: &RackNode) -> Result<Box<dyn NodeTransport>, TransportError> {
        let permit = self.sessions.acquire();
        self.peak.fetch_max(self.sessions.held(), std::sync::atomic::Ordering::Relaxed);
        let inner = self.inner.connect(node)?;
        Ok(Box::new(Held { inner, _permit: permit }))
    }
}

/// A transport and the session place it holds until it is dropped.
struct Held {
    inner: Box<dyn NodeTransport>,
    _permit: SessionPermit,
}

impl NodeTransport for Held {
    fn exec(
        &mut self,
        argv: &[String],
        timeout: std::time::Duration,
        answer: Option<&mut Answerer<'_>>,
    ) -> Result<CommandOutput, TransportError> {
        self.inner.exec(argv, timeout, answer)
    }

    fn node(&self) -> &str {
        self.inner.node()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rack whose nodes' step is left out (`--collective only`) runs only its `after`, in
    /// its thread, and keeps its collective in the site outcome; the samples of a tray once
    /// recorded are not held, those of a tray not recorded are.
    #[test]
    fn a_racks_after_work_runs_once_and_a_recorded_trays_samples_are_let_go() {
        use crate::burnin::collective::{RankReport, RANK_KIND};
        use crate::burnin::report::{GpuIdentity, GpuTelemetry, HealthCounters, Sample, Watch};
        use crate::fleet::{CollectiveOutcome, FanoutOptions, LocalConnector, NodeStatus, Plan, RankOutcome};
        let telemetry = vec![GpuTelemetry {
            gpu: GpuIdentity {
                index: 0,
                pci_address: crate::model::PciAddress::new(8, 1, 0, 0).expect("address"),
                serial: None,
                uuid: None,
                name: None,
                numa_node: None,
                slot: None,
            },
            before: HealthCounters::default(),
            after: HealthCounters::default(),
            samples: vec![Sample { at_unix_ms: 1, ..Default::default() }; 3],
            xids: Vec::new(),
            xid_watch: Watch::Watched,
            power_limit_w: None,
            problems: Vec::new(),
        }];
        let tray = |node: &str, rank: u32, run_id: Option<i64>| RankOutcome {
            node: node.into(),
            rank,
            status: NodeStatus::Skipped,
            reason: None,
            duration_ms: 1,
            killed: false,
            report: Some(RankReport {
                schema_version: 1,
                kind: RANK_KIND.into(),
                hostname: node.into(),
                rank,
                ranks: 2,
                gpus: 1,
                world: 2,
                verdict: crate::checks::Outcome::Skipped,
                reason: None,
                nccl_version: None,
                results: Vec::new(),
                telemetry: telemetry.clone(),
                telemetry_note: None,
                local: Vec::new(),
            }),
            run_id,
        };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let after = |_: &dyn Connector, _: Option<&mut Inventory>, o: &mut RackOutcome| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            o.exit_code = exit::SKIPPED;
            o.collective = Some(CollectiveOutcome {
                ranks: 2,
                exit_code: exit::SKIPPED,
                deadline_s: 1,
                trays: vec![tray("t1", 0, Some(7)), tray("t2", 1, None)],
                figures: Vec::new(),
                findings: Vec::new(),
                rack_run_id: None,
                record_error: None,
            });
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = crate::fleet::RemoteBinary::unchecked(dir.path(), std::env::consts::ARCH, "/nowhere/kiln");
        let opts = FanoutOptions { parallel: 1, command_timeout: std::time::Duration::from_secs(1), binary };
        let nodes = [RackNode::new("t1", "127.0.0.1"), RackNode::new("t2", "127.0.0.1")];
        let refs: Vec<&RackNode> = nodes.iter().collect();
        let plan = Plan::for_step(Step::Burnin, &[]);
        let racks = [SiteRackStep {
            step: RackStep {
                rack: "r1",
                rack_platform: None,
                specs: &[],
                nodes: &refs,
                plan: &plan,
                opts: &opts,
                force: false,
                whole_rack: true,
            },
            connector: &LocalConnector,
            skip_nodes: true,
            after: Some(&after),
        }];
        let site = SiteStep { site: None, step: Step::Burnin, racks: &racks, parallel: 1 };
        let out = run_site_step(&site, None, 1, &|_, _, _| {});
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(out.exit_code, exit::SKIPPED);
        assert!(out.racks[0].nodes.is_empty(), "no node step ran");
        let trays = &out.racks[0].collective.as_ref().expect("the rack's collective").trays;
        let samples =
            |t: &RankOutcome| t.report.as_ref().map_or(0, |r| r.telemetry.iter().map(|g| g.samples.len()).sum());
        assert_eq!((samples(&trays[0]), samples(&trays[1])), (0, 3));
        assert_eq!(trays[0].report.as_ref().map(|r| r.telemetry.len()), Some(1), "its counters stay");
    }

    #[test]
    fn the_worst_rack_decides_in_the_documented_order() {
        assert_eq!(worst_exit([]), exit::OK);
        assert_eq!(worst_exit([exit::OK, exit::SKIPPED]), exit::SKIPPED);
        assert_eq!(worst_exit([exit::SKIPPED, exit::CHECK_ERROR, exit::OK]), exit::CHECK_ERROR);
        assert_eq!(worst_exit([exit::CHECK_ERROR, exit::DATABASE]), exit::DATABASE);
        assert_eq!(worst_exit([exit::DATABASE, exit::PEER, exit::OK]), exit::PEER);
        assert_eq!(worst_exit([exit::PEER, exit::CHECK_FAILED, exit::SKIPPED]), exit::CHECK_FAILED);
        assert_eq!(worst_exit([exit::CHECK_FAILED, exit::INTERNAL]), exit::INTERNAL);
    }

    #[test]
    fn racks_at_once_fill_the_site_bound_with_one_to_spare() {
        assert_eq!(racks_at_once(64, 18, 250), 5);
        assert_eq!(racks_at_once(16, 16, 3), 2);
        assert_eq!(racks_at_once(200, 18, 2), 2);
        assert_eq!(racks_at_once(0, 0, 0), 1);
    }
}
