//! The device-memory test: pattern write/verify over at least 90% of free HBM.
//!
//! Memory is taken in 1 GiB chunks until the free memory is used up (less a
//! margin for the driver), then each round writes and verifies walking ones,
//! walking zeros, each word's own address, a seeded random pattern, and runs
//! moving inversions (check, write the complement, ascending then
//! descending). Rounds repeat until the duration is spent; at least one runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cuda::{self, Args, CudaError, DeviceBuffer, Function, Gpu};
use super::options::TestKind;
use super::pattern::mix64;
use super::report::{DataError, Figure, GpuIdentity, TestResult, TestStatus};

const CHUNK: usize = 1 << 30;
/// Enough 1 GiB chunks for any GPU kiln knows (B200: ~180 GiB).
const MAX_CHUNKS: usize = 1024;
/// Free memory left to the driver and the other tests' small buffers.
const MARGIN: usize = 512 << 20;

const WALK_ONES: u32 = 0;
const WALK_ZEROS: u32 = 1;
const OWN_ADDRESS: u32 = 2;
const RANDOM: u32 = 3;

/// Word that the memtest-corrupt fault overwrites, in the first chunk.
const INJECT_WORD: u64 = 123_457;

#[derive(Debug, Clone)]
pub struct MemtestPlan {
    pub duration: Duration,
    pub inject_corrupt: bool,
}

pub fn run(gpu: &Arc<Gpu>, id: &GpuIdentity, plan: &MemtestPlan) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult::ran(TestKind::Memtest, Some(id.clone()));
    result.started_unix_ms = super::report::now_unix_ms();
    let outcome = run_inner(gpu, plan, &mut result);
    result.seconds = started.elapsed().as_secs_f64();
    if let Err(e) = outcome {
        result.status = TestStatus::Error { message: crate::error::chain(&e) };
    }
    result
}

struct Kernels {
    fill: Function,
    verify: Function,
    invert: Function,
    corrupt: Function,
}

/// The host's copy of the kernels' pattern function, for planting a fault
/// that differs from what the kernel expects.
fn pattern(kind: u32, base: u64, i: u64, seed: u64) -> u64 {
    match kind {
        WALK_ONES => 1u64 << ((i + seed) & 63),
        WALK_ZEROS => !(1u64 << ((i + seed) & 63)),
        OWN_ADDRESS => base + 8 * i,
        _ => mix64(i ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
    }
}

fn run_inner(gpu: &Arc<Gpu>, plan: &MemtestPlan, result: &mut TestResult) -> Result<(), CudaError> {
    let module = gpu.load("memtest", &cuda::source(include_str!("kernels/memtest.cu")))?;
    let k = Kernels {
        fill: module.function("mt_fill")?,
        verify: module.function("mt_verify")?,
        invert: module.function("mt_invert")?,
        corrupt: module.function("mt_corrupt")?,
    };
    let (free, total) = gpu.mem_info()?;
    let errs_len = MAX_CHUNKS * cuda::ERROR_RECORD_WORDS * 8;
    let errs = gpu.alloc(errs_len)?;
    let target = free.saturating_sub(MARGIN + errs_len);
    let mut chunks: Vec<DeviceBuffer> = Vec::new();
    let mut taken = 0usize;
    while taken < target && chunks.len() < MAX_CHUNKS {
        let want = CHUNK.min(target - taken) & !7;
        if want < (1 << 20) {
            break;
        }
        match gpu.alloc(want) {
            Ok(c) => {
                taken += want;
                chunks.push(c);
            }
            // Out of memory before the target: test what we have; the
            // coverage figure says how much that was.
            Err(_) if !chunks.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    let coverage = taken as f64 / free as f64;
    result.notes.push(format!(
        "{} in {} chunks of {} free ({} total)",
        cuda::human_bytes(taken as u64),
        chunks.len(),
        cuda::human_bytes(free as u64),
        cuda::human_bytes(total as u64)
    ));

    let deadline = Instant::now() + plan.duration;
    let mut rounds = 0u64;
    let mut bytes_verified = 0u64;
    loop {
        let seed = rounds;
        let steps: [(&str, u32, u64); 4] = [
            ("walking-ones", WALK_ONES, seed),
            ("walking-zeros", WALK_ZEROS, seed),
            ("own-address", OWN_ADDRESS, seed),
            ("random", RANDOM, seed.wrapping_add(0x5eed)),
        ];
        for (name, kind, s) in steps {
            errs.zero()?;
            for c in &chunks {
                launch_fill(gpu, &k, c, kind, s)?;
            }
            if plan.inject_corrupt && rounds == 0 && kind == RANDOM {
                let c = &chunks[0];
                let bad = pattern(kind, c.ptr(), INJECT_WORD, s) ^ (1 << 17);
                gpu.launch(&k.corrupt, 1, 32, &mut Args::new().ptr(c.ptr()).u64(INJECT_WORD).u64(bad))?;
            }
            for (ci, c) in chunks.iter().enumerate() {
                let rec = record(&errs, ci);
                gpu.launch(&k.verify, grid(gpu, c), 256, &mut words(c, kind, s).u32(0).ptr(rec))?;
            }
            collect(gpu, &errs, &chunks, name, result)?;
            bytes_verified += taken as u64;
        }
        // Moving inversions over a random pattern: check P and write ~P going
        // up, check ~P and write P going down, then verify P.
        let s = seed.wrapping_add(0x1a2b);
        errs.zero()?;
        for (ci, c) in chunks.iter().enumerate() {
            launch_fill(gpu, &k, c, RANDOM, s)?;
            let rec = record(&errs, ci);
            gpu.launch(&k.invert, grid(gpu, c), 256, &mut words(c, RANDOM, s).u32(0).u32(0).ptr(rec))?;
            gpu.launch(&k.invert, grid(gpu, c), 256, &mut words(c, RANDOM, s).u32(1).u32(1).ptr(rec))?;
            gpu.launch(&k.verify, grid(gpu, c), 256, &mut words(c, RANDOM, s).u32(0).ptr(rec))?;
        }
        collect(gpu, &errs, &chunks, "moving-inversions", result)?;
        bytes_verified += 3 * taken as u64;
        rounds += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    result.figures.push(Figure::new("coverage", 100.0 * coverage, "% of free"));
    result.figures.push(Figure::new("tested", taken as f64 / (1u64 << 30) as f64, "GiB"));
    result.figures.push(Figure::new("rounds", rounds as f64, "rounds"));
    result.figures.push(Figure::new("verified", bytes_verified as f64 / 1e12, "TB"));
    result.figures.push(Figure::new("errors", result.data_error_count as f64, "words"));
    drop(chunks);
    drop(module);
    Ok(())
}

fn grid(gpu: &Gpu, c: &DeviceBuffer) -> u32 {
    gpu.grid_for((c.bytes() / 8) as u64, 256)
}

fn words(c: &DeviceBuffer, kind: u32, seed: u64) -> Args {
    Args::new().ptr(c.ptr()).u64((c.bytes() / 8) as u64).u32(kind).u64(seed)
}

fn record(errs: &DeviceBuffer, chunk: usize) -> u64 {
    errs.ptr() + (chunk * cuda::ERROR_RECORD_WORDS * 8) as u64
}

fn launch_fill(gpu: &Gpu, k: &Kernels, c: &DeviceBuffer, kind: u32, seed: u64) -> Result<(), CudaError> {
    gpu.launch(&k.fill, grid(gpu, c), 256, &mut words(c, kind, seed))
}

/// Reads every chunk's error record after a pattern and keeps the first
/// failing addresses.
fn collect(
    gpu: &Gpu,
    errs: &DeviceBuffer,
    chunks: &[DeviceBuffer],
    pattern_name: &str,
    result: &mut TestResult,
) -> Result<(), CudaError> {
    gpu.sync()?;
    let mut raw = vec![0u64; chunks.len() * cuda::ERROR_RECORD_WORDS];
    errs.read(0, &mut raw)?;
    for (ci, c) in chunks.iter().enumerate() {
        let rec = &raw[ci * cuda::ERROR_RECORD_WORDS..(ci + 1) * cuda::ERROR_RECORD_WORDS];
        let count = rec[0];
        if count == 0 {
            continue;
        }
        result.data_error_count += count;
        for s in 0..(count as usize).min(cuda::RECORDED) {
            if result.data_errors.len() >= cuda::RECORDED {
                break;
            }
            let (word, expected, actual) = (rec[1 + 3 * s], rec[2 + 3 * s], rec[3 + 3 * s]);
            result.data_errors.push(DataError {
                phase: pattern_name.to_string(),
                location: format!("chunk {ci} (base 0x{:x}), word {word}", c.ptr()),
                device_address: Some(format!("0x{:x}", c.ptr() + 8 * word)),
                offset: 8 * word,
                expected: format!("0x{expected:016x}"),
                actual: format!("0x{actual:016x} (bits 0x{:016x} differ)", expected ^ actual),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_pattern_matches_the_kernel_definitions() {
        assert_eq!(pattern(WALK_ONES, 0, 0, 0), 1);
        assert_eq!(pattern(WALK_ONES, 0, 63, 1), 1);
        assert_eq!(pattern(WALK_ZEROS, 0, 2, 0), !4);
        assert_eq!(pattern(OWN_ADDRESS, 0x1000, 3, 9), 0x1018);
        assert_eq!(pattern(RANDOM, 0, 5, 0), mix64(5));
    }
}
