//! The Redfish backend of `Bmc`: finds the system, its manager's virtual CD and the
//! firmware inventory by following links from the service root, then acts on them.
//!
//! Nothing is assumed about resource names (they differ between vendors:
//! `System_0` on NVIDIA's OpenBMC, a UUID on the sushy emulator); every path
//! comes from an `@odata.id` the BMC itself sent.

use crate::redact;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{json, Value};

use super::http::{RedfishClient, Reply};
use super::retry::RetryPolicy;
use super::target::BmcTarget;
use super::{Bmc, BmcError, BootTarget, FirmwareItem, Identity, PowerAction, PowerState};

const SERVICE_ROOT: &str = "/redfish/v1";

/// The host's boot override as the BMC reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootOverride {
    pub target: Option<String>,
    pub enabled: Option<String>,
    pub mode: Option<String>,
}

/// The virtual CD/DVD slot and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaSlot {
    pub path: String,
    pub image: Option<String>,
    pub inserted: bool,
}

/// A BMC reached over Redfish.
pub struct RedfishBmc {
    client: RedfishClient,
    configured_system: Option<String>,
    system: OnceLock<String>,
}

impl RedfishBmc {
    /// A client with the default retry policy (4 tries, 60 s overall).
    pub fn connect(target: &BmcTarget) -> Result<Self, BmcError> {
        Self::with_policy(target, RetryPolicy::default())
    }

    pub fn with_policy(target: &BmcTarget, policy: RetryPolicy) -> Result<Self, BmcError> {
        Ok(RedfishBmc {
            client: RedfishClient::new(target, policy)?,
            configured_system: target.system_path.clone(),
            system: OnceLock::new(),
        })
    }

    /// The Redfish client underneath, for the operations kept in files of their own
    /// (firmware update, locate).
    pub fn client(&self) -> &RedfishClient {
        &self.client
    }

    fn bad_reply(&self, path: &str, what: impl Into<String>) -> BmcError {
        BmcError::BadReply { bmc: self.client.label().to_string(), path: path.to_string(), what: what.into() }
    }

    fn discovery(&self, what: impl Into<String>) -> BmcError {
        BmcError::Discovery { bmc: self.client.label().to_string(), what: what.into() }
    }

    fn not_supported(&self, operation: &'static str, why: impl Into<String>) -> BmcError {
        BmcError::NotSupported { bmc: self.client.label().to_string(), operation, why: why.into() }
    }

    /// The ComputerSystem to act on: the configured one, the only member of
    /// the Systems collection, or, where there are several (a GH200 lists its
    /// HGX baseboard beside the host), the one server the BMC's own manager
    /// says it manages.
    pub fn system_path(&self) -> Result<String, BmcError> {
        if let Some(path) = self.system.get() {
            return Ok(path.clone());
        }
        let path = match &self.configured_system {
            Some(p) => p.clone(),
            None => self.discover_system()?,
        };
        tracing::debug!(bmc = %self.client.label(), system = %path, "using computer system");
        Ok(self.system.get_or_init(|| path).clone())
    }

    fn discover_system(&self) -> Result<String, BmcError> {
        let root = self.client.get(SERVICE_ROOT)?.body;
        let systems_path = link(&root, "Systems").unwrap_or_else(|| format!("{SERVICE_ROOT}/Systems"));
        let systems = self.client.get(&systems_path)?.body;
        let members = members(&systems);
        match members.len() {
            0 => Err(self.discovery(format!("{systems_path} lists no computer system"))),
            1 => Ok(members[0].clone()),
            _ => {
                let managed = root
                    .pointer("/Links/ManagerProvidingService/@odata.id")
                    .and_then(Value::as_str)
                    .map(|m| self.client.get(m))
                    .transpose()?
                    .map(|m| link_list(&m.body, "/Links/ManagerForServers"))
                    .unwrap_or_default();
                let chosen: Vec<&String> = managed.iter().filter(|m| members.contains(m)).collect();
                if chosen.len() == 1 {
                    return Ok(chosen[0].clone());
                }
                Err(self.discovery(format!(
                    "{systems_path} lists {} systems ({}); choose one with bmc_system in the manifest or --bmc-system",
                    members.len(),
                    members.join(", ")
                )))
            }
        }
    }

    fn system(&self) -> Result<(String, Reply), BmcError> {
        let path = self.system_path()?;
        let reply = self.client.get(&path)?;
        Ok((path, reply))
    }

    /// The boot override as the BMC reports it now.
    pub fn boot_override(&self) -> Result<BootOverride, BmcError> {
        let (_, reply) = self.system()?;
        let boot = reply.body.get("Boot");
        let field = |k: &str| boot.and_then(|b| text(b, k));
        Ok(BootOverride {
            target: field("BootSourceOverrideTarget"),
            enabled: field("BootSourceOverrideEnabled"),
            mode: field("BootSourceOverrideMode"),
        })
    }

    /// The virtual CD/DVD slot: the first member of the manager's VirtualMedia
    /// collection that takes CD or DVD media (the system's own collection when
    /// the manager has none).
    pub fn media_slot(&self) -> Result<(MediaSlot, Value), BmcError> {
        let (system_path, system) = self.system()?;
        let mut collections = Vec::new();
        let manager_path = match link_list(&system.body, "/Links/ManagedBy").into_iter().next() {
            Some(m) => Some(m),
            None => {
                let root = self.client.get(SERVICE_ROOT)?.body;
                match link(&root, "Managers") {
                    Some(p) => members(&self.client.get(&p)?.body).into_iter().next(),
                    None => None,
                }
            }
        };
        if let Some(manager) = &manager_path {
            if let Some(vm) = link(&self.client.get(manager)?.body, "VirtualMedia") {
                collections.push(vm);
            }
        }
        if let Some(vm) = link(&system.body, "VirtualMedia") {
            if !collections.contains(&vm) {
                collections.push(vm);
            }
        }
        if collections.is_empty() {
            return Err(self.not_supported(
                "virtual media",
                format!(
                    "by this BMC: neither {} nor {system_path} links a VirtualMedia collection",
                    manager_path.as_deref().unwrap_or("its manager")
                ),
            ));
        }
        for collection in &collections {
            for member in members(&self.client.get(collection)?.body) {
                let slot = self.client.get(&member)?.body;
                let types: Vec<&str> = slot
                    .get("MediaTypes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if types.iter().any(|t| *t == "CD" || *t == "DVD") {
                    let state = MediaSlot {
                        path: member.clone(),
                        image: text(&slot, "Image"),
                        inserted: slot.get("Inserted").and_then(Value::as_bool).unwrap_or(false),
                    };
                    return Ok((state, slot));
                }
            }
        }
        Err(self.not_supported("virtual media", format!("by this BMC: no CD/DVD slot in {}", collections.join(", "))))
    }

    /// The `ResetType` values the system accepts, when it says (inline, or in
    /// its ActionInfo resource). `None` when it does not say.
    fn allowed_reset_types(&self, action: &Value) -> Option<Vec<String>> {
        if let Some(list) = action.get("ResetType@Redfish.AllowableValues").and_then(Value::as_array) {
            return Some(list.iter().filter_map(Value::as_str).map(str::to_string).collect());
        }
        let info_path = action.get("@Redfish.ActionInfo").and_then(Value::as_str)?;
        // ActionInfo only refines the choice; if it cannot be read, kiln
        // sends its first preference and lets the BMC judge.
        let info = match self.client.get(info_path) {
            Ok(r) => r.body,
            Err(e) => {
                tracing::debug!(bmc = %self.client.label(), error = %e, "cannot read reset action info");
                return None;
            }
        };
        let params = info.get("Parameters").and_then(Value::as_array)?;
        let reset = params.iter().find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))?;
        let list = reset.get("AllowableValues").and_then(Value::as_array)?;
        Some(list.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }

    fn post_media_action(&self, slot: &Value, slot_path: &str, action: &str, body: Value) -> Result<(), BmcError> {
        let key = format!("#VirtualMedia.{action}");
        match slot.pointer(&format!("/Actions/{}", key.replace('/', "~1"))).and_then(|a| text(a, "target")) {
            Some(target) => {
                self.client.post(&target, &body)?;
            }
            None => {
                // Older BMCs (Redfish before 2018.2) change media by PATCHing the slot.
                let patch = if action == "InsertMedia" {
                    json!({"Image": body.get("Image"), "Inserted": true})
                } else {
                    json!({"Image": null, "Inserted": false})
                };
                let etag = self.client.get(slot_path)?.etag;
                self.client.patch(slot_path, &patch, etag.as_deref())?;
            }
        }
        Ok(())
    }

    /// The serial number of a related part, if it has one and can be read.
    fn related_serial(&self, path: &str, cache: &mut HashMap<String, Option<String>>) -> Option<String> {
        if let Some(known) = cache.get(path) {
            return known.clone();
        }
        let serial = match self.client.get(path) {
            Ok(r) => text(&r.body, "SerialNumber"),
            Err(e) => {
                tracing::debug!(bmc = %self.client.label(), path, error = %e, "cannot read related item");
                None
            }
        };
        cache.insert(path.to_string(), serial.clone());
        serial
    }
}

impl Bmc for RedfishBmc {
    fn label(&self) -> &str {
        self.client.label()
    }

    fn power_state(&self) -> Result<PowerState, BmcError> {
        let (path, reply) = self.system()?;
        let state = text(&reply.body, "PowerState")
            .ok_or_else(|| self.bad_reply(&path, "a ComputerSystem without PowerState"))?;
        Ok(PowerState::from_redfish(&state))
    }

    fn power(&self, action: PowerAction) -> Result<(), BmcError> {
        let (path, reply) = self.system()?;
        let reset = reply.body.pointer("/Actions/#ComputerSystem.Reset").ok_or_else(|| {
            self.not_supported("power control", format!("by {path}: it has no ComputerSystem.Reset action"))
        })?;
        let target = text(reset, "target").ok_or_else(|| self.bad_reply(&path, "a Reset action without a target"))?;
        let wanted = action.redfish_reset_types();
        let reset_type = match self.allowed_reset_types(reset) {
            Some(allowed) => wanted.iter().find(|w| allowed.iter().any(|a| a == *w)).copied().ok_or_else(|| {
                self.not_supported(
                    "power action",
                    format!("{:?}: {path} allows only {}", action.as_str(), allowed.join(", ")),
                )
            })?,
            None => wanted[0],
        };
        self.client.post(&target, &json!({ "ResetType": reset_type }))?;
        tracing::info!(bmc = %self.client.label(), action = action.as_str(), reset_type, "power action accepted");
        Ok(())
    }

    fn set_boot_once(&self, target: BootTarget) -> Result<(), BmcError> {
        let (path, reply) = self.system()?;
        let boot = reply
            .body
            .get("Boot")
            .ok_or_else(|| self.not_supported("boot override", format!("by {path}: it has no Boot property")))?;
        if let Some(allowed) = boot.get("BootSourceOverrideTarget@Redfish.AllowableValues").and_then(Value::as_array) {
            if !allowed.iter().any(|a| a.as_str() == Some(target.redfish())) {
                let list: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                return Err(self.not_supported(
                    "boot override",
                    format!("to {}: {path} allows {}", target.redfish(), list.join(", ")),
                ));
            }
        }
        // Where the system has a settings object, changes go there and apply
        // at the next boot (Redfish's @Redfish.Settings; NVIDIA's BMCs have one).
        let (patch_path, mut etag) =
            match reply.body.pointer("/@Redfish.Settings/SettingsObject/@odata.id").and_then(Value::as_str) {
                Some(settings) => (settings.to_string(), self.client.get(settings)?.etag),
                None => (path.clone(), reply.etag.clone()),
            };
        let body = json!({"Boot": {"BootSourceOverrideTarget": target.redfish(), "BootSourceOverrideEnabled": "Once"}});
        match self.client.patch(&patch_path, &body, etag.as_deref()) {
            Ok(_) => {}
            // Someone changed the resource between our read and our write:
            // read it again and try once more with the fresh ETag.
            Err(BmcError::Status { status: 412, .. }) if etag.is_some() => {
                etag = self.client.get(&patch_path)?.etag;
                self.client.patch(&patch_path, &body, etag.as_deref())?;
            }
            Err(e) => return Err(e),
        }
        tracing::info!(bmc = %self.client.label(), target = target.redfish(), path = %patch_path, "boot override set for the next boot");
        Ok(())
    }

    fn insert_media(&self, url: &str) -> Result<(), BmcError> {
        let (slot, body) = self.media_slot()?;
        if slot.inserted {
            let image = slot.image.as_deref().map(redact::userinfo);
            tracing::info!(bmc = %self.client.label(), slot = %slot.path, image = ?image, "ejecting the image already inserted");
            self.post_media_action(&body, &slot.path, "EjectMedia", json!({}))?;
        }
        self.post_media_action(
            &body,
            &slot.path,
            "InsertMedia",
            json!({"Image": url, "Inserted": true, "WriteProtected": true}),
        )?;
        tracing::info!(bmc = %self.client.label(), slot = %slot.path, image = %redact::userinfo(url), "virtual media inserted");
        Ok(())
    }

    fn eject_media(&self) -> Result<(), BmcError> {
        let (slot, body) = self.media_slot()?;
        if !slot.inserted {
            tracing::debug!(bmc = %self.client.label(), slot = %slot.path, "nothing inserted; nothing to eject");
            return Ok(());
        }
        self.post_media_action(&body, &slot.path, "EjectMedia", json!({}))?;
        tracing::info!(bmc = %self.client.label(), slot = %slot.path, "virtual media ejected");
        Ok(())
    }

    fn firmware_inventory(&self) -> Result<Vec<FirmwareItem>, BmcError> {
        let root = self.client.get(SERVICE_ROOT)?.body;
        let update = link(&root, "UpdateService").ok_or_else(|| {
            self.not_supported("firmware inventory", "by this BMC: the service root has no UpdateService")
        })?;
        let update_body = self.client.get(&update)?.body;
        let inventory = link(&update_body, "FirmwareInventory").ok_or_else(|| {
            self.not_supported("firmware inventory", format!("by this BMC: {update} has no FirmwareInventory"))
        })?;
        let collection = self.client.get(&inventory)?.body;
        let mut cache = HashMap::new();
        let mut items = Vec::new();
        for member in members(&collection) {
            // One unreadable member is recorded as such, not as a missing
            // one: "could not read" must show up, and the rest still count.
            let body = match self.client.get(&member) {
                Ok(r) => r.body,
                Err(e) => {
                    tracing::warn!(bmc = %self.client.label(), member = %member, error = %e, "cannot read firmware item");
                    items.push(FirmwareItem {
                        id: member.rsplit('/').next().unwrap_or(&member).to_string(),
                        name: String::new(),
                        version: None,
                        updateable: None,
                        related: None,
                        serial: None,
                        problem: Some(e.to_string()),
                        path: Some(member.clone()),
                    });
                    continue;
                }
            };
            let related = link_list(&body, "/RelatedItem").into_iter().next();
            let serial = related.as_deref().and_then(|r| self.related_serial(r, &mut cache));
            items.push(FirmwareItem {
                id: text(&body, "Id").unwrap_or_else(|| member.rsplit('/').next().unwrap_or(&member).to_string()),
                name: text(&body, "Name").unwrap_or_default(),
                version: text(&body, "Version"),
                updateable: body.get("Updateable").and_then(Value::as_bool),
                related,
                serial,
                problem: None,
                path: Some(member.clone()),
            });
        }
        Ok(items)
    }

    fn identity(&self) -> Result<Identity, BmcError> {
        let (path, reply) = self.system()?;
        let sys = &reply.body;
        // The chassis and the manager add to the answer; if one cannot be
        // read the rest still counts, and the reason is kept beside it.
        let mut problems = Vec::new();
        let mut read_linked = |pointer: &str| -> (Option<String>, Option<Value>) {
            let Some(p) = link_list(sys, pointer).into_iter().next() else {
                return (None, None);
            };
            match self.client.get(&p) {
                Ok(r) => (Some(p), Some(r.body)),
                Err(e) => {
                    problems.push(e.to_string());
                    (Some(p), None)
                }
            }
        };
        let (chassis_path, chassis) = read_linked("/Links/Chassis");
        let (_, manager) = read_linked("/Links/ManagedBy");
        let from_chassis = |k: &str| chassis.as_ref().and_then(|c| text(c, k));
        let bmc_firmware = manager.as_ref().and_then(|m| text(m, "FirmwareVersion"));
        Ok(Identity {
            system: Some(path),
            system_serial: text(sys, "SerialNumber"),
            chassis: chassis_path.clone(),
            chassis_serial: from_chassis("SerialNumber"),
            // The host system of NVIDIA's BMCs leaves these to the chassis.
            manufacturer: text(sys, "Manufacturer").or_else(|| from_chassis("Manufacturer")),
            model: text(sys, "Model").or_else(|| from_chassis("Model")),
            part_number: text(sys, "PartNumber").or_else(|| from_chassis("PartNumber")),
            uuid: text(sys, "UUID"),
            bmc_firmware,
            problems,
        })
    }
}

/// A string property, trimmed; absent, empty or non-string is `None`.
pub(super) fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// The `@odata.id` of a navigation property (`{"Systems": {"@odata.id": ...}}`).
pub(super) fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|l| l.get("@odata.id")).and_then(Value::as_str).map(str::to_string)
}

/// The `@odata.id`s of an array of links at a JSON pointer.
pub(super) fn link_list(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.get("@odata.id").and_then(Value::as_str)).map(str::to_string).collect())
        .unwrap_or_default()
}

/// The members of a Redfish collection, each once. (A recorded GH200 BMC
/// lists one firmware member twice; counting it twice would record a
/// component that does not exist.)
pub(super) fn members(collection: &Value) -> Vec<String> {
    let mut seen = Vec::new();
    for m in link_list(collection, "/Members") {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_helpers_skip_empty_and_missing() {
        let v = json!({"Model": "", "SerialNumber": " 1580624650610 ", "Links": {"Chassis": [{"@odata.id": "/redfish/v1/Chassis/BMC_0"}]}});
        assert_eq!(text(&v, "Model"), None);
        assert_eq!(text(&v, "SerialNumber").as_deref(), Some("1580624650610"));
        assert_eq!(link_list(&v, "/Links/Chassis"), vec!["/redfish/v1/Chassis/BMC_0".to_string()]);
        assert!(link_list(&v, "/Links/ManagedBy").is_empty());
    }
}
