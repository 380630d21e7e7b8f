//! The collective burn-in: one rank of an NCCL all-reduce and all-gather across every GPU of an
//! NVLink domain (`kiln nccl-rank`, run by `kiln rack burnin` on each tray) or of one node, its
//! bus bandwidth per message size as nccl-tests computes it, the output verified, and the
//! line protocol by which the controller relays rank 0's NCCL unique id to the other ranks
//! over their SSH sessions (docs/burnin.md, "Collective").

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use super::options::TestKind;
use super::report::{CollectiveSize, Figure, GpuTelemetry, TestResult};
use crate::checks::burnin_spec::{Chosen, CollectiveLimits, SizedLimit};
use crate::checks::{Component, Finding, Outcome, Severity};
use crate::exit;

/// The prefix of every protocol line a rank writes on stderr.
pub const MARKER: &str = "kiln-rank:";

/// The sizes, MiB, a collective runs when neither its flags nor a spec give any.
pub const DEFAULT_SIZES_MIB: [u64; 2] = [64, 1024];

/// Why a collective did not run where libnccl is missing.
pub const NO_NCCL: &str = "no NCCL (libnccl.so.2 could not be loaded)";

/// The document kind of a rank's JSON.
pub const RANK_KIND: &str = "kiln.collective-rank";

pub use super::nccl::{check_ranges, expected_word, input_word};
pub use crate::checks::collective_op::Op;

/// One message size of one collective, as this rank measured it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeResult {
    pub op: Op,
    /// The all-reduce buffer, or the all-gather's whole output (nccl-tests' "size").
    pub bytes: u64,
    pub iterations: u32,
    /// Mean time per iteration, microseconds.
    pub time_us: f64,
    pub algbw_gbps: f64,
    pub busbw_gbps: f64,
    /// Output words read back and compared, and how many were wrong.
    pub checked_words: u64,
    pub wrong_words: u64,
}

/// What one rank reports (`kiln nccl-rank --json`, kind `kiln.collective-rank`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankReport {
    pub schema_version: u32,
    pub kind: String,
    pub hostname: String,
    pub rank: u32,
    pub ranks: u32,
    /// The GPUs this rank drove, and the GPUs in the whole communicator.
    pub gpus: u32,
    pub world: u32,
    /// `pass`, `fail` (output wrong), `error` (NCCL or CUDA failed), `skipped` (no NCCL, no driver,
    /// no GPU, or another rank never started).
    pub verdict: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nccl_version: Option<String>,
    pub results: Vec<SizeResult>,
    /// The same ops over this rank's own GPUs alone (one communicator of its `gpus`), at the
    /// largest size, measured before it joined the domain: in the domain's collective every
    /// rank waits for the slowest, so only these say which tray is slow. Empty for a rank of
    /// one GPU, a rank of a one-rank run, and reports of kiln before it had them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local: Vec<SizeResult>,
    /// Each GPU's telemetry while the rank ran, in the burn-in report's shape (counters before
    /// and after, samples, Xid events); empty when none was sampled (`telemetry_note` says why).
    #[serde(default)]
    pub telemetry: Vec<GpuTelemetry>,
    /// What `telemetry` leaves out: why the rank sampled nothing (no driver, NVML failed, no GPU
    /// inspected), or an Xid heard from a GPU it could not name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry_note: Option<String>,
}

impl RankReport {
    fn new(opts: &RankOptions) -> RankReport {
        RankReport {
            schema_version: 1,
            kind: RANK_KIND.into(),
            hostname: crate::handoff::short_hostname().unwrap_or_default(),
            rank: opts.rank,
            ranks: opts.ranks,
            gpus: 0,
            world: 0,
            verdict: Outcome::Skipped,
            reason: None,
            nccl_version: None,
            results: Vec::new(),
            local: Vec::new(),
            telemetry: Vec::new(),
            telemetry_note: None,
        }
    }

    /// The report of a rank that did not run the collective, for `reason` (skipped).
    pub fn not_run(opts: &RankOptions, reason: impl Into<String>) -> RankReport {
        RankReport::new(opts).ended(Outcome::Skipped, reason)
    }

    fn ended(mut self, verdict: Outcome, reason: impl Into<String>) -> RankReport {
        self.verdict = verdict;
        self.reason = Some(reason.into());
        self
    }

    /// The exit code of `kiln nccl-rank`: 0 pass, 1 fail, 3 error, 7 skipped (docs/exit-codes.md).
    pub fn exit_code(&self) -> i32 {
        match self.verdict {
            Outcome::Pass => exit::OK,
            Outcome::Fail => exit::CHECK_FAILED,
            Outcome::Error => exit::CHECK_ERROR,
            Outcome::Skipped => exit::SKIPPED,
        }
    }
}

/// A test aid (`--rank-hook`, docs/burnin.md): what a rank does instead of its work, so the
/// controller's handling of a rank that dies or hangs can be tested without GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RankHook {
    /// Kill itself with SIGKILL once it has announced its process group.
    Die,
    /// Never answer: sleep until killed.
    Hang,
}

/// One rank's part.
#[derive(Debug, Clone)]
pub struct RankOptions {
    pub rank: u32,
    pub ranks: u32,
    pub sizes: Vec<u64>,
    pub ops: Vec<Op>,
    pub warmup: u32,
    pub iterations: u32,
    pub hook: Option<RankHook>,
}

/// What a rank says on stderr, one line each, after [`MARKER`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Its process group, which the controller kills when the run must end early.
    Pgid(i32),
    /// Rank 0's NCCL unique id, 256 hex digits.
    Id(String),
    /// A rank other than 0 is ready and reads the id on stdin.
    Waiting,
}

impl Said {
    pub fn line(&self) -> String {
        match self {
            Said::Pgid(p) => format!("{MARKER} pgid={p}"),
            Said::Id(h) => format!("{MARKER} id={h}"),
            Said::Waiting => format!("{MARKER} waiting"),
        }
    }

    /// Every protocol line in `stderr`, in order; other lines are ignored.
    pub fn all_in(stderr: &[u8]) -> Vec<Said> {
        let text = String::from_utf8_lossy(stderr);
        // Only whole lines: a line still arriving is read next time.
        let whole = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => return Vec::new(),
        };
        whole
            .lines()
            .filter_map(|l| l.trim().strip_prefix(MARKER))
            .filter_map(|rest| {
                let rest = rest.trim();
                if rest == "waiting" {
                    Some(Said::Waiting)
                } else if let Some(p) = rest.strip_prefix("pgid=") {
                    p.parse().ok().filter(|p| *p > 1).map(Said::Pgid)
                } else {
                    rest.strip_prefix("id=")
                        .filter(|h| h.len() == 256 && h.chars().all(|c| c.is_ascii_hexdigit()))
                        .map(|h| Said::Id(h.to_string()))
                }
            })
            .collect()
    }
}

/// The controller's one reply to a waiting rank, a line on its stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Id(String),
    /// Stop: rank 0 or another rank ended without the collective; the reason is shown.
    Abort(String),
}

impl Reply {
    pub fn line(&self) -> String {
        match self {
            Reply::Id(h) => format!("id {h}\n"),
            Reply::Abort(why) => format!("abort {}\n", why.replace('\n', " ")),
        }
    }

    pub fn parse(line: &str) -> Option<Reply> {
        let line = line.trim_end_matches(['\n', '\r']);
        if let Some(h) = line.strip_prefix("id ") {
            return Some(Reply::Id(h.trim().to_string()));
        }
        line.strip_prefix("abort").map(|why| Reply::Abort(why.trim().to_string()))
    }
}

fn announce(said: &Said) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", said.line());
    let _ = err.flush();
}

/// Runs one rank: announces its process group, honours a test hook, checks for NCCL, the driver
/// and GPUs (each missing one a `skipped` report, never a pass), makes or receives the unique
/// id (rank 0 says it; the others read the controller's reply from `input`), joins the
/// communicator with every local GPU and measures each op and size.
pub fn run_rank(opts: &RankOptions, input: &mut dyn Read) -> RankReport {
    // A rank of several leads a process group of its own, so that the controller can kill it
    // (and anything it started) without touching what started it. SAFETY: plain syscalls.
    let pgid = unsafe {
        if opts.ranks > 1 && libc::getpgrp() != libc::getpid() {
            libc::setpgid(0, 0);
        }
        libc::getpgrp()
    };
    announce(&Said::Pgid(pgid));
    match opts.hook {
        Some(RankHook::Die) => {
            // SAFETY: raising a signal on this process; SIGKILL cannot be caught.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        Some(RankHook::Hang) => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        None => {}
    }
    let report = RankReport::new(opts);
    if !super::nccl::present() {
        return report.ended(Outcome::Skipped, NO_NCCL);
    }
    if !super::cuda::libraries().driver {
        return report.ended(Outcome::Skipped, "no NVIDIA driver");
    }
    let count = match super::cuda::device_count() {
        Ok(n) => n.max(0) as u32,
        Err(e) => return report.ended(Outcome::Error, format!("counting GPUs: {e}")),
    };
    if count == 0 {
        return report.ended(Outcome::Skipped, "no GPU");
    }
    let mut report = report;
    report.nccl_version = super::nccl::version().ok();
    report.gpus = count;
    report.world = count * opts.ranks.max(1);
    let gpus = match open_gpus(count) {
        Ok(g) => g,
        Err(e) => return report.ended(Outcome::Error, e),
    };
    // This tray's own figure first, while no peer waits for it.
    if opts.ranks > 1 && gpus.len() >= 2 {
        let largest: Vec<u64> = opts.sizes.iter().max().copied().into_iter().collect();
        let sweep = Sweep { ops: &opts.ops, sizes: &largest, warmup: opts.warmup, iterations: opts.iterations };
        let (local, failed) = measure_local(&gpus, &sweep);
        report.local = local;
        if let Some(e) = failed {
            return report.ended(Outcome::Error, format!("over this node's own GPUs: {e}"));
        }
    }
    let id = if opts.ranks <= 1 {
        None
    } else if opts.rank == 0 {
        match super::nccl::UniqueId::new() {
            Ok(id) => {
                announce(&Said::Id(id.to_hex()));
                Some(id)
            }
            Err(e) => return report.ended(Outcome::Error, e),
        }
    } else {
        announce(&Said::Waiting);
        let mut line = String::new();
        let mut limited = std::io::BufReader::new(input.take(4096));
        if let Err(e) = limited.read_line(&mut line) {
            return report.ended(Outcome::Error, format!("reading the controller's reply: {e}"));
        }
        match Reply::parse(&line) {
            Some(Reply::Id(hex)) => match super::nccl::UniqueId::from_hex(&hex) {
                Some(id) => Some(id),
                None => return report.ended(Outcome::Error, "the controller sent an id that is not 256 hex digits"),
            },
            Some(Reply::Abort(why)) => return report.ended(Outcome::Skipped, format!("not started: {why}")),
            None => return report.ended(Outcome::Error, "no id from the controller (input closed)"),
        }
    };
    let sweep = Sweep { ops: &opts.ops, sizes: &opts.sizes, warmup: opts.warmup, iterations: opts.iterations };
    let (results, failed) = match id {
        Some(id) => {
            let first_rank = (opts.rank * count) as usize;
            match super::nccl::Comms::join(&gpus, first_rank, report.world as usize, &id) {
                Ok(comms) => measure_sizes(&comms, first_rank, report.world, &sweep),
                Err(e) => (Vec::new(), Some(e)),
            }
        }
        None => measure_local(&gpus, &sweep),
    };
    report.results = results;
    if let Some(e) = failed {
        return report.ended(Outcome::Error, e);
    }
    let wrong: u64 = report.results.iter().chain(&report.local).map(|r| r.wrong_words).sum();
    if wrong > 0 {
        report.ended(Outcome::Fail, format!("{wrong} output words read back wrong"))
    } else {
        report.verdict = Outcome::Pass;
        report
    }
}

fn open_gpus(count: u32) -> Result<Vec<std::sync::Arc<super::cuda::Gpu>>, String> {
    (0..count as i32)
        .map(|ordinal| super::cuda::Gpu::open(ordinal).map_err(|e| format!("opening GPU {ordinal}: {e}")))
        .collect()
}

/// What to measure: each op at each size, `warmup` untimed then `iterations` timed runs.
pub struct Sweep<'a> {
    pub ops: &'a [Op],
    pub sizes: &'a [u64],
    pub warmup: u32,
    pub iterations: u32,
}

/// The sweep over `gpus` alone, one communicator of this process (`ncclCommInitAll`): the
/// one-node collective of `kiln burnin` and `kiln nccl-rank --ranks 1`, and a rank's own
/// figure. What was measured, and the first NCCL or CUDA failure, which ends the sweep.
pub fn measure_local(
    gpus: &[std::sync::Arc<super::cuda::Gpu>],
    sweep: &Sweep<'_>,
) -> (Vec<SizeResult>, Option<String>) {
    match super::nccl::Comms::all(gpus) {
        Ok(comms) => measure_sizes(&comms, 0, gpus.len() as u32, sweep),
        Err(e) => (Vec::new(), Some(e)),
    }
}

/// The sweep over `comms` (ranks `first_rank..` of `world`).
fn measure_sizes(
    comms: &super::nccl::Comms,
    first_rank: usize,
    world: u32,
    sweep: &Sweep<'_>,
) -> (Vec<SizeResult>, Option<String>) {
    let mut out = Vec::new();
    for &op in sweep.ops {
        for &bytes in sweep.sizes {
            match super::nccl::measure(comms, first_rank, op, bytes, sweep.warmup, sweep.iterations) {
                Ok(m) => {
                    let (algbw, busbw) = op.bandwidths(bytes, m.seconds, world);
                    out.push(SizeResult {
                        op,
                        bytes,
                        iterations: sweep.iterations.max(1),
                        time_us: m.seconds * 1e6,
                        algbw_gbps: algbw,
                        busbw_gbps: busbw,
                        checked_words: m.checked_words,
                        wrong_words: m.wrong_words,
                    });
                }
                Err(e) => return (out, Some(format!("{} of {}: {e}", op.as_str(), human(bytes)))),
            }
        }
    }
    (out, None)
}

/// One op and size of the node's collective (`kiln burnin`, test `collective`) as a burn-in
/// result: bus and algorithm bandwidth, the output words read back, the wrong ones counted as
/// data errors, and which op, size and communicator it was.
pub fn node_result(m: &SizeResult, gpus: u32, started_unix_ms: i64) -> TestResult {
    let mut r = TestResult::ran(TestKind::Collective, None);
    r.started_unix_ms = started_unix_ms;
    r.seconds = m.time_us * f64::from(m.iterations) / 1e6;
    r.figures.push(Figure::new("busbw", m.busbw_gbps, "GB/s"));
    r.figures.push(Figure::new("algbw", m.algbw_gbps, "GB/s"));
    r.figures.push(Figure::new("checked_words", m.checked_words as f64, "words"));
    r.data_error_count = m.wrong_words;
    r.notes.push(format!(
        "{} of {} over {gpus} GPUs, {} timed iterations of {:.1} us; {} of {} output words checked were wrong",
        m.op.as_str(),
        human(m.bytes),
        m.iterations,
        m.time_us,
        m.wrong_words,
        m.checked_words
    ));
    r.collective = Some(CollectiveSize { op: m.op, bytes: m.bytes, gpus, iterations: m.iterations });
    r
}

/// `4 GiB`, `64 MiB`, `512 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {name}", bytes / size);
        }
    }
    format!("{bytes} B")
}

/// One figure of the domain: the bus bandwidth of `op` at `bytes`, from the ranks' mean time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainFigure {
    pub op: Op,
    pub bytes: u64,
    pub ranks: u32,
    pub gpus: u32,
    pub time_us: f64,
    pub algbw_gbps: f64,
    pub busbw_gbps: f64,
}

/// Per op and size, the domain's figures from the reports that ran (nccl-tests reports the
/// time averaged over ranks); reports without results are left out.
pub fn domain_figures(reports: &[&RankReport]) -> Vec<DomainFigure> {
    let mut keys: Vec<(Op, u64)> = reports.iter().flat_map(|r| r.results.iter().map(|s| (s.op, s.bytes))).collect();
    keys.sort();
    keys.dedup();
    let world = reports.iter().map(|r| r.world).max().unwrap_or(0);
    keys.into_iter()
        .filter_map(|(op, bytes)| {
            let times: Vec<f64> = reports
                .iter()
                .filter_map(|r| r.results.iter().find(|s| s.op == op && s.bytes == bytes))
                .map(|s| s.time_us)
                .collect();
            if times.is_empty() {
                return None;
            }
            let mean = times.iter().sum::<f64>() / times.len() as f64;
            let (algbw, busbw) = op.bandwidths(bytes, mean / 1e6, world);
            Some(DomainFigure {
                op,
                bytes,
                ranks: times.len() as u32,
                gpus: world,
                time_us: mean,
                algbw_gbps: algbw,
                busbw_gbps: busbw,
            })
        })
        .collect()
}

/// A bus bandwidth against the limit of `op` for a communicator of `gpus` GPUs
/// (`CollectiveLimits::limit`): pass, fail naming the figure it was judged against, or
/// `skipped` with why (no limit in the spec, or none for so few GPUs). `said` is what was
/// measured, in words; `action` what a technician does on a fail.
pub fn against_limit(
    check: &str,
    component: Component,
    said: &str,
    busbw: f64,
    limits: Option<&CollectiveLimits>,
    (op, gpus): (Op, u32),
    action: &str,
) -> Finding {
    let chosen = limits.map(|l| l.limit(op, gpus)).unwrap_or(Chosen::NoLimit);
    let skipped = |why: String| Finding::new(check, Outcome::Skipped, Severity::Info, component.clone(), why);
    let f = match chosen {
        Chosen::Limit(SizedLimit { min: Some(min), reason, .. }) if busbw >= *min => Finding::new(
            check,
            Outcome::Pass,
            Severity::Info,
            component.clone(),
            format!("{said}, judged against {} ({reason})", chosen_figure(&chosen)),
        )
        .expected(format!(">= {min} GB/s")),
        Chosen::Limit(SizedLimit { min: Some(min), reason, .. }) => Finding::new(
            check,
            Outcome::Fail,
            Severity::Critical,
            component.clone(),
            format!("{said}, under {min} GB/s, judged against {} ({reason})", chosen_figure(&chosen)),
        )
        .expected(format!(">= {min} GB/s"))
        .action(action),
        Chosen::Limit(l) => skipped(format!("{said}; {} has no min", l.figure())),
        Chosen::TooFew { smallest } => {
            skipped(format!("{said}; no threshold for {gpus} GPUs (the spec's smallest is {smallest})"))
        }
        Chosen::NoLimit => skipped(format!("{said}; no threshold in the spec")),
    };
    f.actual(format!("{busbw:.1} GB/s"))
}

fn chosen_figure(c: &Chosen<'_>) -> String {
    match c {
        Chosen::Limit(l) => l.figure(),
        _ => String::new(),
    }
}

/// The findings of a collective over `members` (name, report): the bus bandwidth of each op at
/// its largest size against the spec's limit for the communicator's GPUs (no limit: `skipped`,
/// the figure reported), and a member whose own bus bandwidth there is under
/// `outlier_fraction` of the members' median.
pub fn judge(members: &[(&str, &RankReport)], limits: Option<&CollectiveLimits>) -> Vec<Finding> {
    let reports: Vec<&RankReport> = members.iter().map(|(_, r)| *r).collect();
    let figures = domain_figures(&reports);
    let mut out = Vec::new();
    let domain = Component { kind: "nvlink".into(), name: Some("NVLink domain".into()), ..Default::default() };
    for op in Op::ALL {
        let Some(largest) = figures.iter().filter(|f| f.op == op).max_by_key(|f| f.bytes) else { continue };
        let check = format!("burnin.collective.{}", op.as_str());
        let said = format!(
            "{} of {} over {} GPUs ({} ranks): {:.1} GB/s bus bandwidth",
            op.as_str(),
            human(largest.bytes),
            largest.gpus,
            largest.ranks,
            largest.busbw_gbps
        );
        out.push(against_limit(
            &check,
            domain.clone(),
            &said,
            largest.busbw_gbps,
            limits,
            (op, largest.gpus),
            "check the NVLink switch trays and cables of the domain (`kiln rack validate`), then rerun",
        ));
        out.extend(trays(members, limits, op));
    }
    out
}

/// Each member's own figure (`RankReport::local`, its GPUs alone) for `op`: judged against
/// the spec's limit for that many GPUs (`burnin.collective.<op>.tray`), and against the
/// members' median (`.outlier`). Members without one (a tray of one GPU, an older kiln) are
/// left out of both.
fn trays(members: &[(&str, &RankReport)], limits: Option<&CollectiveLimits>, op: Op) -> Vec<Finding> {
    let Some(bytes) = members.iter().flat_map(|(_, r)| &r.local).filter(|s| s.op == op).map(|s| s.bytes).max() else {
        return Vec::new();
    };
    let own: Vec<(&str, u32, f64)> = members
        .iter()
        .filter_map(|(n, r)| {
            r.local.iter().find(|s| s.op == op && s.bytes == bytes).map(|s| (*n, r.gpus, s.busbw_gbps))
        })
        .collect();
    let check = format!("burnin.collective.{}", op.as_str());
    let node = |name: &str| Component { kind: "node".into(), name: Some(name.to_string()), ..Default::default() };
    // Trays with a limit for their GPU count get a finding each; without one, the figures are
    // reported and one skipped finding says so for all of them (not one per tray of a rack).
    let judged =
        |gpus: u32| matches!(limits.map(|l| l.limit(op, gpus)), Some(Chosen::Limit(SizedLimit { min: Some(_), .. })));
    let mut out: Vec<Finding> = own
        .iter()
        .filter(|(_, gpus, _)| judged(*gpus))
        .map(|(name, gpus, busbw)| {
            let said = format!(
                "{name}'s {gpus} GPUs alone: {} of {} at {busbw:.1} GB/s bus bandwidth",
                op.as_str(),
                human(bytes)
            );
            against_limit(
                &format!("{check}.tray"),
                node(name),
                &said,
                *busbw,
                limits,
                (op, *gpus),
                &format!("inspect {name}'s GPUs and NVLink ports (`kiln validate`), then rerun"),
            )
        })
        .collect();
    let unjudged: Vec<&(&str, u32, f64)> = own.iter().filter(|(_, gpus, _)| !judged(*gpus)).collect();
    if let Some(lowest) = unjudged.iter().min_by(|a, b| a.2.total_cmp(&b.2)) {
        let gpus = lowest.1;
        let said = format!(
            "{} of {} over each tray's own GPUs, {} trays: lowest {:.1} GB/s bus bandwidth ({})",
            op.as_str(),
            human(bytes),
            unjudged.len(),
            lowest.2,
            lowest.0
        );
        let domain = Component { kind: "nvlink".into(), name: Some("NVLink domain".into()), ..Default::default() };
        out.push(against_limit(&format!("{check}.tray"), domain, &said, lowest.2, limits, (op, gpus), ""));
    }
    // A member far below its siblings, each measured alone.
    let fraction = limits.map(|l| l.outlier_fraction).unwrap_or(0.9);
    if own.len() >= 2 {
        let mut sorted: Vec<f64> = own.iter().map(|(_, _, b)| *b).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        for (name, _, busbw) in own.iter().filter(|(_, _, b)| *b < median * fraction) {
            out.push(
                Finding::new(
                    &format!("{check}.outlier"),
                    Outcome::Fail,
                    Severity::Warning,
                    node(name),
                    format!(
                        "{name}: {busbw:.1} GB/s at {} over its own GPUs, under {fraction} of the trays' median \
                         {median:.1} GB/s",
                        human(bytes)
                    ),
                )
                .expected(format!(">= {:.1} GB/s", median * fraction))
                .actual(format!("{busbw:.1} GB/s"))
                .action(format!("inspect {name}'s GPUs and NVLink ports (`kiln validate`), then rerun")),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_output_is_the_sum_or_the_ranks_chunk() {
        assert_eq!(f32::from_bits(expected_word(Op::AllReduce, 72, 0)), 2628.0);
        assert_eq!(f32::from_bits(expected_word(Op::AllGather, 72, 5)), 6.0);
        assert_eq!(input_word(Op::AllGather, 5), expected_word(Op::AllGather, 72, 5));
        // Small outputs are read whole; large ones at three places and every chunk's start.
        assert_eq!(check_ranges(Op::AllReduce, 100, 100, 1000), [(0, 100)]);
        let r = check_ranges(Op::AllGather, 8000, 1000, 300);
        assert_eq!(r.len(), 3 + 8);
        assert!(r.iter().all(|(s, l)| s + l <= 8000));
    }

    #[test]
    fn protocol_lines_round_trip_and_partial_lines_wait() {
        let hex = "ab".repeat(128);
        let text = format!(
            "noise\n{}\n{}\n{}\nkiln-rank: id=12",
            Said::Pgid(4242).line(),
            Said::Id(hex.clone()).line(),
            Said::Waiting.line()
        );
        assert_eq!(Said::all_in(text.as_bytes()), [Said::Pgid(4242), Said::Id(hex.clone()), Said::Waiting]);
        assert!(Said::all_in(b"kiln-rank: pgid=1").is_empty(), "a line without its newline is not read yet");
        assert!(Said::all_in(b"kiln-rank: pgid=1\nkiln-rank: id=zz\n").is_empty(), "pgid 1 and a short id are refused");
        assert_eq!(Reply::parse(&Reply::Id(hex.clone()).line()), Some(Reply::Id(hex)));
        assert_eq!(
            Reply::parse(&Reply::Abort("rank 0\non node01 failed".into()).line()),
            Some(Reply::Abort("rank 0 on node01 failed".into()))
        );
        assert_eq!(Reply::parse(""), None);
    }

    /// All-reduce at 1 MiB and 8 GiB over `gpus` GPUs, at 420 GB/s algorithm bandwidth times
    /// `scale`.
    fn sizes(gpus: u32, scale: f64, sizes: &[u64]) -> Vec<SizeResult> {
        sizes
            .iter()
            .map(|&bytes| {
                let seconds = bytes as f64 / 420e9 / scale;
                let (algbw, busbw) = Op::AllReduce.bandwidths(bytes, seconds, gpus);
                SizeResult {
                    op: Op::AllReduce,
                    bytes,
                    iterations: 5,
                    time_us: seconds * 1e6,
                    algbw_gbps: algbw,
                    busbw_gbps: busbw,
                    checked_words: 10,
                    wrong_words: 0,
                }
            })
            .collect()
    }

    /// Rank `rank` of two 4-GPU trays: its part of the domain's collective at `scale`, and
    /// its own GPUs alone at `local` (none: a rank that measured none).
    fn report_with(rank: u32, scale: f64, local: Option<f64>) -> RankReport {
        RankReport {
            schema_version: 1,
            kind: RANK_KIND.into(),
            hostname: format!("t{rank}"),
            rank,
            ranks: 2,
            gpus: 4,
            world: 8,
            verdict: Outcome::Pass,
            reason: None,
            nccl_version: Some("2.27.3".into()),
            results: sizes(8, scale, &[1 << 20, 8 << 30]),
            local: local.map(|l| sizes(4, l, &[8 << 30])).unwrap_or_default(),
            telemetry: Vec::new(),
            telemetry_note: None,
        }
    }

    fn report(rank: u32, scale: f64) -> RankReport {
        report_with(rank, scale, None)
    }

    fn named<'a>(f: &'a [Finding], check: &str, outcome: Outcome) -> Vec<&'a str> {
        f.iter()
            .filter(|f| f.check == check && f.outcome == outcome)
            .filter_map(|f| f.component.name.as_deref())
            .collect()
    }

    #[test]
    fn the_largest_size_is_judged_against_the_spec() {
        let limits = limits_by_size(&[(None, 630.0)]);
        let (a, b) = (report(0, 1.0), report(1, 1.0));
        let f = judge(&[("node01", &a), ("node02", &b)], Some(&limits));
        assert_eq!(f.len(), 1, "no local figures, no tray findings: {f:?}");
        assert_eq!(f[0].outcome, Outcome::Pass, "{f:?}");
        assert!(f[0].message.contains("8 GiB over 8 GPUs"), "{}", f[0].message);
        // A slow domain fails its figure.
        let (a, b) = (report(0, 0.5), report(1, 0.5));
        let f = judge(&[("node01", &a), ("node02", &b)], Some(&limits));
        assert_eq!(f[0].outcome, Outcome::Fail, "{f:?}");
        // Without a limit the figure is reported and the check skipped, never passed.
        let f = judge(&[("node01", &a)], None);
        assert_eq!(f[0].outcome, Outcome::Skipped);
        assert!(f[0].message.contains("no threshold"), "{}", f[0].message);
    }

    #[test]
    fn the_slow_tray_is_named_from_its_own_gpus_not_from_its_timing_in_the_domain() {
        // 4-GPU trays alone reach 630 GB/s bus bandwidth at scale 1; the tray entry's min is 510.
        let limits = limits_by_size(&[(Some(4), 510.0), (Some(8), 608.0)]);
        // node01's part of the domain collective timed slow (every rank waits for the slowest,
        // so that says nothing), while node02's own GPUs are at half speed.
        let (a, b, c) =
            (report_with(0, 0.6, Some(1.0)), report_with(1, 1.0, Some(0.5)), report_with(2, 1.0, Some(1.0)));
        let f = judge(&[("node01", &a), ("node02", &b), ("node03", &c)], Some(&limits));
        assert_eq!(named(&f, "burnin.collective.all_reduce.outlier", Outcome::Fail), ["node02"], "{f:#?}");
        assert_eq!(named(&f, "burnin.collective.all_reduce.tray", Outcome::Fail), ["node02"], "{f:#?}");
        assert_eq!(named(&f, "burnin.collective.all_reduce.tray", Outcome::Pass), ["node01", "node03"]);
        let tray = f.iter().find(|f| f.check.ends_with(".tray") && f.outcome == Outcome::Fail).expect("tray");
        assert!(
            tray.message.contains("node02's 4 GPUs alone") && tray.message.contains("judged against the 4-GPU figure"),
            "{}",
            tray.message
        );
        // The domain is judged on its own figure, against the 8-GPU entry.
        let d = f.iter().find(|f| f.check == "burnin.collective.all_reduce").expect("domain");
        assert!(d.message.contains("the 8-GPU figure"), "{}", d.message);
        // No limit for a tray's 4 GPUs: one skipped finding for all the trays, naming the
        // lowest, not one per tray; the outlier is still named.
        let domain_only = limits_by_size(&[(Some(8), 608.0)]);
        let (a, b, c) =
            (report_with(0, 1.0, Some(1.0)), report_with(1, 1.0, Some(0.5)), report_with(2, 1.0, Some(1.0)));
        let f = judge(&[("node01", &a), ("node02", &b), ("node03", &c)], Some(&domain_only));
        let tray: Vec<&Finding> = f.iter().filter(|f| f.check == "burnin.collective.all_reduce.tray").collect();
        assert_eq!(tray.len(), 1, "{f:#?}");
        assert_eq!((tray[0].outcome, tray[0].component.kind.as_str()), (Outcome::Skipped, "nvlink"));
        assert!(tray[0].message.contains("3 trays") && tray[0].message.contains("(node02)"), "{}", tray[0].message);
        assert!(tray[0].message.contains("no threshold for 4 GPUs"), "{}", tray[0].message);
        assert_eq!(named(&f, "burnin.collective.all_reduce.outlier", Outcome::Fail), ["node02"], "{f:#?}");
        // Equal trays: none is an outlier, however the domain timing differed per rank.
        let (a, b) = (report_with(0, 0.5, Some(1.0)), report_with(1, 1.0, Some(1.0)));
        let f = judge(&[("node01", &a), ("node02", &b)], Some(&limits));
        assert!(named(&f, "burnin.collective.all_reduce.outlier", Outcome::Fail).is_empty(), "{f:#?}");
        // A rank report of an older kiln, without `local`, still reads, and judges no tray.
        let mut old = serde_json::to_value(report(0, 1.0)).expect("json");
        assert!(old.get("local").is_none(), "an empty local is not written");
        old.as_object_mut().map(|o| o.remove("local"));
        let old: RankReport = serde_json::from_value(old).expect("a report without local");
        assert!(old.local.is_empty());
    }

    /// Limits as the GB200 tray spec writes them: `(gpus, min)` per all-reduce entry.
    fn limits_by_size(entries: &[(Option<u32>, f64)]) -> CollectiveLimits {
        CollectiveLimits {
            sizes_mib: vec![1, 8192],
            iterations: 5,
            warmup: 1,
            outlier_fraction: 0.9,
            all_reduce: entries
                .iter()
                .map(|(gpus, min)| SizedLimit {
                    gpus: *gpus,
                    expected: Some(min / 0.75),
                    min: Some(*min),
                    reason: format!("published figure for {gpus:?} GPUs"),
                })
                .collect(),
            all_gather: Vec::new(),
        }
    }

    /// A domain of `ranks` ranks of `gpus` GPUs each, every rank at `busbw` GB/s at 8 GiB.
    fn domain(ranks: u32, gpus: u32, busbw: f64) -> Vec<RankReport> {
        (0..ranks)
            .map(|rank| {
                let mut r = report(rank, 1.0);
                (r.ranks, r.gpus, r.world) = (ranks, gpus, ranks * gpus);
                let factor = Op::AllReduce.bus_factor(ranks * gpus);
                for s in &mut r.results {
                    s.busbw_gbps = busbw;
                    s.algbw_gbps = busbw / factor;
                    s.time_us = s.bytes as f64 / (s.algbw_gbps * 1e9) * 1e6;
                }
                r
            })
            .collect()
    }

    fn judged(reports: &[RankReport], limits: &CollectiveLimits) -> Vec<Finding> {
        let names: Vec<String> = (0..reports.len()).map(|i| format!("tray{i:02}")).collect();
        let members: Vec<(&str, &RankReport)> = names.iter().map(String::as_str).zip(reports).collect();
        judge(&members, Some(limits))
    }

    #[test]
    fn each_communicator_size_is_judged_against_the_figure_for_its_gpus() {
        let gb200 = limits_by_size(&[(Some(4), 510.0), (Some(8), 608.0), (Some(72), 630.0)]);
        // A partial domain, 9 trays of 4: the 8-GPU figure, not the 72-GPU one. 620 GB/s would
        // fail against 630.
        let f = judged(&domain(9, 4, 620.0), &gb200);
        let d = f.iter().find(|f| f.check == "burnin.collective.all_reduce").expect("domain finding");
        assert_eq!(d.outcome, Outcome::Pass, "{d:?}");
        assert!(
            d.message.contains("over 36 GPUs") && d.message.contains("judged against the 8-GPU figure"),
            "{}",
            d.message
        );
        // The whole domain: the 72-GPU figure, and 620 is under its 630.
        let f = judged(&domain(18, 4, 620.0), &gb200);
        assert_eq!(f[0].outcome, Outcome::Fail, "{:?}", f[0]);
        assert!(f[0].message.contains("judged against the 72-GPU figure"), "{}", f[0].message);
        // One tray of 4: the 4-GPU figure.
        let f = judged(&domain(1, 4, 520.0), &gb200);
        assert_eq!(f[0].outcome, Outcome::Pass, "{:?}", f[0]);
        assert!(f[0].message.contains("the 4-GPU figure"), "{}", f[0].message);
        // Two GPUs: smaller than any entry, so no threshold, never a pass.
        let f = judged(&domain(1, 2, 520.0), &gb200);
        assert_eq!(f[0].outcome, Outcome::Skipped, "{:?}", f[0]);
        assert!(f[0].message.contains("no threshold for 2 GPUs (the spec's smallest is 4)"), "{}", f[0].message);
        // An entry without `gpus` is the fallback below the sized ones.
        let with_any = limits_by_size(&[(None, 100.0), (Some(72), 630.0)]);
        let f = judged(&domain(1, 2, 150.0), &with_any);
        assert_eq!(f[0].outcome, Outcome::Pass, "{:?}", f[0]);
        assert!(f[0].message.contains("the figure for any GPU count"), "{}", f[0].message);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(8 << 30), "8 GiB");
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(1000), "1000 B");
    }
}
