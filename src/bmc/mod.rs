//! BMC control: Redfish over HTTPS with an IPMI fallback, behind the `Bmc` trait.

mod activation;
mod connector;
mod document;
mod error;
mod firmware;
mod http;
mod http_stream;
mod ipmi;
mod locate;
mod multipart;
mod ops;
pub mod rack_target;
mod redfish;
mod retry;
mod secret;
mod target;
mod task;
mod tls;
mod update;
mod versions;
mod wait;

pub use activation::AcCycle;
pub use connector::{agent, api_agent, TlsConnector};
pub use document::{BmcAnswer, BmcDocument, Media, BMC_SCHEMA_VERSION};
pub use error::BmcError;
pub use firmware::{FirmwareComponent, FirmwareItem};
pub use http::{redfish_message, RedfishClient, Reply};
pub use ipmi::IpmiBmc;
pub use locate::Locate;
pub use multipart::{multipart_body, MultipartBody};
pub use ops::{Bmc, BootTarget, Identity, PowerAction, PowerState};
pub use redfish::{BootOverride, MediaSlot, RedfishBmc};
pub use retry::{with_retries, Attempt, RetryPolicy, Tries};
pub use secret::Secret;
pub use target::{
    parse_bmc_url, parse_system_path, read_password, BmcTarget, IpmiAddress, PasswordSource, TargetError, TlsOptions,
};
pub use task::{TaskRef, TaskState, TaskStatus, TaskWait};
pub use tls::{client_config, Fingerprint, TlsError, TlsPolicy};
pub use update::{UpdateParameters, UpdateService};
pub use versions::{BmcVersions, InventoryRead, PropertyRead};
pub use wait::wait_for_power;
