//! NVML telemetry during the burn-in: GPU identities, health counters, periodic samples and Xid events.
//!
//! This is the live backend; the judging of what it collects is pure and
//! lives in `judge`. A query NVML does not support is left empty (`None`),
//! never read as healthy; any other failure is kept as a problem on the GPU.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use super::nvml_raw::{self, Raw};
use super::report::{GpuIdentity, HealthCounters, Sample, Watch, XidEvent};
use crate::model::FabricInfo;

/// NVML has at most this many NVLinks per GPU (NVML_NVLINK_MAX_LINKS).
const MAX_LINKS: u32 = 18;

/// Opens NVML. The unversioned `libnvidia-ml.so` is a development link that
/// many driver installs lack, so the versioned name is tried first.
pub fn open() -> Result<Nvml, NvmlError> {
    match Nvml::builder().lib_path(std::ffi::OsStr::new("libnvidia-ml.so.1")).init() {
        Ok(n) => Ok(n),
        Err(_) => Nvml::init(),
    }
}

/// Whether an NVML init error means "there is no driver here" (skip) rather
/// than "the driver is broken" (error).
pub fn means_no_driver(e: &NvmlError) -> bool {
    matches!(e, NvmlError::LibloadingError(_) | NvmlError::DriverNotLoaded | NvmlError::LibraryNotFound)
}

/// A GPU as NVML lists it.
#[derive(Debug, Clone)]
pub struct NvmlGpu {
    pub identity: GpuIdentity,
    /// `10de:2330`.
    pub pci_id: String,
    pub power_limit_w: Option<f64>,
}

/// Lists every GPU. A GPU whose PCI address cannot be read cannot be matched
/// to CUDA or found by a technician: it is reported as a problem instead.
pub fn list_gpus(nvml: &Nvml) -> Result<(Vec<NvmlGpu>, Vec<String>), NvmlError> {
    let count = nvml.device_count()?;
    let mut gpus = Vec::new();
    let mut problems = Vec::new();
    for index in 0..count {
        let dev = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("GPU {index}: opening it in NVML: {e}"));
                continue;
            }
        };
        let pci = match dev.pci_info() {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("GPU {index}: reading its PCI address: {e}"));
                continue;
            }
        };
        gpus.push(NvmlGpu {
            identity: GpuIdentity {
                index,
                pci_address: format!("{:04x}:{:02x}:{:02x}.0", pci.domain, pci.bus, pci.device),
                serial: dev.serial().ok().filter(|s| !s.trim().is_empty()),
                uuid: dev.uuid().ok(),
                name: dev.name().ok(),
                numa_node: None,
            },
            pci_id: format!("{:04x}:{:04x}", pci.pci_device_id & 0xffff, pci.pci_device_id >> 16),
            power_limit_w: dev.enforced_power_limit().ok().map(|mw| f64::from(mw) / 1000.0),
        });
    }
    Ok((gpus, problems))
}

/// Reads one value, keeping failures other than "not supported" as problems
/// (each kind once).
struct Reader<'p> {
    problems: &'p mut Vec<String>,
    seen: BTreeSet<&'static str>,
}

impl Reader<'_> {
    fn get<T>(&mut self, what: &'static str, r: Result<T, NvmlError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(NvmlError::NotSupported) | Err(NvmlError::FunctionNotFound) => None,
            Err(e) => {
                if self.seen.insert(what) {
                    self.problems.push(format!("{what}: {e}"));
                }
                None
            }
        }
    }
}

/// Reads the counters judged before and after the run.
pub fn counters(nvml: &Nvml, dev: &Device, problems: &mut Vec<String>) -> HealthCounters {
    let mut r = Reader { problems, seen: BTreeSet::new() };
    let mut c = HealthCounters {
        ecc_volatile_uncorrected: r.get(
            "volatile uncorrected ECC count",
            dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
        ),
        ecc_volatile_corrected: r
            .get("volatile corrected ECC count", dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)),
        pcie_replay: r.get("PCIe replay counter", dev.pcie_replay_counter()).map(u64::from),
        ..Default::default()
    };
    match nvml_raw::remapped_rows(nvml, dev) {
        Raw::Value((_, _, pending, failure)) => {
            c.remap_pending = Some(pending);
            c.remap_failure = Some(failure);
        }
        Raw::NotSupported => {}
        Raw::Failed(code) => r.problems.push(format!("remapped rows: NVML error {code}")),
    }
    let (errors, links) = nvlink_errors(dev, &mut r);
    c.nvlink_errors = errors;
    c.nvlink_links = links;
    c
}

/// Sum of the data-link error counters over active links.
fn nvlink_errors(dev: &Device, r: &mut Reader) -> (Option<u64>, Option<u32>) {
    let mut total = 0u64;
    let mut links = 0u32;
    for link in 0..MAX_LINKS {
        let l = dev.link_wrapper_for(link);
        match l.is_active() {
            Ok(true) => {}
            // Inactive, absent (InvalidArg past the last link) or unsupported.
            _ => continue,
        }
        links += 1;
        for counter in
            [ErrorCounter::DlReplay, ErrorCounter::DlRecovery, ErrorCounter::DlCrcFlit, ErrorCounter::DlCrcData]
        {
            if let Some(v) = r.get("NVLink error counters", l.error_counter(counter)) {
                total += v;
            }
        }
    }
    if links == 0 {
        (None, None)
    } else {
        (Some(total), Some(links))
    }
}

/// One sample.
pub fn sample(dev: &Device, problems: &mut Vec<String>) -> Sample {
    let mut r = Reader { problems, seen: BTreeSet::new() };
    let mut s = Sample {
        at_unix_ms: super::report::now_unix_ms(),
        temperature_c: r.get("temperature", dev.temperature(TemperatureSensor::Gpu)),
        power_w: r.get("power", dev.power_usage()).map(|mw| f64::from(mw) / 1000.0),
        sm_clock_mhz: r.get("SM clock", dev.clock_info(Clock::SM)),
        mem_clock_mhz: r.get("memory clock", dev.clock_info(Clock::Memory)),
        throttle_reasons: r.get("clocks event reasons", dev.current_throttle_reasons()).map(|t| t.bits()),
        ecc_volatile_corrected: r
            .get("volatile corrected ECC count", dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)),
        ecc_volatile_uncorrected: r.get(
            "volatile uncorrected ECC count",
            dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile),
        ),
        pcie_replay: r.get("PCIe replay counter", dev.pcie_replay_counter()).map(u64::from),
        nvlink_errors: None,
    };
    s.nvlink_errors = nvlink_errors(dev, &mut r).0;
    s
}

/// Samples one GPU every `period` until `stop` is set. Problems are kept
/// once per kind.
pub fn sample_until(nvml: &Nvml, index: u32, period: Duration, stop: &AtomicBool) -> (Vec<Sample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    let dev = match nvml.device_by_index(index) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("opening GPU {index} for sampling: {e}"));
            return (samples, problems);
        }
    };
    let mut next = Instant::now();
    loop {
        let mut p = Vec::new();
        samples.push(sample(&dev, &mut p));
        for x in p {
            if !problems.contains(&x) {
                problems.push(x);
            }
        }
        next += period;
        // Sleep in short steps so the sampler stops promptly.
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                return (samples, problems);
            }
            std::thread::sleep(Duration::from_millis(50).min(next.saturating_duration_since(Instant::now())));
        }
        if stop.load(Ordering::Relaxed) {
            return (samples, problems);
        }
    }
}

/// Watches critical Xid events on `gpus` (NVML index, UUID) until `stop`.
/// Returns (NVML index, event) pairs and whether watching worked.
pub fn watch_xids(nvml: &Nvml, gpus: &[(u32, Option<String>)], stop: &AtomicBool) -> (Vec<(u32, XidEvent)>, Watch) {
    use nvml_wrapper::bitmasks::event::EventTypes;
    use nvml_wrapper::enums::event::XidError;
    let mut set = match nvml.create_event_set() {
        Ok(s) => s,
        Err(NvmlError::NotSupported) => {
            return (vec![], Watch::NotSupported { reason: "NVML event sets are not supported here".into() })
        }
        Err(e) => return (vec![], Watch::Failed { reason: format!("creating an NVML event set: {e}") }),
    };
    for (index, _) in gpus {
        let dev = match nvml.device_by_index(*index) {
            Ok(d) => d,
            Err(e) => return (vec![], Watch::Failed { reason: format!("opening GPU {index} for Xid events: {e}") }),
        };
        set = match dev.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
            Ok(s) => s,
            Err(e) if matches!(e.error, NvmlError::NotSupported) => {
                return (
                    vec![],
                    Watch::NotSupported { reason: format!("GPU {index} does not report Xid events through NVML") },
                )
            }
            Err(e) => {
                return (
                    vec![],
                    Watch::Failed { reason: format!("registering Xid events on GPU {index}: {}", e.error) },
                )
            }
        };
    }
    let mut events = Vec::new();
    let mut failures = 0;
    while !stop.load(Ordering::Relaxed) {
        match set.wait(200) {
            Ok(ev) => {
                let uuid = ev.device.uuid().ok();
                let index = gpus
                    .iter()
                    .find(|(_, u)| u.is_some() && *u == uuid)
                    .map(|(i, _)| *i)
                    .or_else(|| ev.device.index().ok());
                let xid = match ev.event_data {
                    Some(XidError::Value(v)) => v,
                    // The driver could not say which Xid: keep it as unknown
                    // (0 is no real Xid), which the catalog treats as fatal.
                    Some(XidError::Unknown) | None => 0,
                };
                events.push((index.unwrap_or(u32::MAX), XidEvent { at_unix_ms: super::report::now_unix_ms(), xid }));
            }
            Err(NvmlError::Timeout) => {}
            Err(e) => {
                failures += 1;
                if failures > 10 {
                    return (events, Watch::Failed { reason: format!("waiting for Xid events: {e}") });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    (events, Watch::Watched)
}

/// The fabric state of one GPU, or why it could not be read.
pub fn fabric(nvml: &Nvml, index: u32) -> Result<Option<FabricInfo>, String> {
    let dev = nvml.device_by_index(index).map_err(|e| format!("opening GPU {index}: {e}"))?;
    match nvml_raw::fabric_info(nvml, &dev) {
        Raw::Value(f) => Ok(Some(f)),
        Raw::NotSupported => Ok(None),
        Raw::Failed(code) => Err(format!("nvmlDeviceGetGpuFabricInfoV returned NVML error {code}")),
    }
}
