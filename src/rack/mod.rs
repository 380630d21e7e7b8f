//! Rack manifests: which nodes a rack holds, how to reach them, and where their credentials come from;
//! site manifests: which racks one run covers.

mod credentials;
mod location;
mod manifest;
mod site;

pub use crate::secret::PasswordSource;
pub use credentials::{BmcTls, CredentialError, Credentials};
pub use manifest::{ManifestError, Rack, RackManifest, RackNode};
pub use site::{Site, SiteRack};
