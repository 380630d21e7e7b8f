//! The real Kubernetes backend: `GET` and merge-`PATCH` of `/api/v1/nodes/NAME` over HTTPS with a
//! bearer token, on the same ureq + rustls stack the BMC client uses.
//!
//! It can meet: an unreachable or slow API server (connect and overall
//! timeouts), a refused certificate, 401/403 for a bad token, 404 for a node
//! the cluster does not know, 409 when the node changed under a patch, and
//! bodies that are not JSON. The token is sent only in the Authorization
//! header and never logged.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;

use super::KubeError;
use crate::bmc::{api_agent, client_config, TlsPolicy};

/// Merge patch (RFC 7386): maps merge, lists and scalars replace, `null` deletes.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// What hand-off needs from the API server.
pub trait KubeNodes {
    /// The Node object; `KubeError::UnknownNode` on 404.
    fn get_node(&self, name: &str) -> Result<Value, KubeError>;
    /// Apply a JSON merge patch to the Node; returns the patched object.
    fn patch_node(&self, name: &str, patch: &Value) -> Result<Value, KubeError>;
}

/// A client for one API server.
pub struct KubeApi {
    base: String,
    authorization: String,
    agent: Agent,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi").field("api", &self.base).finish_non_exhaustive()
    }
}

impl KubeApi {
    /// A client for `url` with the token read from `token_file`, trusting the
    /// CA certificates in `ca` (else the system roots). Plain `http://` is
    /// accepted with a warning (the token then crosses the network in clear).
    pub fn new(url: &str, token_file: &Path, ca: Option<&Path>) -> Result<Self, KubeError> {
        let token = crate::input::read_to_string(token_file, crate::input::Input::Secret)
            .map_err(|source| KubeError::ReadToken { path: token_file.to_path_buf(), source })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(KubeError::EmptyToken { path: token_file.to_path_buf() });
        }
        Self::with_token(url, token, ca)
    }

    pub fn with_token(url: &str, token: &str, ca: Option<&Path>) -> Result<Self, KubeError> {
        let base = url.trim_end_matches('/').to_string();
        let https = base.starts_with("https://");
        if !https && !base.starts_with("http://") {
            return Err(KubeError::BadUrl { url: url.to_string() });
        }
        if !https {
            tracing::warn!(api = %base, "talking to the Kubernetes API over plain http: the token crosses the network in clear");
        }
        let tls = if https {
            let policy = match ca {
                Some(path) => TlsPolicy::CaFile(path.to_path_buf()),
                None => TlsPolicy::SystemRoots,
            };
            Some(client_config(&policy).map_err(|source| KubeError::Tls { source })?)
        } else {
            None
        };
        let agent = api_agent(tls, Duration::from_secs(10), Some(Duration::from_secs(30)));
        Ok(KubeApi { base, authorization: format!("Bearer {token}"), agent })
    }

    fn node_path(name: &str) -> String {
        format!("/api/v1/nodes/{name}")
    }

    fn answer(
        &self,
        method: &'static str,
        path: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        node: &str,
    ) -> Result<Value, KubeError> {
        let mut response = result.map_err(|source| KubeError::Transport {
            api: self.base.clone(),
            method,
            path: path.to_string(),
            source,
        })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(|source| KubeError::Transport {
            api: self.base.clone(),
            method,
            path: path.to_string(),
            source,
        })?;
        tracing::debug!(api = %self.base, method, path, status, "kubernetes api answered");
        if status == 404 {
            return Err(KubeError::UnknownNode { node: node.to_string() });
        }
        if !(200..300).contains(&status) {
            // A Status object carries a message; anything else is shown cut short.
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(KubeError::Status { api: self.base.clone(), method, path: path.to_string(), status, message });
        }
        serde_json::from_str(&text).map_err(|source| KubeError::BadReply {
            api: self.base.clone(),
            method,
            path: path.to_string(),
            source,
        })
    }
}

impl KubeNodes for KubeApi {
    fn get_node(&self, name: &str) -> Result<Value, KubeError> {
        let path = Self::node_path(name);
        let result = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .call();
        self.answer("GET", &path, result, name)
    }

    fn patch_node(&self, name: &str, patch: &Value) -> Result<Value, KubeError> {
        let path = Self::node_path(name);
        let result = self
            .agent
            .patch(format!("{}{path}", self.base))
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .header("Content-Type", MERGE_PATCH)
            .send(patch.to_string());
        self.answer("PATCH", &path, result, name)
    }
}
