//! What a burn-in run was asked to do: tests, GPUs, duration, GEMM precision, fault injection.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One burn-in test, in the words the command line uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestKind {
    Gemm,
    Memtest,
    Hbm,
    HostLink,
    P2p,
    /// NCCL all-reduce and all-gather over the node's GPUs in one process.
    Collective,
    Host,
}

impl TestKind {
    pub const ALL: [TestKind; 7] = [
        TestKind::Gemm,
        TestKind::Memtest,
        TestKind::Hbm,
        TestKind::HostLink,
        TestKind::P2p,
        TestKind::Collective,
        TestKind::Host,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::Gemm => "gemm",
            TestKind::Memtest => "memtest",
            TestKind::Hbm => "hbm",
            TestKind::HostLink => "host-link",
            TestKind::P2p => "p2p",
            TestKind::Collective => "collective",
            TestKind::Host => "host",
        }
    }

    /// Whether the test needs the NVIDIA driver and at least one GPU.
    pub fn needs_gpu(self) -> bool {
        !matches!(self, TestKind::Host)
    }

    pub fn parse(s: &str) -> Option<TestKind> {
        TestKind::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for TestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Element type of the GEMM stress. bf16 runs on the tensor cores at full
/// power (inputs bf16, accumulation and output fp32); fp32 and fp64 are there
/// to stress the other units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GemmDtype {
    Bf16,
    Fp32,
    Fp64,
}

impl GemmDtype {
    pub fn as_str(self) -> &'static str {
        match self {
            GemmDtype::Bf16 => "bf16",
            GemmDtype::Fp32 => "fp32",
            GemmDtype::Fp64 => "fp64",
        }
    }

    /// Bytes of one input element.
    pub fn input_bytes(self) -> usize {
        match self {
            GemmDtype::Bf16 => 2,
            GemmDtype::Fp32 => 4,
            GemmDtype::Fp64 => 8,
        }
    }

    /// Bytes of one output element (bf16 products are written as fp32).
    pub fn output_bytes(self) -> usize {
        match self {
            GemmDtype::Bf16 | GemmDtype::Fp32 => 4,
            GemmDtype::Fp64 => 8,
        }
    }
}

/// Which GEMM implementation to use: cuBLASLt when present (`auto`), or the
/// simple kernel kiln ships (forced, to test the fallback on a GPU machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GemmEngine {
    Auto,
    Cublaslt,
    Kernel,
}

/// A fault planted on purpose to prove that the checks catch it. Test-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InjectFault {
    /// Flip one bit of one GEMM output element after the product is computed.
    GemmBitflip,
    /// Overwrite one memtest word between a pattern's write and its verify.
    MemtestCorrupt,
}

impl InjectFault {
    pub fn parse(s: &str) -> Option<InjectFault> {
        match s {
            "gemm-bitflip" => Some(InjectFault::GemmBitflip),
            "memtest-corrupt" => Some(InjectFault::MemtestCorrupt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InjectFault::GemmBitflip => "gemm-bitflip",
            InjectFault::MemtestCorrupt => "memtest-corrupt",
        }
    }
}

/// Which GPUs to burn in, by NVML index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GpuSelection {
    All,
    Indices(Vec<u32>),
}

impl GpuSelection {
    pub fn includes(&self, index: u32) -> bool {
        match self {
            GpuSelection::All => true,
            GpuSelection::Indices(v) => v.contains(&index),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("bad duration {0:?}: expected a number with a unit (500ms, 30s, 5m, 1h)")]
    Duration(String),
    #[error("duration {0:?} is longer than kiln burns in (at most 168h)")]
    DurationTooLong(String),
    #[error("unknown test {0:?}: expected gemm, memtest, hbm, host-link, p2p, collective, host or all")]
    Test(String),
    #[error("bad GPU list {0:?}: expected NVML indices like 0,1,3 or all")]
    Gpus(String),
    #[error("unknown fault {0:?}: expected gemm-bitflip or memtest-corrupt")]
    Fault(String),
    #[error("empty test list")]
    NoTests,
}

/// Parses a duration: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
/// The longest burn-in kiln runs: a week (longer is a typo, and would
/// overflow the clocks a run is timed with).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn parse_duration(s: &str) -> Result<Duration, OptionsError> {
    let t = s.trim();
    let bad = || OptionsError::Duration(s.to_string());
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(bad());
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(OptionsError::DurationTooLong(s.to_string()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Whether `s` (a `--tests` list) names `t` itself, not only through `all`.
pub fn names(s: &str, t: TestKind) -> bool {
    s.split(',').map(str::trim).any(|p| p == t.as_str())
}

/// Parses `gemm,hbm` or `all` into a sorted, de-duplicated list; `-NAME` leaves a test out
/// (`all,-collective`: every test but the collective), whatever its place in the list.
pub fn parse_tests(s: &str) -> Result<Vec<TestKind>, OptionsError> {
    let mut out = Vec::new();
    let mut without = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let test = |name: &str| TestKind::parse(name).ok_or_else(|| OptionsError::Test(name.to_string()));
        if part == "all" {
            out.extend(TestKind::ALL);
        } else if let Some(name) = part.strip_prefix('-') {
            without.push(test(name.trim())?);
        } else {
            out.push(test(part)?);
        }
    }
    out.retain(|t| !without.contains(t));
    out.sort();
    out.dedup();
    if out.is_empty() {
        return Err(OptionsError::NoTests);
    }
    Ok(out)
}

/// Parses `0,1,3` or `all`.
pub fn parse_gpus(s: &str) -> Result<GpuSelection, OptionsError> {
    let t = s.trim();
    if t == "all" {
        return Ok(GpuSelection::All);
    }
    let mut v = Vec::new();
    for part in t.split(',').map(str::trim) {
        v.push(part.parse::<u32>().map_err(|_| OptionsError::Gpus(s.to_string()))?);
    }
    v.sort_unstable();
    v.dedup();
    Ok(GpuSelection::Indices(v))
}

/// Everything a run needs to know, parsed and checked.
#[derive(Debug, Clone)]
pub struct BurninOptions {
    /// How long each stress test (gemm, memtest, host) runs.
    pub duration: Duration,
    pub tests: Vec<TestKind>,
    pub gpus: GpuSelection,
    pub gemm_dtype: GemmDtype,
    pub gemm_engine: GemmEngine,
    /// Matrix size (m = n = k); `None` picks the default for the dtype.
    pub gemm_size: Option<usize>,
    /// Telemetry sampling period.
    pub sample_period: Duration,
    pub inject_fault: Option<InjectFault>,
    /// `--tests` named the collective itself: it runs (with default sizes, its figures
    /// unjudged) even where the platform spec has no `[burnin.collective]`. Through `all` it
    /// runs only where the spec has one.
    pub collective_named: bool,
}

impl BurninOptions {
    pub fn wants(&self, t: TestKind) -> bool {
        self.tests.contains(&t)
    }

    pub fn wants_gpu_tests(&self) -> bool {
        self.tests.iter().any(|t| t.needs_gpu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_reject_garbage() {
        assert_eq!(parse_duration("10s").expect("10s"), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5m").expect("1.5m"), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").expect("250ms"), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").expect("2h"), Duration::from_secs(7200));
        assert_eq!(parse_duration("7").expect("bare"), Duration::from_secs(7));
        for bad in ["", "s", "10x", "-3s", "0s", "1e999"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn test_lists_expand_all_and_reject_unknown_names() {
        assert_eq!(parse_tests("all").expect("all").len(), 7);
        assert!(parse_tests("all").expect("all").contains(&TestKind::Collective));
        assert!(names("gemm, collective", TestKind::Collective) && !names("all", TestKind::Collective));
        assert_eq!(parse_tests("hbm, gemm,hbm").expect("list"), vec![TestKind::Gemm, TestKind::Hbm]);
        assert_eq!(parse_tests("host-link").expect("one"), vec![TestKind::HostLink]);
        assert_eq!(parse_tests("gemm,nope"), Err(OptionsError::Test("nope".into())));
        assert_eq!(parse_tests(" , "), Err(OptionsError::NoTests));
        // A test left out, wherever it stands; leaving out all of them is no test.
        let but = parse_tests("all,-collective").expect("all but one");
        assert_eq!(but.len(), 6);
        assert!(!but.contains(&TestKind::Collective));
        assert_eq!(parse_tests("-hbm,gemm,hbm").expect("list"), vec![TestKind::Gemm]);
        assert_eq!(parse_tests("gemm,-nope"), Err(OptionsError::Test("nope".into())));
        assert_eq!(parse_tests("gemm,-gemm"), Err(OptionsError::NoTests));
    }

    #[test]
    fn gpu_lists_parse_indices() {
        assert_eq!(parse_gpus("all").expect("all"), GpuSelection::All);
        assert_eq!(parse_gpus("3,1,1").expect("list"), GpuSelection::Indices(vec![1, 3]));
        assert!(parse_gpus("1,x").is_err());
        assert!(!GpuSelection::Indices(vec![1]).includes(0));
    }
}
