//! The CUDA driver and NVRTC through cudarc: library presence checks, then thin RAII handles.
//!
//! cudarc loads libcuda on first use and panics when it is absent, so
//! `libraries()` must say the driver is present before anything else here is
//! called. Every handle binds its context to the calling thread itself, so a
//! worker thread may use the GPU it opened and a phase may use several.
//! Errors these calls meet: out of memory, an illegal address or ECC error
//! from a kernel (sticky: the context is then unusable), and "system not
//! ready" when the NVLink fabric has not come up.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::driver::result as cu;
use cudarc::driver::sys;
use cudarc::driver::DriverError;

use super::report::CudaLibraries;

/// Which CUDA libraries can be loaded. Safe to call anywhere: it only tries
/// to open them.
pub fn libraries() -> CudaLibraries {
    // SAFETY: these only dlopen the library candidates and close them again.
    unsafe {
        CudaLibraries {
            driver: cudarc::driver::sys::is_culib_present(),
            nvrtc: cudarc::nvrtc::sys::is_culib_present(),
            cublaslt: cudarc::cublaslt::sys::is_culib_present(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("{call}")]
    Driver {
        call: String,
        #[source]
        source: DriverError,
    },
    #[error("compiling kernels {module} with NVRTC: {log}")]
    Compile { module: &'static str, log: String },
    #[error("{call}")]
    Blas {
        call: String,
        #[source]
        source: cudarc::cublaslt::result::CublasError,
    },
}

/// Attaches what was being done to a driver error.
pub trait Context<T> {
    fn ctx(self, call: impl FnOnce() -> String) -> Result<T, CudaError>;
}

impl<T> Context<T> for Result<T, DriverError> {
    fn ctx(self, call: impl FnOnce() -> String) -> Result<T, CudaError> {
        self.map_err(|source| CudaError::Driver { call: call(), source })
    }
}

/// The CUDA version the driver supports (`12080` for 12.8). Call only once the driver library
/// is known present (`libraries().driver`).
pub fn driver_version() -> Result<i32, String> {
    let mut v: std::ffi::c_int = 0;
    // SAFETY: the driver library is present (checked by the caller); cuDriverGetVersion
    // exists in every CUDA driver and needs no initialisation.
    let r = unsafe { sys::cuDriverGetVersion(&mut v) };
    if r != sys::cudaError_enum::CUDA_SUCCESS {
        return Err(format!("cuDriverGetVersion failed: {r:?}"));
    }
    Ok(v)
}

/// The number of devices CUDA sees (after CUDA_VISIBLE_DEVICES).
pub fn device_count() -> Result<i32, CudaError> {
    cu::init().ctx(|| "cuInit".into())?;
    cu::device::get_count().ctx(|| "cuDeviceGetCount".into())
}

/// The PCI address of CUDA device `ordinal`, in sysfs form (`0000:1b:00.0`).
pub fn pci_address(ordinal: i32) -> Result<String, CudaError> {
    cu::init().ctx(|| "cuInit".into())?;
    let dev = cu::device::get(ordinal).ctx(|| format!("cuDeviceGet({ordinal})"))?;
    let attr = |a: sys::CUdevice_attribute, what: &str| {
        // SAFETY: dev is a valid device handle from cuDeviceGet.
        unsafe { cu::device::get_attribute(dev, a) }.ctx(|| format!("reading the {what} of CUDA device {ordinal}"))
    };
    let domain = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, "PCI domain")?;
    let bus = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, "PCI bus")?;
    let device = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, "PCI device")?;
    Ok(format!("{domain:04x}:{bus:02x}:{device:02x}.0"))
}

/// The primary context of one GPU and a stream on it.
pub struct Gpu {
    pub ordinal: i32,
    device: sys::CUdevice,
    ctx: sys::CUcontext,
    stream: sys::CUstream,
    pub sm_count: u32,
    pub compute_capability: (i32, i32),
}

// SAFETY: CUDA driver handles may be used from any thread once the context is
// made current there, which every method does first.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Retains the primary context of CUDA device `ordinal` and creates a
    /// non-blocking stream on it.
    pub fn open(ordinal: i32) -> Result<Arc<Gpu>, CudaError> {
        cu::init().ctx(|| "cuInit".into())?;
        let device = cu::device::get(ordinal).ctx(|| format!("cuDeviceGet({ordinal})"))?;
        // SAFETY: device is valid; the retained context is released in Drop.
        let ctx =
            unsafe { cu::primary_ctx::retain(device) }.ctx(|| format!("retaining the context of GPU {ordinal}"))?;
        // SAFETY: ctx was just retained.
        unsafe { cu::ctx::set_current(ctx) }.ctx(|| format!("making the context of GPU {ordinal} current"))?;
        let attr = |a| unsafe { cu::device::get_attribute(device, a) };
        let sm_count = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .ctx(|| format!("reading the SM count of GPU {ordinal}"))?;
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .ctx(|| format!("reading the compute capability of GPU {ordinal}"))?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .ctx(|| format!("reading the compute capability of GPU {ordinal}"))?;
        let stream = cu::stream::create(cu::stream::StreamKind::NonBlocking)
            .ctx(|| format!("creating a stream on GPU {ordinal}"))?;
        Ok(Arc::new(Gpu {
            ordinal,
            device,
            ctx,
            stream,
            sm_count: sm_count.max(1) as u32,
            compute_capability: (major, minor),
        }))
    }

    /// Makes this GPU's context current on the calling thread.
    pub fn bind(&self) -> Result<(), CudaError> {
        // SAFETY: ctx stays retained for the life of self.
        unsafe { cu::ctx::set_current(self.ctx) }.ctx(|| format!("making the context of GPU {} current", self.ordinal))
    }

    pub fn cu_ctx(&self) -> sys::CUcontext {
        self.ctx
    }

    pub fn cu_device(&self) -> sys::CUdevice {
        self.device
    }

    pub fn stream(&self) -> sys::CUstream {
        self.stream
    }

    /// Free and total device memory, bytes.
    pub fn mem_info(&self) -> Result<(usize, usize), CudaError> {
        self.bind()?;
        cu::mem_get_info().ctx(|| format!("reading free memory of GPU {}", self.ordinal))
    }

    pub fn sync(&self) -> Result<(), CudaError> {
        self.bind()?;
        // SAFETY: the stream belongs to this context.
        unsafe { cu::stream::synchronize(self.stream) }.ctx(|| format!("waiting for GPU {}", self.ordinal))
    }

    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuffer, CudaError> {
        self.bind()?;
        // SAFETY: a plain allocation, freed in DeviceBuffer's Drop.
        let ptr = unsafe { cu::malloc_sync(bytes) }
            .ctx(|| format!("allocating {} on GPU {}", human_bytes(bytes as u64), self.ordinal))?;
        Ok(DeviceBuffer { gpu: self.clone(), ptr, bytes })
    }

    /// Page-locked host memory, not write-combined (flags 0), so host reads
    /// of it are cached and it behaves like the memory applications pin.
    pub fn alloc_pinned(self: &Arc<Self>, bytes: usize) -> Result<PinnedBuffer, CudaError> {
        self.bind()?;
        // SAFETY: freed in PinnedBuffer's Drop; the pages are touched by the
        // driver on this (pinned) thread, so they land on its NUMA node.
        let ptr = unsafe { cu::malloc_host(bytes, 0) }.ctx(|| {
            format!("allocating {} of pinned host memory for GPU {}", human_bytes(bytes as u64), self.ordinal)
        })?;
        Ok(PinnedBuffer { gpu: self.clone(), ptr: ptr.cast::<u8>(), bytes })
    }

    pub fn event(self: &Arc<Self>) -> Result<Event, CudaError> {
        self.bind()?;
        let ev = cu::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
            .ctx(|| format!("creating an event on GPU {}", self.ordinal))?;
        Ok(Event { gpu: self.clone(), ev })
    }

    /// Compiles CUDA C with NVRTC for this GPU's architecture and loads it.
    pub fn load(self: &Arc<Self>, module: &'static str, source: &str) -> Result<Module, CudaError> {
        let (major, minor) = self.compute_capability;
        let opts = cudarc::nvrtc::CompileOptions {
            options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
            name: Some(format!("{module}.cu")),
            ..Default::default()
        };
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(source, opts)
            .map_err(|e| CudaError::Compile { module, log: e.to_string() })?;
        self.bind()?;
        let src = std::ffi::CString::new(ptx.to_src())
            .map_err(|_| CudaError::Compile { module, log: "PTX holds a NUL byte".into() })?;
        // SAFETY: src is a NUL-terminated PTX image that outlives the call.
        let handle = unsafe { cu::module::load_data(src.as_ptr().cast()) }
            .ctx(|| format!("loading kernels {module} on GPU {}", self.ordinal))?;
        Ok(Module { gpu: self.clone(), handle, name: module })
    }

    /// Launches `f` on this GPU's stream with a 1-D grid.
    pub fn launch(&self, f: &Function, grid: u32, block: u32, args: &mut Args) -> Result<(), CudaError> {
        self.bind()?;
        let mut params = args.pointers();
        // SAFETY: f belongs to a module loaded in this context; the argument
        // list matches the kernel's signature (each caller pairs them).
        unsafe { cu::launch_kernel(f.handle, (grid.max(1), 1, 1), (block, 1, 1), 0, self.stream, &mut params) }
            .ctx(|| format!("launching {} on GPU {}", f.name, self.ordinal))
    }

    /// Launches `f` with a 2-D grid and block.
    pub fn launch_2d(
        &self,
        f: &Function,
        grid: (u32, u32),
        block: (u32, u32),
        args: &mut Args,
    ) -> Result<(), CudaError> {
        self.bind()?;
        let mut params = args.pointers();
        // SAFETY: as in launch.
        unsafe { cu::launch_kernel(f.handle, (grid.0, grid.1, 1), (block.0, block.1, 1), 0, self.stream, &mut params) }
            .ctx(|| format!("launching {} on GPU {}", f.name, self.ordinal))
    }

    /// A grid that fills the GPU for grid-stride kernels.
    pub fn grid_for(&self, n: u64, block: u32) -> u32 {
        let wanted = n.div_ceil(u64::from(block));
        wanted.min(u64::from(self.sm_count) * 8).max(1) as u32
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: handles created in open; errors at teardown cannot be acted on.
        unsafe {
            let _ = cu::ctx::set_current(self.ctx);
            let _ = cu::stream::synchronize(self.stream);
            let _ = cu::stream::destroy(self.stream);
            let _ = cu::primary_ctx::release(self.device);
        }
    }
}

/// Device memory, freed on drop.
pub struct DeviceBuffer {
    gpu: Arc<Gpu>,
    ptr: sys::CUdeviceptr,
    bytes: usize,
}

// SAFETY: a device pointer is a plain address, valid from any thread.
unsafe impl Send for DeviceBuffer {}
unsafe impl Sync for DeviceBuffer {}

impl DeviceBuffer {
    pub fn ptr(&self) -> sys::CUdeviceptr {
        self.ptr
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Copies `src` into the buffer at byte `offset` (synchronous).
    pub fn write<T: Copy>(&self, offset: usize, src: &[T]) -> Result<(), CudaError> {
        let len = std::mem::size_of_val(src);
        self.check_range(offset, len, "write")?;
        self.gpu.sync()?;
        // SAFETY: the range was checked against the allocation.
        unsafe { cu::memcpy_htod_sync(self.ptr + offset as u64, src) }
            .ctx(|| format!("copying {} to GPU {}", human_bytes(len as u64), self.gpu.ordinal))
    }

    /// Copies from byte `offset` of the buffer into `dst` (synchronous).
    pub fn read<T: Copy>(&self, offset: usize, dst: &mut [T]) -> Result<(), CudaError> {
        let len = std::mem::size_of_val(dst);
        self.check_range(offset, len, "read")?;
        self.gpu.sync()?;
        // SAFETY: the range was checked against the allocation.
        unsafe { cu::memcpy_dtoh_sync(dst, self.ptr + offset as u64) }
            .ctx(|| format!("copying {} from GPU {}", human_bytes(len as u64), self.gpu.ordinal))
    }

    /// Zeroes the buffer on the GPU's stream.
    pub fn zero(&self) -> Result<(), CudaError> {
        self.gpu.bind()?;
        // SAFETY: the whole allocation.
        unsafe { cu::memset_d8_async(self.ptr, 0, self.bytes, self.gpu.stream) }
            .ctx(|| format!("clearing memory on GPU {}", self.gpu.ordinal))
    }

    fn check_range(&self, offset: usize, len: usize, what: &str) -> Result<(), CudaError> {
        if offset.checked_add(len).is_none_or(|end| end > self.bytes) {
            return Err(CudaError::Driver {
                call: format!("{what} of {len} bytes at offset {offset} of a {}-byte buffer", self.bytes),
                source: DriverError(sys::cudaError_enum::CUDA_ERROR_INVALID_VALUE),
            });
        }
        Ok(())
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by malloc_sync in this context; freed once.
        unsafe {
            let _ = cu::ctx::set_current(self.gpu.ctx);
            let _ = cu::stream::synchronize(self.gpu.stream);
            let _ = cu::free_sync(self.ptr);
        }
    }
}

/// Page-locked host memory, freed on drop.
pub struct PinnedBuffer {
    gpu: Arc<Gpu>,
    ptr: *mut u8,
    bytes: usize,
}

// SAFETY: plain host memory owned by this value.
unsafe impl Send for PinnedBuffer {}

impl PinnedBuffer {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The memory as 32-bit words.
    pub fn words_mut(&mut self) -> &mut [u32] {
        // SAFETY: cuMemHostAlloc returns page-aligned memory of `bytes` bytes,
        // owned by self; &mut self prevents aliasing.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast::<u32>(), self.bytes / 4) }
    }

    pub fn words(&self) -> &[u32] {
        // SAFETY: as in words_mut.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u32>(), self.bytes / 4) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by malloc_host; freed once.
        unsafe {
            let _ = cu::ctx::set_current(self.gpu.ctx);
            let _ = cu::stream::synchronize(self.gpu.stream);
            let _ = cu::free_host(self.ptr.cast::<c_void>());
        }
    }
}

/// A timing event on one GPU.
pub struct Event {
    gpu: Arc<Gpu>,
    ev: sys::CUevent,
}

// SAFETY: events are usable from any thread with the context current.
unsafe impl Send for Event {}

impl Event {
    /// Records the event on the GPU's stream.
    pub fn record(&self) -> Result<(), CudaError> {
        self.gpu.bind()?;
        // SAFETY: the event and the stream belong to this context.
        unsafe { cu::event::record(self.ev, self.gpu.stream) }
            .ctx(|| format!("recording an event on GPU {}", self.gpu.ordinal))
    }

    /// Milliseconds from `self` to `end`, waiting for both.
    pub fn elapsed_ms(&self, end: &Event) -> Result<f64, CudaError> {
        self.gpu.bind()?;
        // SAFETY: both events were created in this context.
        unsafe {
            cu::event::synchronize(end.ev).ctx(|| format!("waiting for GPU {}", self.gpu.ordinal))?;
            cu::event::elapsed(self.ev, end.ev)
                .map(f64::from)
                .ctx(|| format!("reading event times on GPU {}", self.gpu.ordinal))
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: created in this context; destroyed once.
        unsafe {
            let _ = cu::ctx::set_current(self.gpu.ctx);
            let _ = cu::event::destroy(self.ev);
        }
    }
}

/// Kernels compiled and loaded on one GPU.
pub struct Module {
    gpu: Arc<Gpu>,
    handle: sys::CUmodule,
    name: &'static str,
}

// SAFETY: module handles are usable from any thread with the context current.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Module {
    pub fn function(&self, name: &'static str) -> Result<Function, CudaError> {
        self.gpu.bind()?;
        let c = std::ffi::CString::new(name).map_err(|_| CudaError::Compile { module: self.name, log: name.into() })?;
        // SAFETY: the module is loaded in this context.
        let handle = unsafe { cu::module::get_function(self.handle, c) }
            .ctx(|| format!("finding kernel {name} in {}", self.name))?;
        Ok(Function { handle, name })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: loaded in this context; unloaded once.
        unsafe {
            let _ = cu::ctx::set_current(self.gpu.ctx);
            let _ = cu::module::unload(self.handle);
        }
    }
}

/// One kernel of a loaded module. Valid while its `Module` lives.
#[derive(Clone, Copy)]
pub struct Function {
    handle: sys::CUfunction,
    name: &'static str,
}

// SAFETY: a function handle is usable from any thread with the context current.
unsafe impl Send for Function {}
unsafe impl Sync for Function {}

/// Kernel arguments. Every kernel parameter kiln uses is at most 8 bytes, so
/// each lives in its own 8-byte slot; a 4-byte parameter reads the low half
/// (little-endian), which holds its value.
#[derive(Default)]
pub struct Args {
    slots: Vec<u64>,
}

impl Args {
    pub fn new() -> Self {
        Args::default()
    }

    pub fn ptr(mut self, p: sys::CUdeviceptr) -> Self {
        self.slots.push(p);
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.slots.push(v);
        self
    }

    pub fn u32(mut self, v: u32) -> Self {
        self.slots.push(u64::from(v));
        self
    }

    pub fn i32(mut self, v: i32) -> Self {
        self.slots.push(u64::from(v as u32));
        self
    }

    fn pointers(&mut self) -> Vec<*mut c_void> {
        self.slots.iter_mut().map(|s| (s as *mut u64).cast::<c_void>()).collect()
    }
}

/// `2.0 GiB`, `256.0 MiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The recorded mismatches of an error record: (index, expected, actual).
pub type Mismatches = Vec<(u64, u64, u64)>;

/// Reads the error record a kernel wrote (`kernels/common.cuh`): the total
/// count and up to 16 (index, expected, actual) triples.
pub fn read_error_record(buf: &DeviceBuffer) -> Result<(u64, Mismatches), CudaError> {
    let mut raw = [0u64; ERROR_RECORD_WORDS];
    buf.read(0, &mut raw)?;
    let count = raw[0];
    let kept = (count as usize).min(RECORDED);
    let triples = (0..kept).map(|s| (raw[1 + 3 * s], raw[2 + 3 * s], raw[3 + 3 * s])).collect();
    Ok((count, triples))
}

/// Mismatches each error record keeps (`KILN_RECORDED`).
pub const RECORDED: usize = 16;
/// Size of an error record in 64-bit words.
pub const ERROR_RECORD_WORDS: usize = 1 + 3 * RECORDED;

/// The shared kernel header, prepended to every module.
pub const COMMON: &str = include_str!("kernels/common.cuh");

/// Joins the common header and a module's source.
pub fn source(module: &str) -> String {
    format!("{COMMON}\n{module}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2 << 30), "2.0 GiB");
        assert_eq!(human_bytes(256 << 20), "256.0 MiB");
    }
}
