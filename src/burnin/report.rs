//! The burn-in report: results (figures with units and thresholds), telemetry samples and findings.
//!
//! This is the JSON `kiln burnin --json` prints (`"kind": "kiln.burnin"`, see
//! docs/burnin.md) and what the inventory records. Bump `REPORT_VERSION` on
//! any change a reader could notice.

use serde::{Deserialize, Serialize};

use super::options::{GemmDtype, TestKind};
use crate::checks::{Component, Finding, Verdict};
use crate::model::PciAddress;
pub use crate::model::{HealthCounters, Sample, Watch, XidEvent};

pub const REPORT_KIND: &str = "kiln.burnin";
pub const REPORT_VERSION: u32 = 2;

/// Who a GPU is, in the words a technician uses to find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuIdentity {
    /// NVML index (PCI bus order).
    pub index: u32,
    /// PCI address, written in sysfs form (`0000:1b:00.0`).
    pub pci_address: PciAddress,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// NUMA node the GPU hangs off, when the kernel knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<u32>,
    /// Where it sits, as validate names it: the PCI slot, or NVML's NVL72 tray position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

impl GpuIdentity {
    pub fn component(&self) -> Component {
        Component {
            kind: "gpu".into(),
            address: Some(self.pci_address.to_string()),
            gpu_index: Some(self.index),
            serial: self.serial.clone(),
            slot: self.slot.clone(),
            name: self.name.clone(),
        }
    }

    /// `GPU 2 (serial 1652...) at 0000:1b:00.0`: how findings name a GPU.
    pub fn describe(&self) -> String {
        match &self.serial {
            Some(s) => format!("GPU {} (serial {}) at {}", self.index, s, self.pci_address),
            None => format!("GPU {} at {}", self.index, self.pci_address),
        }
    }
}

/// Whether the GPU side of the run could happen at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GpuAccess {
    Available {
        driver_version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cuda_driver_version: Option<i32>,
        gpus: Vec<GpuIdentity>,
        /// Which CUDA libraries were found (`libcublasLt`, `libnvrtc`).
        libraries: CudaLibraries,
    },
    /// A capture replayed with `--root`: its GPUs were judged from the
    /// inspection and recorded telemetry; no kernel ran.
    Replayed { driver_version: String, gpus: Vec<GpuIdentity> },
    /// No driver, no GPU, or no usable CUDA: `reason` says which.
    Unavailable { reason: String },
    /// No GPU test was asked for.
    NotRequested,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CudaLibraries {
    pub driver: bool,
    pub nvrtc: bool,
    pub cublaslt: bool,
}

/// How a test went, before judging: it ran, it was skipped, or it broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TestStatus {
    Ran,
    /// Did not run. `applicable: false` means the test has no meaning here
    /// (p2p with one GPU); `true` means it should have run and could not
    /// (no driver, no stress-ng), so the run is incomplete.
    Skipped {
        reason: String,
        applicable: bool,
    },
    /// kiln could not run or finish the test (a CUDA call failed): not a
    /// verdict on the hardware, but not a pass either.
    Error {
        message: String,
    },
}

/// A measured number with its unit and the threshold it is judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// `tflops`, `copy_kernel`, `h2d_alone`, `p2p`, `mismatches`, ...
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// The far GPU for pairwise figures (p2p).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_gpu: Option<u32>,
    /// The lowest passing value, when the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// What a healthy part does (the reference the threshold derives from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// Why the threshold is what it is (source of the number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_reason: Option<String>,
    /// The individual samples the value is the median of, when it is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Figure {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            peer_gpu: None,
            min: None,
            expected: None,
            threshold_reason: None,
            samples: Vec::new(),
        }
    }

    pub fn with_samples(mut self, samples: Vec<f64>) -> Self {
        self.samples = samples;
        self
    }

    pub fn with_peer(mut self, peer: u32) -> Self {
        self.peer_gpu = Some(peer);
        self
    }
}

/// One wrong value a test found in data it wrote or copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataError {
    /// What was running: `walking-ones`, `iteration 7`, `h2d copy`.
    pub phase: String,
    /// Where, in words: `element 1234 (row 210, col 0)`, `offset 0x1f00`.
    pub location: String,
    /// Device virtual address of the word, when it is device memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_address: Option<String>,
    /// Byte offset from the start of the buffer.
    pub offset: u64,
    pub expected: String,
    pub actual: String,
}

/// One test on one GPU (or on the host, or the p2p matrix from one GPU).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    pub test: TestKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuIdentity>,
    #[serde(flatten)]
    pub status: TestStatus,
    /// When the test started, milliseconds since the Unix epoch (0 if it never started).
    #[serde(default)]
    pub started_unix_ms: i64,
    /// Seconds the test took.
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub figures: Vec<Figure>,
    /// Count of wrong values found (all of them, not only those listed).
    #[serde(default)]
    pub data_error_count: u64,
    /// The first wrong values found, with their locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_errors: Vec<DataError>,
    /// Free-form facts worth keeping: GEMM engine and shape, bytes covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The collective test: which op, message size and communicator this result measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective: Option<CollectiveSize>,
}

/// One op at one size of the node's collective (`TestKind::Collective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectiveSize {
    pub op: crate::checks::collective_op::Op,
    /// The all-reduce buffer, or the all-gather's whole output (nccl-tests' size).
    pub bytes: u64,
    /// GPUs in the communicator.
    pub gpus: u32,
    pub iterations: u32,
}

impl TestResult {
    pub fn ran(test: TestKind, gpu: Option<GpuIdentity>) -> Self {
        TestResult {
            test,
            gpu,
            status: TestStatus::Ran,
            started_unix_ms: 0,
            seconds: 0.0,
            figures: Vec::new(),
            data_error_count: 0,
            data_errors: Vec::new(),
            notes: Vec::new(),
            collective: None,
        }
    }

    pub fn skipped(test: TestKind, gpu: Option<GpuIdentity>, reason: impl Into<String>, applicable: bool) -> Self {
        TestResult { status: TestStatus::Skipped { reason: reason.into(), applicable }, ..TestResult::ran(test, gpu) }
    }

    pub fn error(test: TestKind, gpu: Option<GpuIdentity>, message: impl Into<String>) -> Self {
        TestResult { status: TestStatus::Error { message: message.into() }, ..TestResult::ran(test, gpu) }
    }

    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

/// Everything NVML said about one GPU during the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuTelemetry {
    pub gpu: GpuIdentity,
    pub before: HealthCounters,
    pub after: HealthCounters,
    pub samples: Vec<Sample>,
    pub xids: Vec<XidEvent>,
    /// Whether Xid events were watched; `None` with the reason when not.
    pub xid_watch: Watch,
    /// Power limit enforced during the run, watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w: Option<f64>,
    /// Queries that failed (other than "not supported"), as `query: error`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurninReport {
    /// Always `kiln.burnin`.
    pub kind: String,
    /// `REPORT_VERSION`. Printed as `schema_version`, like every kiln document; reports
    /// written before that said `version`, which is still read.
    #[serde(rename = "schema_version", alias = "version")]
    pub version: u32,
    pub kiln_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    /// Seconds each stress test was asked to run.
    pub duration_s: f64,
    pub tests_requested: Vec<TestKind>,
    pub gemm_dtype: GemmDtype,
    /// Threshold table used, and how it was chosen.
    pub platform: String,
    pub platform_source: String,
    pub gpu_access: GpuAccess,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject_fault: Option<String>,
    pub results: Vec<TestResult>,
    pub telemetry: Vec<GpuTelemetry>,
    pub findings: Vec<Finding>,
    pub verdict: Verdict,
    /// True when a requested test could not run (no driver, no GPU, no
    /// stress-ng): the run was incomplete and must not read as a pass.
    pub incomplete: bool,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
