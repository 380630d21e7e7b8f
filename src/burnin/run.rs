//! The burn-in run: find the GPUs, check the fabric, start telemetry, run the test phases, judge.
//!
//! Phases, in order, so that each figure is measured on a quiet node:
//! 1. host-link with each GPU alone, one after another;
//! 2. host-link with every GPU at once;
//! 3. the stress phase, one pinned worker per GPU in parallel (hbm, gemm,
//!    memtest), with the host stress (stress-ng) running beside it;
//! 4. p2p over every ordered GPU pair, one pair at a time.
//!
//! Nothing here returns early on a hardware problem: every GPU and test gets
//! a result, and a panic inside one worker becomes that test's error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::cuda::{self, Gpu};
use super::options::{BurninOptions, GemmDtype, TestKind};
use super::report::{
    now_unix_ms, BurninReport, Figure, GpuAccess, GpuIdentity, GpuTelemetry, TestResult, TestStatus, Watch,
    REPORT_KIND, REPORT_VERSION,
};
use super::telemetry::{self, NvmlGpu};
use super::thresholds::{BurninThresholds, ThresholdError, FALLBACK};
use super::xid::{XidCatalog, XidCatalogError};
use super::{gemm, hbm, host, host_link, judge, memtest, numa, p2p};
use crate::checks::{Component, Finding, Outcome, Severity, Verdict};
use crate::hw::root::SysTree;

/// The oldest CUDA driver API kiln's CUDA layer is built against (13.0,
/// driver 580): cudarc resolves 13.0 symbols, which older drivers lack.
pub const MIN_CUDA_DRIVER: i32 = 13000;

#[derive(Debug, thiserror::Error)]
pub enum BurninError {
    #[error("loading burn-in thresholds")]
    Thresholds(#[from] ThresholdError),
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
    tree: &dyn SysTree,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<BurninReport, BurninError> {
    // Held to the end of the run and inherited by stress-ng: a second burn-in,
    // or one beside what a killed burn-in left running, is refused.
    let _lock = super::lock::BurninLock::acquire()?;
    let started_at = rfc3339_now();
    let t0 = Instant::now();
    let catalog = XidCatalog::builtin()?;
    let mut results: Vec<TestResult> = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut telemetry_out: Vec<GpuTelemetry> = Vec::new();
    let gpu_tests: Vec<TestKind> = opts.tests.iter().copied().filter(|t| t.needs_gpu()).collect();

    let mut thresholds = match &opts.platform {
        Some(name) => Some((BurninThresholds::builtin(name)?, "--platform".to_string())),
        None => None,
    };

    let gpu_access;
    let nvml = if gpu_tests.is_empty() { None } else { Some(telemetry::open()) };
    match nvml {
        None => {
            gpu_access = GpuAccess::NotRequested;
            run_host_alone(opts, ctx, &mut results, progress);
        }
        Some(Err(e)) => {
            let why = if telemetry::means_no_driver(&e) {
                NoGpu::Skip(crate::hw::gpu::NO_DRIVER.to_string())
            } else {
                NoGpu::Error(format!("NVML failed to start: {e}"))
            };
            gpu_access = no_gpu_results(&why, &gpu_tests, &mut results);
            run_host_alone(opts, ctx, &mut results, progress);
        }
        Some(Ok(nvml)) => {
            let listed = telemetry::list_gpus(&nvml);
            let (all, problems) = match listed {
                Ok(x) => x,
                Err(e) => (Vec::new(), vec![format!("listing GPUs: {e}")]),
            };
            for p in &problems {
                findings.push(
                    Finding::new(
                        "burnin.gpu.inventory",
                        Outcome::Error,
                        Severity::Critical,
                        Component::node(),
                        p.clone(),
                    )
                    .action("check the driver (nvidia-smi -q) and the kernel log (dmesg)"),
                );
            }
            if let super::options::GpuSelection::Indices(ix) = &opts.gpus {
                if let Some(&bad) = ix.iter().find(|i| !all.iter().any(|g| g.identity.index == **i)) {
                    return Err(BurninError::NoSuchGpu { index: bad, count: all.len() });
                }
            }
            let mut selected: Vec<NvmlGpu> = all.into_iter().filter(|g| opts.gpus.includes(g.identity.index)).collect();
            for g in selected.iter_mut() {
                match numa::placement_of(tree, &g.identity.pci_address) {
                    Ok(p) => g.identity.numa_node = p.map(|p| p.node),
                    Err(e) => tracing::warn!(gpu = g.identity.index, "NUMA node unknown: {}", crate::error::chain(&e)),
                }
            }
            if thresholds.is_none() {
                let ids: Vec<String> = selected.iter().map(|g| g.pci_id.clone()).collect();
                if let Some(t) = BurninThresholds::detect(&ids)? {
                    let src = format!("detected from PCI id {}", ids.first().cloned().unwrap_or_default());
                    thresholds = Some((t, src));
                }
            }
            if selected.is_empty() {
                let why = NoGpu::Skip(if problems.is_empty() { "no GPU".into() } else { "no usable GPU".into() });
                gpu_access = no_gpu_results(&why, &gpu_tests, &mut results);
                run_host_alone(opts, ctx, &mut results, progress);
            } else {
                gpu_access = run_gpus(
                    opts,
                    ctx,
                    tree,
                    &nvml,
                    &selected,
                    &gpu_tests,
                    &mut results,
                    &mut findings,
                    &mut telemetry_out,
                    progress,
                );
            }
        }
    }

    let (thresholds, platform_source) = match thresholds {
        Some(t) => t,
        None => (BurninThresholds::builtin(FALLBACK)?, "default: no platform named or detected".to_string()),
    };
    add_power_figures(&mut results, &telemetry_out, &thresholds);
    judge::annotate(&mut results, &thresholds, opts.gemm_dtype);
    findings.extend(judge::judge_results(&results, &thresholds, opts.gemm_dtype));
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    findings.extend(judge::judge_telemetry(&telemetry_out, &thresholds, &catalog, minutes));
    let incomplete = results.iter().any(|r| matches!(r.status, TestStatus::Skipped { applicable: true, .. }))
        || !results.iter().any(|r| r.status == TestStatus::Ran);
    let verdict = Verdict::of(&findings);
    Ok(BurninReport {
        kind: REPORT_KIND.into(),
        version: REPORT_VERSION,
        kiln_version: env!("CARGO_PKG_VERSION").into(),
        hostname: hostname(tree),
        started_at,
        finished_at: rfc3339_now(),
        duration_s: opts.duration.as_secs_f64(),
        tests_requested: opts.tests.clone(),
        gemm_dtype: opts.gemm_dtype,
        platform: thresholds.name.clone(),
        platform_source,
        gpu_access,
        inject_fault: opts.inject_fault.map(|f| f.as_str().to_string()),
        results,
        telemetry: telemetry_out,
        findings,
        verdict,
        incomplete,
    })
}

fn no_gpu_results(why: &NoGpu, gpu_tests: &[TestKind], results: &mut Vec<TestResult>) -> GpuAccess {
    let reason = match why {
        NoGpu::Skip(r) | NoGpu::Error(r) => r.clone(),
    };
    for &t in gpu_tests {
        results.push(match why {
            NoGpu::Skip(r) => TestResult::skipped(t, None, r.clone(), true),
            NoGpu::Error(r) => TestResult::error(t, None, r.clone()),
        });
    }
    GpuAccess::Unavailable { reason }
}

fn run_host_alone(
    opts: &BurninOptions,
    ctx: &RunContext,
    results: &mut Vec<TestResult>,
    progress: &(dyn Fn(&str) + Sync),
) {
    if opts.wants(TestKind::Host) {
        progress(&format!("host: stress-ng for {}", fmt_duration(opts.duration)));
        results.push(host::run(opts.duration, ctx.host_memory_percent));
    }
}

/// Runs `f`, turning a panic into an error result (a kiln bug, reported,
/// never a crash of the whole run).
fn guarded(test: TestKind, id: Option<&GpuIdentity>, f: impl FnOnce() -> TestResult) -> TestResult {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            TestResult::error(test, id.cloned(), format!("kiln bug: panic in {test}: {msg}"))
        }
    }
}

/// Pins the calling thread to the GPU's NUMA node when the kernel knows it.
fn pin(tree: &dyn SysTree, id: &GpuIdentity) -> Option<String> {
    match numa::placement_of(tree, &id.pci_address) {
        Ok(Some(p)) => match numa::pin_current_thread(&p.cpus) {
            Ok(()) => None,
            Err(e) => Some(format!("not pinned to NUMA node {}: {}", p.node, crate::error::chain(&e))),
        },
        Ok(None) => Some("NUMA node unknown (numa_node is -1): thread not pinned".into()),
        Err(e) => Some(format!("thread not pinned: {}", crate::error::chain(&e))),
    }
}

struct Worker {
    id: GpuIdentity,
    gpu: Arc<Gpu>,
}

#[allow(clippy::too_many_arguments)]
fn run_gpus(
    opts: &BurninOptions,
    ctx: &RunContext,
    tree: &dyn SysTree,
    nvml: &nvml_wrapper::Nvml,
    selected: &[NvmlGpu],
    gpu_tests: &[TestKind],
    results: &mut Vec<TestResult>,
    findings: &mut Vec<Finding>,
    telemetry_out: &mut Vec<GpuTelemetry>,
    progress: &(dyn Fn(&str) + Sync),
) -> GpuAccess {
    let driver_version = nvml.sys_driver_version().unwrap_or_else(|_| "unknown".into());
    let cuda_driver_version = nvml.sys_cuda_driver_version().ok();
    let libraries = cuda::libraries();
    let access = GpuAccess::Available {
        driver_version,
        cuda_driver_version,
        gpus: selected.iter().map(|g| g.identity.clone()).collect(),
        libraries,
    };

    // Before any CUDA call: the NVLink fabric must be up, or CUDA fails with
    // "system not ready" (HGX B200, GB200) and the tests would say nothing useful.
    let mut usable: Vec<&NvmlGpu> = Vec::new();
    for g in selected {
        match telemetry::fabric(nvml, g.identity.index) {
            Ok(None) => usable.push(g),
            Ok(Some(f)) => {
                use crate::model::FabricState;
                let ok = matches!(f.state, FabricState::NotSupported)
                    || (f.state == FabricState::Completed && f.status == 0);
                let msg = format!(
                    "{}: NVLink fabric state {:?}, status {}, clique {}, cluster {}",
                    g.identity.describe(),
                    f.state,
                    f.status,
                    f.clique_id,
                    f.cluster_uuid
                );
                if ok {
                    findings.push(Finding::new(
                        "burnin.fabric",
                        Outcome::Pass,
                        Severity::Info,
                        g.identity.component(),
                        msg,
                    ));
                    usable.push(g);
                } else {
                    findings.push(
                        Finding::new("burnin.fabric", Outcome::Fail, Severity::Critical, g.identity.component(), msg)
                            .expected("completed, status 0")
                            .actual(format!("{:?}", f.state))
                            .action("start nvidia-fabricmanager (and the NVLink subnet manager on NVLink 5 systems), wait for the state to reach completed, then re-run"),
                    );
                    for &t in gpu_tests {
                        if t != TestKind::P2p {
                            results.push(TestResult::skipped(
                                t,
                                Some(g.identity.clone()),
                                "NVLink fabric not ready",
                                true,
                            ));
                        }
                    }
                }
            }
            Err(e) => findings.push(
                Finding::new(
                    "burnin.fabric",
                    Outcome::Error,
                    Severity::Warning,
                    g.identity.component(),
                    format!("{}: fabric state unreadable: {e}", g.identity.describe()),
                )
                .action("check the driver (nvidia-smi -q) and re-run"),
            ),
        }
    }
    // Fabric read errors leave the GPU out too: CUDA on an unknown fabric may hang.
    let usable: Vec<&NvmlGpu> = usable;

    // CUDA: libraries, version, and the NVML-to-CUDA mapping by PCI address.
    let cuda_problem = if !libraries.driver {
        Some("libcuda cannot be loaded although NVML works: reinstall the driver's CUDA library".to_string())
    } else if !libraries.nvrtc {
        Some("libnvrtc (CUDA runtime compiler) not found: install it or add it to LD_LIBRARY_PATH".to_string())
    } else {
        cuda_driver_version_ok().err()
    };
    let mut workers: Vec<Worker> = Vec::new();
    if let Some(problem) = &cuda_problem {
        for g in &usable {
            for &t in gpu_tests {
                if t != TestKind::P2p {
                    results.push(TestResult::error(t, Some(g.identity.clone()), problem.clone()));
                }
            }
        }
    } else {
        let mapping = cuda_ordinals();
        for g in &usable {
            let opened = match &mapping {
                Ok(m) => match m.iter().find(|(_, addr)| *addr == g.identity.pci_address) {
                    Some((ordinal, _)) => Gpu::open(*ordinal).map_err(|e| crate::error::chain(&e)),
                    None => Err("not visible to CUDA (check CUDA_VISIBLE_DEVICES)".into()),
                },
                Err(e) => Err(e.clone()),
            };
            match opened {
                Ok(gpu) => workers.push(Worker { id: g.identity.clone(), gpu }),
                Err(e) => {
                    for &t in gpu_tests {
                        if t != TestKind::P2p {
                            results.push(TestResult::error(t, Some(g.identity.clone()), e.clone()));
                        }
                    }
                }
            }
        }
    }

    // Telemetry runs over every selected GPU for the whole GPU phase.
    let stop = AtomicBool::new(false);
    let mut befores = Vec::new();
    for g in selected {
        let mut problems = Vec::new();
        let before = match nvml.device_by_index(g.identity.index) {
            Ok(d) => telemetry::counters(nvml, &d, &mut problems),
            Err(e) => {
                problems.push(format!("opening GPU: {e}"));
                Default::default()
            }
        };
        befores.push((before, problems));
    }
    let xid_targets: Vec<(u32, Option<String>)> =
        selected.iter().map(|g| (g.identity.index, g.identity.uuid.clone())).collect();

    let mut phase_results: Vec<TestResult> = Vec::new();
    let (samples, (xid_events, xid_watch)) = std::thread::scope(|s| {
        let samplers: Vec<_> = selected
            .iter()
            .map(|g| {
                let stop = &stop;
                s.spawn(move || telemetry::sample_until(nvml, g.identity.index, opts.sample_period, stop))
            })
            .collect();
        let xid = {
            let stop = &stop;
            let targets = &xid_targets;
            s.spawn(move || telemetry::watch_xids(nvml, targets, stop))
        };

        phase_results = run_phases(opts, ctx, tree, &workers, progress);

        stop.store(true, Ordering::Relaxed);
        let samples: Vec<_> = samplers
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| (Vec::new(), vec!["telemetry sampler panicked (kiln bug)".into()])))
            .collect();
        let xids = xid
            .join()
            .unwrap_or_else(|_| (Vec::new(), Watch::Failed { reason: "Xid watcher panicked (kiln bug)".into() }));
        (samples, xids)
    });
    results.extend(phase_results);

    for ((g, (before, mut problems)), (samples, sample_problems)) in selected.iter().zip(befores).zip(samples) {
        let after = match nvml.device_by_index(g.identity.index) {
            Ok(d) => telemetry::counters(nvml, &d, &mut problems),
            Err(e) => {
                problems.push(format!("opening GPU: {e}"));
                Default::default()
            }
        };
        for p in sample_problems {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        telemetry_out.push(GpuTelemetry {
            gpu: g.identity.clone(),
            before,
            after,
            samples,
            xids: xid_events.iter().filter(|(i, _)| *i == g.identity.index).map(|(_, e)| e.clone()).collect(),
            xid_watch: xid_watch.clone(),
            power_limit_w: g.power_limit_w,
            problems,
        });
    }
    // An Xid from a device kiln could not match still matters.
    for (i, e) in xid_events.iter().filter(|(i, _)| !selected.iter().any(|g| g.identity.index == *i)) {
        findings.push(
            Finding::new(
                "burnin.telemetry.xid",
                Outcome::Fail,
                Severity::Critical,
                Component::node(),
                format!("Xid {} on a GPU outside the burn-in (NVML index {i})", e.xid),
            )
            .action("look up the Xid in checks/xid.toml and follow its action"),
        );
    }
    drop(workers);
    access
}

fn cuda_driver_version_ok() -> Result<(), String> {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: the driver library is present (checked by the caller); cuDriverGetVersion
    // exists in every CUDA driver and needs no initialisation.
    let r = unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut v) };
    if r != cudarc::driver::sys::cudaError_enum::CUDA_SUCCESS {
        return Err(format!("cuDriverGetVersion failed: {r:?}"));
    }
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

fn run_phases(
    opts: &BurninOptions,
    ctx: &RunContext,
    tree: &dyn SysTree,
    workers: &[Worker],
    progress: &(dyn Fn(&str) + Sync),
) -> Vec<TestResult> {
    let mut out: Vec<TestResult> = Vec::new();
    // Phase 1 and 2: host-link alone, then together.
    if opts.wants(TestKind::HostLink) && !workers.is_empty() {
        let mut link_results: Vec<TestResult> = Vec::new();
        for w in workers {
            progress(&format!("gpu{}: host-link alone", w.id.index));
            let r = std::thread::scope(|s| {
                s.spawn(|| {
                    guarded(TestKind::HostLink, Some(&w.id), || {
                        let started = Instant::now();
                        let mut r = TestResult::ran(TestKind::HostLink, Some(w.id.clone()));
                        r.started_unix_ms = now_unix_ms();
                        if let Some(note) = pin(tree, &w.id) {
                            r.notes.push(note);
                        }
                        absorb(&mut r, host_link::measure(&w.gpu, None, ""));
                        r.seconds = started.elapsed().as_secs_f64();
                        r
                    })
                })
                .join()
                .unwrap_or_else(|_| {
                    TestResult::error(TestKind::HostLink, Some(w.id.clone()), "worker thread died (kiln bug)")
                })
            });
            link_results.push(r);
        }
        if workers.len() > 1 {
            progress("all GPUs: host-link together");
            let barrier = Barrier::new(workers.len());
            let together: Vec<host_link::LinkMeasurement> = std::thread::scope(|s| {
                let handles: Vec<_> = workers
                    .iter()
                    .map(|w| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            let _ = pin(tree, &w.id);
                            host_link::measure(&w.gpu, Some(barrier), "_together")
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| host_link::LinkMeasurement {
                            error: Some("worker thread died (kiln bug)".into()),
                            ..Default::default()
                        })
                    })
                    .collect()
            });
            for (r, m) in link_results.iter_mut().zip(together) {
                if r.status == TestStatus::Ran {
                    absorb(r, m);
                }
            }
        } else {
            for r in link_results.iter_mut() {
                r.notes.push("one GPU: the all-GPUs-together measurement is the same as alone".into());
            }
        }
        out.extend(link_results);
    }

    // Phase 3: the stress phase, all GPUs in parallel, host stress beside it.
    let stress_tests: Vec<TestKind> =
        [TestKind::Hbm, TestKind::Gemm, TestKind::Memtest].into_iter().filter(|t| opts.wants(*t)).collect();
    let run_host = opts.wants(TestKind::Host);
    let (stress, host_result) = std::thread::scope(|s| {
        let host_handle = run_host.then(|| {
            progress(&format!("host: stress-ng for {}", fmt_duration(opts.duration)));
            s.spawn(|| guarded(TestKind::Host, None, || host::run(opts.duration, ctx.host_memory_percent)))
        });
        let handles: Vec<_> = workers
            .iter()
            .filter(|_| !stress_tests.is_empty())
            .map(|w| {
                let tests = &stress_tests;
                s.spawn(move || {
                    let note = pin(tree, &w.id);
                    let mut rs = Vec::new();
                    for &t in tests {
                        progress(&format!("gpu{}: {t}", w.id.index));
                        let mut r = guarded(t, Some(&w.id), || match t {
                            TestKind::Hbm => hbm::run(&w.gpu, &w.id),
                            TestKind::Gemm => gemm::run(
                                &w.gpu,
                                &w.id,
                                &gemm::GemmPlan {
                                    dtype: opts.gemm_dtype,
                                    engine: opts.gemm_engine,
                                    size: opts.gemm_size.unwrap_or(gemm::DEFAULT_SIZE),
                                    duration: opts.duration,
                                    inject_bitflip: opts.inject_fault == Some(super::options::InjectFault::GemmBitflip),
                                    cublaslt_present: cuda::libraries().cublaslt,
                                },
                            ),
                            _ => memtest::run(
                                &w.gpu,
                                &w.id,
                                &memtest::MemtestPlan {
                                    duration: opts.duration,
                                    inject_corrupt: opts.inject_fault
                                        == Some(super::options::InjectFault::MemtestCorrupt),
                                },
                            ),
                        });
                        if let Some(n) = &note {
                            r.notes.push(n.clone());
                        }
                        rs.push(r);
                    }
                    rs
                })
            })
            .collect();
        let stress: Vec<TestResult> = handles
            .into_iter()
            .zip(workers)
            .flat_map(|(h, w)| {
                h.join().unwrap_or_else(|_| {
                    stress_tests
                        .iter()
                        .map(|&t| TestResult::error(t, Some(w.id.clone()), "worker thread died (kiln bug)"))
                        .collect()
                })
            })
            .collect();
        let host_result = host_handle.map(|h| {
            h.join().unwrap_or_else(|_| TestResult::error(TestKind::Host, None, "host stress thread died (kiln bug)"))
        });
        (stress, host_result)
    });
    out.extend(stress);
    out.extend(host_result);

    // Phase 4: p2p.
    if opts.wants(TestKind::P2p) {
        if workers.len() < 2 {
            out.push(TestResult::skipped(TestKind::P2p, None, "needs two GPUs", false));
        } else {
            progress("p2p: every ordered GPU pair");
            let pairs: Vec<(Arc<Gpu>, GpuIdentity)> = workers.iter().map(|w| (w.gpu.clone(), w.id.clone())).collect();
            match catch_unwind(AssertUnwindSafe(|| p2p::run(&pairs))) {
                Ok(rs) => out.extend(rs),
                Err(_) => out.push(TestResult::error(TestKind::P2p, None, "kiln bug: panic in p2p")),
            }
        }
    }
    out
}

/// Moves a host-link measurement into the test result.
fn absorb(r: &mut TestResult, m: host_link::LinkMeasurement) {
    r.figures.extend(m.figures);
    r.data_error_count += m.data_error_count;
    r.data_errors.extend(m.data_errors);
    if let Some(e) = m.error {
        r.status = TestStatus::Error { message: e };
    }
}

/// Adds the peak board power seen during each GEMM run, beside the
/// platform's power target (reported, not judged: an administrator may have
/// lowered the power limit on purpose).
fn add_power_figures(results: &mut [TestResult], tel: &[GpuTelemetry], t: &BurninThresholds) {
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
            f.expected = t.power.target_w;
            f.threshold_reason = t.power.reason.clone();
            r.figures.push(f);
        }
        if let Some(limit) = g.power_limit_w {
            r.notes.push(format!("enforced power limit {limit:.0} W"));
        }
    }
}

fn hostname(tree: &dyn SysTree) -> Option<String> {
    tree.read(std::path::Path::new("proc/sys/kernel/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
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
