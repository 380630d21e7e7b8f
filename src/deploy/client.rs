//! The agent's HTTP client: JSON POSTs to the controller, with time limits on every request.

use std::time::Duration;

use serde::Serialize;

/// What the controller answered: status and body (any status; the caller judges it).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
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

/// POST `body` as JSON to `url`; the answer must come within `limit`.
pub fn post_json(url: &str, body: &impl Serialize, limit: Duration) -> Result<Answer, NoAnswer> {
    // The controller speaks plain http (the image is protected by its digests).
    let agent = crate::bmc::api_agent(None, Duration::from_secs(5), Some(limit));
    let text = serde_json::to_string(body).unwrap_or_default();
    let fail = |e: ureq::Error| NoAnswer { url: url.to_string(), source: Box::new(e) };
    let mut resp = agent.post(url).header("Content-Type", "application/json").send(text.as_str()).map_err(fail)?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().with_config().limit(1 << 20).read_to_string().map_err(fail)?;
    Ok(Answer { status, body })
}
