//! Starting firmware updates through a BMC's `UpdateService`: `SimpleUpdate` with an
//! `ImageURI` the BMC fetches, or a multipart HTTP push of the package to
//! `MultipartHttpPushUri`. Each answers with where its Task can be followed (`task.rs`).
//!
//! What real BMCs offer (recorded trees in tests/fixtures/redfish): NVIDIA's GH200 BMC has
//! `MultipartHttpPushUri` (`/redfish/v1/UpdateService/update-multipart`, apply time
//! `Immediate`) and no `SimpleUpdate`; the BlueField BMC has both, its `SimpleUpdate` over SCP
//! only; the sushy-tools emulator has `SimpleUpdate` over HTTP(S), for BIOS targets.

use std::io::Read;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::multipart::multipart_body;
use super::redfish::{link, text};
use super::task::TaskRef;
use super::{Bmc, BmcError, RedfishBmc};

/// What a BMC's `UpdateService` offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpdateService {
    pub path: String,
    /// The `SimpleUpdate` action's target.
    pub simple_update: Option<String>,
    /// `TransferProtocol@Redfish.AllowableValues` of `SimpleUpdate`, when listed.
    pub protocols: Option<Vec<String>>,
    pub multipart_push: Option<String>,
    /// `MaxImageSizeBytes`.
    pub max_image_bytes: Option<u64>,
}

/// `UpdateParameters` of a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateParameters {
    /// URIs of what to update; empty: the BMC decides from the package.
    pub targets: Vec<String>,
    /// `@Redfish.OperationApplyTime`, when the recipe gives one.
    pub apply_time: Option<String>,
}

impl UpdateParameters {
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "Targets": self.targets });
        if let Some(t) = &self.apply_time {
            v["@Redfish.OperationApplyTime"] = json!(t);
        }
        v
    }
}

impl RedfishBmc {
    /// The BMC's `UpdateService`, from the service root's link.
    pub fn update_service(&self) -> Result<UpdateService, BmcError> {
        let root = self.client().get("/redfish/v1")?.body;
        let path = link(&root, "UpdateService").ok_or_else(|| BmcError::NotSupported {
            bmc: self.label().to_string(),
            operation: "firmware update",
            why: "by this BMC: the service root has no UpdateService".into(),
        })?;
        let body = self.client().get(&path)?.body;
        let action = body.pointer("/Actions/#UpdateService.SimpleUpdate");
        // The recorded BlueField BMC nests the list: [["SCP"]]; read every string in it.
        let protocols = action.and_then(|a| a.get("TransferProtocol@Redfish.AllowableValues")).map(|v| {
            let mut out = Vec::new();
            collect_strings(v, &mut out);
            out
        });
        Ok(UpdateService {
            simple_update: action.and_then(|a| text(a, "target")),
            protocols,
            multipart_push: text(&body, "MultipartHttpPushUri"),
            max_image_bytes: body.get("MaxImageSizeBytes").and_then(Value::as_u64),
            path,
        })
    }

    /// Ask the BMC to fetch `image_uri` and apply it to `targets`.
    pub fn simple_update(
        &self,
        service: &UpdateService,
        image_uri: &str,
        targets: &[String],
        apply_time: Option<&str>,
    ) -> Result<TaskRef, BmcError> {
        let target = service.simple_update.as_deref().ok_or_else(|| BmcError::NotSupported {
            bmc: self.label().to_string(),
            operation: "SimpleUpdate",
            why: format!("by this BMC: {} has no #UpdateService.SimpleUpdate action", service.path),
        })?;
        let scheme = image_uri.split_once("://").map(|(s, _)| s.to_ascii_uppercase()).unwrap_or_default();
        if let Some(allowed) = &service.protocols {
            if !allowed.iter().any(|p| p.eq_ignore_ascii_case(&scheme)) {
                return Err(BmcError::NotSupported {
                    bmc: self.label().to_string(),
                    operation: "SimpleUpdate",
                    why: format!("over {scheme}: the BMC allows {}", allowed.join(", ")),
                });
            }
        }
        // The scheme of ImageURI says the protocol; TransferProtocol is deprecated and not sent.
        let mut body = json!({ "ImageURI": image_uri, "Targets": targets });
        if let Some(t) = apply_time {
            body["@Redfish.OperationApplyTime"] = json!(t);
        }
        let reply = self.client().post(target, &body)?;
        tracing::info!(bmc = %self.label(), image = image_uri, targets = ?targets, "SimpleUpdate accepted");
        Ok(TaskRef::from_reply(&reply))
    }

    /// Push `len` bytes of `package` (named `file_name`) to the BMC's `MultipartHttpPushUri`,
    /// streamed, with `timeout` for the whole upload. Refused before anything is sent when the
    /// BMC has no push URI or says the package is too large.
    pub fn multipart_push(
        &self,
        service: &UpdateService,
        package: &mut dyn Read,
        len: u64,
        file_name: &str,
        parameters: &UpdateParameters,
        timeout: Duration,
    ) -> Result<TaskRef, BmcError> {
        let uri = service.multipart_push.as_deref().ok_or_else(|| BmcError::NotSupported {
            bmc: self.label().to_string(),
            operation: "multipart push",
            why: format!("by this BMC: {} has no MultipartHttpPushUri", service.path),
        })?;
        if let Some(max) = service.max_image_bytes {
            if len > max {
                return Err(BmcError::TooLarge { bmc: self.label().to_string(), size: len, max });
            }
        }
        let mut body = multipart_body(&parameters.to_json().to_string(), file_name, package, len);
        let reply = self.client().post_stream(uri, &body.content_type, body.len, &mut body.reader, timeout)?;
        tracing::info!(bmc = %self.label(), uri, bytes = len, targets = ?parameters.targets, "package pushed");
        Ok(TaskRef::from_reply(&reply))
    }
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_carry_targets_and_the_apply_time_when_given() {
        let p = UpdateParameters {
            targets: vec!["/redfish/v1/UpdateService/FirmwareInventory/FW_BMC_0".into()],
            apply_time: None,
        };
        assert_eq!(p.to_json().to_string(), r#"{"Targets":["/redfish/v1/UpdateService/FirmwareInventory/FW_BMC_0"]}"#);
        let p = UpdateParameters { targets: Vec::new(), apply_time: Some("Immediate".into()) };
        assert_eq!(p.to_json().to_string(), r#"{"@Redfish.OperationApplyTime":"Immediate","Targets":[]}"#);
    }

    #[test]
    fn nested_protocol_lists_are_flattened() {
        let mut out = Vec::new();
        collect_strings(&json!([["SCP"], "HTTP"]), &mut out);
        assert_eq!(out, ["SCP", "HTTP"]);
    }
}
