//! The command line: clap derive, one enum per level of subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "kiln", version, about = "Bring-up toolkit for NVIDIA GPU nodes and racks", max_term_width = 80)]
pub struct Cli {
    /// Log more (-v info, -vv debug); logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect this node: PCI tree, host parts, GPUs.
    Inspect(InspectArgs),
    /// Copy every file inspect reads (and an NVML dump) into DIR for replay.
    Capture(CaptureArgs),
    /// Inspect and judge this node against its platform spec.
    Validate(ValidateArgs),
    /// Show what the inventory holds for a node.
    Report(ReportArgs),
    /// A node's lifecycle in the inventory: history, quarantine, release.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Ask the inventory: where a part has been, what changed between runs, the whole site.
    #[command(subcommand)]
    Inventory(InventoryCommand),
    /// Burn in this node: GPU stress and bandwidth with telemetry, host stress.
    Burnin(BurninArgs),
    /// Platform specs: list, check, derive from a golden capture.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Run node commands on every node of a rack over SSH.
    #[command(subcommand)]
    Rack(RackCommand),
    /// A node's BMC: power, boot device, virtual media, firmware, identity, locate LED.
    Bmc(BmcArgs),
    /// Fast read-only check of this node (inspect + validate), for Slurm's
    /// HealthCheckProgram; --drain drains this node on failure.
    Healthcheck(HealthcheckArgs),
    /// OS images: build from a recipe, write to a disk (verified, fail-closed).
    #[command(subcommand)]
    Image(ImageCommand),
    /// The node side of `kiln rack image`: write the image the controller
    /// names, or report what booted.
    Agent(AgentArgs),
    /// Record N inventories of a captured node into a database (benchmark).
    #[command(hide = true)]
    BenchRecord(BenchRecordArgs),
    /// One rank of the NCCL collective burn-in (`kiln rack burnin` runs it on each tray).
    #[command(hide = true)]
    NcclRank(NcclRankArgs),
}

#[derive(Debug, Args)]
pub struct NcclRankArgs {
    /// This process's rank (0 makes the NCCL unique id).
    #[arg(long, default_value_t = 0)]
    pub rank: u32,
    /// Processes in the collective (one per tray); 1: this node's GPUs alone.
    #[arg(long, default_value_t = 1)]
    pub ranks: u32,
    /// Message sizes, MiB (comma-separated).
    #[arg(long, value_name = "MIB", value_delimiter = ',')]
    pub sizes_mib: Vec<u64>,
    /// The collectives to run (default: both).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub ops: Vec<crate::burnin::collective::Op>,
    #[arg(long, default_value_t = 20)]
    pub iterations: u32,
    #[arg(long, default_value_t = 5)]
    pub warmup: u32,
    /// Test aid: die or hang instead of working (docs/burnin.md).
    #[arg(long, value_enum, hide = true)]
    pub rank_hook: Option<crate::burnin::collective::RankHook>,
    /// Telemetry sample period of each GPU while the rank runs, milliseconds (as `kiln burnin`).
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub sample_ms: u64,
    /// A capture to replay: its GPUs' recorded telemetry, and no collective (the GPUs are not
    /// here).
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchRecordArgs {
    /// A capture or fixture tree to inspect once.
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    #[arg(long, value_name = "PATH")]
    pub db: PathBuf,
    /// Record a synthetic site instead: this many racks of 18 trays (each its own machine),
    /// checked daily for --days days; prints the figures as JSON.
    #[arg(long, value_name = "N")]
    pub site_racks: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub days: usize,
}

/// Where a node command reads the machine from.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read sysfs/procfs (and the NVML dump) under DIR instead of the live machine.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// The SQLite inventory (default: inventory/kiln.db).
    #[arg(long, value_name = "PATH", env = "KILN_DB")]
    pub db: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the node as JSON (schema in docs/json-schema.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Directory to write the capture into (created; must be empty).
    pub dir: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Platform spec name (`hgx-b200`); detected from PCI ids and DMI if absent.
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
    /// A spec file to use instead of a named platform.
    #[arg(long, value_name = "FILE", conflicts_with = "platform")]
    pub spec: Option<PathBuf>,
    /// Directory of platform specs (default: the ones built into kiln).
    #[arg(long, value_name = "DIR", env = "KILN_CHECKS")]
    pub checks_dir: Option<PathBuf>,
    /// Print findings as JSON (schema in docs/json-schema.md).
    #[arg(long)]
    pub json: bool,
    /// Judge a node JSON file (`kiln inspect --json`) instead of inspecting.
    #[arg(long, value_name = "FILE", conflicts_with = "root")]
    pub node: Option<PathBuf>,
    /// With --json: include the inspected node (`inspected`), for `kiln rack`.
    #[arg(long, requires = "json")]
    pub with_node: bool,
    /// Also judge the node against this bill of materials (TOML, or CSV by its name; docs/bom.md):
    /// expected serials by place, counts and sizes.
    #[arg(long, value_name = "FILE")]
    pub bom: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    /// One self-contained HTML file (needs --rack).
    Html,
    /// Prometheus text format for node_exporter's textfile collector.
    Prometheus,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this node: its name (manifest name or hostname), serial or system UUID.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Output format (JSON and CSV described in docs/json-schema.md).
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Report on the nodes of this rack manifest (docs/reports.md).
    #[arg(long, value_name = "FILE", conflicts_with = "node")]
    pub rack: Option<PathBuf>,
    /// With --rack --format csv: the RMA parts list instead.
    #[arg(long, requires = "rack")]
    pub parts: bool,
    /// Write the report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The inventory as it stood then: each node's newest run, parts, findings and state as
    /// of TIME (RFC 3339, `2025-03-01 08:00` UTC, a date for the end of that day, or @UNIX).
    #[arg(long, value_name = "TIME", conflicts_with = "rack")]
    pub at: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Every node and place a part (GPU, NIC, disk, DIMM, ...) has been recorded in, by serial,
    /// oldest first, with time ranges.
    Where(InventoryWhereArgs),
    /// What changed in a node's parts between two of its runs.
    Diff(InventoryDiffArgs),
    /// Every rack, node, place, part, serial and firmware as last recorded.
    Export(InventoryExportArgs),
}

#[derive(Debug, Args)]
pub struct InventoryWhereArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The part's serial (a GPU's, a disk's, a NIC's MAC or GUID as recorded).
    pub serial: String,
    /// Print JSON (kind `kiln.part-history`, docs/json-schema.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InventoryDiffArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The node: its name, serial or system UUID.
    #[arg(long, value_name = "NAME")]
    pub node: String,
    /// The older run's id (`kiln node history`, `kiln report`).
    pub run_a: i64,
    /// The newer run's id.
    pub run_b: i64,
    /// Print JSON (kind `kiln.inventory-diff`, docs/json-schema.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct InventoryExportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// JSON (kind `kiln.inventory-export`) or CSV, one row per part (docs/json-schema.md).
    #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
    pub format: ExportFormat,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Show the node's state and its lifecycle events, oldest first.
    History(NodeHistoryArgs),
    /// Hold the node: quarantined until someone releases it.
    Quarantine(NodeQuarantineArgs),
    /// Release a quarantined node to enrolled (validate and burn-in rerun).
    Release(NodeReleaseArgs),
}

/// Text that must say something: a reason or a name.
fn non_empty(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_string())
}

#[derive(Debug, Args)]
pub struct NodeHistoryArgs {
    /// The node's hostname in the inventory.
    pub node: String,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the history as JSON (schema in docs/json-schema.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NodeQuarantineArgs {
    /// The node's hostname in the inventory.
    pub node: String,
    /// Why the node is held (shown in its state and history).
    #[arg(long, value_name = "TEXT", value_parser = non_empty)]
    pub reason: String,
    /// Who holds it (default: $SUDO_USER, else $USER).
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub by: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct NodeReleaseArgs {
    /// The node's hostname in the inventory.
    pub node: String,
    /// What was done (recorded in the history: "replaced GPU 3").
    #[arg(long, value_name = "TEXT", value_parser = non_empty)]
    pub reason: Option<String>,
    /// Who releases it (default: $SUDO_USER, else $USER).
    #[arg(long, value_name = "NAME", value_parser = non_empty)]
    pub by: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// List the platform specs kiln knows.
    List {
        #[arg(long, value_name = "DIR", env = "KILN_CHECKS")]
        checks_dir: Option<PathBuf>,
    },
    /// Parse a spec file and report any error with its line and field.
    Check { file: PathBuf },
    /// Write a spec derived from a captured golden node.
    FromCapture {
        /// A directory written by `kiln capture`.
        dir: PathBuf,
        /// Name of the new platform.
        #[arg(long, default_value = "golden")]
        name: String,
        /// Write here instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Which BMC to talk to: a rack manifest node, or a URL with credentials.
#[derive(Debug, Clone, Args)]
pub struct BmcTargetArgs {
    /// Rack manifest that lists the node and where its credentials are.
    #[arg(long, value_name = "FILE", global = true, requires = "node", conflicts_with = "bmc")]
    pub rack: Option<PathBuf>,
    /// Node name in the rack manifest (with --bmc: the node's name in the
    /// inventory, where changes are logged).
    #[arg(long, value_name = "NAME", global = true)]
    pub node: Option<String>,
    /// BMC URL: https://host[:port] (http:// only for an emulator).
    #[arg(long, value_name = "URL", global = true)]
    pub bmc: Option<String>,
    /// BMC user name (with --bmc).
    #[arg(long, value_name = "USER", global = true, env = "KILN_BMC_USER")]
    pub bmc_user: Option<String>,
    /// Environment variable holding the BMC password (with --bmc).
    #[arg(long, value_name = "VAR", global = true, default_value = "KILN_BMC_PASSWORD")]
    pub bmc_password_env: String,
    /// File holding the BMC password (instead of the variable).
    #[arg(long, value_name = "FILE", global = true)]
    pub bmc_password_file: Option<PathBuf>,
    /// Redfish ComputerSystem to act on, when the BMC lists several.
    #[arg(long, value_name = "PATH", global = true)]
    pub bmc_system: Option<String>,
    /// IPMI address host[:port] for --via ipmi.
    #[arg(long, value_name = "HOST:PORT", global = true)]
    pub ipmi: Option<String>,
    /// Trust BMC certificates signed by the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the BMC certificate with this fingerprint (sha256:...).
    #[arg(long, value_name = "SHA256", global = true)]
    pub fingerprint: Option<String>,
    /// Do not verify the BMC's certificate at all (logged as a warning).
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Talk Redfish (default) or IPMI (power and boot device only).
    #[arg(long, value_enum, default_value_t = BmcVia::Redfish, global = true)]
    pub via: BmcVia,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BmcVia {
    Redfish,
    Ipmi,
}

#[derive(Debug, Args)]
pub struct BmcArgs {
    #[command(flatten)]
    pub target: BmcTargetArgs,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// The SQLite inventory where changes are logged (default: inventory/kiln.db).
    #[arg(long, value_name = "PATH", env = "KILN_DB", global = true)]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: BmcCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PowerWord {
    Status,
    On,
    /// Ask the OS to shut down.
    Off,
    /// Cut power now.
    ForceOff,
    /// Hard reset now.
    Reset,
    /// Ask the OS to restart.
    GracefulRestart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BootWord {
    Pxe,
    Cd,
    Hdd,
}

#[derive(Debug, Subcommand)]
pub enum BmcCommand {
    /// Show or change the host's power.
    Power {
        #[arg(value_enum)]
        action: PowerWord,
        /// After a change, wait up to SECS for the BMC to report it.
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
    },
    /// Boot from this device on the next boot only.
    Boot {
        #[arg(value_enum)]
        target: BootWord,
    },
    /// Virtual CD/DVD: insert an image by URL, eject, or show.
    #[command(subcommand)]
    Media(MediaCommand),
    /// List the BMC's firmware inventory.
    Firmware,
    /// Show the node's identity, power, boot override and media.
    Info,
    /// Light or clear the tray's locate LED (Redfish LocationIndicatorActive,
    /// or IndicatorLED on older BMCs), or show it.
    Locate {
        #[arg(value_enum)]
        state: LocateWord,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LocateWord {
    On,
    Off,
    Status,
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Attach the image at URL to the virtual CD/DVD drive.
    Insert { url: String },
    /// Detach the image.
    Eject,
    /// Show what the drive holds.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum RackCommand {
    /// Inspect every node of the rack.
    Inspect(RackRunArgs),
    /// Validate every node against its platform spec, then check the rack.
    Validate(RackRunArgs),
    /// Burn in every node: over SSH, or as one Slurm job per node (--via slurm).
    Burnin(RackBurninArgs),
    /// Show which nodes answer and whether their kiln is current.
    Status(RackRunArgs),
    /// Record the nodes' SSH host keys (first contact; shows fingerprints).
    Trust(RackTrustArgs),
    /// Put passing nodes into Slurm or Kubernetes, keep failing ones out.
    Handoff(HandoffArgs),
    /// Deploy an OS image to the rack: boot each node into the imaging agent
    /// through its BMC, serve the image, confirm what booted.
    Image(RackImageArgs),
    /// Firmware of every node against its recipe: check, update.
    #[command(subcommand)]
    Firmware(RackFirmwareCommand),
    /// The scheduler topology of the verified NVLink domains (Slurm blocks,
    /// tree, topology.yaml, Kubernetes clique labels), from the inventory.
    Topology(RackTopologyArgs),
    /// Write each verified NVLink domain's IMEX peer list (nodes_config.cfg)
    /// on its gate-passed trays over SSH, and record it.
    Imex(RackImexArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RackImexArgs {
    /// The rack manifest (inventory/racks/NAME.toml).
    #[arg(long, value_name = "FILE", env = "KILN_RACK")]
    pub rack: PathBuf,
    /// Print each domain's list and the trays it goes to; write and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the IMEX daemon reads its peers on the nodes.
    #[arg(long, value_name = "PATH", default_value = crate::fleet::imex::NODES_CONFIG)]
    pub config_path: String,
    /// Write on at most N nodes at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Seconds to wait for a node to accept the connection.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = seconds_arg)]
    pub connect_timeout: u64,
    /// Seconds the write may take on a node.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = seconds_arg)]
    pub timeout: u64,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the outcome as JSON (kind kiln.rack-imex).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RackTopologyArgs {
    /// Rack manifests whose nodes to place (repeat for several racks).
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    pub rack: Vec<PathBuf>,
    /// The form to write.
    #[arg(long, value_enum)]
    pub format: crate::handoff::TopologyFormat,
    /// Write the file here (atomically) instead of printing it.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the domains, the nodes left out and the text as JSON (kind kiln.rack-topology).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RackFirmwareCommand {
    /// Read every node's firmware (BMC, and in-band from its recorded
    /// inspection) and judge it against the recipe; recorded as a run.
    Check(RackFirmwareArgs),
    /// Bring every non-compliant component to the recipe through the BMCs,
    /// then check again.
    Update(RackFirmwareUpdateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RackFirmwareArgs {
    /// The rack manifest (inventory/racks/NAME.toml).
    #[arg(long, value_name = "FILE", env = "KILN_RACK")]
    pub rack: PathBuf,
    /// The firmware recipe (default: the one for each node's platform).
    #[arg(long, value_name = "NAME")]
    pub recipe: Option<String>,
    /// Only these nodes (comma-separated names from the manifest).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Talk to at most N BMCs at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Directory whose firmware/ holds the recipes (default: the ones built
    /// into kiln).
    #[arg(long, value_name = "DIR", env = "KILN_CHECKS")]
    pub checks_dir: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the outcome as JSON (kind kiln.rack-firmware).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RackFirmwareUpdateArgs {
    /// The rack manifest (inventory/racks/NAME.toml).
    #[arg(long, value_name = "FILE", env = "KILN_RACK")]
    pub rack: PathBuf,
    /// The firmware recipe to bring the nodes to.
    #[arg(long, value_name = "NAME")]
    pub recipe: String,
    /// Only these nodes (comma-separated names from the manifest).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Update at most N nodes at once (a recipe's one_at_a_time = "rack"
    /// package goes to one node at a time whatever N is).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub parallel: usize,
    /// Print the plan per node and change nothing (BMCs, inventory).
    #[arg(long)]
    pub dry_run: bool,
    /// Where relative package files of the recipe are (default: the
    /// current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub packages: PathBuf,
    /// Where checked copies of the packages are kept while they are served
    /// and pushed (default: a directory of its own under the system's temp).
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,
    /// Where kiln serves packages for SimpleUpdate.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8081")]
    pub listen: std::net::SocketAddr,
    /// The URL BMCs reach that server at (default http://LISTEN).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    /// How often a BMC's update Task is polled.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration_arg)]
    pub task_poll: std::time::Duration,
    /// Directory whose firmware/ holds the recipes (default: the ones built
    /// into kiln).
    #[arg(long, value_name = "DIR", env = "KILN_CHECKS")]
    pub checks_dir: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the outcome as JSON (kind kiln.rack-firmware-update).
    #[arg(long)]
    pub json: bool,
}

/// A flag in whole seconds, 1 to a week: the clocks deadlines are kept on
/// overflow long before u64 seconds do.
fn seconds_arg(s: &str) -> Result<u64, String> {
    const WEEK: u64 = 7 * 24 * 3600;
    match s.parse::<u64>() {
        Ok(n) if (1..=WEEK).contains(&n) => Ok(n),
        Ok(_) => Err(format!("expected 1 to {WEEK} seconds")),
        Err(e) => Err(e.to_string()),
    }
}

/// A duration flag: `90s`, `5m`, `1h`, `500ms`, or plain seconds.
fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::burnin::options::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct RackImageArgs {
    /// The rack manifest (inventory/racks/NAME.toml).
    #[arg(long, value_name = "FILE", env = "KILN_RACK")]
    pub rack: PathBuf,
    /// The artifact's NAME.manifest.json (kiln image build --out DIR).
    #[arg(long, value_name = "MANIFEST")]
    pub artifact: PathBuf,
    /// Only these nodes (comma-separated names from the manifest).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// How nodes reach the agent: virtual media, network boot, or started by
    /// other means (no BMC is touched).
    #[arg(long, value_enum, default_value_t = crate::deploy::BootVia::Pxe)]
    pub boot: crate::deploy::BootVia,
    /// With --boot media: the installer image each node's BMC attaches. Its boot loader's kernel
    /// line holds `kiln.settings=` and a run of `_`, which the controller fills per node with
    /// its settings and deployment key as it serves it (docs/imaging.md).
    #[arg(long, value_name = "FILE", required_if_eq("boot", "media"))]
    pub media: Option<PathBuf>,
    /// The kernel each node's own iPXE script boots (a file under /files/: the artifact's
    /// directory or --boot-dir); needed for --boot pxe and none.
    #[arg(long, value_name = "FILE", requires = "pxe_initrd")]
    pub pxe_kernel: Option<String>,
    /// The initrd each node's own iPXE script boots (a file under /files/).
    #[arg(long, value_name = "FILE", requires = "pxe_kernel")]
    pub pxe_initrd: Option<String>,
    /// dnsmasq's lease file: an address leased to one of a node's MACs counts as the node's,
    /// beside the manifest's address.
    #[arg(long, value_name = "FILE")]
    pub dhcp_leases: Option<PathBuf>,
    /// Where the controller listens for files and agents.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: std::net::SocketAddr,
    /// The URL nodes reach the controller at (default http://LISTEN).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    /// Also serve this directory under /files/ (kernel, initrd, ISO, iPXE).
    #[arg(long, value_name = "DIR")]
    pub boot_dir: Option<PathBuf>,
    /// The disk the agents write (their --target overrides it).
    #[arg(long, value_name = "PATH", default_value = "/dev/vda")]
    pub target: String,
    /// Deploy at most N nodes at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// Time one node may take from boot-set to booted.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = duration_arg)]
    pub node_timeout: std::time::Duration,
    /// After "reboot", how long to wait for the booted agent before resetting
    /// the node through its BMC.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = duration_arg)]
    pub reboot_grace: std::time::Duration,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the outcome as JSON (schema in docs/imaging.md).
    #[arg(long)]
    pub json: bool,
    /// Do not verify BMC certificates (logged as a warning).
    #[arg(long)]
    pub insecure: bool,
    /// Redeploy nodes already booted on this image.
    #[arg(long)]
    pub restart: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The controller's URL (else kiln.controller= on the kernel command line).
    #[arg(long, value_name = "URL")]
    pub controller: Option<String>,
    /// This node's name in the rack manifest (else kiln.node=, else the
    /// controller matches MACs or the address).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// The disk to write or hash (else kiln.target=, else the controller's).
    #[arg(long, value_name = "PATH")]
    pub target: Option<PathBuf>,
    /// imaging: write the image; booted: report what is on the disk (else
    /// kiln.mode=, else imaging).
    #[arg(long, value_enum)]
    pub mode: Option<crate::deploy::protocol::AgentMode>,
    /// Reboot the machine when the controller says so (else only print).
    #[arg(long)]
    pub reboot: bool,
    /// Keep asking the controller this long before giving up.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration_arg)]
    pub wait_for: std::time::Duration,
    /// Give up on the image transfer when no byte arrives for this long:
    /// wipe the target's partition tables, report, exit 6 (else
    /// kiln.stall_timeout=, else 2m).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub stall_timeout: Option<std::time::Duration>,
    /// Read the kiln.* settings from this file instead of /proc/cmdline.
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline", hide = true)]
    pub cmdline: PathBuf,
    /// The booted image's own record (its image_sha256 is reported when present).
    #[arg(long, value_name = "FILE", default_value = "/etc/kiln/image.json", hide = true)]
    pub image_json: PathBuf,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HandoffTarget {
    Slurm,
    Kubernetes,
}

#[derive(Debug, Clone, Args)]
pub struct HandoffArgs {
    /// The rack manifest (inventory/racks/NAME.toml).
    #[arg(long, value_name = "FILE", env = "KILN_RACK")]
    pub rack: PathBuf,
    /// The cluster to hand the nodes to.
    #[arg(long, value_enum)]
    pub to: HandoffTarget,
    /// Print each action and change nothing (cluster and inventory).
    #[arg(long)]
    pub dry_run: bool,
    /// Only these nodes (comma-separated names from the manifest).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the outcome as JSON (schema in docs/handoff.md).
    #[arg(long)]
    pub json: bool,
    /// Hand off the healthy trays of an all-or-nothing NVLink domain (a
    /// spec's `[nvlink_domain] all_or_nothing`) whose other trays are broken;
    /// without it such a domain is held whole.
    #[arg(long)]
    pub partial: bool,
    /// Read the platform specs (which domains are all or nothing) from
    /// DIR/platforms/*.toml instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub checks_dir: Option<PathBuf>,
    /// The `scontrol` program (Slurm).
    #[arg(long, value_name = "PATH", default_value = "scontrol")]
    pub scontrol: PathBuf,
    /// Slurm: write the topology of the nodes handed off (their verified
    /// NVLink domains) to PATH, atomically, then `scontrol reconfigure`.
    /// The whole rack only (not with --nodes): the file replaces the old one.
    #[arg(long, value_name = "PATH", conflicts_with = "nodes")]
    pub topology: Option<PathBuf>,
    /// The form of --topology (default: topology.yaml for a .yaml file, else
    /// the block form on Slurm 23.11 and later, the tree form before).
    #[arg(long, value_enum, requires = "topology")]
    pub topology_format: Option<crate::handoff::TopologyFormat>,
    /// Kubernetes API server URL, https://host:6443.
    #[arg(long, value_name = "URL", required_if_eq("to", "kubernetes"))]
    pub kube_api: Option<String>,
    /// File holding the bearer token for the API server.
    #[arg(long, value_name = "FILE", required_if_eq("to", "kubernetes"))]
    pub kube_token_file: Option<PathBuf>,
    /// CA certificates (PEM) that signed the API server's certificate
    /// (default: the system roots).
    #[arg(long, value_name = "FILE")]
    pub kube_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Platform spec name; detected from PCI ids and DMI if absent.
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
    /// Directory of platform specs (default: the ones built into kiln).
    #[arg(long, value_name = "DIR", env = "KILN_CHECKS")]
    pub checks_dir: Option<PathBuf>,
    /// On failure, drain this node in Slurm with a `kiln:` reason.
    #[arg(long)]
    pub drain: bool,
    /// The Slurm node name to drain (default: the short hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The `scontrol` program.
    #[arg(long, value_name = "PATH", default_value = "scontrol")]
    pub scontrol: PathBuf,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kiln rack burnin`: the rack step's arguments, and how each node's burn-in runs.
#[derive(Debug, Clone, Args)]
pub struct RackBurninArgs {
    #[command(flatten)]
    pub run: RackRunArgs,
    #[command(flatten)]
    pub slurm: SlurmBurninArgs,
}

/// How a rack's burn-in reaches its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BurninVia {
    /// One SSH session per node, held for the whole burn-in.
    Ssh,
    /// One exclusive Slurm job per node (sbatch), followed with squeue/sacct.
    Slurm,
}

/// `kiln rack burnin --via slurm` (docs/fleet.md, "Burn-in through Slurm").
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Burn-in through Slurm")]
pub struct SlurmBurninArgs {
    /// How each node's burn-in runs.
    #[arg(long, value_enum, default_value_t = BurninVia::Ssh, value_name = "HOW")]
    pub via: BurninVia,
    /// Slurm partition of the jobs (sbatch --partition); default: the cluster's.
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Slurm account of the jobs (sbatch --account).
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
    /// Job time limit (sbatch --time: MIN, MIN:SEC, H:M:S, D-H:M); default:
    /// --timeout rounded up to minutes.
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Seconds between looks at the jobs (squeue).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = seconds_arg)]
    pub poll: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RackRunArgs {
    /// The rack manifest (inventory/racks/NAME.toml; default: $KILN_RACK);
    /// give it again for more racks, run at once (docs/fleet.md, "Many racks").
    #[arg(long, value_name = "FILE")]
    pub rack: Vec<PathBuf>,
    /// A site manifest listing the racks to run at once (docs/fleet.md,
    /// "Many racks"); instead of --rack.
    #[arg(long, value_name = "FILE", conflicts_with = "rack")]
    pub site: Option<PathBuf>,
    /// Run on at most N nodes at once (with several racks: SSH sessions
    /// across all of them).
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub parallel: usize,
    /// With several racks: at most N nodes of one rack at once (default:
    /// --parallel; a site manifest's per_rack wins for its rack).
    #[arg(long, value_name = "N")]
    pub per_rack: Option<usize>,
    /// Run the step again on nodes where it already passed.
    #[arg(long)]
    pub force: bool,
    /// Only these nodes (comma-separated names from the manifest).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Seconds a node command may run before it is killed (at most a week).
    #[arg(long, value_name = "SECS", default_value_t = 900, value_parser = seconds_arg)]
    pub timeout: u64,
    /// Seconds to wait for a node to accept the connection.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = seconds_arg)]
    pub connect_timeout: u64,
    /// Where kiln lives on the nodes (pushed there when missing or different).
    #[arg(long, value_name = "PATH", default_value = "/var/lib/kiln/bin/kiln")]
    pub remote_path: String,
    /// Push this binary instead of the running kiln (nodes of its
    /// architecture only); wins over --dist.
    #[arg(long, value_name = "FILE")]
    pub node_binary: Option<PathBuf>,
    /// Push each node the binary for its architecture from this directory
    /// (`cargo xtask dist`; docs/fleet.md).
    #[arg(long, value_name = "DIR", env = "KILN_DIST")]
    pub dist: Option<PathBuf>,
    /// Directory of platform specs for the rack checks (default: the ones
    /// built into kiln); validate and burnin pass it to the node command, so
    /// it must be at the same path on the nodes.
    #[arg(long, value_name = "DIR")]
    pub checks_dir: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
    /// Print the rack outcome as JSON (schema in docs/fleet.md).
    #[arg(long)]
    pub json: bool,
    /// burnin, where the platform's NVLink domain spans trays: `with` runs the NCCL collective
    /// across the trays after each tray's burn-in, `only` runs the collective alone, `off` none
    /// (docs/burnin.md, "Collective").
    #[arg(long, value_enum, default_value_t = CollectiveMode::With)]
    pub collective: CollectiveMode,
    /// Seconds each rank of the collective may run before its processes are killed and its tray
    /// is named as hung.
    #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = seconds_arg)]
    pub rank_deadline: u64,
    /// Test aid: NODE=die or NODE=hang makes that tray's rank die or hang (docs/burnin.md).
    #[arg(long, hide = true, value_name = "NODE=HOOK")]
    pub rank_hook: Vec<String>,
    /// Extra arguments for the node command, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub node_args: Vec<String>,
}

/// Whether `kiln rack burnin` runs the collective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CollectiveMode {
    With,
    Only,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct RackTrustArgs {
    /// The rack manifest (inventory/racks/NAME.toml; default: $KILN_RACK);
    /// give it again for more racks.
    #[arg(long, value_name = "FILE")]
    pub rack: Vec<PathBuf>,
    /// A site manifest listing the racks whose nodes to trust; instead of --rack.
    #[arg(long, value_name = "FILE", conflicts_with = "rack")]
    pub site: Option<PathBuf>,
    /// Only these nodes (comma-separated names from the manifest).
    #[arg(long = "node", visible_alias = "nodes", value_name = "A,B", value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// Replace a recorded key that changed (a reinstalled node); check its
    /// fingerprint on the console first.
    #[arg(long)]
    pub replace: bool,
    /// Seconds to wait for a node to accept the connection.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = seconds_arg)]
    pub connect_timeout: u64,
}

#[derive(Debug, Args)]
pub struct BurninArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// How long each stress test (gemm, memtest, host) runs: 30s, 10m, 1h.
    #[arg(long, default_value = "5m", value_name = "D")]
    pub duration: String,
    /// GPUs by NVML index (0,1,3) or all.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub gpus: String,
    /// Tests: gemm, memtest, hbm, host-link, p2p, collective, host, or all;
    /// -NAME leaves one out (all,-collective).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub tests: String,
    /// Element type of the GEMM stress.
    #[arg(long, value_enum, default_value_t = crate::burnin::options::GemmDtype::Bf16)]
    pub gemm_dtype: crate::burnin::options::GemmDtype,
    /// Platform spec name (`kiln spec list`); its [burnin] section holds the
    /// thresholds. Detected as `kiln validate` detects it if absent.
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
    /// A spec file to use instead of a named platform.
    #[arg(long, value_name = "FILE", conflicts_with = "platform")]
    pub spec: Option<PathBuf>,
    /// Directory of platform specs (default: the ones built into kiln).
    #[arg(long, value_name = "DIR", env = "KILN_CHECKS")]
    pub checks_dir: Option<PathBuf>,
    /// Share of available host memory the stress-ng vm workers cover.
    #[arg(long, default_value_t = 25, value_name = "PERCENT")]
    pub host_memory: u32,
    /// Print the report as JSON (schema in docs/burnin.md).
    #[arg(long)]
    pub json: bool,
    /// TEST ONLY: plant a fault (gemm-bitflip, memtest-corrupt) to prove it is caught.
    #[arg(long, hide = true, env = "KILN_INJECT_FAULT", value_name = "FAULT")]
    pub inject_fault: Option<String>,
    /// GEMM implementation: auto (cuBLASLt if present), cublaslt, kernel.
    #[arg(long, hide = true, value_enum, default_value_t = crate::burnin::options::GemmEngine::Auto)]
    pub gemm_engine: crate::burnin::options::GemmEngine,
    /// GEMM matrix size (m = n = k).
    #[arg(long, hide = true, value_name = "N")]
    pub gemm_size: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a recipe (images/*.toml) into a raw image, block map, seed and manifest.
    Build {
        /// The recipe file.
        recipe: PathBuf,
        /// Directory for the artifact (created).
        #[arg(long, value_name = "DIR", default_value = "out")]
        out: PathBuf,
        /// Render the cloud-init seed for this node (its hostname).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write an image to a block device or file, verify it, fail closed.
    Write(ImageWriteArgs),
    /// Write the iPXE script that boots a kernel and initrd from kiln's server.
    PxeConfig(PxeConfigArgs),
    /// Write a dnsmasq configuration: DHCP and TFTP handing out iPXE.
    Dnsmasq(DnsmasqArgs),
    /// Serve a directory of boot artifacts over HTTP (GET, HEAD, ranges).
    Serve {
        /// The directory to serve.
        dir: PathBuf,
        /// Address to listen on (port 0: any free port, printed at start).
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
    },
    /// Zero the partition tables of a disk (first and last MiB).
    Wipe {
        /// The block device or file.
        target: PathBuf,
    },
    /// Write a synthetic sparse test image (deterministic bytes).
    #[command(hide = true)]
    Synth {
        path: PathBuf,
        /// Size in MiB.
        #[arg(long, default_value_t = 32)]
        size_mib: u64,
        /// Mapped part in thousandths (100 = 10%).
        #[arg(long, default_value_t = 100)]
        mapped_permille: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write its block map (with digests) here.
        #[arg(long, value_name = "FILE")]
        bmap: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ImageWriteArgs {
    /// A raw image, an artifact's NAME.manifest.json, an http(s) URL, or -
    /// for standard input (URL and - need --bmap).
    pub image: PathBuf,
    /// The block device or file to write.
    pub target: PathBuf,
    /// Block map (NAME.bmap.json, a file or URL); default: the image's holes.
    #[arg(long, value_name = "FILE")]
    pub bmap: Option<PathBuf>,
    /// On failure leave the target as it is instead of wiping it.
    #[arg(long)]
    pub preserve_on_error: bool,
    /// Write through the page cache instead of O_DIRECT.
    #[arg(long)]
    pub no_direct: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// Record the write in this inventory database.
    #[arg(long, value_name = "PATH", env = "KILN_DB")]
    pub db: Option<PathBuf>,
    /// The node whose disk this is (must be in the inventory).
    #[arg(long, value_name = "NAME", requires = "db")]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct PxeConfigArgs {
    /// Base URL of kiln's HTTP server (http://10.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Kernel path under the server.
    #[arg(long, value_name = "PATH", default_value = "boot/vmlinuz")]
    pub kernel: String,
    /// Initrd path under the server.
    #[arg(long, value_name = "PATH", default_value = "boot/initrd.img")]
    pub initrd: String,
    /// Take the kernel command line from this artifact manifest.
    #[arg(long, value_name = "FILE", conflicts_with = "cmdline")]
    pub manifest: Option<PathBuf>,
    /// The kernel command line.
    #[arg(long, value_name = "ARGS")]
    pub cmdline: Option<String>,
    /// Extra kernel arguments after the command line.
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DnsmasqArgs {
    /// The boot network's interface.
    #[arg(long, value_name = "IF")]
    pub interface: String,
    /// DHCP pool: first,last address.
    #[arg(long, value_name = "A,B")]
    pub range: String,
    #[arg(long, value_name = "MASK", default_value = "255.255.255.0")]
    pub netmask: std::net::Ipv4Addr,
    /// Directory holding undionly.kpxe, ipxe.efi and ipxe-arm64.efi.
    #[arg(long, value_name = "DIR")]
    pub tftp_root: String,
    /// URL of the iPXE script (kiln image serve).
    #[arg(long, value_name = "URL")]
    pub script_url: String,
    /// A fixed address: MAC,IP,NAME (repeatable).
    #[arg(long, value_name = "MAC,IP,NAME")]
    pub host: Vec<String>,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}
