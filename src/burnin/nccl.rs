//! NCCL through cudarc, loaded at run time: presence check, the unique id, communicators over
//! this process's GPUs, and timed, verified all-reduce and all-gather.
//!
//! cudarc panics when a library it was asked for is absent, so `present()` must say libnccl is
//! there (and `cuda::libraries().driver` the driver) before anything else here is called.

use std::ffi::c_void;
use std::sync::Arc;
use std::time::Instant;

use cudarc::nccl::result as nc;
use cudarc::nccl::sys as ns;

use super::cuda::{DeviceBuffer, Gpu};
use crate::checks::collective_op::Op;

/// The 32-bit word rank `rank` fills its input with: the float `rank + 1`.
pub fn input_word(_op: Op, rank: usize) -> u32 {
    (rank as f32 + 1.0).to_bits()
}

/// The word every output position must hold: the sum over all ranks for an all-reduce (exact in
/// f32 for any real domain: 72 ranks sum to 2628), rank `chunk`'s input for chunk `chunk` of an
/// all-gather.
pub fn expected_word(op: Op, world: usize, chunk: usize) -> u32 {
    match op {
        Op::AllReduce => ((world * (world + 1) / 2) as f32).to_bits(),
        Op::AllGather => input_word(op, chunk),
    }
}

/// Which word ranges of an output of `words` words to read back: all of it up to `sample`
/// words, else the first, middle and last `sample / 3` words, and for an all-gather the first
/// words of every rank's chunk (`chunk` words each), so each rank's part is seen.
pub fn check_ranges(op: Op, words: usize, chunk: usize, sample: usize) -> Vec<(usize, usize)> {
    if words <= sample {
        return vec![(0, words)];
    }
    let part = (sample / 3).max(1);
    let mut out = vec![(0, part), (words / 2 - part / 2, part), (words - part, part)];
    if op == Op::AllGather && chunk > 0 {
        let mut at = 0;
        while at < words {
            out.push((at, chunk.min(64)));
            at += chunk;
        }
    }
    out
}

/// Whether libnccl can be loaded. Safe to call anywhere: it only tries to open it.
pub fn present() -> bool {
    // SAFETY: dlopens the library candidates and closes them again.
    unsafe { ns::is_culib_present() }
}

/// NCCL's version as `2.27.3`; call only once `present()` said yes.
pub fn version() -> Result<String, String> {
    let v = nc::get_nccl_version().map_err(|e| format!("ncclGetVersion: {e:?}"))?;
    // Since 2.9 the code is major*10000 + minor*100 + patch.
    Ok(format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100))
}

/// The 128 bytes every rank of one communicator must share, as 256 hex digits on the wire.
#[derive(Clone, Copy)]
pub struct UniqueId(ns::ncclUniqueId);

impl UniqueId {
    /// A new id (rank 0 makes it); call only once `present()` said yes.
    pub fn new() -> Result<UniqueId, String> {
        nc::get_uniqueid().map(UniqueId).map_err(|e| format!("ncclGetUniqueId: {e:?}"))
    }

    pub fn to_hex(&self) -> String {
        self.0.internal.iter().map(|c| format!("{:02x}", *c as u8)).collect()
    }

    /// Reads 256 hex digits; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<UniqueId> {
        let hex = hex.trim();
        if hex.len() != 256 || !hex.is_ascii() {
            return None;
        }
        let mut internal = [0 as std::ffi::c_char; 128];
        for (i, slot) in internal.iter_mut().enumerate() {
            *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()? as std::ffi::c_char;
        }
        Some(UniqueId(ns::ncclUniqueId { internal }))
    }
}

/// One communicator per local GPU, aborted on drop (a failed peer must not leave it waiting).
pub struct Comms {
    comms: Vec<ns::ncclComm_t>,
    gpus: Vec<Arc<Gpu>>,
    world: usize,
}

impl Drop for Comms {
    fn drop(&mut self) {
        for (c, g) in self.comms.iter().zip(&self.gpus) {
            let _ = g.bind();
            // SAFETY: each comm was made by init below and is released once.
            let _ = unsafe { nc::comm_abort(*c) };
        }
    }
}

impl Comms {
    /// The communicators of ranks `first_rank..first_rank + gpus.len()` of `world`, joined with
    /// `id` (one group call, as NCCL requires for several GPUs in one process).
    pub fn join(gpus: &[Arc<Gpu>], first_rank: usize, world: usize, id: &UniqueId) -> Result<Comms, String> {
        let mut comms = vec![std::ptr::null_mut(); gpus.len()];
        nc::group_start().map_err(|e| format!("ncclGroupStart: {e:?}"))?;
        let mut failed = None;
        for (i, (slot, gpu)) in comms.iter_mut().zip(gpus).enumerate() {
            if let Err(e) = gpu.bind() {
                failed = Some(e.to_string());
                break;
            }
            // SAFETY: slot is a valid out pointer; the id came from ncclGetUniqueId.
            if let Err(e) = unsafe { nc::comm_init_rank(slot, world as i32, id.0, (first_rank + i) as i32) } {
                failed = Some(format!("ncclCommInitRank(rank {}): {e:?}", first_rank + i));
                break;
            }
        }
        let ended = nc::group_end().map_err(|e| format!("ncclGroupEnd (communicator set-up): {e:?}"));
        if let Some(f) = failed {
            return Err(f);
        }
        ended?;
        Ok(Comms { comms, gpus: gpus.to_vec(), world })
    }

    /// Every GPU of this process in one communicator (`ncclCommInitAll`): the single-node case.
    pub fn all(gpus: &[Arc<Gpu>]) -> Result<Comms, String> {
        let mut comms = vec![std::ptr::null_mut(); gpus.len()];
        let ordinals: Vec<i32> = gpus.iter().map(|g| g.ordinal).collect();
        // SAFETY: comms has one slot per ordinal.
        unsafe { nc::comm_init_all(comms.as_mut_ptr(), gpus.len() as i32, ordinals.as_ptr()) }
            .map_err(|e| format!("ncclCommInitAll: {e:?}"))?;
        Ok(Comms { comms, gpus: gpus.to_vec(), world: gpus.len() })
    }
}

/// What one timed size gave on this process: mean seconds per iteration, and the words that
/// read back wrong (of those checked).
pub struct Measured {
    pub seconds: f64,
    pub checked_words: u64,
    pub wrong_words: u64,
}

/// Runs `op` over `bytes` (the all-reduce buffer, or the all-gather's whole output) `warmup`
/// then `iterations` times on every local GPU, and checks the output against what every rank
/// put in (`expected_word`). `first_rank` is this process's first global rank.
pub fn measure(
    comms: &Comms,
    first_rank: usize,
    op: Op,
    bytes: u64,
    warmup: u32,
    iterations: u32,
) -> Result<Measured, String> {
    let world = comms.world;
    let words = (bytes / 4) as usize;
    let (send_words, recv_words) = match op {
        Op::AllReduce => (words, words),
        Op::AllGather => (words / world.max(1), (words / world.max(1)) * world),
    };
    if send_words == 0 {
        return Err(format!("{bytes} bytes is too small for {world} ranks"));
    }
    let mut bufs: Vec<(DeviceBuffer, DeviceBuffer)> = Vec::with_capacity(comms.gpus.len());
    for (i, gpu) in comms.gpus.iter().enumerate() {
        let send = gpu.alloc(send_words * 4).map_err(|e| e.to_string())?;
        let recv = gpu.alloc(recv_words * 4).map_err(|e| e.to_string())?;
        send.fill_u32(0, send_words, input_word(op, first_rank + i)).map_err(|e| e.to_string())?;
        recv.zero().map_err(|e| e.to_string())?;
        bufs.push((send, recv));
    }
    for g in &comms.gpus {
        g.sync().map_err(|e| e.to_string())?;
    }
    let once = || -> Result<(), String> {
        nc::group_start().map_err(|e| format!("ncclGroupStart: {e:?}"))?;
        for ((comm, gpu), (send, recv)) in comms.comms.iter().zip(&comms.gpus).zip(&bufs) {
            let stream: ns::cudaStream_t = gpu.stream().cast();
            let (s, r) = (send.ptr() as *const c_void, recv.ptr() as *mut c_void);
            // SAFETY: the buffers live on this comm's GPU and hold the counts given.
            let result = unsafe {
                match op {
                    Op::AllReduce => nc::all_reduce(
                        s,
                        r,
                        send_words,
                        ns::ncclDataType_t::ncclFloat32,
                        ns::ncclRedOp_t::ncclSum,
                        *comm,
                        stream,
                    ),
                    Op::AllGather => nc::all_gather(s, r, send_words, ns::ncclDataType_t::ncclFloat32, *comm, stream),
                }
            };
            result.map_err(|e| format!("nccl {}: {e:?}", op.as_str()))?;
        }
        nc::group_end().map_err(|e| format!("ncclGroupEnd ({}): {e:?}", op.as_str()))?;
        Ok(())
    };
    for _ in 0..warmup {
        once()?;
    }
    for g in &comms.gpus {
        g.sync().map_err(|e| e.to_string())?;
    }
    let t0 = Instant::now();
    for _ in 0..iterations.max(1) {
        once()?;
    }
    for g in &comms.gpus {
        g.sync().map_err(|e| e.to_string())?;
    }
    let seconds = t0.elapsed().as_secs_f64() / f64::from(iterations.max(1));
    // The output is checked at its start, middle and end (whole when small): every chunk of an
    // all-gather, the sum of every rank's input for an all-reduce.
    let (mut checked, mut wrong) = (0u64, 0u64);
    let sample = 1usize << 20;
    for (_, recv) in &bufs {
        for (start, len) in check_ranges(op, recv_words, send_words, sample) {
            let mut host = vec![0u32; len];
            recv.read(start * 4, &mut host).map_err(|e| e.to_string())?;
            for (k, w) in host.iter().enumerate() {
                checked += 1;
                if *w != expected_word(op, world, (start + k) / send_words) {
                    wrong += 1;
                }
            }
        }
    }
    Ok(Measured { seconds, checked_words: checked, wrong_words: wrong })
}
