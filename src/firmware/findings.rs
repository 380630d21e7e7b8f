//! Compliance as `Finding`s: check `firmware.<component>` per instance, `firmware.not_in_recipe`
//! for what the recipe does not know, `firmware.inventory` for an inventory no component read.
//!
//! An advisory component out of date is a `pass` of severity warning that says so: it is shown,
//! with what to do, but does not fail the node. Unreadable is `error` (not known compliant),
//! never `pass`.

use super::compliance::{Compliance, Entry, Status};
use crate::checks::{Finding, Outcome, Severity};

/// The check id of an entry.
pub fn check_id(entry: &Entry) -> String {
    match (&entry.component, entry.status) {
        (Some(c), _) => format!("firmware.{c}"),
        (None, Status::NotInRecipe) => "firmware.not_in_recipe".to_string(),
        (None, _) => "firmware.inventory".to_string(),
    }
}

impl Compliance {
    /// One finding per entry, in entry order.
    pub fn findings(&self) -> Vec<Finding> {
        self.entries.iter().map(|e| finding(&self.recipe, e)).collect()
    }
}

fn finding(recipe: &str, e: &Entry) -> Finding {
    let check = check_id(e);
    let example = if e.example {
        " (the pinned version is an example in the recipe: replace it with your qualified one)"
    } else {
        ""
    };
    let pinned = e.pinned.as_deref().unwrap_or("");
    let reported = e.reported.as_deref().unwrap_or("");
    let detail = e.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
    let (outcome, severity, message, action) = match e.status {
        Status::UpToDate => (
            Outcome::Pass,
            Severity::Info,
            format!("{} {reported} on {} is the pinned version{}", e.name, e.place, detail_in_parens(e)),
            None,
        ),
        Status::Older | Status::Newer | Status::Differs => {
            let how = match e.status {
                Status::Older => "older than",
                Status::Newer => "newer than",
                _ => "not",
            };
            let action = match e.status {
                Status::Newer => {
                    format!("downgrade {} to {pinned}, or pin {reported} in recipe {recipe} if it is qualified", e.name)
                }
                _ => format!("update {} on {} to {pinned} (kiln rack firmware update)", e.name, e.place),
            };
            (
                Outcome::Fail,
                Severity::Warning,
                format!("{} {reported} on {} is {how} the pinned {pinned}{example}", e.name, e.place),
                Some(action),
            )
        }
        Status::Missing => (
            Outcome::Fail,
            Severity::Warning,
            format!("{} (pinned {pinned}) is missing{detail}", e.name),
            Some("check that the part is fitted and that its BMC lists it (kiln bmc firmware)".to_string()),
        ),
        Status::Unreadable if e.component.is_some() => (
            Outcome::Error,
            Severity::Warning,
            format!("{} on {}: version {} is unreadable{detail}", e.name, e.place, quoted(e.reported.as_deref())),
            Some(format!("read the version by hand (kiln bmc firmware) and compare it with {pinned}")),
        ),
        Status::Unreadable => (
            Outcome::Error,
            Severity::Warning,
            format!("the firmware inventory could not be read{detail}"),
            Some("check the BMC (kiln bmc info) and run the check again".to_string()),
        ),
        Status::NotInRecipe => (
            Outcome::Skipped,
            Severity::Info,
            format!("{} {} is not in recipe {recipe}{detail}", e.name, quoted(e.reported.as_deref())),
            None,
        ),
        Status::NoInventory => {
            (Outcome::Skipped, Severity::Info, format!("this BMC lists no firmware inventory{detail}"), None)
        }
    };
    let (outcome, severity, message) = if e.advisory && outcome != Outcome::Pass && e.component.is_some() {
        (Outcome::Pass, Severity::Warning, format!("advisory: {message}"))
    } else {
        (outcome, severity, message)
    };
    let mut f = Finding::new(&check, outcome, severity, e.part.clone(), message);
    if let Some(p) = &e.pinned {
        f = f.expected(if e.accept_newer { format!(">= {p}") } else { p.clone() });
    }
    if let Some(r) = &e.reported {
        f = f.actual(r);
    }
    if let Some(a) = action {
        f = f.action(a);
    }
    f
}

fn detail_in_parens(e: &Entry) -> String {
    e.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
}

fn quoted(v: Option<&str>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "(none)".to_string(),
    }
}
