//! Images: recipes, building deployable artifacts, and writing them to disks
//! with verification, failing closed.

pub mod aligned;
pub mod bmap;
pub mod digest;
mod error;
pub mod extents;
mod ioctl;
pub mod plan;
pub mod progress;
pub mod source;
pub mod target;
mod verify;
pub mod wipe;
pub mod write;

pub use bmap::{BlockMap, BmapError, MappedRange};
pub use digest::Digest;
pub use error::{TargetState, WriteError, WriteFailure};
pub use progress::{NoProgress, Progress, TerminalProgress};
pub use source::{FileSource, ImageSource, StreamSource};
pub use target::{Target, TargetKind, ZeroMethod};
pub use write::{write_image, WriteOptions, WriteReport};
