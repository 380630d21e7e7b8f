//! The messages between a node's `kiln agent` and the controller (`kiln rack image`), as JSON over
//! HTTP POST to `/agent/*`. The contract is docs/imaging.md, "Deploying".
//!
//! Requests are parsed field by field rather than with a derived `Deserialize`, so that a
//! malformed one is answered with a 400 that names the field (serde's own messages do not).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What the agent is there for: write the image, or report what booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    Imaging,
    Booted,
}

/// `POST /agent/hello`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hello {
    pub node: Option<String>,
    pub macs: Vec<String>,
    pub mode: AgentMode,
    pub kiln_version: String,
}

/// The controller's answer to a hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum HelloReply {
    /// Write this image to `target`, verified against the block map, which must have
    /// `bmap_sha256`; what is written must have `image_sha256` as a whole.
    Write {
        node: String,
        image_url: String,
        bmap_url: String,
        bmap_sha256: String,
        target: String,
        image_sha256: String,
        image_size: u64,
    },
    /// Booted mode: report the SHA-256 of the first `image_size` bytes of `target`.
    Report { node: String, image_size: u64, target: String },
    /// Not now: ask again after `retry_ms`.
    Wait { node: String, retry_ms: u64 },
}

/// `POST /agent/result`: how the write went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentResult {
    pub node: String,
    pub ok: bool,
    /// The whole-image digest the writer verified on the target.
    pub image_sha256: Option<String>,
    pub bytes: u64,
    pub seconds: f64,
    pub error: Option<String>,
    /// After a failure, what the target was left as: `untouched`, `wiped`, `preserved`,
    /// `wipe-failed`.
    pub target_state: Option<String>,
}

/// The controller's answer to a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ResultReply {
    /// The image is confirmed and the next boot is set: reboot into it.
    Reboot,
    /// Do not reboot (the write failed, or the controller gave up on this node).
    Stay,
}

/// Where a booted node's digest came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BootedSource {
    /// `/etc/kiln/image.json`, written by the image's cloud-init.
    #[serde(rename = "image.json")]
    ImageJson,
    /// Hashing the first `image_size` bytes of the target.
    #[serde(rename = "disk")]
    Disk,
}

impl BootedSource {
    pub fn as_str(self) -> &'static str {
        match self {
            BootedSource::ImageJson => "image.json",
            BootedSource::Disk => "disk",
        }
    }
}

/// `POST /agent/booted`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootedReport {
    pub node: String,
    pub image_sha256: String,
    pub source: BootedSource,
}

/// The controller's answer to a booted report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootedReply {
    pub ok: bool,
    pub message: String,
}

/// A request the controller cannot use: answered 400 with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

/// A JSON object's fields, read one at a time with errors that name the field.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(body: &[u8]) -> Result<Fields, BadRequest> {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(BadRequest("body: expected a JSON object".into())),
            Err(e) => Err(BadRequest(format!("body: not JSON: {e}"))),
        }
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<String, BadRequest> {
        self.opt_string(name)?.ok_or_else(|| BadRequest(format!("field `{name}`: missing")))
    }

    fn opt_string(&self, name: &str) -> Result<Option<String>, BadRequest> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(BadRequest(format!("field `{name}`: expected a string, found {other}"))),
        }
    }

    fn bool(&self, name: &str) -> Result<bool, BadRequest> {
        match self.present(name) {
            Some(Value::Bool(b)) => Ok(*b),
            None => Err(BadRequest(format!("field `{name}`: missing"))),
            Some(other) => Err(BadRequest(format!("field `{name}`: expected true or false, found {other}"))),
        }
    }

    fn u64_or_zero(&self, name: &str) -> Result<u64, BadRequest> {
        match self.present(name) {
            None => Ok(0),
            Some(v) => {
                v.as_u64().ok_or_else(|| BadRequest(format!("field `{name}`: expected a whole number, found {v}")))
            }
        }
    }

    fn f64_or_zero(&self, name: &str) -> Result<f64, BadRequest> {
        match self.present(name) {
            None => Ok(0.0),
            Some(v) => v.as_f64().ok_or_else(|| BadRequest(format!("field `{name}`: expected a number, found {v}"))),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, BadRequest> {
        match self.present(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        BadRequest(format!("field `{name}`: expected a list of strings, found {v} in it"))
                    })
                })
                .collect(),
            Some(other) => Err(BadRequest(format!("field `{name}`: expected a list of strings, found {other}"))),
        }
    }

    fn sha256(&self, name: &str, required: bool) -> Result<Option<String>, BadRequest> {
        let value = if required { Some(self.string(name)?) } else { self.opt_string(name)? };
        match value {
            Some(s) if s.len() != 64 || !s.chars().all(|c| c.is_ascii_hexdigit()) => {
                Err(BadRequest(format!("field `{name}`: {s:?} is not a SHA-256 (64 hex digits)")))
            }
            other => Ok(other.map(|s| s.to_ascii_lowercase())),
        }
    }
}

impl Hello {
    pub fn parse(body: &[u8]) -> Result<Hello, BadRequest> {
        let f = Fields::parse(body)?;
        let mode = match f.string("mode")?.as_str() {
            "imaging" => AgentMode::Imaging,
            "booted" => AgentMode::Booted,
            other => return Err(BadRequest(format!("field `mode`: {other:?} is not imaging or booted"))),
        };
        Ok(Hello {
            node: f.opt_string("node")?.filter(|n| !n.is_empty()),
            macs: f.strings("macs")?.into_iter().map(|m| m.to_ascii_lowercase()).collect(),
            mode,
            kiln_version: f.opt_string("kiln_version")?.unwrap_or_default(),
        })
    }
}

impl AgentResult {
    pub fn parse(body: &[u8]) -> Result<AgentResult, BadRequest> {
        let f = Fields::parse(body)?;
        let ok = f.bool("ok")?;
        Ok(AgentResult {
            node: f.string("node")?,
            ok,
            // A successful write must say what it verified; a failed one may not know.
            image_sha256: f.sha256("image_sha256", ok)?,
            bytes: f.u64_or_zero("bytes")?,
            seconds: f.f64_or_zero("seconds")?,
            error: f.opt_string("error")?,
            target_state: f.opt_string("target_state")?,
        })
    }
}

impl BootedReport {
    pub fn parse(body: &[u8]) -> Result<BootedReport, BadRequest> {
        let f = Fields::parse(body)?;
        let source = match f.string("source")?.as_str() {
            "image.json" => BootedSource::ImageJson,
            "disk" => BootedSource::Disk,
            other => return Err(BadRequest(format!("field `source`: {other:?} is not image.json or disk"))),
        };
        Ok(BootedReport {
            node: f.string("node")?,
            image_sha256: f.sha256("image_sha256", true)?.unwrap_or_default(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing::SHA;

    #[test]
    fn a_hello_parses_with_or_without_a_node() {
        let h = Hello::parse(br#"{"node":null,"macs":["52:54:00:AA:00:01"],"mode":"imaging","kiln_version":"0.1.0"}"#)
            .expect("parses");
        assert_eq!(h.node, None);
        assert_eq!(h.macs, ["52:54:00:aa:00:01"]);
        assert_eq!(h.mode, AgentMode::Imaging);
        let h = Hello::parse(br#"{"node":"n1","mode":"booted"}"#).expect("parses");
        assert_eq!((h.node.as_deref(), h.mode), (Some("n1"), AgentMode::Booted));
    }

    #[test]
    fn a_malformed_request_names_the_field() {
        let err = |r: Result<Hello, BadRequest>| r.expect_err("refused").0;
        assert_eq!(err(Hello::parse(br#"{"node":"n1"}"#)), "field `mode`: missing");
        assert_eq!(err(Hello::parse(br#"{"mode":"x"}"#)), "field `mode`: \"x\" is not imaging or booted");
        assert_eq!(
            err(Hello::parse(br#"{"mode":"imaging","macs":"aa"}"#)),
            "field `macs`: expected a list of strings, found \"aa\""
        );
        assert!(err(Hello::parse(b"[1]")).starts_with("body: expected a JSON object"));
        assert!(err(Hello::parse(b"{")).starts_with("body: not JSON"));
        let r = AgentResult::parse(br#"{"node":"n1","ok":"yes"}"#).expect_err("refused");
        assert_eq!(r.0, "field `ok`: expected true or false, found \"yes\"");
        let r = AgentResult::parse(br#"{"node":"n1","ok":true}"#).expect_err("refused");
        assert_eq!(r.0, "field `image_sha256`: missing");
        let r = BootedReport::parse(br#"{"node":"n1","image_sha256":"zz","source":"disk"}"#).expect_err("refused");
        assert_eq!(r.0, "field `image_sha256`: \"zz\" is not a SHA-256 (64 hex digits)");
    }

    #[test]
    fn results_and_reports_parse() {
        let body = format!(r#"{{"node":"n1","ok":true,"image_sha256":"{SHA}","bytes":5,"seconds":1.5,"error":null}}"#);
        let r = AgentResult::parse(body.as_bytes()).expect("parses");
        assert_eq!((r.ok, r.bytes, r.image_sha256.as_deref()), (true, 5, Some(SHA)));
        let failed = AgentResult::parse(br#"{"node":"n1","ok":false,"error":"boom","target_state":"wiped"}"#)
            .expect("a failure needs no digest");
        assert_eq!(failed.error.as_deref(), Some("boom"));
        let body = format!(r#"{{"node":"n1","image_sha256":"{SHA}","source":"image.json"}}"#);
        assert_eq!(BootedReport::parse(body.as_bytes()).expect("parses").source, BootedSource::ImageJson);
    }

    #[test]
    fn replies_serialize_as_the_contract_says() {
        let wait = serde_json::to_value(HelloReply::Wait { node: "n1".into(), retry_ms: 1000 }).expect("json");
        assert_eq!(wait, serde_json::json!({"node":"n1","action":"wait","retry_ms":1000}));
        assert_eq!(serde_json::to_value(ResultReply::Reboot).expect("json"), serde_json::json!({"action":"reboot"}));
        let back: HelloReply =
            serde_json::from_str(r#"{"node":"n1","action":"report","image_size":4,"target":"/dev/vda"}"#)
                .expect("parses");
        assert_eq!(back, HelloReply::Report { node: "n1".into(), image_size: 4, target: "/dev/vda".into() });
    }
}
