//! A streamed POST to a BMC: a body of known length read from a `Read` as it is sent, never
//! held whole in memory (firmware packages run to hundreds of megabytes).
//!
//! It is sent once: retrying would send the whole package again, and a BMC that answered an
//! upload with an error may already have started on it. A caller that wants another try runs
//! the step again (a firmware rerun resumes from what is still non-compliant).

use std::io::Read;
use std::time::Duration;

use serde_json::Value;
use ureq::SendBody;

use super::http::{judge, Answer, Method, RedfishClient, Reply};
use super::retry::{Attempt, Tries};
use super::BmcError;

impl RedfishClient {
    /// POST exactly `len` bytes from `body` to `path` as `content_type`, with `timeout` for the
    /// whole exchange (connect, upload, answer). A body that fails to read (or ends early) fails
    /// the upload: the BMC then never receives a complete package.
    pub fn post_stream(
        &self,
        path: &str,
        content_type: &str,
        len: u64,
        body: &mut dyn Read,
        timeout: Duration,
    ) -> Result<Reply, BmcError> {
        let url = format!("{}{}", self.base, path);
        let result = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Authorization", &self.authorization)
            .header("Accept", "application/json")
            .header("Content-Type", content_type)
            .header("Content-Length", &len.to_string())
            .send(SendBody::from_reader(body));
        let answer = match result {
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
        };
        let once = Tries { count: 1, deadline_hit: None };
        let (status, etag, location, text) = match judge(answer) {
            Attempt::Done(ok) => ok,
            Attempt::Retry(failure) | Attempt::Fail(failure) => {
                return Err(self.error(Method::Post, path, once, failure))
            }
        };
        tracing::debug!(bmc = %self.label, path, status, bytes = len, "bmc accepted an upload");
        // An upload's answer is a Task or nothing; a body that is not JSON is not an error.
        let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let etag = etag.or_else(|| body.get("@odata.etag").and_then(Value::as_str).map(str::to_string));
        Ok(Reply { status, etag, body, location })
    }
}
