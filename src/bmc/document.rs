//! The documents `kiln bmc ... --json` prints: one kind per command (`kiln.bmc-power`,
//! `kiln.bmc-boot`, `kiln.bmc-media`, `kiln.bmc-firmware`, `kiln.bmc-info`, `kiln.bmc-locate`), each with
//! `schema_version`, the BMC and the node; described in `docs/json-schema.md`.

use serde::Serialize;

use super::{BootOverride, BootTarget, FirmwareComponent, FirmwareItem, Identity, Locate, MediaSlot, PowerState};

/// `schema_version` of every `kiln.bmc-*` document; bumped on any change a consumer could notice.
pub const BMC_SCHEMA_VERSION: u32 = 1;

/// One `kiln bmc` answer as a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BmcDocument {
    pub schema_version: u32,
    /// `kiln.bmc-power`, `kiln.bmc-boot`, `kiln.bmc-media`, `kiln.bmc-firmware`, `kiln.bmc-info`,
    /// `kiln.bmc-locate`.
    pub kind: &'static str,
    /// The BMC as kiln names it in messages: its URL, or its IPMI address.
    pub bmc: String,
    /// The manifest node (`--rack F --node N`) or `--node N`; null when not named.
    pub node: Option<String>,
    #[serde(flatten)]
    pub answer: BmcAnswer,
}

impl BmcDocument {
    pub fn new(bmc: impl Into<String>, node: Option<String>, answer: BmcAnswer) -> Self {
        BmcDocument { schema_version: BMC_SCHEMA_VERSION, kind: answer.kind(), bmc: bmc.into(), node, answer }
    }
}

/// What one command answered; its fields sit beside the common ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BmcAnswer {
    /// `kiln bmc power ACTION|status`: the power state after the action (and `--wait`).
    Power {
        power: PowerState,
        /// The action sent (`on`, `force-off`, ...); absent for `power status`.
        #[serde(skip_serializing_if = "Option::is_none")]
        action: Option<&'static str>,
    },
    /// `kiln bmc boot pxe|cd|hdd`: the one-time boot device set.
    Boot { boot_once: BootTarget },
    /// `kiln bmc media insert|eject|status`.
    Media { media: Media },
    /// `kiln bmc firmware`: every firmware item, and each as the inventory records it.
    Firmware { firmware: Vec<FirmwareItem>, components: Vec<FirmwareComponent> },
    /// `kiln bmc info`: power, identity and (over Redfish) the boot override.
    Info {
        power: PowerState,
        /// Boxed: the largest answer by far.
        identity: Box<Identity>,
        #[serde(skip_serializing_if = "Option::is_none")]
        boot_override: Option<BootOverride>,
    },
    /// `kiln bmc locate on|off|status`: the locate indicator as read back.
    Locate { locate: Locate },
}

impl BmcAnswer {
    /// The document kind of this answer.
    pub fn kind(&self) -> &'static str {
        match self {
            BmcAnswer::Power { .. } => "kiln.bmc-power",
            BmcAnswer::Boot { .. } => "kiln.bmc-boot",
            BmcAnswer::Media { .. } => "kiln.bmc-media",
            BmcAnswer::Firmware { .. } => "kiln.bmc-firmware",
            BmcAnswer::Info { .. } => "kiln.bmc-info",
            BmcAnswer::Locate { .. } => "kiln.bmc-locate",
        }
    }
}

/// The virtual CD after `media insert|eject`, or as `media status` read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Media {
    /// After insert (`inserted: true` and the image URL) or eject (`inserted: false`).
    Changed {
        inserted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        image: Option<String>,
    },
    /// The slot as read: its Redfish path, the image it holds (or null) and whether one is in.
    Slot(MediaSlot),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answer_carries_its_kind_the_version_and_the_common_fields() {
        let doc = BmcDocument::new(
            "https://10.0.0.5 (n1)",
            Some("n1".into()),
            BmcAnswer::Power { power: PowerState::On, action: Some("on") },
        );
        let v = serde_json::to_value(&doc).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({"schema_version": 1, "kind": "kiln.bmc-power", "bmc": "https://10.0.0.5 (n1)",
                               "node": "n1", "power": "on", "action": "on"})
        );
        let media = Media::Slot(MediaSlot { path: "/redfish/v1/m/Cd".into(), image: None, inserted: false });
        let v = serde_json::to_value(BmcDocument::new("b", None, BmcAnswer::Media { media })).expect("serializes");
        assert_eq!((v["kind"].as_str(), v["node"].is_null()), (Some("kiln.bmc-media"), true));
        assert_eq!(v["media"], serde_json::json!({"path": "/redfish/v1/m/Cd", "image": null, "inserted": false}));
        let eject = BmcAnswer::Media { media: Media::Changed { inserted: false, image: None } };
        let v = serde_json::to_value(BmcDocument::new("b", None, eject)).expect("serializes");
        assert_eq!(v["media"], serde_json::json!({"inserted": false}));
    }
}
