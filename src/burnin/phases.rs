//! The burn-in's test phases on the opened GPUs, in order, so that each figure is measured on a
//! quiet node:
//! 1. host-link with each GPU alone, one after another;
//! 2. host-link with every GPU at once;
//! 3. the stress phase, one pinned worker per GPU in parallel (hbm, gemm,
//!    memtest), with the host stress (stress-ng) running beside it;
//! 4. p2p over every ordered GPU pair, one pair at a time;
//! 5. the collective: NCCL all-reduce and all-gather over every GPU at once.
//!
//! Nothing here returns early on a hardware problem: every GPU and test gets
//! a result, and a panic inside one worker becomes that test's error.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use super::cuda::{self, Gpu};
use super::options::{BurninOptions, InjectFault, TestKind};
use super::placement::pin;
use super::report::{now_unix_ms, GpuIdentity, TestResult, TestStatus};
use super::run::{fmt_duration, RunContext};
use super::{collective, gemm, hbm, host, host_link, memtest, nccl, p2p};
use crate::checks::burnin_spec::CollectiveLimits;
use crate::model::Node;

/// A GPU opened for CUDA work, with who it is.
pub struct Worker {
    pub id: GpuIdentity,
    pub gpu: Arc<Gpu>,
}

/// What every phase needs: the test plan, the node workers are pinned on
/// (its NUMA data), and where progress lines go.
pub struct Plan<'a> {
    pub opts: &'a BurninOptions,
    pub ctx: &'a RunContext,
    pub node: &'a Node,
    pub progress: &'a (dyn Fn(&str) + Sync),
    /// The spec's `[burnin.collective]`: sizes and iterations of the collective.
    pub collective: Option<&'a CollectiveLimits>,
}

/// Runs every requested phase on `workers`.
pub fn run_phases(plan: &Plan<'_>, workers: &[Worker]) -> Vec<TestResult> {
    let mut out = Vec::new();
    if plan.opts.wants(TestKind::HostLink) && !workers.is_empty() {
        out.extend(host_link_phase(plan, workers));
    }
    out.extend(stress_phase(plan, workers));
    if plan.opts.wants(TestKind::P2p) {
        out.extend(p2p_phase(plan, workers));
    }
    if plan.opts.wants(TestKind::Collective) {
        out.extend(collective_phase(plan, workers));
    }
    out
}

/// Runs the host stress alone (no GPU to stress beside it).
pub fn host_alone(plan: &Plan<'_>) -> Option<TestResult> {
    plan.opts.wants(TestKind::Host).then(|| {
        (plan.progress)(&format!("host: stress-ng for {}", fmt_duration(plan.opts.duration)));
        guarded(TestKind::Host, None, || host::run(plan.opts.duration, plan.ctx.host_memory_percent))
    })
}

/// Phases 1 and 2: host-link with each GPU alone, then with all together.
fn host_link_phase(plan: &Plan<'_>, workers: &[Worker]) -> Vec<TestResult> {
    let mut link_results: Vec<TestResult> = Vec::new();
    for w in workers {
        (plan.progress)(&format!("gpu{}: host-link alone", w.id.index));
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                guarded(TestKind::HostLink, Some(&w.id), || {
                    let started = Instant::now();
                    let mut r = TestResult::ran(TestKind::HostLink, Some(w.id.clone()));
                    r.started_unix_ms = now_unix_ms();
                    if let Some(note) = pin(plan.node, &w.id.pci_address) {
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
        (plan.progress)("all GPUs: host-link together");
        let barrier = Barrier::new(workers.len());
        let together: Vec<host_link::LinkMeasurement> = std::thread::scope(|s| {
            let handles: Vec<_> = workers
                .iter()
                .map(|w| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let _ = pin(plan.node, &w.id.pci_address);
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
    link_results
}

/// Phase 3: the stress tests, all GPUs in parallel, the host stress beside them.
fn stress_phase(plan: &Plan<'_>, workers: &[Worker]) -> Vec<TestResult> {
    let stress_tests: Vec<TestKind> =
        [TestKind::Hbm, TestKind::Gemm, TestKind::Memtest].into_iter().filter(|t| plan.opts.wants(*t)).collect();
    let run_host = plan.opts.wants(TestKind::Host);
    let (stress, host_result) = std::thread::scope(|s| {
        let host_handle = run_host.then(|| {
            (plan.progress)(&format!("host: stress-ng for {}", fmt_duration(plan.opts.duration)));
            s.spawn(|| guarded(TestKind::Host, None, || host::run(plan.opts.duration, plan.ctx.host_memory_percent)))
        });
        let handles: Vec<_> = workers
            .iter()
            .filter(|_| !stress_tests.is_empty())
            .map(|w| {
                let tests = &stress_tests;
                s.spawn(move || {
                    let note = pin(plan.node, &w.id.pci_address);
                    let mut rs = Vec::new();
                    for &t in tests {
                        (plan.progress)(&format!("gpu{}: {t}", w.id.index));
                        let mut r = guarded(t, Some(&w.id), || match t {
                            TestKind::Hbm => hbm::run(&w.gpu, &w.id),
                            TestKind::Gemm => gemm::run(
                                &w.gpu,
                                &w.id,
                                &gemm::GemmPlan {
                                    dtype: plan.opts.gemm_dtype,
                                    engine: plan.opts.gemm_engine,
                                    size: plan.opts.gemm_size.unwrap_or(gemm::DEFAULT_SIZE),
                                    duration: plan.opts.duration,
                                    inject_bitflip: plan.opts.inject_fault == Some(InjectFault::GemmBitflip),
                                    cublaslt_present: cuda::libraries().cublaslt,
                                },
                            ),
                            _ => memtest::run(
                                &w.gpu,
                                &w.id,
                                &memtest::MemtestPlan {
                                    duration: plan.opts.duration,
                                    inject_corrupt: plan.opts.inject_fault == Some(InjectFault::MemtestCorrupt),
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
    stress.into_iter().chain(host_result).collect()
}

/// Phase 4: p2p over every ordered pair.
fn p2p_phase(plan: &Plan<'_>, workers: &[Worker]) -> Vec<TestResult> {
    if workers.len() < 2 {
        return vec![TestResult::skipped(TestKind::P2p, None, "needs two GPUs", false)];
    }
    (plan.progress)("p2p: every ordered GPU pair");
    let pairs: Vec<(Arc<Gpu>, GpuIdentity)> = workers.iter().map(|w| (w.gpu.clone(), w.id.clone())).collect();
    match catch_unwind(AssertUnwindSafe(|| p2p::run(&pairs))) {
        Ok(rs) => rs,
        Err(_) => vec![TestResult::error(TestKind::P2p, None, "kiln bug: panic in p2p")],
    }
}

/// Phase 5: the collective over every GPU at once, one result per op and size; NCCL is
/// loaded at run time, and without it the test is skipped (and the run incomplete).
fn collective_phase(plan: &Plan<'_>, workers: &[Worker]) -> Vec<TestResult> {
    if let Some(skipped) = collective_cannot_run(workers.len(), nccl::present) {
        return vec![skipped];
    }
    let sizes: Vec<u64> = match plan.collective {
        Some(c) => c.sizes(),
        None => collective::DEFAULT_SIZES_MIB.iter().map(|m| m << 20).collect(),
    };
    let (warmup, iterations) = plan.collective.map(|c| (c.warmup, c.iterations)).unwrap_or((5, 20));
    let sweep = collective::Sweep { ops: &collective::Op::ALL, sizes: &sizes, warmup, iterations };
    (plan.progress)(&format!("collective: NCCL all-reduce and all-gather over {} GPUs", workers.len()));
    let gpus: Vec<Arc<Gpu>> = workers.iter().map(|w| w.gpu.clone()).collect();
    let started_unix_ms = now_unix_ms();
    let (measured, failed) = match catch_unwind(AssertUnwindSafe(|| collective::measure_local(&gpus, &sweep))) {
        Ok(m) => m,
        Err(_) => (Vec::new(), Some("kiln bug: panic in the collective".to_string())),
    };
    let mut out: Vec<TestResult> =
        measured.iter().map(|m| collective::node_result(m, gpus.len() as u32, started_unix_ms)).collect();
    if let Some(e) = failed {
        out.push(TestResult::error(TestKind::Collective, None, format!("NCCL over {} GPUs: {e}", gpus.len())));
    }
    out
}

/// Why the collective does not run over `gpus` GPUs: one GPU has no peer (not applicable);
/// without libnccl it cannot (applicable: the run is incomplete, never a pass). `nccl_present`
/// is asked only when there are GPUs to run it on.
fn collective_cannot_run(gpus: usize, nccl_present: impl FnOnce() -> bool) -> Option<TestResult> {
    if gpus < 2 {
        Some(TestResult::skipped(TestKind::Collective, None, "needs 2 or more GPUs", false))
    } else if !nccl_present() {
        Some(TestResult::skipped(TestKind::Collective, None, collective::NO_NCCL, true))
    } else {
        None
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

/// Moves a host-link measurement into the test result.
fn absorb(r: &mut TestResult, m: host_link::LinkMeasurement) {
    r.figures.extend(m.figures);
    r.data_error_count += m.data_error_count;
    r.data_errors.extend(m.data_errors);
    if let Some(e) = m.error {
        r.status = TestStatus::Error { message: e };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collective_needs_two_gpus_and_nccl_and_says_which_is_missing() {
        let one = collective_cannot_run(1, || panic!("NCCL is not asked about for one GPU")).expect("skipped");
        assert_eq!(one.status, TestStatus::Skipped { reason: "needs 2 or more GPUs".into(), applicable: false });
        let no_nccl = collective_cannot_run(8, || false).expect("skipped");
        assert_eq!(
            no_nccl.status,
            TestStatus::Skipped { reason: "no NCCL (libnccl.so.2 could not be loaded)".into(), applicable: true },
            "applicable: the run is incomplete and exits 7, never 0"
        );
        assert_eq!(no_nccl.test, TestKind::Collective);
        assert!(collective_cannot_run(2, || true).is_none());
    }
}
