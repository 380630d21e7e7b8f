//! `kiln rack image` as a library call: decide which nodes to deploy (resume), serve the artifact
//! and the agent routes on one listener, drive the nodes with bounded concurrency, record it all.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::auth::{random, NodeKey};
use super::board::{Access, Board, BootFiles, Offer};
use super::bootpath::{Media, NodeWords};
use super::identify::Peers;
use super::node::{deploy_node, BootVia, NodeJob, StepSink};
use super::step::{NodeReport, NodeStatus, Step};
use crate::bmc::rack_target::{ipmi_from_manifest, target_from_manifest};
use crate::bmc::{Bmc, RedfishBmc, TlsPolicy};
use crate::error::chain;
use crate::exit;
use crate::image::serve::{error_json, Generated, PostRoutes, Posted, Reply, Routes, Server};
use crate::image::{BlockMap, Manifest};
use crate::inventory::{DeployId, DeployStart, DeployStep, Inventory, InventoryError, StepOutcome};
use crate::lifecycle::LifecycleState;
use crate::rack::RackManifest;

/// The actor of every event a deployment records.
pub const ACTOR: &str = "kiln rack image";

/// What `kiln rack image` was asked to do.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub nodes: Vec<String>,
    pub boot: BootVia,
    /// `--boot media`: the installer image, with its `kiln.settings=` placeholder.
    pub media: Option<PathBuf>,
    /// Network boot: the kernel and initrd (paths under `/files/`) each node's iPXE script boots.
    pub pxe: Option<(String, String)>,
    /// dnsmasq's lease file: addresses leased to nodes' MACs count as theirs.
    pub dhcp_leases: Option<PathBuf>,
    pub listen: SocketAddr,
    /// The base URL nodes reach the controller at; default `http://<listen>`.
    pub advertise: Option<String>,
    pub boot_dir: Option<PathBuf>,
    pub target: String,
    pub parallel: usize,
    pub node_timeout: Duration,
    pub reboot_grace: Duration,
    pub insecure: bool,
    pub restart: bool,
}

/// The artifact to deploy: its manifest, files and block map.
#[derive(Debug, Clone)]
pub struct DeployArtifact {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub image_file: String,
    pub bmap_file: String,
    pub map: BlockMap,
    /// Lowercase hex of the whole image (the block map's `image_sha256`).
    pub image_sha256: String,
}

/// Why a deployment could not start (exit 4 or 5).
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("artifact {}: {why}", path.display())]
    Artifact { path: PathBuf, why: String },
    #[error("--listen {addr} binds every address: give --advertise URL, the address nodes reach")]
    NoAdvertise { addr: SocketAddr },
    /// How nodes would receive their keys, or be recognised, does not work out.
    #[error("{0}")]
    Boot(String),
    #[error("serve the artifact and agent routes")]
    Serve(#[source] crate::image::serve::ServeError),
    #[error("record the deployment in the inventory")]
    Inventory(#[source] InventoryError),
}

impl DeployError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DeployError::Inventory(_) => exit::DATABASE,
            _ => exit::BAD_INPUT,
        }
    }
}

impl DeployArtifact {
    /// Load `NAME.manifest.json` and its block map, checking the block map against the manifest.
    /// The image itself is not read here: the agents verify every range as they write it.
    pub fn load(manifest_path: &Path) -> Result<DeployArtifact, DeployError> {
        let bad = |why: String| DeployError::Artifact { path: manifest_path.to_path_buf(), why };
        let manifest = Manifest::load(manifest_path).map_err(|e| bad(chain(&e)))?;
        let (image_path, bmap_path) = manifest.files(manifest_path);
        let got = crate::image::fetch::hash_file(&bmap_path)
            .map_err(|e| bad(format!("read block map {}: {e}", bmap_path.display())))?;
        if got != manifest.bmap.sha256 {
            return Err(bad(format!(
                "block map {} has sha256 {got}, the manifest says {}",
                bmap_path.display(),
                manifest.bmap.sha256
            )));
        }
        let map = BlockMap::load(&bmap_path).map_err(|e| bad(chain(&e)))?;
        let Some(sha) = map.image_sha256 else {
            return Err(bad(format!("block map {} has no image_sha256 to confirm a boot by", bmap_path.display())));
        };
        if sha != manifest.image.sha256 {
            return Err(bad(format!(
                "block map {} says the image has sha256 {sha}, the manifest says {}",
                bmap_path.display(),
                manifest.image.sha256
            )));
        }
        if !image_path.is_file() {
            return Err(bad(format!("image {} is missing", image_path.display())));
        }
        let dir = manifest_path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let name = |p: &Path| p.strip_prefix(&dir).unwrap_or(p).to_string_lossy().into_owned();
        Ok(DeployArtifact {
            image_file: name(&image_path),
            bmap_file: name(&bmap_path),
            dir,
            manifest,
            map,
            image_sha256: sha.to_string(),
        })
    }
}

/// `kind` of the document `kiln rack image --json` prints.
pub const DEPLOY_KIND: &str = "kiln.rack-image";
/// Its `schema_version`: bumped on any change a consumer could notice.
pub const DEPLOY_SCHEMA_VERSION: u32 = 1;

/// How the whole deployment went.
#[derive(Debug, Clone, Serialize)]
pub struct DeployOutcome {
    pub schema_version: u32,
    pub kind: &'static str,
    pub deploy_id: i64,
    pub rack: String,
    pub image: String,
    pub image_sha256: String,
    pub boot: BootVia,
    pub controller: String,
    pub nodes: Vec<NodeReport>,
    pub exit_code: i32,
}

/// Writes each step to the inventory, under one lock shared by the node threads.
struct InventorySink<'a> {
    inventory: &'a Mutex<Inventory>,
    deploy: DeployId,
    image_sha256: &'a str,
    failed: Mutex<bool>,
}

impl StepSink for InventorySink<'_> {
    fn record(&self, node: &str, step: Step, outcome: StepOutcome, detail: &str) -> Result<(), String> {
        let mut inv = self.inventory.lock().unwrap_or_else(|p| p.into_inner());
        let row = DeployStep {
            deploy: self.deploy,
            hostname: node,
            step: step.as_str(),
            outcome,
            detail,
            image_sha256: self.image_sha256,
            actor: ACTOR,
        };
        inv.record_deploy_step(&row).map_err(|e| {
            *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = true;
            chain(&e)
        })
    }
}

/// Before anything: which nodes are deployed, which were already booted on this image (skipped
/// unless `restart`), which are held (quarantined, handed off: never touched by a deployment).
fn triage(
    inv: &mut Inventory,
    rack: &str,
    names: &[String],
    sha: &str,
    restart: bool,
) -> Result<(Vec<String>, Vec<NodeReport>), InventoryError> {
    let (mut deploy, mut settled) = (Vec::new(), Vec::new());
    for name in names {
        inv.enroll(name, Some(rack), ACTOR)?;
        let state = inv.state(name)?;
        let refuse = match &state {
            LifecycleState::Quarantined { reason } => Some(format!("quarantined ({reason}): release it first")),
            LifecycleState::HandedOff => Some("handed off to a cluster: take it back first".to_string()),
            _ => None,
        };
        if let Some(why) = refuse {
            let reason = format!("image: refused: {why}");
            inv.note(name, ACTOR, &reason, None)?;
            settled.push(NodeReport {
                node: name.clone(),
                status: NodeStatus::Refused,
                reason: Some(reason),
                steps: vec![],
            });
        } else if !restart && inv.booted_on_image(name, sha)? {
            inv.note(
                name,
                ACTOR,
                &format!("image: skipped: already booted on sha256 {sha} (--restart redoes it)"),
                None,
            )?;
            settled.push(NodeReport {
                node: name.clone(),
                status: NodeStatus::AlreadyBooted,
                reason: None,
                steps: vec![],
            });
        } else {
            deploy.push(name.clone());
        }
    }
    Ok((deploy, settled))
}

/// The node's BMC client, `None` when the manifest gives it none: Redfish when the node has a
/// `bmc` URL, else ipmitool when it has an `ipmi` address (power and boot device only; no
/// virtual media).
fn bmc_for(manifest: &RackManifest, node: &str, insecure: bool) -> Option<Result<Box<dyn Bmc>, String>> {
    let entry = manifest.node(node)?;
    if entry.bmc.is_none() {
        entry.ipmi.as_ref()?;
        return Some(ipmi_from_manifest(manifest, node).map(|b| Box::new(b) as Box<dyn Bmc>).map_err(|e| chain(&e)));
    }
    Some((|| {
        let mut target = target_from_manifest(manifest, node).map_err(|e| chain(&e))?;
        if insecure {
            tracing::warn!(node, "BMC certificate NOT verified (--insecure)");
            target.tls = TlsPolicy::Insecure;
        }
        let bmc = RedfishBmc::connect(&target).map_err(|e| chain(&e))?;
        Ok(Box::new(bmc) as Box<dyn Bmc>)
    })())
}

/// Deploy `artifact` to the selected nodes of `manifest`, recording into `inventory`.
/// `started` is called once the listener is up, with the URL nodes reach it at.
pub fn run_deploy(
    manifest: &RackManifest,
    artifact: &DeployArtifact,
    opts: &DeployOptions,
    inventory: Inventory,
    started: &dyn Fn(&str),
) -> Result<DeployOutcome, DeployError> {
    let names: Vec<String> = match manifest.select(&opts.nodes) {
        Ok(nodes) => nodes.iter().map(|n| n.name.clone()).collect(),
        Err(e) => return Err(DeployError::Artifact { path: manifest.path.clone(), why: e.to_string() }),
    };
    let rack = manifest.rack.id.as_str();
    let sha = artifact.image_sha256.as_str();
    if opts.advertise.is_none() && opts.listen.ip().is_unspecified() {
        return Err(DeployError::NoAdvertise { addr: opts.listen });
    }
    if let Some(url) = opts.advertise.as_deref().filter(|u| crate::redact::has_userinfo(u)) {
        return Err(DeployError::Boot(format!(
            "--advertise {}: the controller takes no user or password",
            crate::redact::userinfo(url)
        )));
    }
    let selected: Vec<&crate::rack::RackNode> = names.iter().filter_map(|n| manifest.node(n)).collect();
    let peers = Peers::new(&selected, opts.dhcp_leases.clone()).map_err(DeployError::Boot)?;
    let mut mounts = vec![("/files/".to_string(), artifact.dir.clone())];
    if let Some(dir) = &opts.boot_dir {
        mounts.push(("/files/".to_string(), dir.clone()));
    }
    // The board is filled in once the listener's address (port 0) is known.
    let slot: Arc<Mutex<Option<Arc<Board>>>> = Arc::new(Mutex::new(None));
    let routes = Routes { mounts, post: Some(Arc::new(LateBoard(slot.clone()))) };
    let server = Server::start_routes(routes, opts.listen).map_err(DeployError::Serve)?;
    let base = match &opts.advertise {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!("http://{}", server.addr()),
    };
    let boot = boot_files(artifact, opts, &base, &names)?;
    // This deployment's id and each node's key: drawn now, held in memory only.
    let no_random = |e: getrandom::Error| DeployError::Boot(format!("no random numbers from the system: {e}"));
    let deploy_nonce = hex::encode(random::<16>().map_err(no_random)?);
    let mut keys = HashMap::new();
    for name in &names {
        keys.insert(name.clone(), NodeKey::generate().map_err(no_random)?);
    }
    // Nothing is recorded before the listener is up: a deployment that cannot serve its nodes
    // leaves no trace of having started.
    let mut inventory = inventory;
    let (to_deploy, settled) =
        triage(&mut inventory, rack, &names, sha, opts.restart).map_err(DeployError::Inventory)?;
    keys.retain(|n, _| to_deploy.contains(n));
    let deploy_id = inventory
        .start_deploy(&DeployStart {
            rack,
            image: &artifact.manifest.recipe,
            image_sha256: sha,
            boot: opts.boot.as_str(),
            actor: ACTOR,
        })
        .map_err(DeployError::Inventory)?;
    let offer = Offer {
        image_url: format!("{base}/files/{}", artifact.image_file),
        bmap_url: format!("{base}/files/{}", artifact.bmap_file),
        image_sha256: sha.to_string(),
        bmap_sha256: artifact.manifest.bmap.sha256.to_string(),
        image_size: artifact.map.image_size,
        target: opts.target.clone(),
    };
    let inventory = Arc::new(Mutex::new(inventory));
    let note = {
        let (inventory, rack) = (inventory.clone(), rack.to_string());
        // A refusal is noted on a node the inventory knows (every node being deployed is); an
        // unproven request never enrolls one.
        move |node: &str, cause: &str| {
            let mut inv = inventory.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = inv.note(node, ACTOR, cause, None) {
                tracing::warn!(node, rack = %rack, error = %chain(&e), "a refused agent request is logged only");
            }
        }
    };
    let media_name = boot.media.as_ref().map(|m| m.name.clone());
    let access = Access { deploy: deploy_nonce, keys, peers, boot, note: Box::new(note) };
    let board = Arc::new(Board::new(rack, manifest.nodes.clone(), &to_deploy, offer, access));
    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(board.clone());
    started(&base);

    let sink = InventorySink { inventory: &inventory, deploy: deploy_id, image_sha256: sha, failed: Mutex::new(false) };
    let deployed = crate::fleet::map_bounded(&to_deploy, opts.parallel.max(1), |name| {
        // The BMC fetches the node's own medium, with its key in it, from here.
        let media_url = media_name.as_ref().map(|m| format!("{base}/boot/media/{name}/{m}"));
        let job = NodeJob {
            node: name,
            bmc: bmc_for(manifest, name, opts.insecure),
            boot: opts.boot,
            media_url: media_url.as_deref(),
            timeout: opts.node_timeout,
            reboot_grace: opts.reboot_grace,
        };
        deploy_node(&job, &board, &sink)
    });
    server.stop();

    let mut nodes: Vec<NodeReport> = settled.into_iter().chain(deployed).collect();
    nodes.sort_by_key(|r| names.iter().position(|n| *n == r.node));
    let record_failed = *sink.failed.lock().unwrap_or_else(|p| p.into_inner());
    let exit_code = if record_failed {
        exit::DATABASE
    } else if nodes.iter().all(|n| n.status.confirmed()) {
        exit::OK
    } else {
        exit::CHECK_FAILED
    };
    // A connection thread may still hold the board (and so the inventory) for a moment.
    let mut inventory = inventory.lock().unwrap_or_else(|p| p.into_inner());
    inventory.finish_deploy(deploy_id, exit_code).map_err(DeployError::Inventory)?;
    Ok(DeployOutcome {
        schema_version: DEPLOY_SCHEMA_VERSION,
        kind: DEPLOY_KIND,
        deploy_id: deploy_id.0,
        rack: rack.to_string(),
        image: artifact.manifest.recipe.clone(),
        image_sha256: sha.to_string(),
        boot: opts.boot,
        controller: base,
        nodes,
        exit_code,
    })
}

/// The routes before the board exists (a request in that instant is told to come back).
struct LateBoard(Arc<Mutex<Option<Arc<Board>>>>);

impl LateBoard {
    fn board(&self) -> Option<Arc<Board>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PostRoutes for LateBoard {
    fn post(&self, posted: &Posted<'_>) -> Reply {
        match self.board() {
            Some(b) => b.post(posted),
            None => Reply::json(503, error_json("the controller is starting; retry")),
        }
    }

    fn get(&self, path: &str, peer: SocketAddr) -> Option<Generated> {
        match self.board() {
            Some(b) => b.get(path, peer),
            None => Some(Generated::Refused(503, error_json("the controller is starting; retry"))),
        }
    }
}

/// How each node receives its key: checked before anything is served or recorded.
fn boot_files(
    artifact: &DeployArtifact,
    opts: &DeployOptions,
    base: &str,
    nodes: &[String],
) -> Result<BootFiles, DeployError> {
    let fail = |why: String| Err(DeployError::Boot(why));
    let mut boot =
        BootFiles { base: base.to_string(), cmdline: artifact.manifest.kernel_cmdline.clone(), ..Default::default() };
    if let Some((kernel, initrd)) = &opts.pxe {
        for (flag, file) in [("--pxe-kernel", kernel), ("--pxe-initrd", initrd)] {
            let mut dirs = std::iter::once(&artifact.dir).chain(opts.boot_dir.as_ref());
            if !dirs.any(|d| crate::image::serve::resolve(&d.canonicalize().unwrap_or_default(), file).is_some()) {
                return fail(format!("{flag} {file}: no such file in the artifact's directory or --boot-dir"));
            }
        }
        boot.pxe = Some((kernel.clone(), initrd.clone()));
    }
    if let Some(path) = &opts.media {
        let media = Media::load(path).map_err(DeployError::Boot)?;
        // The longest words any node gets (keys and ids have fixed lengths).
        let need = nodes
            .iter()
            .map(|n| {
                let words = NodeWords {
                    controller: base.to_string(),
                    node: n.clone(),
                    deploy: "0".repeat(32),
                    key_hex: "0".repeat(64),
                    target: opts.target.clone(),
                };
                words.line().len()
            })
            .max()
            .unwrap_or(0);
        if need > media.room() {
            return fail(format!(
                "{}: its `kiln.settings=` placeholder holds {} characters; the nodes' settings need {need} \
                 (lengthen its run of `_`)",
                path.display(),
                media.room()
            ));
        }
        boot.media = Some(media);
    }
    match opts.boot {
        BootVia::Media if boot.media.is_none() => {
            fail("--boot media needs --media FILE: the installer image that carries each node's key".into())
        }
        BootVia::Pxe | BootVia::None if boot.pxe.is_none() => fail(format!(
            "--boot {} needs --pxe-kernel FILE and --pxe-initrd FILE: each node's iPXE script (which carries its \
             key for this deployment) boots them",
            opts.boot.as_str()
        )),
        _ => Ok(boot),
    }
}
