//! Host-to-device and device-to-host bandwidth over PCIe or NVLink-C2C, data checked.
//!
//! Host buffers are page-locked and not write-combined (what applications
//! pin), allocated by a thread already pinned to the GPU's NUMA node, so the
//! figure measures the link and not the socket interconnect. Each GPU is
//! measured alone, then all together (the orchestrator lines the copies up
//! with a barrier). Each figure is the median of several samples.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use cudarc::driver::result as cu;

use super::cuda::{self, Args, CudaError, DeviceBuffer, Event, Gpu, PinnedBuffer};
use super::gemm::median;
use super::pattern;
use super::report::{DataError, Figure};

pub const BUFFER_BYTES: usize = 256 << 20;
const WARMUP: usize = 2;
const SAMPLES: usize = 7;
const COPIES_PER_SAMPLE: usize = 4;
const SEED: u32 = 0x686c6b;

/// What one measurement found.
#[derive(Debug, Default)]
pub struct LinkMeasurement {
    pub figures: Vec<Figure>,
    pub data_error_count: u64,
    pub data_errors: Vec<DataError>,
    pub error: Option<String>,
}

struct Buffers {
    host_src: PinnedBuffer,
    host_dst: PinnedBuffer,
    device: DeviceBuffer,
    errs: DeviceBuffer,
    start: Event,
    end: Event,
    check: cuda::Function,
    _module: cuda::Module,
}

fn setup(gpu: &Arc<Gpu>) -> Result<Buffers, CudaError> {
    let module = gpu.load("copy", &cuda::source(include_str!("kernels/copy.cu")))?;
    let check = module.function("check_words")?;
    let mut host_src = gpu.alloc_pinned(BUFFER_BYTES)?;
    let host_dst = gpu.alloc_pinned(BUFFER_BYTES)?;
    pattern::fill(host_src.words_mut(), 0, SEED);
    Ok(Buffers {
        host_src,
        host_dst,
        device: gpu.alloc(BUFFER_BYTES)?,
        errs: gpu.alloc(cuda::ERROR_RECORD_WORDS * 8)?,
        start: gpu.event()?,
        end: gpu.event()?,
        check,
        _module: module,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    H2d,
    D2h,
}

fn copy_once(gpu: &Gpu, b: &mut Buffers, dir: Direction) -> Result<(), CudaError> {
    gpu.bind()?;
    // SAFETY: the host buffers are pinned and the device buffer is live, all
    // BUFFER_BYTES long; the stream is synchronized before the host reads.
    unsafe {
        match dir {
            Direction::H2d => cu::memcpy_htod_async(b.device.ptr(), b.host_src.words(), gpu.stream()),
            Direction::D2h => cu::memcpy_dtoh_async(b.host_dst.words_mut(), b.device.ptr(), gpu.stream()),
        }
    }
    .map_err(|source| CudaError::Driver {
        call: format!(
            "{} copy on GPU {}",
            if dir == Direction::H2d { "host-to-device" } else { "device-to-host" },
            gpu.ordinal
        ),
        source,
    })
}

fn time(gpu: &Gpu, b: &mut Buffers, dir: Direction) -> Result<Vec<f64>, CudaError> {
    for _ in 0..WARMUP {
        copy_once(gpu, b, dir)?;
    }
    let mut rates = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        b.start.record()?;
        for _ in 0..COPIES_PER_SAMPLE {
            copy_once(gpu, b, dir)?;
        }
        b.end.record()?;
        let ms = b.start.elapsed_ms(&b.end)?;
        rates.push((BUFFER_BYTES * COPIES_PER_SAMPLE) as f64 / (ms / 1000.0) / 1e9);
    }
    Ok(rates)
}

/// Checks the device buffer after host-to-device copies (on the GPU) and the
/// host buffer after device-to-host copies (on the CPU).
fn verify(gpu: &Gpu, b: &Buffers, dir: Direction, phase: &str, m: &mut LinkMeasurement) -> Result<(), CudaError> {
    match dir {
        Direction::H2d => {
            let words = (BUFFER_BYTES / 4) as u64;
            b.errs.zero()?;
            gpu.launch(
                &b.check,
                gpu.grid_for(words, 256),
                256,
                &mut Args::new().ptr(b.device.ptr()).u64(words).u32(SEED).ptr(b.errs.ptr()),
            )?;
            gpu.sync()?;
            let (count, first) = cuda::read_error_record(&b.errs)?;
            m.data_error_count += count;
            for (word, expected, actual) in first {
                m.data_errors.push(DataError {
                    phase: phase.to_string(),
                    location: format!("word {word} of the device buffer"),
                    device_address: Some(format!("0x{:x}", b.device.ptr() + 4 * word)),
                    offset: 4 * word,
                    expected: format!("0x{expected:08x}"),
                    actual: format!("0x{actual:08x}"),
                });
            }
        }
        Direction::D2h => {
            gpu.sync()?;
            let (count, first) = pattern::check(b.host_dst.words(), SEED);
            m.data_error_count += count;
            if let Some((word, expected, actual)) = first {
                m.data_errors.push(DataError {
                    phase: phase.to_string(),
                    location: format!("word {word} of the pinned host buffer"),
                    device_address: None,
                    offset: 4 * word,
                    expected: format!("0x{expected:08x}"),
                    actual: format!("0x{actual:08x}"),
                });
            }
        }
    }
    Ok(())
}

/// Measures both directions on one GPU. With `barrier`, every participant
/// waits at the same points (before each direction), whatever happened
/// before, so one GPU's failure cannot hang the others.
pub fn measure(gpu: &Arc<Gpu>, barrier: Option<&Barrier>, suffix: &str) -> LinkMeasurement {
    let started = Instant::now();
    let mut m = LinkMeasurement::default();
    let mut buffers = setup(gpu).map_err(|e| m.error = Some(crate::error::chain(&e))).ok();
    for (dir, name) in [(Direction::H2d, "h2d"), (Direction::D2h, "d2h")] {
        if let Some(b) = barrier {
            b.wait();
        }
        let Some(bufs) = buffers.as_mut() else { continue };
        if m.error.is_some() {
            continue;
        }
        let phase = format!("{name}{suffix} copy");
        match time(gpu, bufs, dir).and_then(|r| verify(gpu, bufs, dir, &phase, &mut m).map(|_| r)) {
            Ok(rates) => {
                m.figures.push(Figure::new(&format!("{name}{suffix}"), median(&rates), "GB/s").with_samples(rates))
            }
            Err(e) => m.error = Some(crate::error::chain(&e)),
        }
    }
    tracing::debug!(gpu = gpu.ordinal, seconds = started.elapsed().as_secs_f64(), "host-link measured");
    m
}
