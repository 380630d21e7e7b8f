//! Rack manifests: which nodes a rack holds, how to reach them, and where their credentials come from.

mod credentials;
mod location;
mod manifest;
mod secret;

pub use credentials::{BmcTls, CredentialError, Credentials, PasswordSource};
pub use manifest::{ManifestError, Rack, RackManifest, RackNode};
pub use secret::Secret;
