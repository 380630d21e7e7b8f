//! Live burn-in telemetry over the NVML session inspection opened: health counters, samples
//! once a period, and critical Xid events.
//!
//! A query NVML does not support is left empty (`None`), never read as
//! healthy; any other failure is kept as a problem on the GPU, each kind once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enum_wrappers::nv_link::ErrorCounter;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::Device;
use nvml_wrapper_sys::bindings::NVML_NVLINK_MAX_LINKS;

use super::raw;
use super::reads::{describe, is_unsupported};
use super::session::NvmlSession;
use crate::hw::telemetry::{Telemetry, When};
use crate::model::{HealthCounters, Sample, Watch, XidEvent};

/// Milliseconds since the Unix epoch, now.
fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Reads one value, keeping failures other than "not supported" as problems
/// (each kind once).
struct Reader<'p> {
    problems: &'p mut Vec<String>,
    seen: BTreeSet<&'static str>,
}

impl<'p> Reader<'p> {
    fn new(problems: &'p mut Vec<String>) -> Self {
        Reader { problems, seen: BTreeSet::new() }
    }

    fn get<T>(&mut self, what: &'static str, r: Result<T, NvmlError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if is_unsupported(&e) => None,
            Err(e) => {
                if self.seen.insert(what) {
                    self.problems.push(format!("{what}: {}", describe(&e)));
                }
                None
            }
        }
    }
}

/// Sum of the data-link error counters over active links, and how many links counted.
fn nvlink_errors(dev: &Device<'_>, r: &mut Reader<'_>) -> (Option<u64>, Option<u32>) {
    let mut total = 0u64;
    let mut links = 0u32;
    for link in 0..NVML_NVLINK_MAX_LINKS {
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

fn counters(dev: &Device<'_>, problems: &mut Vec<String>) -> HealthCounters {
    let mut r = Reader::new(problems);
    let uncorrected = dev.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile);
    let corrected = dev.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile);
    let mut c = HealthCounters {
        ecc_volatile_uncorrected: r.get("volatile uncorrected ECC count", uncorrected),
        ecc_volatile_corrected: r.get("volatile corrected ECC count", corrected),
        pcie_replay: r.get("PCIe replay counter", dev.pcie_replay_counter()).map(u64::from),
        ..Default::default()
    };
    if let Some(rows) = r.get("remapped rows", raw::remapped_rows(dev)) {
        c.remap_pending = Some(rows.pending);
        c.remap_failure = Some(rows.failure);
    }
    (c.nvlink_errors, c.nvlink_links) = nvlink_errors(dev, &mut r);
    c
}

fn sample(dev: &Device<'_>, problems: &mut Vec<String>) -> Sample {
    let mut r = Reader::new(problems);
    let mut s = Sample {
        at_unix_ms: now_unix_ms(),
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

impl Telemetry for NvmlSession {
    fn counters(&self, gpu: u32, _when: When) -> (HealthCounters, Vec<String>) {
        let mut problems = Vec::new();
        let c = match self.device_by_index(gpu) {
            Ok(d) => counters(&d, &mut problems),
            Err(e) => {
                problems.push(format!("opening GPU: {}", describe(&e)));
                HealthCounters::default()
            }
        };
        (c, problems)
    }

    fn sample_until(&self, gpu: u32, period: Duration, stop: &AtomicBool) -> (Vec<Sample>, Vec<String>) {
        let mut samples = Vec::new();
        let mut problems = Vec::new();
        let dev = match self.device_by_index(gpu) {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("opening GPU {gpu} for sampling: {}", describe(&e)));
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

    fn watch_xids(&self, gpus: &[(u32, Option<String>)], stop: &AtomicBool) -> (Vec<(u32, XidEvent)>, Watch) {
        use nvml_wrapper::bitmasks::event::EventTypes;
        use nvml_wrapper::enums::event::XidError;
        let mut set = match self.nvml().create_event_set() {
            Ok(s) => s,
            Err(e) if is_unsupported(&e) => {
                return (vec![], Watch::NotSupported { reason: "NVML event sets are not supported here".into() })
            }
            Err(e) => {
                return (vec![], Watch::Failed { reason: format!("creating an NVML event set: {}", describe(&e)) })
            }
        };
        for (index, _) in gpus {
            let dev = match self.device_by_index(*index) {
                Ok(d) => d,
                Err(e) => {
                    let reason = format!("opening GPU {index} for Xid events: {}", describe(&e));
                    return (vec![], Watch::Failed { reason });
                }
            };
            set = match dev.register_events(EventTypes::CRITICAL_XID_ERROR, set) {
                Ok(s) => s,
                Err(e) if is_unsupported(&e.error) => {
                    let reason = format!("GPU {index} does not report Xid events through NVML");
                    return (vec![], Watch::NotSupported { reason });
                }
                Err(e) => {
                    let reason = format!("registering Xid events on GPU {index}: {}", describe(&e.error));
                    return (vec![], Watch::Failed { reason });
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
                    events.push((index.unwrap_or(u32::MAX), XidEvent { at_unix_ms: now_unix_ms(), xid }));
                }
                Err(NvmlError::Timeout) => {}
                Err(e) => {
                    failures += 1;
                    if failures > 10 {
                        return (events, Watch::Failed { reason: format!("waiting for Xid events: {}", describe(&e)) });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        (events, Watch::Watched)
    }
}
