//! `kiln bmc ...`: resolve the target, run one BMC operation, print it, return the exit code.

use std::path::Path;
use std::time::Duration;

use crate::bmc::{
    parse_bmc_url, parse_system_path, rack_target, read_password, wait_for_power, Bmc, BmcAnswer, BmcDocument,
    BmcError, BmcTarget, BootTarget, FirmwareItem, IpmiAddress, IpmiBmc, Media, PasswordSource, PowerAction,
    PowerState, RedfishBmc, TargetError, TlsOptions,
};
use crate::cli::{BmcArgs, BmcCommand, BmcTargetArgs, BmcVia, BootWord, LocateWord, MediaCommand, PowerWord};
use crate::cmd::{CmdError, CmdResult, Outcome};
use crate::error::chain;
use crate::exit;
use crate::inventory::{db_path, now, ComponentRecord, FirmwareReading, Inventory, InventoryError};
use crate::notice::{Notice, Notices};
use crate::rack::RackManifest;
use crate::redact;

/// Run a `kiln bmc` command. A bad target is bad input (exit 4), a BMC that
/// fails or answers wrong a peer error (exit 6).
///
/// Changes (power, boot device, virtual media) are logged in the node's
/// lifecycle history as notes (`--db`, default `inventory/kiln.db`):
/// `requested` before the request goes out, then `done` or `failed`. A change
/// that cannot be logged is not sent (exit 5); a power change of a BMC given
/// by URL without `--node` is refused (exit 2), since it would go unlogged. A
/// firmware listing of a named node is recorded as a BMC firmware reading.
/// Reads (status, info, media status) record nothing.
pub fn run(args: BmcArgs, notices: &dyn Notices) -> CmdResult {
    let (target, rack) = resolve(&args.target)?;
    let db = db_path(args.db.as_deref());
    let change = change_of(&args.command);
    let mut journal = None;
    if let Some(c) = &change {
        let Some(node) = &target.node else {
            if c.destructive {
                return Err(CmdError::Usage(format!(
                    "not sending {} to {}: name the node (--node N) so that it is logged",
                    c.action, target.url
                ))
                .into());
            }
            notices.notice(Notice::Warning(&format!(
                "{} on {} is not logged: no node named (--node N)",
                c.action, target.url
            )));
            return finish(&args, &target, rack.as_deref(), &db, None, None);
        };
        let opened = Journal::open(&db, node, rack.as_deref(), &target.url)
            .and_then(|mut j| j.log(&c.action, "requested", c.detail.as_deref()).map(|()| j));
        match opened {
            Ok(j) => journal = Some(j),
            Err(source) => {
                return Err(CmdError::NotSent { action: c.action.clone(), bmc: target.label(), source }.into());
            }
        }
    }
    finish(&args, &target, rack.as_deref(), &db, journal.as_mut(), change.as_ref())
}

/// Runs the command, logs its outcome in `journal`, prints, records a
/// firmware listing.
fn finish(
    args: &BmcArgs,
    target: &BmcTarget,
    rack: Option<&str>,
    db: &Path,
    journal: Option<&mut Journal>,
    change: Option<&Change>,
) -> CmdResult {
    let started = now();
    let result = execute(args, target);
    let mut logged = Ok(());
    if let (Some(j), Some(c)) = (journal, change) {
        logged = match &result {
            Ok(output) => j.log(&c.action, "done", Some(&output.lines.join("; "))),
            Err(e) => j.log(&c.action, "failed", Some(&chain(e))),
        };
    }
    let outcome = match result {
        Ok(output) => {
            if args.json {
                crate::terminal::json(&output.doc)?;
            } else {
                for line in &output.lines {
                    crate::terminal::println(format_args!("{line}"));
                }
            }
            let outcome = match output.problem {
                Some(problem) => Outcome::from(problem),
                None => Outcome::ok(),
            };
            if let (Some(items), Some(node)) = (&output.firmware, &target.node) {
                record_firmware(db, node, rack, items, outcome.code(), started)?;
            }
            outcome
        }
        Err(e) => Outcome::from(CmdError::Bmc(e)),
    };
    match logged {
        Ok(()) => Ok(outcome),
        // A change that was done but not logged: the log is what failed.
        Err(source) if outcome.code() == exit::OK => Err(CmdError::NotLogged { db: db.to_path_buf(), source }.into()),
        Err(source) => Ok(outcome.with_error(CmdError::NotLogged { db: db.to_path_buf(), source })),
    }
}

/// Records a firmware listing as the node's BMC firmware reading; a failed
/// write gives `exit::DATABASE`.
fn record_firmware(
    db: &Path,
    node: &str,
    rack: Option<&str>,
    items: &[FirmwareItem],
    code: i32,
    started: time::OffsetDateTime,
) -> CmdResult<()> {
    let components: Vec<ComponentRecord> = items.iter().map(FirmwareItem::component_record).collect();
    let reading = FirmwareReading {
        node,
        rack,
        components: &components,
        exit_code: code,
        started_at: started,
        finished_at: now(),
        actor: ACTOR,
    };
    let id = Inventory::open(db).and_then(|mut inv| inv.record_bmc_firmware(&reading)).map_err(|source| {
        CmdError::InventoryDoing {
            doing: format!("could not record the firmware of {node} in {}", db.display()),
            source,
        }
    })?;
    tracing::info!(node, run = id.0, items = items.len(), "BMC firmware recorded");
    Ok(())
}

/// How long a locate change may take to show when read back.
const LOCATE_READBACK: Duration = Duration::from_secs(10);

/// Who the event log names for BMC actions.
const ACTOR: &str = "kiln bmc";

/// A change a command makes to the node, as the log names it.
struct Change {
    /// `power.force-off`, `boot.pxe`, `media.insert`.
    action: String,
    detail: Option<String>,
    /// Takes the host down or restarts it: never sent unlogged.
    destructive: bool,
}

/// The change a command makes; `None` for commands that only read.
fn change_of(command: &BmcCommand) -> Option<Change> {
    let change = |action: String, detail: Option<String>, destructive| Change { action, detail, destructive };
    match command {
        BmcCommand::Power { action, .. } => {
            power_action(*action).map(|a| change(format!("power.{}", a.as_str()), None, !matches!(a, PowerAction::On)))
        }
        BmcCommand::Boot { target } => {
            let word = match target {
                BootWord::Pxe => "pxe",
                BootWord::Cd => "cd",
                BootWord::Hdd => "hdd",
            };
            Some(change(format!("boot.{word}"), Some("next boot only".into()), false))
        }
        BmcCommand::Media(MediaCommand::Insert { url }) => {
            Some(change("media.insert".into(), Some(redact::userinfo(url).into_owned()), false))
        }
        BmcCommand::Media(MediaCommand::Eject) => Some(change("media.eject".into(), None, false)),
        BmcCommand::Locate { state: LocateWord::On } => Some(change("locate.on".into(), None, false)),
        BmcCommand::Locate { state: LocateWord::Off } => Some(change("locate.off".into(), None, false)),
        BmcCommand::Media(MediaCommand::Status)
        | BmcCommand::Firmware
        | BmcCommand::Info
        | BmcCommand::Locate { state: LocateWord::Status } => None,
    }
}

/// Where one BMC command's change is logged: notes in the node's lifecycle
/// history, which record an action without moving the node.
struct Journal {
    inv: Inventory,
    node: String,
    /// The BMC URL (never with credentials).
    target: String,
}

impl Journal {
    /// Opens the inventory and enrolls the node when it is not known yet.
    fn open(db: &Path, node: &str, rack: Option<&str>, target: &str) -> Result<Journal, InventoryError> {
        let mut inv = Inventory::open(db)?;
        inv.enroll(node, rack, ACTOR)?;
        Ok(Journal { inv, node: node.to_string(), target: target.to_string() })
    }

    /// Appends `bmc <action> <stage> (<bmc url>)[: detail]` to the node's history, with the user
    /// and password of any URL in it hidden (an image URL, or one a BMC's error repeats).
    fn log(&mut self, action: &str, stage: &str, detail: Option<&str>) -> Result<(), InventoryError> {
        let cause = match detail {
            Some(d) if !d.is_empty() => format!("bmc {action} {stage} ({}): {d}", self.target),
            _ => format!("bmc {action} {stage} ({})", self.target),
        };
        self.inv.note(&self.node, ACTOR, &redact::userinfo(&cause), None)
    }
}

/// What a command printed, in both forms, and what went wrong though it answered.
struct Output {
    lines: Vec<String>,
    /// The `--json` document.
    doc: BmcDocument,
    /// A BMC that answered but not wholly (firmware items it would not let kiln read).
    problem: Option<CmdError>,
    /// The firmware items listed, for the inventory.
    firmware: Option<Vec<FirmwareItem>>,
}

impl Output {
    fn ok(lines: Vec<String>, doc: BmcDocument) -> Self {
        Output { lines, doc, problem: None, firmware: None }
    }
}

/// Build the target from `--rack/--node` or `--bmc ...`, then apply any
/// explicit overrides (TLS choice, system, IPMI address) given as flags.
pub fn resolve_target(a: &BmcTargetArgs) -> Result<BmcTarget, TargetError> {
    resolve(a).map(|(t, _)| t)
}

/// `resolve_target`, with the rack id when the target came from a manifest.
fn resolve(a: &BmcTargetArgs) -> Result<(BmcTarget, Option<String>), TargetError> {
    let flag_tls = TlsOptions { ca_file: a.ca_file.clone(), fingerprint: a.fingerprint.clone(), insecure: a.insecure };
    let tls_given = flag_tls.ca_file.is_some() || flag_tls.fingerprint.is_some() || flag_tls.insecure;
    let mut rack_id = None;
    let mut target = match (&a.rack, &a.node, &a.bmc) {
        (Some(rack), Some(node), _) => {
            let manifest = RackManifest::load(rack).map_err(|source| TargetError::Manifest { source })?;
            rack_id = Some(manifest.rack.id.clone());
            rack_target::target_from_manifest(&manifest, node)?
        }
        (None, node, Some(url)) => {
            let username = a.bmc_user.clone().ok_or(TargetError::MissingFlag { what: "--bmc-user" })?;
            let source = match &a.bmc_password_file {
                Some(file) => PasswordSource::File(file.clone()),
                None => PasswordSource::Env(a.bmc_password_env.clone()),
            };
            BmcTarget {
                node: node.clone(),
                url: parse_bmc_url(url)?,
                system_path: None,
                username,
                password: read_password(&source)?,
                tls: flag_tls.policy()?,
                ipmi: None,
            }
        }
        _ => return Err(TargetError::NoTarget),
    };
    if tls_given {
        target.tls = flag_tls.policy()?;
    }
    if let Some(system) = &a.bmc_system {
        target.system_path = Some(parse_system_path(system)?);
    }
    if let Some(ipmi) = &a.ipmi {
        target.ipmi = Some(IpmiAddress::parse(ipmi)?);
    }
    if a.via == BmcVia::Ipmi && target.ipmi.is_none() {
        return Err(TargetError::BadIpmiAddress {
            value: String::new(),
            why: "--via ipmi needs an IPMI address (--ipmi HOST:PORT or ipmi= in the manifest)".into(),
        });
    }
    Ok((target, rack_id))
}

fn execute(args: &BmcArgs, target: &BmcTarget) -> Result<Output, BmcError> {
    match args.target.via {
        BmcVia::Redfish => {
            let bmc = RedfishBmc::connect(target)?;
            run_command(&args.command, &bmc, Some(&bmc), target)
        }
        BmcVia::Ipmi => {
            // resolve_target made sure there is an address.
            let bmc = IpmiBmc::from_target(target).ok_or_else(|| BmcError::NotSupported {
                bmc: target.label(),
                operation: "ipmi",
                why: "without an IPMI address".into(),
            })?;
            run_command(&args.command, &bmc, None, target)
        }
    }
}

fn power_action(word: PowerWord) -> Option<PowerAction> {
    match word {
        PowerWord::Status => None,
        PowerWord::On => Some(PowerAction::On),
        PowerWord::Off => Some(PowerAction::Off),
        PowerWord::ForceOff => Some(PowerAction::ForceOff),
        PowerWord::Reset => Some(PowerAction::Reset),
        PowerWord::GracefulRestart => Some(PowerAction::GracefulRestart),
    }
}

/// The power state an action should end in, for `--wait`.
fn expected_state(action: PowerAction) -> PowerState {
    match action {
        PowerAction::Off | PowerAction::ForceOff => PowerState::Off,
        PowerAction::On | PowerAction::Reset | PowerAction::GracefulRestart => PowerState::On,
    }
}

fn run_command(
    command: &BmcCommand,
    bmc: &dyn Bmc,
    redfish: Option<&RedfishBmc>,
    target: &BmcTarget,
) -> Result<Output, BmcError> {
    let who = target.node.clone().unwrap_or_else(|| target.url.clone());
    let doc = |answer: BmcAnswer| BmcDocument::new(bmc.label(), target.node.clone(), answer);
    match command {
        BmcCommand::Power { action, wait } => {
            if let Some(act) = power_action(*action) {
                bmc.power(act)?;
                if let Some(secs) = wait {
                    wait_for_power(bmc, &expected_state(act), Duration::from_secs(*secs), Duration::from_secs(1))?;
                }
            }
            let state = bmc.power_state()?;
            let line = match power_action(*action) {
                Some(act) => format!("{who}: power {} accepted; power is now {state}", act.as_str()),
                None => format!("{who}: power {state}"),
            };
            let answer = BmcAnswer::Power { power: state, action: power_action(*action).map(PowerAction::as_str) };
            Ok(Output::ok(vec![line], doc(answer)))
        }
        BmcCommand::Boot { target: word } => {
            let boot = match word {
                BootWord::Pxe => BootTarget::Pxe,
                BootWord::Cd => BootTarget::Cd,
                BootWord::Hdd => BootTarget::Hdd,
            };
            bmc.set_boot_once(boot)?;
            let line = format!("{who}: next boot from {}", boot.as_str());
            Ok(Output::ok(vec![line], doc(BmcAnswer::Boot { boot_once: boot })))
        }
        BmcCommand::Media(MediaCommand::Insert { url }) => {
            // The BMC needs the URL as given (it may have to log in to fetch it); what is
            // printed and logged never shows its user or password.
            bmc.insert_media(url)?;
            let shown = redact::userinfo(url).into_owned();
            let line = format!("{who}: virtual CD holds {shown}");
            let media = Media::Changed { inserted: true, image: Some(shown) };
            Ok(Output::ok(vec![line], doc(BmcAnswer::Media { media })))
        }
        BmcCommand::Media(MediaCommand::Eject) => {
            bmc.eject_media()?;
            let media = Media::Changed { inserted: false, image: None };
            Ok(Output::ok(vec![format!("{who}: virtual CD ejected")], doc(BmcAnswer::Media { media })))
        }
        BmcCommand::Media(MediaCommand::Status) => {
            let Some(rf) = redfish else {
                return Err(BmcError::NotSupported {
                    bmc: bmc.label().to_string(),
                    operation: "virtual media",
                    why: "over IPMI (use the Redfish BMC)".into(),
                });
            };
            let (mut slot, _) = rf.media_slot()?;
            slot.image = slot.image.map(|i| redact::userinfo(&i).into_owned());
            let line = match (&slot.image, slot.inserted) {
                (Some(image), true) => format!("{who}: virtual CD {} holds {image}", slot.path),
                _ => format!("{who}: virtual CD {} is empty", slot.path),
            };
            Ok(Output::ok(vec![line], doc(BmcAnswer::Media { media: Media::Slot(slot) })))
        }
        BmcCommand::Firmware => {
            let items = bmc.firmware_inventory()?;
            let mut lines = vec![format!("{:<28} {:<36} {:<10} SERIAL", "ID", "VERSION", "UPDATEABLE")];
            for item in &items {
                let updateable = match item.updateable {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                };
                let version = match (&item.version, &item.problem) {
                    (_, Some(problem)) => format!("UNREADABLE: {problem}"),
                    (Some(v), None) => v.clone(),
                    (None, None) => "-".into(),
                };
                lines.push(format!(
                    "{:<28} {:<36} {:<10} {}",
                    item.id,
                    version,
                    updateable,
                    item.serial.as_deref().unwrap_or("-")
                ));
            }
            let unreadable = items.iter().filter(|i| i.problem.is_some()).count();
            let components = items.iter().map(FirmwareItem::inventory_component).collect();
            let doc = doc(BmcAnswer::Firmware { firmware: items.clone(), components });
            // An unreadable member is not a healthy one: say so in the exit code.
            let problem = (unreadable > 0).then_some(CmdError::FirmwareUnreadable { count: unreadable });
            Ok(Output { lines, doc, problem, firmware: Some(items) })
        }
        BmcCommand::Locate { state } => {
            let Some(rf) = redfish else {
                return Err(BmcError::NotSupported {
                    bmc: bmc.label().to_string(),
                    operation: "locate",
                    why: "over IPMI (use the Redfish BMC)".into(),
                });
            };
            let locate = match state {
                LocateWord::Status => rf.locate()?,
                LocateWord::On => rf.set_locate(true, LOCATE_READBACK)?,
                LocateWord::Off => rf.set_locate(false, LOCATE_READBACK)?,
            };
            let word = if locate.on { "on" } else { "off" };
            let line =
                format!("{who}: locate LED {word} ({} = {} on {})", locate.property, locate.value, locate.resource);
            Ok(Output::ok(vec![line], doc(BmcAnswer::Locate { locate })))
        }
        BmcCommand::Info => {
            let identity = bmc.identity()?;
            let power = bmc.power_state()?;
            let mut boot_override = None;
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let mut lines = vec![
                format!("bmc:            {}", bmc.label()),
                format!("power:          {power}"),
                format!("system:         {}", show(&identity.system)),
                format!("system serial:  {}", show(&identity.system_serial)),
                format!("chassis:        {}", show(&identity.chassis)),
                format!("chassis serial: {}", show(&identity.chassis_serial)),
                format!("manufacturer:   {}", show(&identity.manufacturer)),
                format!("model:          {}", show(&identity.model)),
                format!("part number:    {}", show(&identity.part_number)),
                format!("bmc firmware:   {}", show(&identity.bmc_firmware)),
            ];
            if let Some(rf) = redfish {
                let boot = rf.boot_override()?;
                lines.push(format!(
                    "boot override:  {} ({})",
                    show(&boot.target),
                    boot.enabled.clone().unwrap_or_else(|| "-".into())
                ));
                boot_override = Some(boot);
            }
            for p in &identity.problems {
                lines.push(format!("could not read: {p}"));
            }
            Ok(Output::ok(lines, doc(BmcAnswer::Info { power, identity: Box::new(identity), boot_override })))
        }
    }
}
