//! Peer-to-peer bandwidth for every ordered GPU pair (NVLink, or PCIe where that is all there is).
//!
//! For each pair the source GPU copies into the destination GPU's memory with
//! cuMemcpyPeerAsync after peer access is enabled; copies are timed with
//! events on the source's stream; the destination's data is checked.

use std::sync::Arc;
use std::time::Instant;

use cudarc::driver::{result as cu, sys};

use super::cuda::{self, Args, CudaError, Gpu, Module};
use super::gemm::median;
use super::options::TestKind;
use super::report::{DataError, Figure, GpuIdentity, TestResult, TestStatus};

pub const BUFFER_BYTES: usize = 256 << 20;
const WARMUP: usize = 2;
const SAMPLES: usize = 5;
const COPIES_PER_SAMPLE: usize = 5;
const SEED: u32 = 0x703270;

/// Note on a result whose pair cannot reach each other.
pub const NO_PEER_ACCESS: &str = "peer access not possible";

/// Measures every ordered pair of `gpus` (CUDA handle, identity). One result
/// per ordered pair; the result belongs to the source GPU and its figure
/// names the destination as `peer_gpu`.
pub fn run(gpus: &[(Arc<Gpu>, GpuIdentity)]) -> Vec<TestResult> {
    let mut modules: Vec<Result<Module, CudaError>> = Vec::new();
    for (gpu, _) in gpus {
        modules.push(gpu.load("copy", &cuda::source(include_str!("kernels/copy.cu"))));
    }
    let mut out = Vec::new();
    for (si, (src, src_id)) in gpus.iter().enumerate() {
        for (di, (dst, dst_id)) in gpus.iter().enumerate() {
            if si == di {
                continue;
            }
            let started = Instant::now();
            let mut r = TestResult::ran(TestKind::P2p, Some(src_id.clone()));
            r.started_unix_ms = super::report::now_unix_ms();
            let outcome = match (&modules[si], &modules[di]) {
                (Ok(ms), Ok(md)) => pair(src, dst, ms, md, dst_id, &mut r),
                (Err(e), _) | (_, Err(e)) => Err(CudaError::Compile { module: "copy", log: crate::error::chain(e) }),
            };
            if let Err(e) = outcome {
                r.status = TestStatus::Error { message: crate::error::chain(&e) };
            }
            r.seconds = started.elapsed().as_secs_f64();
            out.push(r);
        }
    }
    out
}

fn driver<T>(r: Result<T, cudarc::driver::DriverError>, call: impl FnOnce() -> String) -> Result<T, CudaError> {
    r.map_err(|source| CudaError::Driver { call: call(), source })
}

fn pair(
    src: &Arc<Gpu>,
    dst: &Arc<Gpu>,
    src_module: &Module,
    dst_module: &Module,
    dst_id: &GpuIdentity,
    r: &mut TestResult,
) -> Result<(), CudaError> {
    let mut can: std::ffi::c_int = 0;
    // SAFETY: plain query on two valid device handles.
    driver(unsafe { sys::cuDeviceCanAccessPeer(&mut can, src.cu_device(), dst.cu_device()) }.result(), || {
        format!("asking whether GPU {} can reach GPU {}", src.ordinal, dst.ordinal)
    })?;
    if can == 0 {
        r.notes.push(format!("{NO_PEER_ACCESS} from GPU {} to GPU {}", src.ordinal, dst.ordinal));
        return Ok(());
    }
    src.bind()?;
    // SAFETY: both contexts are retained; enabling twice reports "already enabled".
    match unsafe { sys::cuCtxEnablePeerAccess(dst.cu_ctx(), 0) }.result() {
        Ok(()) => {}
        Err(e) if e.0 == sys::cudaError_enum::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED => {}
        Err(source) => {
            return Err(CudaError::Driver {
                call: format!("enabling peer access from GPU {} to GPU {}", src.ordinal, dst.ordinal),
                source,
            })
        }
    }
    let from = src.alloc(BUFFER_BYTES)?;
    let to = dst.alloc(BUFFER_BYTES)?;
    let errs = dst.alloc(cuda::ERROR_RECORD_WORDS * 8)?;
    let words = (BUFFER_BYTES / 4) as u64;
    let fill = src_module.function("fill_words")?;
    src.launch(&fill, src.grid_for(words, 256), 256, &mut Args::new().ptr(from.ptr()).u64(words).u32(SEED))?;
    src.sync()?;
    to.zero()?;
    dst.sync()?;
    let start = src.event()?;
    let end = src.event()?;
    let copy = || -> Result<(), CudaError> {
        src.bind()?;
        // SAFETY: both allocations are BUFFER_BYTES long and live.
        driver(
            unsafe {
                cu::memcpy_peer_async(dst.cu_ctx(), to.ptr(), src.cu_ctx(), from.ptr(), BUFFER_BYTES, src.stream())
            },
            || format!("copying from GPU {} to GPU {}", src.ordinal, dst.ordinal),
        )
    };
    for _ in 0..WARMUP {
        copy()?;
    }
    let mut rates = Vec::new();
    for _ in 0..SAMPLES {
        start.record()?;
        for _ in 0..COPIES_PER_SAMPLE {
            copy()?;
        }
        end.record()?;
        let ms = start.elapsed_ms(&end)?;
        rates.push((BUFFER_BYTES * COPIES_PER_SAMPLE) as f64 / (ms / 1000.0) / 1e9);
    }
    src.sync()?;
    r.figures.push(Figure::new("p2p", median(&rates), "GB/s").with_peer(dst_id.index).with_samples(rates));
    let check = dst_module.function("check_words")?;
    errs.zero()?;
    dst.launch(
        &check,
        dst.grid_for(words, 256),
        256,
        &mut Args::new().ptr(to.ptr()).u64(words).u32(SEED).ptr(errs.ptr()),
    )?;
    dst.sync()?;
    let (count, first) = cuda::read_error_record(&errs)?;
    r.data_error_count += count;
    for (word, expected, actual) in first {
        r.data_errors.push(DataError {
            phase: format!("p2p copy to GPU {}", dst_id.index),
            location: format!("word {word} of the buffer on GPU {}", dst_id.index),
            device_address: Some(format!("0x{:x}", to.ptr() + 4 * word)),
            offset: 4 * word,
            expected: format!("0x{expected:08x}"),
            actual: format!("0x{actual:08x}"),
        });
    }
    Ok(())
}
