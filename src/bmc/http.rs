//! The Redfish transport: JSON over HTTP(S) with basic auth, retries and errors naming the BMC.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use ureq::Agent;

use super::connector::api_agent;
use super::retry::{with_retries, Attempt, RetryPolicy, Tries};
use super::target::BmcTarget;
use super::tls::{self, TlsPolicy};
use super::BmcError;

/// One HTTP answer with a 2xx status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The `ETag` header, or the body's `@odata.etag` when the header is absent.
    pub etag: Option<String>,
    /// The JSON body; `Null` for an empty body (204).
    pub body: Value,
    /// The `Location` header: where an accepted action's Task (or its monitor) lives.
    pub location: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// What one attempt produced before it is judged.
pub(super) enum Answer {
    Http { status: u16, etag: Option<String>, location: Option<String>, text: String },
    NoAnswer(ureq::Error),
}

/// A client for one BMC. Cheap to share by reference across calls.
pub struct RedfishClient {
    pub(super) base: String,
    pub(super) label: String,
    pub(super) user: String,
    pub(super) authorization: String,
    pub(super) agent: Agent,
    pub(super) policy: RetryPolicy,
}

impl std::fmt::Debug for RedfishClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishClient").field("bmc", &self.label).field("user", &self.user).finish_non_exhaustive()
    }
}

impl RedfishClient {
    pub fn new(target: &BmcTarget, policy: RetryPolicy) -> Result<Self, BmcError> {
        let label = target.label();
        let base = target.url.trim_end_matches('/').to_string();
        let https = base.starts_with("https://");
        if target.tls == TlsPolicy::Insecure && https {
            tracing::warn!(bmc = %label, "TLS certificate of the BMC is NOT verified (--insecure)");
        }
        if !https {
            tracing::warn!(bmc = %label, "talking to the BMC over plain http: the password crosses the network in clear");
        }
        // The TLS settings are built only for https, so a plain-http emulator
        // works on a machine without system root certificates.
        let tls = if https {
            Some(tls::client_config(&target.tls).map_err(|source| BmcError::TlsSetup { bmc: label.clone(), source })?)
        } else {
            None
        };
        let agent = api_agent(tls, policy.connect_timeout, None);
        let credentials = format!("{}:{}", target.username, target.password.expose());
        let authorization = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        Ok(RedfishClient { base, label, user: target.username.clone(), authorization, agent, policy })
    }

    /// `https://10.77.0.111:8000 (node01)`.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn get(&self, path: &str) -> Result<Reply, BmcError> {
        self.request(Method::Get, path, None, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Reply, BmcError> {
        self.request(Method::Post, path, Some(body), None)
    }

    pub fn patch(&self, path: &str, body: &Value, if_match: Option<&str>) -> Result<Reply, BmcError> {
        self.request(Method::Patch, path, Some(body), if_match)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, BmcError> {
        let url = format!("{}{}", self.base, path);
        let payload = body.map(Value::to_string);
        let (result, tries) = with_retries(&self.policy, |budget| {
            let answer = self.send_once(method, &url, payload.as_deref(), if_match, budget);
            judge(answer)
        });
        let (status, etag, location, text) = match result {
            Ok(ok) => ok,
            Err(failure) => return Err(self.error(method, path, tries, failure)),
        };
        tracing::debug!(bmc = %self.label, method = method.as_str(), path, status, tries = tries.count, "bmc answered");
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => v,
                // Actions may answer 200 with a non-JSON body; only reads need JSON.
                Err(_) if method != Method::Get => Value::Null,
                Err(e) => {
                    return Err(BmcError::BadReply {
                        bmc: self.label.clone(),
                        path: path.to_string(),
                        what: format!("a body that is not JSON ({e})"),
                    })
                }
            }
        };
        let etag = etag.or_else(|| body.get("@odata.etag").and_then(Value::as_str).map(str::to_string));
        Ok(Reply { status, etag, body, location })
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        payload: Option<&str>,
        if_match: Option<&str>,
        budget: Duration,
    ) -> Answer {
        let result = match method {
            Method::Get => self
                .agent
                .get(url)
                .config()
                .timeout_global(Some(budget))
                .build()
                .header("Authorization", &self.authorization)
                .header("Accept", "application/json")
                .call(),
            Method::Post | Method::Patch => {
                let builder = if method == Method::Post { self.agent.post(url) } else { self.agent.patch(url) };
                let mut builder = builder
                    .config()
                    .timeout_global(Some(budget))
                    .build()
                    .header("Authorization", &self.authorization)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json");
                if let Some(tag) = if_match {
                    builder = builder.header("If-Match", tag);
                }
                builder.send(payload.unwrap_or("{}"))
            }
        };
        match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let header =
                    |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                let (etag, location) = (header("etag"), header("location"));
                match response.body_mut().read_to_string() {
                    Ok(text) => Answer::Http { status, etag, location, text },
                    Err(e) => Answer::NoAnswer(e),
                }
            }
            Err(e) => Answer::NoAnswer(e),
        }
    }

    pub(super) fn error(&self, method: Method, path: &str, tries: Tries, failure: Failure) -> BmcError {
        let bmc = self.label.clone();
        let method = method.as_str();
        let path = path.to_string();
        match failure {
            Failure::NoAnswer(source) => BmcError::Transport { bmc, method, path, tries, source },
            Failure::Status { status: status @ (401 | 403), text } => BmcError::Unauthorized {
                bmc,
                method,
                path,
                user: self.user.clone(),
                status,
                message: redfish_message(&text),
            },
            Failure::Status { status, text } => {
                BmcError::Status { bmc, method, path, status, tries, message: redfish_message(&text) }
            }
        }
    }
}

pub(super) enum Failure {
    NoAnswer(ureq::Error),
    Status { status: u16, text: String },
}

/// Decide whether an attempt is done, worth retrying, or failed for good.
pub(super) fn judge(answer: Answer) -> Attempt<(u16, Option<String>, Option<String>, String), Failure> {
    match answer {
        Answer::Http { status, etag, location, text } if (200..300).contains(&status) => {
            Attempt::Done((status, etag, location, text))
        }
        Answer::Http { status, text, .. } if status >= 500 => Attempt::Retry(Failure::Status { status, text }),
        Answer::Http { status, text, .. } => Attempt::Fail(Failure::Status { status, text }),
        Answer::NoAnswer(e) => {
            if is_transient(&e) {
                Attempt::Retry(Failure::NoAnswer(e))
            } else {
                Attempt::Fail(Failure::NoAnswer(e))
            }
        }
    }
}

/// Connection trouble and timeouts may pass; a refused certificate or a
/// malformed URL will not.
pub(super) fn is_transient(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        // rustls reports a refused certificate as InvalidData; trying again cannot help.
        ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        _ => false,
    }
}

/// The human part of a Redfish error body: `error.message` and the messages
/// of `@Message.ExtendedInfo`, or the start of a non-JSON body.
pub fn redfish_message(text: &str) -> String {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(empty body)".to_string();
    }
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        let error = v.get("error").unwrap_or(&v);
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = error.get("message").and_then(Value::as_str) {
            parts.push(m.to_string());
        }
        if let Some(infos) = error.get("@Message.ExtendedInfo").and_then(Value::as_array) {
            for info in infos {
                if let Some(m) = info.get("Message").and_then(Value::as_str) {
                    if !parts.iter().any(|p| p == m) {
                        parts.push(m.to_string());
                    }
                }
            }
        }
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let mut short: String = trimmed.chars().take(200).collect();
    if trimmed.chars().count() > 200 {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_from_a_redfish_error_body() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error has occurred.",
            "@Message.ExtendedInfo":[{"MessageId":"Base.1.8.ResourceInUse","Message":"The change could not be made because the resource was in use."}]}}"#;
        assert_eq!(
            redfish_message(body),
            "A general error has occurred.; The change could not be made because the resource was in use."
        );
    }

    #[test]
    fn message_from_a_non_json_body_is_cut_short() {
        assert_eq!(redfish_message("  <html>Bad gateway</html> "), "<html>Bad gateway</html>");
        assert_eq!(redfish_message(""), "(empty body)");
        assert!(redfish_message(&"x".repeat(500)).chars().count() <= 201);
    }

    #[test]
    fn server_errors_are_retried_client_errors_are_not() {
        let http = |status| Answer::Http { status, etag: None, location: None, text: String::new() };
        assert!(matches!(judge(http(500)), Attempt::Retry(_)));
        assert!(matches!(judge(http(503)), Attempt::Retry(_)));
        assert!(matches!(judge(http(404)), Attempt::Fail(_)));
        assert!(matches!(judge(http(401)), Attempt::Fail(_)));
        assert!(matches!(judge(http(204)), Attempt::Done(_)));
        let refused = ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(judge(Answer::NoAnswer(refused)), Attempt::Retry(_)));
        let bad_cert =
            ureq::Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid peer certificate"));
        assert!(matches!(judge(Answer::NoAnswer(bad_cert)), Attempt::Fail(_)));
    }
}
