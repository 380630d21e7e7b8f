//! The burn-in run over an inspected node: gate on the fabric, open the GPUs, start telemetry,
//! run the test phases (`phases`), judge.
//!
//! The run judges the `Node` its caller inspected and samples telemetry
//! through the same GPU source (one NVML session, or one capture). Before any
//! CUDA call, the fabric rule validate uses (`checks::rules::fabric::gate`)
//! decides which GPUs may be used; a GPU it fails gets no kernel and the run
//! fails with validate's check id.

use std::time::{Duration, Instant};

use super::cuda::{self, Gpu};
use super::options::{BurninOptions, GemmDtype, GpuSelection, TestKind};
use super::phases::{self, Plan, Worker};
use super::report::{
    BurninReport, CudaLibraries, Figure, GpuAccess, GpuIdentity, GpuTelemetry, TestResult, TestStatus, REPORT_KIND,
    REPORT_VERSION,
};
use super::thresholds::Thresholds;
use super::xid::{XidCatalog, XidCatalogError};
use super::{judge, sampling};
use crate::checks::rules::common::Ctx;
use crate::checks::rules::fabric;
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::hw::gpu::NO_DRIVER;
use crate::hw::telemetry::{Telemetry, TelemetryAccess};
use crate::model::{Gpu as ModelGpu, GpuInventory, Node};

/// The oldest CUDA driver API kiln's CUDA layer is built against (13.0,
/// driver 580): cudarc resolves 13.0 symbols, which older drivers lack.
pub const MIN_CUDA_DRIVER: i32 = 13000;

/// Why a GPU replayed from a capture runs no kernel.
pub const REPLAY_NO_KERNELS: &str = "replayed from a capture (--root): kernels run only on this machine's own GPUs";

#[derive(Debug, thiserror::Error)]
pub enum BurninError {
    #[error("loading the Xid catalog")]
    Xid(#[from] XidCatalogError),
    #[error("--gpus names GPU {index}, but NVML lists only {count} GPU(s)")]
    NoSuchGpu { index: u32, count: usize },
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
}

/// Extra knobs of a run that are not part of `BurninOptions`' test plan.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Share of available memory stress-ng's vm workers cover.
    pub host_memory_percent: u32,
}

/// What a run judges: one inspection, the GPU side of the same source, and
/// the thresholds of the platform chosen for it.
pub struct Inspected<'a> {
    pub node: &'a Node,
    pub gpus: TelemetryAccess<'a>,
    pub thresholds: &'a Thresholds,
}

/// What the phases of a run add up to.
#[derive(Default)]
struct Collected {
    results: Vec<TestResult>,
    findings: Vec<Finding>,
    telemetry: Vec<GpuTelemetry>,
}

/// Why GPU tests could not run, and whether that is "nothing to test"
/// (skipped) or "something is broken" (error).
enum NoGpu {
    Skip(String),
    Error(String),
}

/// Runs the burn-in and judges it. `progress` receives one line per state
/// change (the command prints them on a terminal).
pub fn run(
    opts: &BurninOptions,
    ctx: &RunContext,
    input: &Inspected<'_>,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<BurninReport, BurninError> {
    // Held to the end of the run and inherited by stress-ng: a second burn-in,
    // or one beside what a killed burn-in left running, is refused.
    let _lock = super::lock::BurninLock::acquire()?;
    let started_at = rfc3339_now();
    let t0 = Instant::now();
    let catalog = XidCatalog::builtin()?;
    let collective = input.thresholds.burnin.collective.as_ref();
    let opts = &planned(opts, collective.is_some());
    let plan = Plan { opts, ctx, node: input.node, progress, collective };
    let gpu_tests: Vec<TestKind> = opts.tests.iter().copied().filter(|t| t.needs_gpu()).collect();
    let mut out = Collected::default();

    let gpu_access = if gpu_tests.is_empty() {
        out.results.extend(phases::host_alone(&plan));
        GpuAccess::NotRequested
    } else {
        let side = |telemetry, kernels| GpuSide {
            plan: &plan,
            spec: input.thresholds,
            telemetry,
            kernels,
            gpu_tests: &gpu_tests,
        };
        match &input.gpus {
            TelemetryAccess::Live(t) => side(*t, Kernels::Cuda).run(&mut out)?,
            TelemetryAccess::Replay(t) => side(*t, Kernels::Replay).run(&mut out)?,
            TelemetryAccess::NoDriver => no_gpu(&plan, &NoGpu::Skip(NO_DRIVER.to_string()), &gpu_tests, &mut out),
            TelemetryAccess::Failed(reason) => no_gpu(&plan, &NoGpu::Error(reason.clone()), &gpu_tests, &mut out),
        }
    };

    let t = input.thresholds;
    add_power_figures(&mut out.results, &out.telemetry, t);
    judge::annotate(&mut out.results, t, opts.gemm_dtype);
    out.findings.extend(judge::judge_results(&out.results, t, opts.gemm_dtype));
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    out.findings.extend(judge::judge_telemetry(&out.telemetry, t, &catalog, minutes));
    let incomplete = out.results.iter().any(|r| matches!(r.status, TestStatus::Skipped { applicable: true, .. }))
        || !out.results.iter().any(|r| r.status == TestStatus::Ran);
    let verdict = Verdict::of(&out.findings);
    Ok(BurninReport {
        kind: REPORT_KIND.into(),
        version: REPORT_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        hostname: Some(input.node.hostname.clone()).filter(|h| !h.is_empty()),
        started_at,
        finished_at: rfc3339_now(),
        duration_s: opts.duration.as_secs_f64(),
        tests_requested: opts.tests.clone(),
        gemm_dtype: opts.gemm_dtype,
        platform: t.platform().to_string(),
        platform_source: format!("{} ({})", t.selected.selection.as_str(), t.selected.spec.origin.display()),
        gpu_access,
        inject_fault: opts.inject_fault.map(|f| f.as_str().to_string()),
        results: out.results,
        telemetry: out.telemetry,
        findings: out.findings,
        verdict,
        incomplete,
    })
}

/// The tests the run does: `all` (or a list without `collective` by name) asks for the
/// collective only where the platform spec has `[burnin.collective]`; named, it runs anyway,
/// with default sizes and its figures unjudged.
fn planned(opts: &BurninOptions, spec_has_collective: bool) -> BurninOptions {
    let mut planned = opts.clone();
    if !spec_has_collective && !opts.collective_named {
        planned.tests.retain(|t| *t != TestKind::Collective);
    }
    planned
}

/// The collective skipped when only `workers` of the `selected` GPUs can run kernels (the
/// fabric gate blocked some, or CUDA could not open them: their own results say why). Over
/// fewer GPUs it would be judged as a smaller node, so it does not run at all.
fn collective_left_out(opts: &BurninOptions, selected: usize, workers: usize) -> Option<TestResult> {
    (opts.wants(TestKind::Collective) && selected >= 2 && workers < selected).then(|| {
        TestResult::skipped(
            TestKind::Collective,
            None,
            format!("{} of the {selected} selected GPUs cannot run kernels (see their results)", selected - workers),
            true,
        )
    })
}

/// Every GPU test skipped or in error for one reason; the host stress still runs.
fn no_gpu(plan: &Plan<'_>, why: &NoGpu, gpu_tests: &[TestKind], out: &mut Collected) -> GpuAccess {
    let reason = match why {
        NoGpu::Skip(r) | NoGpu::Error(r) => r.clone(),
    };
    for &t in gpu_tests {
        out.results.push(match why {
            NoGpu::Skip(r) => TestResult::skipped(t, None, r.clone(), true),
            NoGpu::Error(r) => TestResult::error(t, None, r.clone()),
        });
    }
    out.results.extend(phases::host_alone(plan));
    GpuAccess::Unavailable { reason }
}

/// Whether kernels can run on the GPUs the source reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernels {
    /// This machine's GPUs, through CUDA.
    Cuda,
    /// A replayed capture: no kernel, the rest judged as recorded.
    Replay,
}

/// A GPU of the inspection chosen for the run.
struct Chosen<'a> {
    identity: GpuIdentity,
    gpu: &'a ModelGpu,
}

/// The GPU side of a run: which GPUs, the fabric gate, the workers, the
/// telemetry around the phases.
struct GpuSide<'a> {
    plan: &'a Plan<'a>,
    spec: &'a Thresholds,
    telemetry: &'a dyn Telemetry,
    kernels: Kernels,
    gpu_tests: &'a [TestKind],
}

impl GpuSide<'_> {
    fn run(&self, out: &mut Collected) -> Result<GpuAccess, BurninError> {
        let node = self.plan.node;
        let (driver_version, cuda_driver_version, gpus) = match &node.gpus {
            GpuInventory::Inspected { driver_version, cuda_driver_version, gpus, .. } => {
                (driver_version.clone(), cuda_driver_version.and_then(|v| i32::try_from(v).ok()), gpus)
            }
            GpuInventory::NotInspected { reason } => {
                let why = if reason == NO_DRIVER { NoGpu::Skip(reason.clone()) } else { NoGpu::Error(reason.clone()) };
                return Ok(no_gpu(self.plan, &why, self.gpu_tests, out));
            }
        };
        if let GpuSelection::Indices(ix) = &self.plan.opts.gpus {
            if let Some(&bad) = ix.iter().find(|i| !gpus.iter().any(|g| g.index == **i)) {
                return Err(BurninError::NoSuchGpu { index: bad, count: gpus.len() });
            }
        }
        let selected = self.choose(gpus, out);
        if selected.is_empty() {
            let why = if out.findings.is_empty() { "no GPU" } else { "no usable GPU" };
            return Ok(no_gpu(self.plan, &NoGpu::Skip(why.into()), self.gpu_tests, out));
        }
        let identities: Vec<GpuIdentity> = selected.iter().map(|g| g.identity.clone()).collect();
        let usable = self.fabric_gate(&selected, out);
        let access = match self.kernels {
            Kernels::Replay => {
                for g in &usable {
                    self.each_test(&g.identity, out, |t, id| TestResult::skipped(t, Some(id), REPLAY_NO_KERNELS, true));
                }
                for t in [TestKind::P2p, TestKind::Collective].into_iter().filter(|t| self.gpu_tests.contains(t)) {
                    out.results.push(TestResult::skipped(t, None, REPLAY_NO_KERNELS, true));
                }
                self.watched(&selected, out, || phases::host_alone(self.plan).into_iter().collect());
                GpuAccess::Replayed { driver_version, gpus: identities }
            }
            Kernels::Cuda => {
                let libraries = cuda::libraries();
                let workers = self.open_workers(&usable, &libraries, out);
                // The collective is the node's, over every selected GPU: not run over fewer.
                let mut opts = self.plan.opts.clone();
                if let Some(skipped) = collective_left_out(&opts, selected.len(), workers.len()) {
                    opts.tests.retain(|t| *t != TestKind::Collective);
                    out.results.push(skipped);
                }
                let plan = Plan { opts: &opts, ..*self.plan };
                self.watched(&selected, out, || phases::run_phases(&plan, &workers));
                GpuAccess::Available { driver_version, cuda_driver_version, gpus: identities, libraries }
            }
        };
        Ok(access)
    }

    /// The GPUs `--gpus` names, with who they are; a GPU inspection could
    /// not address cannot be matched to CUDA or found by a technician, so it
    /// is a finding instead.
    fn choose<'g>(&self, gpus: &'g [ModelGpu], out: &mut Collected) -> Vec<Chosen<'g>> {
        let mut chosen = Vec::new();
        for gpu in gpus.iter().filter(|g| self.plan.opts.gpus.includes(g.index)) {
            let Some(identity) = sampling::identity(self.plan.node, gpu) else {
                let why: Vec<String> = gpu.problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
                out.findings.push(
                    Finding::new(
                        "burnin.gpu.inventory",
                        Outcome::Error,
                        Severity::Critical,
                        Component::node(),
                        format!("GPU {}: NVML gave no PCI address ({})", gpu.index, why.join("; ")),
                    )
                    .action("check the driver (nvidia-smi -q) and the kernel log (dmesg)"),
                );
                continue;
            };
            chosen.push(Chosen { identity, gpu });
        }
        chosen
    }

    /// Before any CUDA call: the fabric rule validate applies, over the whole
    /// node (the clique is the node's). Its findings about the node and the
    /// GPUs burned in join the run's; a GPU it blocks gets its tests skipped.
    fn fabric_gate<'c, 'g>(&self, selected: &'c [Chosen<'g>], out: &mut Collected) -> Vec<&'c Chosen<'g>> {
        let gate = fabric::gate(&Ctx::new(self.plan.node), &self.spec.selected.spec.platform);
        let burned_in = |i: u32| selected.iter().any(|g| g.identity.index == i);
        out.findings.extend(gate.findings.into_iter().filter(|f| f.component.gpu_index.is_none_or(burned_in)));
        let mut usable = Vec::new();
        for g in selected {
            match gate.blocked.get(&g.identity.index) {
                Some(why) => {
                    let reason = format!("NVLink fabric not ready ({why})");
                    self.each_test(&g.identity, out, |t, id| TestResult::skipped(t, Some(id), reason.clone(), true));
                }
                None => usable.push(g),
            }
        }
        usable
    }

    /// One result per requested GPU test but p2p (per pair) and the collective (per node).
    fn each_test(&self, id: &GpuIdentity, out: &mut Collected, result: impl Fn(TestKind, GpuIdentity) -> TestResult) {
        for &t in self.gpu_tests.iter().filter(|t| !matches!(t, TestKind::P2p | TestKind::Collective)) {
            out.results.push(result(t, id.clone()));
        }
    }

    /// CUDA: libraries, version, and the NVML-to-CUDA mapping by PCI address.
    /// No cudarc call happens unless the driver library loads.
    fn open_workers(&self, usable: &[&Chosen<'_>], libraries: &CudaLibraries, out: &mut Collected) -> Vec<Worker> {
        let problem = if !libraries.driver {
            Some("libcuda cannot be loaded although NVML works: reinstall the driver's CUDA library".to_string())
        } else if !libraries.nvrtc {
            Some("libnvrtc (CUDA runtime compiler) not found: install it or add it to LD_LIBRARY_PATH".to_string())
        } else {
            cuda_driver_version_ok().err()
        };
        if let Some(problem) = problem {
            for g in usable {
                self.each_test(&g.identity, out, |t, id| TestResult::error(t, Some(id), problem.clone()));
            }
            return Vec::new();
        }
        let mapping = cuda_ordinals();
        let mut workers = Vec::new();
        for g in usable {
            let opened = match &mapping {
                Ok(m) => match m.iter().find(|(_, addr)| g.identity.pci_address == *addr) {
                    Some((ordinal, _)) => Gpu::open(*ordinal).map_err(|e| crate::error::chain(&e)),
                    None => Err("not visible to CUDA (check CUDA_VISIBLE_DEVICES)".into()),
                },
                Err(e) => Err(e.clone()),
            };
            match opened {
                Ok(gpu) => workers.push(Worker { id: g.identity.clone(), gpu }),
                Err(e) => self.each_test(&g.identity, out, |t, id| TestResult::error(t, Some(id), e.clone())),
            }
        }
        workers
    }

    /// Runs `phases` with telemetry over every selected GPU: counters before
    /// and after, samples and the Xid watch for the whole time.
    fn watched(&self, selected: &[Chosen<'_>], out: &mut Collected, phases: impl FnOnce() -> Vec<TestResult>) {
        let gpus: Vec<sampling::Watched> = selected
            .iter()
            .map(|g| sampling::Watched { identity: g.identity.clone(), power_limit_w: g.gpu.power_limit_watts })
            .collect();
        let (results, telemetry, outside) =
            sampling::around(self.telemetry, &gpus, self.plan.opts.sample_period, phases);
        out.results.extend(results);
        out.telemetry.extend(telemetry);
        out.findings.extend(outside);
    }
}

fn cuda_driver_version_ok() -> Result<(), String> {
    let v = cuda::driver_version()?;
    if v < MIN_CUDA_DRIVER {
        return Err(format!(
            "the driver supports CUDA {}.{}; kiln's GPU tests need CUDA {}.{} (driver 580 or later)",
            v / 1000,
            (v % 1000) / 10,
            MIN_CUDA_DRIVER / 1000,
            (MIN_CUDA_DRIVER % 1000) / 10
        ));
    }
    Ok(())
}

fn cuda_ordinals() -> Result<Vec<(i32, String)>, String> {
    let n = cuda::device_count().map_err(|e| crate::error::chain(&e))?;
    (0..n).map(|o| cuda::pci_address(o).map(|a| (o, a)).map_err(|e| crate::error::chain(&e))).collect()
}

/// Adds the peak board power seen during each GEMM run, beside the
/// platform's power target (reported, not judged: an administrator may have
/// lowered the power limit on purpose).
fn add_power_figures(results: &mut [TestResult], tel: &[GpuTelemetry], t: &Thresholds) {
    for r in results.iter_mut().filter(|r| r.test == TestKind::Gemm && r.status == TestStatus::Ran) {
        let Some(gpu) = &r.gpu else { continue };
        let Some(g) = tel.iter().find(|g| g.gpu.index == gpu.index) else { continue };
        let end = r.started_unix_ms + (r.seconds * 1000.0) as i64;
        let peak = g
            .samples
            .iter()
            .filter(|s| s.at_unix_ms >= r.started_unix_ms && s.at_unix_ms <= end)
            .filter_map(|s| s.power_w)
            .fold(None, |m: Option<f64>, p| Some(m.map_or(p, |m| m.max(p))));
        if let Some(p) = peak {
            let mut f = Figure::new("peak_power", p, "W");
            f.expected = t.burnin.power.target_w;
            f.threshold_reason = t.burnin.power.reason.clone();
            r.figures.push(f);
        }
        if let Some(limit) = g.power_limit_w {
            r.notes.push(format!("enforced power limit {limit:.0} W"));
        }
    }
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 3600.0 {
        format!("{:.1}h", s / 3600.0)
    } else if s >= 60.0 {
        format!("{:.1}m", s / 60.0)
    } else {
        format!("{s:.0}s")
    }
}

/// Which dtype a GEMM figure was measured in (for display).
pub fn dtype_label(d: GemmDtype) -> &'static str {
    d.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burnin::options::{parse_tests, GemmEngine, GpuSelection};

    fn opts(tests: &str) -> BurninOptions {
        BurninOptions {
            duration: Duration::from_secs(1),
            tests: parse_tests(tests).expect("tests"),
            gpus: GpuSelection::All,
            gemm_dtype: GemmDtype::Bf16,
            gemm_engine: GemmEngine::Auto,
            gemm_size: None,
            sample_period: Duration::from_secs(1),
            inject_fault: None,
            collective_named: tests.contains("collective"),
        }
    }

    #[test]
    fn all_asks_for_the_collective_only_where_the_spec_has_one() {
        let has = |o: &BurninOptions| o.wants(TestKind::Collective);
        assert!(has(&planned(&opts("all"), true)));
        assert!(!has(&planned(&opts("all"), false)));
        assert!(has(&planned(&opts("gemm,collective"), false)), "named, it runs without a spec section");
    }

    #[test]
    fn the_collective_runs_over_every_selected_gpu_or_not_at_all() {
        let o = opts("collective");
        assert!(collective_left_out(&o, 8, 8).is_none());
        let skipped = collective_left_out(&o, 8, 7).expect("one GPU blocked");
        assert_eq!(
            skipped.status,
            TestStatus::Skipped {
                reason: "1 of the 8 selected GPUs cannot run kernels (see their results)".into(),
                applicable: true
            }
        );
        // One GPU is the phase's own "needs 2 or more GPUs"; not asked, nothing.
        assert!(collective_left_out(&o, 1, 0).is_none());
        assert!(collective_left_out(&opts("gemm"), 8, 7).is_none());
    }
}
