//! The agent's HTTP client: JSON POSTs to the controller, signed with the node's key, with time
//! limits on every request; an answer counts only when the controller signed it.

use std::time::Duration;

use serde::Serialize;

use super::auth::{AgentAuth, HEADER};

/// What the controller answered: status and body (any status; the caller judges it), and whether
/// the answer carries this deployment's controller's proof.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub genuine: bool,
}

impl Answer {
    /// The `error` field of a JSON error body, else the body itself.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| self.body.trim().to_string())
    }
}

/// A request that got no answer (refused, reset, timed out).
#[derive(Debug, thiserror::Error)]
#[error("POST {url}")]
pub struct NoAnswer {
    pub url: String,
    #[source]
    pub source: Box<ureq::Error>,
}

/// POST `body` as JSON to the controller's `route` (`/agent/hello`), signed; the answer must come
/// within `limit`.
pub fn post_json(
    controller: &str,
    route: &str,
    body: &impl Serialize,
    limit: Duration,
    auth: &AgentAuth,
) -> Result<Answer, NoAnswer> {
    let url = format!("{}{route}", controller.trim_end_matches('/'));
    // The controller speaks plain http: the image is protected by its digests, requests and
    // answers by the node's key.
    let agent = crate::bmc::api_agent(None, Duration::from_secs(5), Some(limit));
    let text = serde_json::to_string(body).unwrap_or_default();
    let fail = |e: ureq::Error| NoAnswer { url: url.clone(), source: Box::new(e) };
    let mut resp = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .header(HEADER, auth.header(route, text.as_bytes()))
        .send(text.as_str())
        .map_err(fail)?;
    let status = resp.status().as_u16();
    let proof = resp.headers().get(HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.body_mut().with_config().limit(1 << 20).read_to_string().map_err(fail)?;
    let genuine = auth.answer_is_genuine(route, status, body.as_bytes(), proof.as_deref());
    Ok(Answer { status, body, genuine })
}
