//! `kiln rack imex`: each verified NVLink domain's IMEX peer list written on its gate-passed
//! trays over SSH and noted in each tray's history; `--dry-run` prints the lists and touches
//! nothing.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::cli::RackImexArgs;
use crate::cmd::{CmdResult, Outcome};
use crate::exit;
use crate::fleet::imex::{plan, write_all, ImexDomain, ImexWrite, MemberWrite};
use crate::fleet::SshConnector;
use crate::handoff::{verified_domains, Candidate, LeftOut};
use crate::inventory::{db_path, Inventory};
use crate::rack::RackManifest;

pub const KIND: &str = "kiln.rack-imex";
const ACTOR: &str = "kiln rack imex";

#[derive(Debug, Serialize)]
struct ImexDoc<'a> {
    schema_version: u32,
    kind: &'static str,
    rack: &'a str,
    dry_run: bool,
    path: &'a str,
    domains: &'a [ImexDomain],
    writes: &'a [MemberWrite],
    left_out: &'a [LeftOut],
    /// Inventory notes that could not be written, one line each.
    not_recorded: &'a [String],
    exit_code: i32,
}

pub fn run(args: &RackImexArgs) -> CmdResult {
    let manifest = RackManifest::load(&args.rack)?;
    let db = db_path(args.db.db.as_deref());
    // A dry run only reads; a real one notes each write, so it needs a database it may write.
    let mut inventory = if args.dry_run { Inventory::open_read_only(&db)? } else { Inventory::open_existing(&db)? };
    let candidates: Vec<Candidate> =
        manifest.nodes.iter().map(|n| Candidate { rack: manifest.rack.id.clone(), node: n.name.clone() }).collect();
    let topology = verified_domains(&inventory, &candidates)?;
    let (domains, unaddressed) = plan(&topology, &manifest.rack.id, &manifest.nodes);
    let mut left_out = topology.left_out.clone();
    left_out.extend(unaddressed);
    let connector = SshConnector {
        credentials: manifest.credentials.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
    };
    let writes = write_all(
        &domains,
        &manifest.nodes,
        &connector,
        &args.config_path,
        args.parallel.max(1),
        Duration::from_secs(args.timeout.max(1)),
        args.dry_run,
    );
    let mut not_recorded = Vec::new();
    for w in &writes {
        let Some(d) = domains.iter().find(|d| d.name == w.domain) else { continue };
        let cause = match &w.write {
            ImexWrite::Written => "written",
            ImexWrite::AlreadyDone => "already there",
            ImexWrite::WouldWrite | ImexWrite::Failed { .. } => continue,
        };
        let note = format!(
            "IMEX peers {cause}: {} of NVLink domain {} ({} peers: {}; sha256 {})",
            args.config_path,
            d.name,
            d.members.len(),
            d.members.iter().map(|(_, ip)| ip.as_str()).collect::<Vec<_>>().join(" "),
            &d.sha256[..16.min(d.sha256.len())]
        );
        // The rack's place, as the rack commands name their nodes (`RACK/NAME`).
        if let Err(e) = inventory.note(&format!("{}/{}", manifest.rack.id, w.node), ACTOR, &note, None) {
            not_recorded.push(format!("{}: {}", w.node, crate::error::chain(&e)));
        }
    }
    let failed = writes.iter().any(|w| matches!(w.write, ImexWrite::Failed { .. }));
    let code = if failed {
        exit::PEER
    } else if !not_recorded.is_empty() {
        exit::DATABASE
    } else if !left_out.is_empty() || domains.is_empty() {
        exit::CHECK_FAILED
    } else {
        exit::OK
    };
    if args.json {
        let doc = ImexDoc {
            schema_version: 1,
            kind: KIND,
            rack: &manifest.rack.id,
            dry_run: args.dry_run,
            path: &args.config_path,
            domains: &domains,
            writes: &writes,
            left_out: &left_out,
            not_recorded: &not_recorded,
            exit_code: code,
        };
        crate::terminal::json(&doc).context("serialize the IMEX outcome")?;
        return Ok(Outcome::exit(code));
    }
    print_text(args, &domains, &writes, &left_out, &not_recorded);
    Ok(Outcome::exit(code))
}

fn print_text(
    args: &RackImexArgs,
    domains: &[ImexDomain],
    writes: &[MemberWrite],
    left_out: &[LeftOut],
    not_recorded: &[String],
) {
    if domains.is_empty() {
        crate::terminal::println(format_args!("no verified NVLink domain: no IMEX peer list written"));
    }
    for d in domains {
        let mode = if args.dry_run { " (dry run: nothing written)" } else { "" };
        crate::terminal::println(format_args!(
            "NVLink domain {} (clique {}): {} on {} trays{mode}",
            d.name,
            d.clique,
            args.config_path,
            d.members.len()
        ));
        for line in d.config.lines() {
            crate::terminal::println(format_args!("    {line}"));
        }
        for w in writes.iter().filter(|w| w.domain == d.name) {
            let result = match &w.write {
                ImexWrite::Written => "written".to_string(),
                ImexWrite::AlreadyDone => "already there".to_string(),
                ImexWrite::WouldWrite => "would write".to_string(),
                ImexWrite::Failed { error } => format!("FAILED: {error}"),
            };
            crate::terminal::println(format_args!("  {:<12} {result}", w.node));
        }
    }
    for l in left_out {
        crate::terminal::println(format_args!("left out {} ({}): {}", l.node, l.rack, l.reason));
    }
    for n in not_recorded {
        crate::terminal::println(format_args!("not recorded: {n}"));
    }
    if writes.iter().any(|w| w.write == ImexWrite::Written) {
        crate::terminal::println(format_args!(
            "the IMEX daemon reads its peers when it starts: restart nvidia-imex on the trays written"
        ));
    }
}
