//! `kiln agent`, the node side of a deployment. Imaging mode: hello, write the image the
//! controller names (verified, failing closed: `image::write_image`), report the result, reboot
//! when told. Booted mode: hello, report the digest of what is on the disk.
//!
//! Every request is signed with the node's key for this deployment (imaging: from the kernel
//! command line; booted: from the boot token the imaging agent left on the disk, `token`), and
//! only answers the controller signed are acted on.
//!
//! Every wait is bounded: the controller is retried until `wait_for`, each request has its own
//! time limit.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::auth::AgentAuth;
use super::client::{post_json, Answer, NoAnswer};
use super::node::humanize;
use super::protocol::{
    AgentMode, AgentResult, BootedReply, BootedReport, BootedSource, Hello, HelloReply, ResultReply,
};
use super::stall::{poll_interval, Stalled, Watch, Watched};
use super::token;
use crate::error::chain;
use crate::image::{fetch, wipe, BlockMap, Progress, StreamSource, Target, TargetState, WriteOptions};

/// What the agent was told to do (flags, else the kernel command line).
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Base URL of the controller, `http://10.0.0.1:8080`.
    pub controller: String,
    pub node: Option<String>,
    /// Overrides the controller's target.
    pub target: Option<PathBuf>,
    pub mode: AgentMode,
    pub reboot: bool,
    pub wait_for: Duration,
    /// How long the image transfer may go without a byte before the agent gives up on it.
    pub stall_timeout: Duration,
    /// Where the booted image says what it is (`/etc/kiln/image.json`).
    pub image_json: PathBuf,
    pub macs: Vec<String>,
    /// Imaging: the node's proof for this deployment, from `kiln.node=`, `kiln.deploy=`,
    /// `kiln.key=`. (Booted mode reads it from the boot token.)
    pub auth: Option<AgentAuth>,
    /// Booted mode without a target: the disks to look for the boot token on.
    pub disks: Vec<PathBuf>,
}

/// How an agent's work ended, when it did.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentDone {
    /// Written and verified; the controller said reboot (and we did, or were not allowed to).
    Written { node: String, target: PathBuf, bytes: u64, seconds: f64, image_sha256: String, reboot: bool },
    /// Booted mode: the controller confirmed the digest.
    Confirmed { node: String, message: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("controller {url} did not answer within {waited}")]
    Unreachable {
        url: String,
        waited: String,
        #[source]
        source: NoAnswer,
    },
    #[error("controller {url} refused this agent ({status}): {message}")]
    Refused { url: String, status: u16, message: String },
    #[error("controller {url} answered {what}")]
    BadReply { url: String, what: String },
    #[error("controller {url} answered without this deployment's proof: not the controller that booted this node")]
    NotGenuine { url: String },
    #[error("no deployment key: {0}")]
    NoKey(String),
    #[error("controller {url} still said wait after {waited}")]
    StillWaiting { url: String, waited: String },
    #[error("the write failed and was reported to the controller ({state})")]
    WriteFailed {
        state: TargetState,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the image transfer stalled; {state}")]
    Stalled {
        state: TargetState,
        #[source]
        source: Stalled,
    },
    #[error("the image was written and verified, but the controller said to stay")]
    ToldToStay,
    #[error("read target {}", path.display())]
    ReadTarget {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("read {}", path.display())]
    ImageJson { path: PathBuf, why: String },
    #[error("the controller did not confirm the booted image: {0}")]
    NotConfirmed(String),
    #[error("reboot")]
    Reboot(#[source] nix::Error),
}

impl AgentError {
    /// True when the image (or the controller's description of it) is at fault.
    pub fn is_bad_image(&self) -> bool {
        match self {
            AgentError::WriteFailed { source, .. } => {
                source.downcast_ref::<crate::image::WriteFailure>().is_some_and(|f| f.error.is_bad_image())
                    || source.downcast_ref::<PrepareError>().is_some()
                    || matches!(source.downcast_ref::<token::TokenError>(), Some(token::TokenError::NoRoom { .. }))
            }
            _ => false,
        }
    }
}

/// The writer's thread ended without answering (it panicked): a bug in kiln, not the disk.
#[derive(Debug, thiserror::Error)]
#[error("the writer thread ended without an answer")]
pub struct WriterLost;

/// Something wrong before the write began: the block map could not be had, or disagrees.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PrepareError(String);

const HELLO_LIMIT: Duration = Duration::from_secs(30);
/// The controller holds a result's answer while it sets the next boot (up to 90 s).
const RESULT_LIMIT: Duration = Duration::from_secs(150);

impl AgentOptions {
    fn url(&self, route: &str) -> String {
        format!("{}/agent/{route}", self.controller.trim_end_matches('/'))
    }
}

/// POST to the controller's `/agent/<route>`, signed with `auth`.
fn post(
    opts: &AgentOptions,
    auth: &AgentAuth,
    route: &str,
    body: &impl serde::Serialize,
    limit: Duration,
) -> Result<Answer, NoAnswer> {
    post_json(&opts.controller, &format!("/agent/{route}"), body, limit, auth)
}

/// Say hello until the controller gives work (not `wait`), or `wait_for` passes.
fn hello(opts: &AgentOptions, auth: &AgentAuth) -> Result<HelloReply, AgentError> {
    let url = opts.url("hello");
    let body = Hello {
        node: Some(auth.node.clone()),
        macs: opts.macs.clone(),
        mode: opts.mode,
        kiln_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let deadline = Instant::now() + opts.wait_for;
    let waited = || humanize(opts.wait_for);
    loop {
        let pause = match post(opts, auth, "hello", &body, HELLO_LIMIT) {
            Err(source) => {
                if Instant::now() >= deadline {
                    return Err(AgentError::Unreachable { url, waited: waited(), source });
                }
                tracing::debug!(error = %chain(&source), "controller not answering yet");
                Duration::from_secs(2)
            }
            Ok(Answer { status: 200, genuine: false, .. }) => return Err(AgentError::NotGenuine { url }),
            Ok(Answer { status: 200, body: text, .. }) => match serde_json::from_str::<HelloReply>(&text) {
                Ok(HelloReply::Wait { retry_ms, .. }) => {
                    if Instant::now() >= deadline {
                        return Err(AgentError::StillWaiting { url, waited: waited() });
                    }
                    Duration::from_millis(retry_ms.clamp(100, 30_000))
                }
                Ok(reply) => return Ok(reply),
                Err(e) => return Err(AgentError::BadReply { url, what: format!("an unreadable hello reply: {e}") }),
            },
            // The controller is starting, or busy: ask again.
            Ok(a) if a.status == 503 && Instant::now() < deadline => Duration::from_secs(1),
            Ok(a) => return Err(AgentError::Refused { url, status: a.status, message: a.message() }),
        };
        std::thread::sleep(
            pause.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(50)),
        );
    }
}

/// Imaging mode, start to end. The write runs on its own thread, watched for a stalled
/// transfer (`stall_timeout`).
pub fn run_imaging(opts: &AgentOptions, progress: Box<dyn Progress + Send>) -> Result<AgentDone, AgentError> {
    let Some(auth) = &opts.auth else {
        return Err(AgentError::NoKey(
            "no kiln.node=, kiln.deploy= and kiln.key= on the kernel command line: the controller gives each node \
             its key through its boot path (the iPXE script or virtual medium of kiln rack image)"
                .into(),
        ));
    };
    let reply = hello(opts, auth)?;
    let HelloReply::Write { node, image_url, bmap_url, bmap_sha256, target, image_sha256, image_size } = reply else {
        return Err(AgentError::BadReply { url: opts.url("hello"), what: format!("{reply:?} to an imaging hello") });
    };
    let target = opts.target.clone().unwrap_or_else(|| PathBuf::from(&target));
    tracing::info!(%node, target = %target.display(), image_url = %crate::redact::userinfo(&image_url), "writing the image");
    let started = Instant::now();
    let job = WriteJob { image_url, bmap_url, bmap_sha256, image_sha256, image_size, target: target.clone() };
    let (outcome, stalled) = match guarded_write(job, opts.stall_timeout, progress) {
        Guarded::Done(outcome) => (outcome, None),
        Guarded::Stalled(stall, state) => {
            tracing::error!(%node, error = %stall, target_state = state.as_str(), "image transfer stalled");
            (Err((state, Box::new(stall.clone()) as Box<_>)), Some((stall, state)))
        }
    };
    // The installed system's agent proves itself with the same key: it is left on the target,
    // past the image, before the result goes out (a target that cannot hold it fails the write).
    let outcome = match outcome {
        Ok(done) => match token::write(&target, image_size, auth) {
            Ok(()) => Ok(done),
            Err(e) => {
                let state = wipe_beside(&WriteJob {
                    image_url: String::new(),
                    bmap_url: String::new(),
                    bmap_sha256: String::new(),
                    image_sha256: String::new(),
                    image_size,
                    target: target.clone(),
                });
                tracing::error!(%node, error = %chain(&e), target_state = state.as_str(), "boot token not written");
                Err((state, Box::new(e) as Box<dyn std::error::Error + Send + Sync>))
            }
        },
        failed => failed,
    };
    let seconds = started.elapsed().as_secs_f64();
    let result = match &outcome {
        Ok((bytes, sha)) => AgentResult {
            node: node.clone(),
            ok: true,
            image_sha256: Some(sha.clone()),
            bytes: *bytes,
            seconds,
            error: None,
            target_state: None,
        },
        Err((state, e)) => AgentResult {
            node: node.clone(),
            ok: false,
            image_sha256: None,
            bytes: 0,
            seconds,
            error: Some(chain(e.as_ref())),
            target_state: Some(state.as_str().to_string()),
        },
    };
    let url = opts.url("result");
    if let Some((source, state)) = stalled {
        // Best effort: the controller may be what stalled. Its answer changes nothing.
        if let Err(e) = post(opts, auth, "result", &result, HELLO_LIMIT) {
            tracing::warn!(error = %chain(&e), "the stall could not be reported to the controller");
        }
        return Err(AgentError::Stalled { state, source });
    }
    let answer = post(opts, auth, "result", &result, RESULT_LIMIT).map_err(|source| AgentError::Unreachable {
        url: url.clone(),
        waited: humanize(RESULT_LIMIT),
        source,
    })?;
    let (bytes, sha) = match outcome {
        Ok(done) => done,
        Err((state, source)) => return Err(AgentError::WriteFailed { state, source }),
    };
    // Not told to reboot: the token has no use any more.
    let forget = |e: AgentError| {
        if let Err(why) = token::erase(&target) {
            tracing::warn!(target_path = %target.display(), error = %why, "the boot token could not be erased");
        }
        Err(e)
    };
    if answer.status != 200 {
        return forget(AgentError::Refused { url, status: answer.status, message: answer.message() });
    }
    if !answer.genuine {
        return forget(AgentError::NotGenuine { url });
    }
    match serde_json::from_str::<ResultReply>(&answer.body) {
        Ok(ResultReply::Reboot) => {}
        Ok(ResultReply::Stay) => return forget(AgentError::ToldToStay),
        Err(e) => return forget(AgentError::BadReply { url, what: format!("an unreadable result reply: {e}") }),
    }
    // Whatever else happens, what was written is on stable storage before a reboot.
    nix::unistd::sync();
    if opts.reboot {
        tracing::info!("rebooting into the new image");
        nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT).map_err(AgentError::Reboot)?;
    }
    Ok(AgentDone::Written { node, target, bytes, seconds, image_sha256: sha, reboot: opts.reboot })
}

type WriteOutcome = Result<(u64, String), (TargetState, Box<dyn std::error::Error + Send + Sync>)>;

/// What the controller said to write, owned by the writer's thread.
#[derive(Debug, Clone)]
struct WriteJob {
    image_url: String,
    bmap_url: String,
    bmap_sha256: String,
    image_sha256: String,
    image_size: u64,
    target: PathBuf,
}

enum Guarded {
    /// The writer answered (good or bad).
    Done(WriteOutcome),
    /// The transfer stalled; the writer is abandoned, the target left as said.
    Stalled(Stalled, TargetState),
}

/// Run `write` on a thread and watch its network waits: a wait with no byte for `limit` is a
/// stall. Then the target is wiped here (when the writer had begun on it) while the writer stays
/// blocked: safe, because the writer zeroed the partition-table regions before streaming and
/// writes them only after every byte arrived, which can no longer happen (the watch fails every
/// read from the moment of the stall). The process exits soon after, ending the blocked thread.
fn guarded_write(job: WriteJob, limit: Duration, progress: Box<dyn Progress + Send>) -> Guarded {
    let watch = Watch::new();
    let (tx, rx) = mpsc::channel();
    let spawned = {
        let (job, watch) = (job.clone(), watch.clone());
        std::thread::Builder::new().name("kiln-writer".into()).spawn(move || {
            let mut progress = progress;
            let _ = tx.send(write(&job, &watch, progress.as_mut()));
        })
    };
    if let Err(e) = spawned {
        return Guarded::Done(Err((TargetState::Untouched, Box::new(e))));
    }
    loop {
        match rx.recv_timeout(poll_interval(limit)) {
            Ok(outcome) => return Guarded::Done(outcome),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(stall) = watch.check(limit) {
                    let state = if watch.touched() { wipe_beside(&job) } else { TargetState::Untouched };
                    return Guarded::Stalled(stall, state);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let state = if watch.touched() { wipe_beside(&job) } else { TargetState::Untouched };
                return Guarded::Done(Err((state, Box::new(WriterLost))));
            }
        }
    }
}

/// Zero the partition-table regions of the target the writer still holds open.
fn wipe_beside(job: &WriteJob) -> TargetState {
    let wiped = Target::open_beside_writer(&job.target)
        .map_err(|e| chain(&e))
        .and_then(|t| wipe::wipe(&t, job.image_size).map_err(|e| e.to_string()));
    match wiped {
        Ok(()) => TargetState::Wiped,
        Err(why) => {
            tracing::error!(target_path = %job.target.display(), error = %why, "wiping the target failed");
            TargetState::WipeFailed
        }
    }
}

/// Fetch the block map, check it against what the controller said, stream the image onto the
/// target. Answers the bytes written and the verified digest. Every network wait goes through
/// `watch`.
fn write(job: &WriteJob, watch: &Arc<Watch>, progress: &mut dyn Progress) -> WriteOutcome {
    let WriteJob { image_url, bmap_url, bmap_sha256, image_sha256, image_size, target } = job;
    let (image_size, target) = (*image_size, target.as_path());
    let untouched = |msg: String| (TargetState::Untouched, Box::new(PrepareError(msg)) as Box<_>);
    let body = watch.wait(bmap_url, || fetch::get(bmap_url)).map_err(|e| untouched(format!("GET {bmap_url}: {e}")))?;
    let text = crate::input::read_all_to_string(
        Watched::new(body.map_err(|e| untouched(chain(&e)))?, bmap_url, watch.clone(), false),
        crate::input::Input::BlockMap,
    )
    .map_err(|e| untouched(format!("read block map {bmap_url}: {e}")))?;
    // The block map is the one the artifact manifest names, by its digest.
    let got = crate::image::Digest::of(text.as_bytes()).to_string();
    if got != *bmap_sha256 {
        return Err(untouched(format!(
            "block map {bmap_url} has sha256 {got}; the controller said {bmap_sha256} (the artifact manifest's)"
        )));
    }
    let map = BlockMap::parse(&text, Path::new(bmap_url)).map_err(|e| untouched(chain(&e)))?;
    let map_sha = map.image_sha256.map(|d| d.to_string()).unwrap_or_default();
    if map_sha != *image_sha256 || map.image_size != image_size {
        return Err(untouched(format!(
            "block map {bmap_url} describes {} bytes with sha256 {map_sha:?}; the controller said {image_size} bytes \
             with sha256 {image_sha256}",
            map.image_size
        )));
    }
    let body =
        watch.wait(image_url, || fetch::get(image_url)).map_err(|e| untouched(format!("GET {image_url}: {e}")))?;
    let body = Watched::new(body.map_err(|e| untouched(chain(&e)))?, image_url, watch.clone(), true);
    let mut source = StreamSource::new(body, image_url.to_string());
    watch.touch();
    // What is written must be the image the controller named, recomputed as a whole.
    let opts = WriteOptions { image_sha256: image_sha256.parse().ok(), ..WriteOptions::default() };
    match crate::image::write_image(&mut source, &map, target, &opts, progress) {
        Ok(report) => {
            for n in &report.notes {
                tracing::info!(note = %n, "writer");
            }
            let sha = report.image_sha256.map(|d| d.to_string()).unwrap_or_default();
            Ok((report.bytes_written, sha))
        }
        Err(f) => Err((f.target, Box::new(f))),
    }
}

/// Booted mode, start to end. The key comes from the boot token the imaging agent left on the
/// disk it wrote (`--target`, else the first disk that holds one), which is erased once the
/// controller confirmed the boot.
pub fn run_booted(opts: &AgentOptions) -> Result<AgentDone, AgentError> {
    let candidates = match &opts.target {
        Some(t) => vec![t.clone()],
        None => opts.disks.clone(),
    };
    let Some((disk, auth)) = token::find(&candidates) else {
        let looked = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(AgentError::NoKey(format!(
            "no boot token on {}: the imaging agent leaves one at the start of the disk's last MiB after a verified \
             write (docs/imaging.md, \"Deploying\")",
            if looked.is_empty() { "any disk".to_string() } else { looked }
        )));
    };
    if let Some(named) = opts.node.as_deref().filter(|n| *n != auth.node) {
        return Err(AgentError::NoKey(format!(
            "the boot token on {} is node {}'s, not {named}'s",
            disk.display(),
            auth.node
        )));
    }
    let reply = hello(opts, &auth)?;
    let HelloReply::Report { node, image_size, .. } = reply else {
        return Err(AgentError::BadReply { url: opts.url("hello"), what: format!("{reply:?} to a booted hello") });
    };
    let target = disk;
    let (image_sha256, source) = if opts.image_json.exists() {
        (read_image_json(&opts.image_json)?, BootedSource::ImageJson)
    } else {
        (hash_prefix(&target, image_size)?, BootedSource::Disk)
    };
    let url = opts.url("booted");
    let report = BootedReport { node: node.clone(), image_sha256, source };
    let answer = post(opts, &auth, "booted", &report, HELLO_LIMIT).map_err(|source| AgentError::Unreachable {
        url: url.clone(),
        waited: humanize(HELLO_LIMIT),
        source,
    })?;
    let reply: BootedReply = match serde_json::from_str(&answer.body) {
        Ok(r) if answer.genuine => r,
        Ok(_) if answer.status == 200 => return Err(AgentError::NotGenuine { url }),
        _ => return Err(AgentError::Refused { url, status: answer.status, message: answer.message() }),
    };
    if reply.ok {
        // Confirmed: the key has served its purpose; it does not stay on the disk.
        if let Err(e) = token::erase(&target) {
            tracing::warn!(target_path = %target.display(), error = %e, "the boot token could not be erased");
        }
        Ok(AgentDone::Confirmed { node, message: reply.message })
    } else {
        Err(AgentError::NotConfirmed(reply.message))
    }
}

/// `image_sha256` from the image's own record of what it is.
fn read_image_json(path: &Path) -> Result<String, AgentError> {
    let bad = |why: String| AgentError::ImageJson { path: path.to_path_buf(), why };
    let text =
        crate::input::read_to_string(path, crate::input::Input::ArtifactManifest).map_err(|e| bad(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    v["image_sha256"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| bad("field `image_sha256`: missing or not a string".into()))
}

/// SHA-256 of the first `len` bytes of `path`; a shorter target is an error, not a short digest.
pub fn hash_prefix(path: &Path, len: u64) -> Result<String, AgentError> {
    let fail = |source| AgentError::ReadTarget { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(fail)?;
    let mut reader = file.take(len);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    if total != len {
        return Err(fail(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("it holds {total} bytes, the image is {len}"),
        )));
    }
    Ok(crate::image::Digest::from_hasher(h).to_string())
}
