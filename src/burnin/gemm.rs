//! The GEMM stress: sustained matrix products at full power, every result verified.
//!
//! The first product is the reference. It is checked on the CPU in f64 for a
//! sampled 64x64 tile; every later product is compared on the GPU with the
//! reference, bit for bit (the same algorithm on the same inputs gives the
//! same bits; a difference is a compute or memory fault). The rate is the
//! median over all timed products, each timed alone with CUDA events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys as ltsys;

use super::cuda::{self, Args, CudaError, DeviceBuffer, Function, Gpu, Module};
use super::options::{GemmDtype, GemmEngine, TestKind};
use super::pattern::{bf16_to_f64, f32_to_bf16, Uniform};
use super::report::{DataError, Figure, GpuIdentity, TestResult};

/// Matrix size when none is given: large enough to fill an H100/B200 and to
/// match the published 8192^3 reference figures.
pub const DEFAULT_SIZE: usize = 8192;

/// Rows and columns of the tile checked on the CPU.
const TILE: usize = 64;

/// Iteration whose output the gemm-bitflip fault corrupts.
const INJECT_AT: u64 = 3;

#[derive(Debug, Clone)]
pub struct GemmPlan {
    pub dtype: GemmDtype,
    pub engine: GemmEngine,
    pub size: usize,
    pub duration: Duration,
    pub inject_bitflip: bool,
    /// Whether libcublasLt can be loaded.
    pub cublaslt_present: bool,
}

/// Runs the GEMM stress on one GPU. Never panics; a CUDA failure becomes an
/// `error` result naming the failed call.
pub fn run(gpu: &Arc<Gpu>, id: &GpuIdentity, plan: &GemmPlan) -> TestResult {
    let started = Instant::now();
    let mut result = TestResult::ran(TestKind::Gemm, Some(id.clone()));
    result.started_unix_ms = super::report::now_unix_ms();
    let outcome = run_inner(gpu, plan, &mut result);
    result.seconds = started.elapsed().as_secs_f64();
    if let Err(e) = outcome {
        return TestResult { status: super::report::TestStatus::Error { message: crate::error::chain(&e) }, ..result };
    }
    result
}

/// The host copies of the inputs, for the CPU check.
enum HostInputs {
    Bf16(Vec<u16>, Vec<u16>),
    Fp32(Vec<f32>, Vec<f32>),
    Fp64(Vec<f64>, Vec<f64>),
}

impl HostInputs {
    fn generate(dtype: GemmDtype, n: usize) -> HostInputs {
        // The same seed on every GPU: all GPUs compute the same product, so
        // their rates compare like for like.
        let mut rng = Uniform::new(0x6b69_6c6e);
        let len = n * n;
        match dtype {
            GemmDtype::Bf16 => HostInputs::Bf16(
                (0..len).map(|_| f32_to_bf16(rng.next_f32())).collect(),
                (0..len).map(|_| f32_to_bf16(rng.next_f32())).collect(),
            ),
            GemmDtype::Fp32 => {
                HostInputs::Fp32((0..len).map(|_| rng.next_f32()).collect(), (0..len).map(|_| rng.next_f32()).collect())
            }
            GemmDtype::Fp64 => HostInputs::Fp64(
                (0..len).map(|_| f64::from(rng.next_f32())).collect(),
                (0..len).map(|_| f64::from(rng.next_f32())).collect(),
            ),
        }
    }

    fn upload(&self, a: &DeviceBuffer, b: &DeviceBuffer) -> Result<(), CudaError> {
        match self {
            HostInputs::Bf16(x, y) => a.write(0, x).and_then(|_| b.write(0, y)),
            HostInputs::Fp32(x, y) => a.write(0, x).and_then(|_| b.write(0, y)),
            HostInputs::Fp64(x, y) => a.write(0, x).and_then(|_| b.write(0, y)),
        }
    }

    fn a(&self, i: usize) -> f64 {
        match self {
            HostInputs::Bf16(x, _) => bf16_to_f64(x[i]),
            HostInputs::Fp32(x, _) => f64::from(x[i]),
            HostInputs::Fp64(x, _) => x[i],
        }
    }

    fn b(&self, i: usize) -> f64 {
        match self {
            HostInputs::Bf16(_, y) => bf16_to_f64(y[i]),
            HostInputs::Fp32(_, y) => f64::from(y[i]),
            HostInputs::Fp64(_, y) => y[i],
        }
    }
}

fn run_inner(gpu: &Arc<Gpu>, plan: &GemmPlan, result: &mut TestResult) -> Result<(), CudaError> {
    let n = plan.size;
    let dtype = plan.dtype;
    let inputs = HostInputs::generate(dtype, n);
    let in_bytes = n * n * dtype.input_bytes();
    let out_bytes = n * n * dtype.output_bytes();
    let a = gpu.alloc(in_bytes)?;
    let b = gpu.alloc(in_bytes)?;
    let reference = gpu.alloc(out_bytes)?;
    let work = gpu.alloc(out_bytes)?;
    inputs.upload(&a, &b)?;

    let compare = gpu.load("compare", &cuda::source(include_str!("kernels/compare.cu")))?;
    let compare_fn = compare.function("compare_words")?;
    let flip_fn = compare.function("flip_bit")?;
    let engine = Engine::new(gpu, plan, result)?;
    result.notes.push(format!(
        "{} {n}x{n}x{n}, inputs {}, accumulate and output {}, engine {}",
        dtype.as_str(),
        dtype.as_str(),
        if dtype == GemmDtype::Fp64 { "fp64" } else { "fp32" },
        engine.name()
    ));

    // The reference product, checked on the CPU.
    engine.multiply(gpu, &a, &b, &reference)?;
    gpu.sync()?;
    check_reference(&inputs, &reference, dtype, n, result)?;

    let words = (out_bytes / 4) as u64;
    let flops = 2.0 * (n as f64).powi(3);
    let mut events = Vec::new();
    let max_batch = 64usize;
    for _ in 0..2 * max_batch {
        events.push(gpu.event()?);
    }
    let errs = gpu.alloc(max_batch * cuda::ERROR_RECORD_WORDS * 8)?;
    let mut per_iteration_tflops: Vec<f64> = Vec::new();
    let mut batch_medians: Vec<f64> = Vec::new();
    let mut iteration: u64 = 0;
    let mut batch = 4usize;
    let deadline = Instant::now() + plan.duration;
    let mut first_batch = true;
    loop {
        errs.zero()?;
        for k in 0..batch {
            events[2 * k].record()?;
            engine.multiply(gpu, &a, &b, &work)?;
            events[2 * k + 1].record()?;
            if plan.inject_bitflip && iteration + k as u64 == INJECT_AT {
                // Element (row 1, col 2) of the output, bit 12 of its first word.
                let word = (2 * n + 1) as u64 * (dtype.output_bytes() as u64 / 4);
                gpu.launch(&flip_fn, 1, 32, &mut Args::new().ptr(work.ptr()).u64(word).u32(12))?;
            }
            let record = errs.ptr() + (k * cuda::ERROR_RECORD_WORDS * 8) as u64;
            gpu.launch(
                &compare_fn,
                gpu.grid_for(words / 4, 256),
                256,
                &mut Args::new().ptr(work.ptr()).ptr(reference.ptr()).u64(words).ptr(record),
            )?;
        }
        gpu.sync()?;
        let mut times = Vec::with_capacity(batch);
        for k in 0..batch {
            let ms = events[2 * k].elapsed_ms(&events[2 * k + 1])?;
            times.push(ms);
        }
        let mut raw = vec![0u64; batch * cuda::ERROR_RECORD_WORDS];
        errs.read(0, &mut raw)?;
        for k in 0..batch {
            let rec = &raw[k * cuda::ERROR_RECORD_WORDS..(k + 1) * cuda::ERROR_RECORD_WORDS];
            note_mismatches(rec, iteration + k as u64, dtype, n, &reference, result);
        }
        let tflops: Vec<f64> = times.iter().map(|ms| flops / (ms / 1000.0) / 1e12).collect();
        // The first batch warms clocks and caches; it is verified but not timed.
        if !first_batch {
            batch_medians.push(median(&tflops));
            per_iteration_tflops.extend(&tflops);
        }
        first_batch = false;
        iteration += batch as u64;
        // Size batches to about a fifth of a second so results come back often.
        let mean_ms = times.iter().sum::<f64>() / times.len() as f64;
        batch = ((200.0 / mean_ms.max(0.01)) as usize).clamp(1, max_batch);
        if Instant::now() >= deadline && !per_iteration_tflops.is_empty() {
            break;
        }
    }
    drop(compare);
    result.figures.push(Figure::new("tflops", median(&per_iteration_tflops), "TFLOP/s").with_samples(batch_medians));
    result.figures.push(Figure::new("iterations", iteration as f64, "products"));
    result.figures.push(Figure::new("mismatches", result.data_error_count as f64, "words"));
    Ok(())
}

/// Records the mismatches one compare launch found.
fn note_mismatches(
    rec: &[u64],
    iteration: u64,
    dtype: GemmDtype,
    n: usize,
    reference: &DeviceBuffer,
    result: &mut TestResult,
) {
    let count = rec[0];
    if count == 0 {
        return;
    }
    result.data_error_count += count;
    let words_per_element = (dtype.output_bytes() / 4) as u64;
    let kept = (count as usize).min(cuda::RECORDED);
    for s in 0..kept {
        if result.data_errors.len() >= cuda::RECORDED {
            break;
        }
        let (word, expected, actual) = (rec[1 + 3 * s], rec[2 + 3 * s] as u32, rec[3 + 3 * s] as u32);
        let element = word / words_per_element;
        let (row, col) = (element % n as u64, element / n as u64);
        let value = |bits: u32| {
            if dtype == GemmDtype::Fp64 {
                format!("0x{bits:08x}")
            } else {
                format!("0x{bits:08x} ({})", f32::from_bits(bits))
            }
        };
        result.data_errors.push(DataError {
            phase: format!("iteration {iteration}"),
            location: format!("element {element} (row {row}, col {col}) of the output"),
            device_address: Some(format!("0x{:x}", reference.ptr() + word * 4)),
            offset: word * 4,
            expected: value(expected),
            actual: value(actual),
        });
    }
}

/// Checks a sampled tile of the reference product against an f64 product
/// on the CPU. Inputs are exact in f64, so the only error allowed is the
/// GPU's accumulation rounding.
fn check_reference(
    inputs: &HostInputs,
    reference: &DeviceBuffer,
    dtype: GemmDtype,
    n: usize,
    result: &mut TestResult,
) -> Result<(), CudaError> {
    let rows: Vec<usize> = (0..TILE).map(|r| (r * n / TILE + r * 7) % n).collect();
    let cols: Vec<usize> = (0..TILE).map(|c| (c * n / TILE + c * 13 + 5) % n).collect();
    // fp32 accumulation over n terms: allow 2^-13 of the sum of magnitudes
    // (typical rounding is far below; a wrong value is far above).
    let rel = if dtype == GemmDtype::Fp64 { 2f64.powi(-40) } else { 2f64.powi(-13) };
    let mut worst: f64 = 0.0;
    let mut err_sq = 0.0;
    let mut ref_sq = 0.0;
    let mut bad = 0u64;
    for &j in &cols {
        let column: Vec<f64> = match dtype {
            GemmDtype::Fp64 => {
                let mut c = vec![0f64; n];
                reference.read(j * n * 8, &mut c)?;
                c
            }
            _ => {
                let mut c = vec![0f32; n];
                reference.read(j * n * 4, &mut c)?;
                c.into_iter().map(f64::from).collect()
            }
        };
        for &i in &rows {
            let (mut exact, mut magnitude) = (0.0f64, 0.0f64);
            for p in 0..n {
                let t = inputs.a(i + p * n) * inputs.b(p + j * n);
                exact += t;
                magnitude += t.abs();
            }
            let got = column[i];
            let diff = (got - exact).abs();
            err_sq += diff * diff;
            ref_sq += exact * exact;
            if magnitude > 0.0 {
                worst = worst.max(diff / magnitude);
            }
            if !got.is_finite() || diff > rel * magnitude + f64::MIN_POSITIVE {
                bad += 1;
                if result.data_errors.len() < cuda::RECORDED {
                    result.data_errors.push(DataError {
                        phase: "reference check (CPU, f64)".into(),
                        location: format!("element (row {i}, col {j}) of the reference output"),
                        device_address: Some(format!(
                            "0x{:x}",
                            reference.ptr() + ((j * n + i) * dtype.output_bytes()) as u64
                        )),
                        offset: ((j * n + i) * dtype.output_bytes()) as u64,
                        expected: format!("{exact}"),
                        actual: format!("{got}"),
                    });
                }
            }
        }
    }
    let norm = if ref_sq > 0.0 { (err_sq / ref_sq).sqrt() } else { 0.0 };
    let norm_limit = if dtype == GemmDtype::Fp64 { 1e-12 } else { 1e-4 };
    if norm > norm_limit && bad == 0 {
        bad = 1;
        result.data_errors.push(DataError {
            phase: "reference check (CPU, f64)".into(),
            location: format!("{TILE}x{TILE} tile of the reference output"),
            device_address: None,
            offset: 0,
            expected: format!("relative error under {norm_limit:e}"),
            actual: format!("{norm:e}"),
        });
    }
    result.data_error_count += bad;
    result.notes.push(format!(
        "reference checked on the CPU in f64 over a {TILE}x{TILE} tile: {bad} bad, relative error {norm:.2e}, worst {worst:.2e} of the magnitude sum"
    ));
    Ok(())
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// The implementation doing the products.
enum Engine {
    Lt(LtGemm),
    Kernel { _module: Module, f: Function, n: usize },
}

impl Engine {
    fn new(gpu: &Arc<Gpu>, plan: &GemmPlan, result: &mut TestResult) -> Result<Engine, CudaError> {
        let want_lt = match plan.engine {
            GemmEngine::Kernel => false,
            GemmEngine::Cublaslt => true,
            GemmEngine::Auto => plan.cublaslt_present,
        };
        if want_lt {
            match LtGemm::new(gpu, plan.dtype, plan.size) {
                Ok(e) => return Ok(Engine::Lt(e)),
                Err(e) if plan.engine == GemmEngine::Auto => {
                    result
                        .notes
                        .push(format!("cuBLASLt unusable ({}); using kiln's GEMM kernel", crate::error::chain(&e)));
                }
                Err(e) => return Err(e),
            }
        } else if plan.engine == GemmEngine::Auto {
            result.notes.push("libcublasLt not found; using kiln's GEMM kernel (slower)".into());
        }
        let module = gpu.load("gemm", &cuda::source(include_str!("kernels/gemm.cu")))?;
        let f = module.function(match plan.dtype {
            GemmDtype::Bf16 => "gemm_bf16",
            GemmDtype::Fp32 => "gemm_fp32",
            GemmDtype::Fp64 => "gemm_fp64",
        })?;
        Ok(Engine::Kernel { _module: module, f, n: plan.size })
    }

    fn name(&self) -> &'static str {
        match self {
            Engine::Lt(_) => "cuBLASLt",
            Engine::Kernel { .. } => "kiln kernel",
        }
    }

    fn multiply(&self, gpu: &Gpu, a: &DeviceBuffer, b: &DeviceBuffer, c: &DeviceBuffer) -> Result<(), CudaError> {
        match self {
            Engine::Lt(e) => e.multiply(gpu, a, b, c),
            Engine::Kernel { f, n, .. } => {
                let tiles = n.div_ceil(16) as u32;
                let n = *n as i32;
                gpu.launch_2d(
                    f,
                    (tiles, tiles),
                    (16, 16),
                    &mut Args::new().i32(n).i32(n).i32(n).ptr(a.ptr()).ptr(b.ptr()).ptr(c.ptr()),
                )
            }
        }
    }
}

/// A cuBLASLt product of fixed shape with the algorithm chosen once, so that
/// every iteration runs the same kernel and gives the same bits.
struct LtGemm {
    handle: ltsys::cublasLtHandle_t,
    desc: ltsys::cublasLtMatmulDesc_t,
    layouts: [ltsys::cublasLtMatrixLayout_t; 3],
    algo: ltsys::cublasLtMatmulAlgo_t,
    workspace: DeviceBuffer,
    dtype: GemmDtype,
}

impl LtGemm {
    fn new(gpu: &Arc<Gpu>, dtype: GemmDtype, n: usize) -> Result<LtGemm, CudaError> {
        use ltsys::cublasComputeType_t as C;
        use ltsys::cudaDataType_t as T;
        let blas = |call: &str| {
            let call = call.to_string();
            move |source| CudaError::Blas { call: call.clone(), source }
        };
        gpu.bind()?;
        let (input, output, compute, scale) = match dtype {
            GemmDtype::Bf16 => (T::CUDA_R_16BF, T::CUDA_R_32F, C::CUBLAS_COMPUTE_32F, T::CUDA_R_32F),
            GemmDtype::Fp32 => (T::CUDA_R_32F, T::CUDA_R_32F, C::CUBLAS_COMPUTE_32F, T::CUDA_R_32F),
            GemmDtype::Fp64 => (T::CUDA_R_64F, T::CUDA_R_64F, C::CUBLAS_COMPUTE_64F, T::CUDA_R_64F),
        };
        // NVIDIA recommends a 32 MiB workspace on Hopper and later, 4 MiB before.
        let ws_bytes: usize = if gpu.compute_capability.0 >= 9 { 32 << 20 } else { 4 << 20 };
        let workspace = gpu.alloc(ws_bytes)?;
        let handle = lt::create_handle().map_err(blas("cublasLtCreate"))?;
        let mut me = LtGemm {
            handle,
            desc: std::ptr::null_mut(),
            layouts: [std::ptr::null_mut(); 3],
            // SAFETY: a plain-data struct; overwritten by the heuristic below.
            algo: unsafe { std::mem::zeroed() },
            workspace,
            dtype,
        };
        me.desc = lt::create_matmul_desc(compute, scale).map_err(blas("cublasLtMatmulDescCreate"))?;
        let n64 = n as u64;
        me.layouts[0] =
            lt::create_matrix_layout(input, n64, n64, n as i64).map_err(blas("cublasLtMatrixLayoutCreate"))?;
        me.layouts[1] =
            lt::create_matrix_layout(input, n64, n64, n as i64).map_err(blas("cublasLtMatrixLayoutCreate"))?;
        me.layouts[2] =
            lt::create_matrix_layout(output, n64, n64, n as i64).map_err(blas("cublasLtMatrixLayoutCreate"))?;
        let pref = lt::create_matmul_pref().map_err(blas("cublasLtMatmulPreferenceCreate"))?;
        let ws = ws_bytes as u64;
        // SAFETY: every handle was created above; the attribute is a u64.
        let heuristic = unsafe {
            let r = lt::set_matmul_pref_attribute(
                pref,
                ltsys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&ws as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
            .map_err(blas("setting the cuBLASLt workspace size"))
            .and_then(|_| {
                lt::get_matmul_algo_heuristic(
                    me.handle,
                    me.desc,
                    me.layouts[0],
                    me.layouts[1],
                    me.layouts[2],
                    me.layouts[2],
                    pref,
                )
                .map_err(blas("cublasLtMatmulAlgoGetHeuristic"))
            });
            let _ = lt::destroy_matmul_pref(pref);
            r?
        };
        me.algo = heuristic.algo;
        Ok(me)
    }

    fn multiply(&self, gpu: &Gpu, a: &DeviceBuffer, b: &DeviceBuffer, c: &DeviceBuffer) -> Result<(), CudaError> {
        gpu.bind()?;
        let (one32, zero32, one64, zero64) = (1f32, 0f32, 1f64, 0f64);
        let (alpha, beta): (*const std::ffi::c_void, *const std::ffi::c_void) = match self.dtype {
            GemmDtype::Fp64 => ((&one64 as *const f64).cast(), (&zero64 as *const f64).cast()),
            _ => ((&one32 as *const f32).cast(), (&zero32 as *const f32).cast()),
        };
        // SAFETY: buffers were sized for these layouts; alpha/beta live across
        // the call (cuBLASLt reads host scalars before returning).
        unsafe {
            lt::matmul(
                self.handle,
                self.desc,
                alpha,
                beta,
                a.ptr() as *const _,
                self.layouts[0],
                b.ptr() as *const _,
                self.layouts[1],
                c.ptr() as *const _,
                self.layouts[2],
                c.ptr() as *mut _,
                self.layouts[2],
                &self.algo,
                self.workspace.ptr() as *mut _,
                self.workspace.bytes(),
                gpu.stream() as *mut _,
            )
        }
        .map_err(|source| CudaError::Blas { call: format!("cublasLtMatmul on GPU {}", gpu.ordinal), source })
    }
}

impl Drop for LtGemm {
    fn drop(&mut self) {
        // SAFETY: created in new; destroyed once; null handles are skipped.
        unsafe {
            for l in self.layouts {
                if !l.is_null() {
                    let _ = lt::destroy_matrix_layout(l);
                }
            }
            if !self.desc.is_null() {
                let _ = lt::destroy_matmul_desc(self.desc);
            }
            let _ = lt::destroy_handle(self.handle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }
}
