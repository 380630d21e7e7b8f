//! Carrying out one node's update plan through its BMC: for each package, the push (or
//! `SimpleUpdate`), its Task to the end, the delay the recipe asks for; then the activation.
//! One package at a time: a BMC takes one update at a time.
//!
//! Every step is reported as it starts and ends (for lifecycle events), and a failed step ends
//! the node's update with a `StepError` that names the node, the component, the step and the
//! cause; its `reason()` is what the node's `failed` state records:
//! `firmware: <component>: <step>: <cause>`.

use std::fmt;
use std::thread;
use std::time::Duration;

use serde::Serialize;

use super::package::{PackageServer, StagedPackage};
use super::plan::{NodePlan, PlannedUpdate};
use super::recipe::{Activation, Method};
use crate::bmc::{AcCycle, RedfishBmc, TaskRef, TaskStatus, TaskWait, UpdateParameters, UpdateService};
use crate::error::chain;

/// A step of a firmware update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Find the BMC's UpdateService.
    Discover,
    /// Have the checked package ready.
    Stage,
    Push,
    SimpleUpdate,
    /// Follow the update's Task.
    Task,
    /// The recipe's wait before the next push to this BMC.
    Delay,
    Activate,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Discover => "discover",
            Step::Stage => "stage",
            Step::Push => "push",
            Step::SimpleUpdate => "simple-update",
            Step::Task => "task",
            Step::Delay => "delay",
            Step::Activate => "activate",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{node}: {}", self.reason())]
pub struct StepError {
    pub node: String,
    /// The component (or `+`-joined components) the step was for.
    pub component: String,
    pub step: Step,
    /// The cause with its chain, on one line.
    pub cause: String,
}

impl StepError {
    /// What the node's lifecycle records: `firmware: <component>: <step>: <cause>`.
    pub fn reason(&self) -> String {
        format!("firmware: {}: {}: {}", self.component, self.step, self.cause)
    }
}

/// A step starting, progressing or done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepEvent {
    pub node: String,
    pub component: String,
    pub step: Step,
    /// `started`, `progress` or `done`.
    pub state: &'static str,
    pub detail: String,
}

/// Limits of an update run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// How often a Task is polled.
    pub task_poll: Duration,
    /// The upload limit is this plus the package size at `upload_bytes_per_s`.
    pub upload_base: Duration,
    pub upload_bytes_per_s: u64,
    /// Longest wait for power off in an AC cycle done as ForceOff/On.
    pub power_off_wait: Duration,
    /// Base URL the BMCs reach kiln's package server at, for `SimpleUpdate`.
    pub image_base: Option<String>,
}

impl Default for ApplyOptions {
    /// Tasks polled every 5 s; uploads get 60 s plus 1 MB/s (a 200 MB bundle: 260 s); 5 minutes
    /// for power to go off.
    fn default() -> Self {
        ApplyOptions {
            task_poll: Duration::from_secs(5),
            upload_base: Duration::from_secs(60),
            upload_bytes_per_s: 1_000_000,
            power_off_wait: Duration::from_secs(300),
            image_base: None,
        }
    }
}

/// What an applied plan did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Each package's final Task.
    pub tasks: Vec<(String, TaskStatus)>,
    pub activation: Activation,
    /// How an AC cycle was done, when one was.
    pub ac_cycle: Option<AcCycle>,
}

/// Carry out `plan` on `bmc`. `staged` holds every package the plan names (checked).
pub fn apply_plan(
    bmc: &RedfishBmc,
    plan: &NodePlan,
    staged: &[StagedPackage],
    opts: &ApplyOptions,
    events: &mut dyn FnMut(&StepEvent),
) -> Result<Applied, StepError> {
    let mut applied = Applied { tasks: Vec::new(), activation: plan.activation, ac_cycle: None };
    let Some(first) = plan.updates.first() else { return Ok(applied) };
    let mut run = Run { node: &plan.node, events };
    let service = run.step(&first.components.join("+"), Step::Discover, "UpdateService", || {
        bmc.update_service().map_err(|e| chain(&e))
    })?;
    for (i, update) in plan.updates.iter().enumerate() {
        let status = update_one(bmc, &mut run, &service, update, staged, opts)?;
        applied.tasks.push((update.package.clone(), status));
        if update.delay_s > 0 && i + 1 < plan.updates.len() {
            let wait = Duration::from_secs(update.delay_s);
            run.step(&update.components.join("+"), Step::Delay, &format!("{}s", update.delay_s), || {
                thread::sleep(wait);
                Ok(())
            })?;
        }
    }
    let needing: Vec<&str> =
        plan.updates.iter().flat_map(|u| u.components.iter().map(String::as_str)).collect::<Vec<_>>();
    let label = needing.join("+");
    match plan.activation {
        Activation::None => {}
        Activation::HostReset => {
            run.step(&label, Step::Activate, "host reset", || bmc.host_reset().map_err(|e| chain(&e)))?;
        }
        Activation::AcPowerCycle => {
            let how = run.step(&label, Step::Activate, "AC power cycle", || {
                bmc.ac_power_cycle(opts.power_off_wait).map_err(|e| chain(&e))
            })?;
            applied.ac_cycle = Some(how);
        }
    }
    Ok(applied)
}

fn update_one(
    bmc: &RedfishBmc,
    run: &mut Run<'_, '_>,
    service: &UpdateService,
    update: &PlannedUpdate,
    staged: &[StagedPackage],
    opts: &ApplyOptions,
) -> Result<TaskStatus, StepError> {
    let label = update.components.join("+");
    let package = run.step(&label, Step::Stage, &update.package, || {
        staged.iter().find(|s| s.id == update.package).cloned().ok_or_else(|| {
            format!("package {} was not staged (kiln checks every package before it sends any)", update.package)
        })
    })?;
    let parameters = UpdateParameters { targets: update.targets.clone(), apply_time: update.apply_time.clone() };
    let task = match update.method {
        Method::MultipartPush => {
            let limit = opts.upload_base + Duration::from_secs(package.len / opts.upload_bytes_per_s.max(1));
            let detail = format!("{} ({} bytes)", package.original_name, package.len);
            run.step(&label, Step::Push, &detail, || {
                let mut reader = package.open_verified().map_err(|e| chain(&e))?;
                bmc.multipart_push(service, &mut reader, package.len, &package.original_name, &parameters, limit)
                    .map_err(|e| chain(&e))
            })?
        }
        Method::SimpleUpdate => {
            let base = opts.image_base.as_deref().ok_or_else(|| StepError {
                node: run.node.to_string(),
                component: label.clone(),
                step: Step::SimpleUpdate,
                cause: "no address for kiln's package server: SimpleUpdate needs one the BMC can reach".into(),
            })?;
            let uri = PackageServer::url(base, &package);
            run.step(&label, Step::SimpleUpdate, &uri, || {
                bmc.simple_update(service, &uri, &parameters.targets, parameters.apply_time.as_deref())
                    .map_err(|e| chain(&e))
            })?
        }
    };
    let wait = TaskWait { deadline: Duration::from_secs(update.task_timeout_s), every: opts.task_poll };
    let node = run.node.to_string();
    let events = &mut *run.events;
    events(&StepEvent {
        node: node.clone(),
        component: label.clone(),
        step: Step::Task,
        state: "started",
        detail: match &task {
            TaskRef::Task(path) => path.clone(),
            TaskRef::None => "the BMC named no Task: done when answered".into(),
        },
    });
    let result = bmc.follow_task(&task, wait, &mut |s: &TaskStatus| {
        events(&StepEvent {
            node: node.clone(),
            component: label.clone(),
            step: Step::Task,
            state: "progress",
            detail: s.summary(),
        })
    });
    match result {
        Ok(status) => {
            events(&StepEvent { node, component: label, step: Step::Task, state: "done", detail: status.summary() });
            Ok(status)
        }
        Err(e) => Err(StepError { node, component: label, step: Step::Task, cause: chain(&e) }),
    }
}

/// Runs steps, reporting each and turning its failure into a `StepError`.
struct Run<'a, 'e> {
    node: &'a str,
    events: &'e mut dyn FnMut(&StepEvent),
}

impl Run<'_, '_> {
    fn step<T>(
        &mut self,
        component: &str,
        step: Step,
        detail: &str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, StepError> {
        let event = |state| StepEvent {
            node: self.node.to_string(),
            component: component.to_string(),
            step,
            state,
            detail: detail.to_string(),
        };
        (self.events)(&event("started"));
        match f() {
            Ok(v) => {
                (self.events)(&event("done"));
                Ok(v)
            }
            Err(cause) => Err(StepError { node: self.node.to_string(), component: component.to_string(), step, cause }),
        }
    }
}
