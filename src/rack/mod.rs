//! Rack manifests: which nodes a rack holds, how to reach them, and where their credentials come from.

mod credentials;
mod location;
mod manifest;

pub use crate::secret::PasswordSource;
pub use credentials::{BmcTls, CredentialError, Credentials};
pub use manifest::{ManifestError, Rack, RackManifest, RackNode};
