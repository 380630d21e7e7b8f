//! Images: recipes, building deployable artifacts, and writing them to disks
//! with verification, failing closed.

pub mod aligned;
pub mod bmap;
pub mod build;
pub mod digest;
mod error;
pub mod extents;
pub mod fetch;
mod ioctl;
pub mod manifest;
mod pipeline;
pub mod plan;
pub mod progress;
pub mod pxe;
pub mod recipe;
pub mod seed;
pub mod serve;
pub mod source;
pub mod synth;
pub mod target;
mod verify;
pub mod wipe;
pub mod write;

pub use bmap::{BlockMap, BmapError, MappedRange};
pub use build::{build, Artifact, BuildError};
pub use digest::Digest;
pub use error::{TargetState, WriteError, WriteFailure};
pub use manifest::{Manifest, ManifestError};
pub use progress::{NoProgress, Progress, TerminalProgress};
pub use recipe::{LoadedRecipe, Recipe, RecipeError};
pub use source::{FileSource, ImageSource, StreamSource};
pub use target::{Target, TargetKind, ZeroMethod};
pub use write::{write_image, WriteOptions, WriteReport};
