//! The NVML backend of the GPU surface: the live source, the dump a capture
//! replays, and the session burn-in telemetry shares.

mod dump;
mod format;
mod inspect;
mod nvlink;
mod raw;
mod reads;
mod session;
mod source;

pub use dump::{dump_path, read_dump, write_dump, DumpError};
pub use session::{NvmlSession, OpenError, NVML_LIBRARY};
pub use source::{NvmlSource, SnapshotGpuSource};
