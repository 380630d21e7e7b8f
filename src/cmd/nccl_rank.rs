//! `kiln nccl-rank` (hidden): one rank of the collective burn-in, as `kiln rack burnin` runs it on
//! each tray of an NVLink domain; by hand, `--ranks 1` runs the collective over this node's GPUs.

use anyhow::Context;

use std::time::Duration;

use crate::burnin::collective::{human, Op, RankOptions};
use crate::burnin::rank_telemetry::run_rank_sampled;
use crate::cli::NcclRankArgs;
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::hw::telemetry::TelemetryAccess;

pub use crate::burnin::collective::DEFAULT_SIZES_MIB;

pub fn run(args: &NcclRankArgs) -> CmdResult {
    let opts = options(args)?;
    // The tray's GPUs are read (and their telemetry sampled) only through `hw`, as `kiln
    // burnin` reads them; the inspection names each GPU in the telemetry.
    let (tree, gpus) = crate::hw::open(args.source.root.as_deref())?;
    let telemetry = gpus.telemetry();
    // Without a driver there is no GPU to name: the rank does not inspect the node for nothing.
    let node = matches!(telemetry, TelemetryAccess::Live(_) | TelemetryAccess::Replay(_))
        .then(|| crate::hw::inspect(tree.as_ref(), gpus.as_ref()));
    let period = Duration::from_millis(args.sample_ms.max(10));
    let report = run_rank_sampled(&opts, &mut std::io::stdin().lock(), node.as_ref(), telemetry, period);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialize the rank report")?);
    } else {
        println!(
            "rank {}/{} on {}: {}{}",
            report.rank,
            report.ranks,
            report.hostname,
            report.verdict.as_str(),
            report.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
        );
        for r in &report.results {
            crate::terminal::println(format_args!(
                "{:<11} {:>9}  {:>10.1} us  algbw {:>7.1} GB/s  busbw {:>7.1} GB/s  wrong {}",
                r.op.as_str(),
                human(r.bytes),
                r.time_us,
                r.algbw_gbps,
                r.busbw_gbps,
                r.wrong_words
            ));
        }
    }
    Ok(Outcome::exit(report.exit_code()))
}

/// The rank's options from its flags; a rank outside `--ranks`, or a size out of range, is a
/// usage error before anything is loaded.
pub fn options(args: &NcclRankArgs) -> CmdResult<RankOptions> {
    if args.ranks == 0 || args.rank >= args.ranks {
        return Err(CmdError::Usage(format!("--rank {} is not one of --ranks {}", args.rank, args.ranks)).into());
    }
    let sizes_mib: Vec<u64> =
        if args.sizes_mib.is_empty() { DEFAULT_SIZES_MIB.to_vec() } else { args.sizes_mib.clone() };
    if let Some(bad) = sizes_mib.iter().find(|m| **m == 0 || **m > 64 * 1024) {
        return Err(CmdError::Usage(format!("--sizes-mib {bad}: each size must be 1 to 65536 MiB")).into());
    }
    let ops = if args.ops.is_empty() { Op::ALL.to_vec() } else { args.ops.clone() };
    Ok(RankOptions {
        rank: args.rank,
        ranks: args.ranks,
        sizes: sizes_mib.iter().map(|m| m << 20).collect(),
        ops,
        warmup: args.warmup,
        iterations: args.iterations.max(1),
        hook: args.rank_hook,
    })
}
