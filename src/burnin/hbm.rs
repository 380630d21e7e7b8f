//! Device-memory bandwidth: a copy kernel and the copy engine, timed with events, data checked.
//!
//! Bytes are counted as read plus written (2 x the buffer per copy), the
//! convention of the published figures (Azure's guide, DCGM's memory
//! bandwidth test) and of `torch` copy benchmarks. Each figure is the median
//! of several samples, each sample timing many back-to-back copies.

use std::sync::Arc;
use std::time::Instant;

use super::cuda::{self, Args, CudaError, DeviceBuffer, Function, Gpu};
use super::gemm::median;
use super::options::TestKind;
use super::report::{DataError, Figure, GpuIdentity, TestResult, TestStatus};

/// Bytes per buffer: far beyond any L2 (50-126 MB), small enough for every GPU.
pub const BUFFER_BYTES: usize = 2 << 30;
const WARMUP: usize = 3;
const SAMPLES: usize = 9;
const COPIES_PER_SAMPLE: usize = 10;
const SEED: u32 = 0x68626d;

pub fn run(gpu: &Arc<Gpu>, id: &GpuIdentity) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult::ran(TestKind::Hbm, Some(id.clone()));
    result.started_unix_ms = super::report::now_unix_ms();
    if let Err(e) = run_inner(gpu, &mut result) {
        result.status = TestStatus::Error { message: crate::error::chain(&e) };
    }
    result.seconds = started.elapsed().as_secs_f64();
    result
}

#[derive(Clone, Copy, PartialEq)]
enum Method {
    Kernel,
    CopyEngine,
}

fn run_inner(gpu: &Arc<Gpu>, result: &mut TestResult) -> Result<(), CudaError> {
    let module = gpu.load("copy", &cuda::source(include_str!("kernels/copy.cu")))?;
    let copy = module.function("copy_u4")?;
    let fill = module.function("fill_words")?;
    let check = module.function("check_words")?;
    let (free, _) = gpu.mem_info()?;
    let bytes = BUFFER_BYTES.min((free / 4) & !0xffff);
    let src = gpu.alloc(bytes)?;
    let dst = gpu.alloc(bytes)?;
    let errs = gpu.alloc(cuda::ERROR_RECORD_WORDS * 8)?;
    let words = (bytes / 4) as u64;
    gpu.launch(&fill, gpu.grid_for(words, 256), 256, &mut Args::new().ptr(src.ptr()).u64(words).u32(SEED))?;
    let start = gpu.event()?;
    let end = gpu.event()?;
    result.notes.push(format!(
        "two buffers of {}; bytes counted read + write (2 x {} per copy); median of {SAMPLES} samples of {COPIES_PER_SAMPLE} copies",
        cuda::human_bytes(bytes as u64),
        cuda::human_bytes(bytes as u64)
    ));
    for (method, name) in [(Method::Kernel, "copy_kernel"), (Method::CopyEngine, "copy_engine")] {
        dst.zero()?;
        for _ in 0..WARMUP {
            copy_once(gpu, method, &copy, &src, &dst)?;
        }
        let mut rates = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            start.record()?;
            for _ in 0..COPIES_PER_SAMPLE {
                copy_once(gpu, method, &copy, &src, &dst)?;
            }
            end.record()?;
            let ms = start.elapsed_ms(&end)?;
            rates.push((2 * bytes * COPIES_PER_SAMPLE) as f64 / (ms / 1000.0) / 1e12);
        }
        result.figures.push(Figure::new(name, median(&rates), "TB/s").with_samples(rates));
        // The destination must now hold exactly the source pattern.
        errs.zero()?;
        gpu.launch(
            &check,
            gpu.grid_for(words, 256),
            256,
            &mut Args::new().ptr(dst.ptr()).u64(words).u32(SEED).ptr(errs.ptr()),
        )?;
        gpu.sync()?;
        let (count, first) = cuda::read_error_record(&errs)?;
        result.data_error_count += count;
        for (word, expected, actual) in first.into_iter().take(cuda::RECORDED - result.data_errors.len().min(16)) {
            result.data_errors.push(DataError {
                phase: format!("{name} copy"),
                location: format!("word {word} of the destination"),
                device_address: Some(format!("0x{:x}", dst.ptr() + 4 * word)),
                offset: 4 * word,
                expected: format!("0x{expected:08x}"),
                actual: format!("0x{actual:08x}"),
            });
        }
    }
    Ok(())
}

fn copy_once(
    gpu: &Gpu,
    method: Method,
    copy: &Function,
    src: &DeviceBuffer,
    dst: &DeviceBuffer,
) -> Result<(), CudaError> {
    match method {
        Method::Kernel => {
            let n = (src.bytes() / 16) as u64;
            gpu.launch(copy, gpu.grid_for(n, 256), 256, &mut Args::new().ptr(src.ptr()).ptr(dst.ptr()).u64(n))
        }
        Method::CopyEngine => {
            gpu.bind()?;
            // SAFETY: both buffers are live allocations of src.bytes() on this GPU.
            unsafe { cudarc::driver::result::memcpy_dtod_async(dst.ptr(), src.ptr(), src.bytes(), gpu.stream()) }
                .map_err(|source| CudaError::Driver {
                    call: format!("cuMemcpyDtoDAsync on GPU {}", gpu.ordinal),
                    source,
                })
        }
    }
}
