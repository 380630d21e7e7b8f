//! The NVML backend of the GPU surface: the live source, the dump a capture
//! replays, the session inspection and burn-in telemetry share, and the
//! telemetry a capture replays.

mod c2c;
mod dump;
mod format;
mod inspect;
mod nvlink;
mod raw;
mod reads;
mod recorded;
mod session;
mod source;
mod telemetry;

pub use dump::{dump_path, read_dump, write_dump, DumpError};
pub use recorded::{counters_of, read_recording, RecordedGpu, RecordingError, ReplayedTelemetry, TelemetryRecording};
pub use session::{NvmlSession, OpenError, NVML_LIBRARY};
pub use source::{LoadError, NvmlSource, SnapshotGpuSource};
