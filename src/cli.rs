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
    /// Burn in this node: GPU stress and bandwidth with telemetry, host stress.
    Burnin(BurninArgs),
    /// Platform specs: list, check, derive from a golden capture.
    #[command(subcommand)]
    Spec(SpecCommand),
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
    /// Record the run in this SQLite inventory.
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Only this node (hostname).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
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
    /// Tests: gemm, memtest, hbm, host-link, p2p, host, or all.
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub tests: String,
    /// Element type of the GEMM stress.
    #[arg(long, value_enum, default_value_t = crate::burnin::options::GemmDtype::Bf16)]
    pub gemm_dtype: crate::burnin::options::GemmDtype,
    /// Threshold table (h100-sxm, hgx-b200, gb200-nvl72-tray, generic);
    /// detected from the GPUs' PCI ids if absent.
    #[arg(long, value_name = "NAME")]
    pub platform: Option<String>,
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
