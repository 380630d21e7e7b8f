//! The collective burn-in: one rank of an NCCL all-reduce and all-gather across every GPU of an
//! NVLink domain (`kiln nccl-rank`, run by `kiln rack burnin` on each tray) or of one node, its
//! bus bandwidth per message size as nccl-tests computes it, the output verified, and the
//! line protocol by which the controller relays rank 0's NCCL unique id to the other ranks
//! over their SSH sessions (docs/burnin.md, "Collective").

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use super::report::GpuTelemetry;
use crate::checks::burnin_spec::CollectiveLimits;
use crate::checks::{Component, Finding, Outcome, Severity};
use crate::exit;

/// The prefix of every protocol line a rank writes on stderr.
pub const MARKER: &str = "kiln-rank:";

/// The document kind of a rank's JSON.
pub const RANK_KIND: &str = "kiln.collective-rank";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Op {
    AllReduce,
    AllGather,
}

impl Op {
    pub const ALL: [Op; 2] = [Op::AllReduce, Op::AllGather];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::AllReduce => "all_reduce",
            Op::AllGather => "all_gather",
        }
    }

    /// nccl-tests' bus-bandwidth factor for `n` ranks: 2(n-1)/n for all-reduce, (n-1)/n for
    /// all-gather (its doc/PERFORMANCE.md), so figures compare across rank counts.
    pub fn bus_factor(self, n: u32) -> f64 {
        let n = f64::from(n.max(1));
        match self {
            Op::AllReduce => 2.0 * (n - 1.0) / n,
            Op::AllGather => (n - 1.0) / n,
        }
    }

    /// Algorithm bandwidth (bytes / time) and bus bandwidth, GB/s (10^9 bytes), for `bytes`
    /// (the all-reduce buffer, or the whole all-gather output, as nccl-tests counts) moved in
    /// `seconds` across `n` ranks.
    pub fn bandwidths(self, bytes: u64, seconds: f64, n: u32) -> (f64, f64) {
        if seconds <= 0.0 || !seconds.is_finite() {
            return (0.0, 0.0);
        }
        let algbw = bytes as f64 / seconds / 1e9;
        (algbw, algbw * self.bus_factor(n))
    }
}

/// The 32-bit word rank `rank` fills its input with: the float `rank + 1`.
pub fn input_word(_op: Op, rank: usize) -> u32 {
    (rank as f32 + 1.0).to_bits()
}

/// The word every output position must hold: the sum over all ranks for an all-reduce (exact in
/// f32 for any real domain: 72 ranks sum to 2628), rank `chunk`'s input for chunk `chunk` of an
/// all-gather.
pub fn expected_word(op: Op, world: usize, chunk: usize) -> u32 {
    match op {
        Op::AllReduce => ((world * (world + 1) / 2) as f32).to_bits(),
        Op::AllGather => input_word(op, chunk),
    }
}

/// Which word ranges of an output of `words` words to read back: all of it up to `sample`
/// words, else the first, middle and last `sample / 3` words, and for an all-gather the first
/// words of every rank's chunk (`chunk` words each), so each rank's part is seen.
pub fn check_ranges(op: Op, words: usize, chunk: usize, sample: usize) -> Vec<(usize, usize)> {
    if words <= sample {
        return vec![(0, words)];
    }
    let part = (sample / 3).max(1);
    let mut out = vec![(0, part), (words / 2 - part / 2, part), (words - part, part)];
    if op == Op::AllGather && chunk > 0 {
        let mut at = 0;
        while at < words {
            out.push((at, chunk.min(64)));
            at += chunk;
        }
    }
    out
}

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
        return report.ended(Outcome::Skipped, "no NCCL (libnccl.so.2 could not be loaded)");
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
    measure_all(report, opts, count, id.as_ref())
}

fn measure_all(
    mut report: RankReport,
    opts: &RankOptions,
    count: u32,
    id: Option<&super::nccl::UniqueId>,
) -> RankReport {
    let mut gpus = Vec::new();
    for ordinal in 0..count as i32 {
        match super::cuda::Gpu::open(ordinal) {
            Ok(g) => gpus.push(g),
            Err(e) => return report.ended(Outcome::Error, format!("opening GPU {ordinal}: {e}")),
        }
    }
    let first_rank = (opts.rank * count) as usize;
    let comms = match id {
        Some(id) => super::nccl::Comms::join(&gpus, first_rank, report.world as usize, id),
        None => super::nccl::Comms::all(&gpus),
    };
    let comms = match comms {
        Ok(c) => c,
        Err(e) => return report.ended(Outcome::Error, e),
    };
    for op in &opts.ops {
        for &bytes in &opts.sizes {
            match super::nccl::measure(&comms, first_rank, *op, bytes, opts.warmup, opts.iterations) {
                Ok(m) => {
                    let (algbw, busbw) = op.bandwidths(bytes, m.seconds, report.world);
                    report.results.push(SizeResult {
                        op: *op,
                        bytes,
                        iterations: opts.iterations.max(1),
                        time_us: m.seconds * 1e6,
                        algbw_gbps: algbw,
                        busbw_gbps: busbw,
                        checked_words: m.checked_words,
                        wrong_words: m.wrong_words,
                    });
                }
                Err(e) => return report.ended(Outcome::Error, format!("{} of {}: {e}", op.as_str(), human(bytes))),
            }
        }
    }
    let wrong: u64 = report.results.iter().map(|r| r.wrong_words).sum();
    if wrong > 0 {
        report.ended(Outcome::Fail, format!("{wrong} output words read back wrong"))
    } else {
        report.verdict = Outcome::Pass;
        report
    }
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

/// The findings of a collective over `members` (name, report): the bus bandwidth of each op at
/// its largest size against the spec's limit (no limit: `skipped`, the figure reported), and a
/// member whose own bus bandwidth there is under `outlier_fraction` of the members' median.
pub fn judge(members: &[(&str, &RankReport)], limits: Option<&CollectiveLimits>) -> Vec<Finding> {
    let reports: Vec<&RankReport> = members.iter().map(|(_, r)| *r).collect();
    let figures = domain_figures(&reports);
    let mut out = Vec::new();
    let domain = Component { kind: "nvlink".into(), name: Some("NVLink domain".into()), ..Default::default() };
    for op in Op::ALL {
        let Some(largest) = figures.iter().filter(|f| f.op == op).max_by_key(|f| f.bytes) else { continue };
        let check = format!("burnin.collective.{}", op.as_str());
        let limit = limits.and_then(|l| l.limit(op));
        let said = format!(
            "{} of {} over {} GPUs ({} ranks): {:.1} GB/s bus bandwidth",
            op.as_str(),
            human(largest.bytes),
            largest.gpus,
            largest.ranks,
            largest.busbw_gbps
        );
        let f = match limit.and_then(|l| l.min.map(|m| (m, l))) {
            Some((min, l)) if largest.busbw_gbps >= min => {
                Finding::new(&check, Outcome::Pass, Severity::Info, domain.clone(), format!("{said} ({})", l.reason))
                    .expected(format!(">= {min} GB/s"))
            }
            Some((min, l)) => Finding::new(
                &check,
                Outcome::Fail,
                Severity::Critical,
                domain.clone(),
                format!("{said}, under {min} GB/s ({})", l.reason),
            )
            .expected(format!(">= {min} GB/s"))
            .action("check the NVLink switch trays and cables of the domain (`kiln rack validate`), then rerun"),
            None => Finding::new(
                &check,
                Outcome::Skipped,
                Severity::Info,
                domain.clone(),
                format!("{said}; no threshold in the spec"),
            ),
        };
        out.push(f.actual(format!("{:.1} GB/s", largest.busbw_gbps)));
        // A member far below its siblings at the same size.
        let own: Vec<(&str, f64)> = members
            .iter()
            .filter_map(|(n, r)| {
                r.results.iter().find(|s| s.op == op && s.bytes == largest.bytes).map(|s| (*n, s.busbw_gbps))
            })
            .collect();
        let fraction = limits.map(|l| l.outlier_fraction).unwrap_or(0.9);
        if own.len() >= 2 {
            let mut sorted: Vec<f64> = own.iter().map(|(_, b)| *b).collect();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            for (name, busbw) in &own {
                if *busbw < median * fraction {
                    out.push(
                        Finding::new(
                            &format!("{check}.outlier"),
                            Outcome::Fail,
                            Severity::Warning,
                            Component { kind: "node".into(), name: Some((*name).to_string()), ..Default::default() },
                            format!(
                                "{name}: {busbw:.1} GB/s at {}, under {fraction} of the median {median:.1} GB/s",
                                human(largest.bytes)
                            ),
                        )
                        .expected(format!(">= {:.1} GB/s", median * fraction))
                        .actual(format!("{busbw:.1} GB/s"))
                        .action(format!("inspect {name}'s GPUs and NVLink ports (`kiln validate`), then rerun")),
                    );
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_bandwidth_is_computed_as_nccl_tests_does() {
        // 8 GiB all-reduce over 72 GPUs in 17.4 ms: algbw 493.7 GB/s, busbw x 2*71/72.
        let (alg, bus) = Op::AllReduce.bandwidths(8 << 30, 0.0174, 72);
        assert!((alg - 493.7).abs() < 0.1, "{alg}");
        assert!((bus - alg * 142.0 / 72.0).abs() < 1e-9, "{bus}");
        let (alg, bus) = Op::AllGather.bandwidths(1 << 30, 0.01, 8);
        assert!((bus - alg * 7.0 / 8.0).abs() < 1e-9);
        assert_eq!(Op::AllReduce.bus_factor(1), 0.0);
        assert_eq!(Op::AllReduce.bandwidths(1 << 20, 0.0, 8), (0.0, 0.0));
    }

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

    fn report(rank: u32, busbw_scale: f64) -> RankReport {
        let results = [1u64 << 20, 8 << 30]
            .iter()
            .map(|&bytes| {
                let seconds = bytes as f64 / 420e9 / busbw_scale;
                let (algbw, busbw) = Op::AllReduce.bandwidths(bytes, seconds, 8);
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
            .collect();
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
            results,
            telemetry: Vec::new(),
            telemetry_note: None,
        }
    }

    #[test]
    fn the_largest_size_is_judged_against_the_spec_and_a_slow_tray_is_named() {
        let limits = CollectiveLimits {
            sizes_mib: vec![1, 8192],
            iterations: 5,
            warmup: 1,
            outlier_fraction: 0.9,
            all_reduce: Some(crate::checks::burnin_spec::Limit {
                expected: Some(840.0),
                min: Some(630.0),
                reason: "published".into(),
            }),
            all_gather: None,
        };
        let (a, b) = (report(0, 1.0), report(1, 1.0));
        let f = judge(&[("node01", &a), ("node02", &b)], Some(&limits));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].outcome, Outcome::Pass, "{f:?}");
        assert!(f[0].message.contains("8 GiB over 8 GPUs"), "{}", f[0].message);
        // One tray at half speed drags the domain's mean under the limit and is named.
        let (a, b, c) = (report(0, 1.0), report(1, 0.5), report(2, 1.0));
        let f = judge(&[("node01", &a), ("node02", &b), ("node03", &c)], Some(&limits));
        assert_eq!(f[0].outcome, Outcome::Fail, "{f:?}");
        let outliers: Vec<&str> =
            f.iter().filter(|f| f.check.ends_with(".outlier")).filter_map(|f| f.component.name.as_deref()).collect();
        assert_eq!(outliers, ["node02"]);
        // Without a limit the figure is reported and the check skipped, never passed.
        let f = judge(&[("node01", &a)], None);
        assert_eq!(f[0].outcome, Outcome::Skipped);
        assert!(f[0].message.contains("no threshold"), "{}", f[0].message);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(8 << 30), "8 GiB");
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(1000), "1000 B");
    }
}
