//! Following a Redfish Task (an accepted firmware update) to its end, within a deadline.
//!
//! BMCs answer an update in one of three ways: a Task resource in the body with a `Location`
//! of its monitor (bmcweb, NVIDIA's BMCs: 202 Accepted), only a `Location` (sushy-tools: 204
//! with `Location: /redfish/v1/TaskService/Tasks/42`), or nothing (the update is done). A
//! Task resource carries `TaskState`, `PercentComplete` and `Messages`; a task monitor answers
//! 202 while the work runs and anything else once it is done.
//!
//! While a BMC applies firmware it may answer 5xx or not at all (it restarts itself after a BMC
//! update), so a failed poll is not a failed Task: polling goes on until the deadline, and the
//! deadline error says what was seen last.

use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::http::Reply;
use super::redfish::text;
use super::{Bmc, BmcError, RedfishBmc};

/// `TaskState` (Redfish Task schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TaskState {
    New,
    Starting,
    Running,
    Suspended,
    Interrupted,
    Pending,
    Stopping,
    Completed,
    Killed,
    Exception,
    Service,
    Cancelling,
    Cancelled,
    /// A value Redfish does not define, kept verbatim.
    Other(String),
}

impl TaskState {
    pub fn from_redfish(s: &str) -> TaskState {
        match s {
            "New" => TaskState::New,
            "Starting" => TaskState::Starting,
            "Running" => TaskState::Running,
            "Suspended" => TaskState::Suspended,
            "Interrupted" => TaskState::Interrupted,
            "Pending" => TaskState::Pending,
            "Stopping" => TaskState::Stopping,
            "Completed" => TaskState::Completed,
            "Killed" => TaskState::Killed,
            "Exception" => TaskState::Exception,
            "Service" => TaskState::Service,
            "Cancelling" => TaskState::Cancelling,
            "Cancelled" => TaskState::Cancelled,
            other => TaskState::Other(other.to_string()),
        }
    }

    /// A state the Task does not leave.
    pub fn is_final(&self) -> bool {
        matches!(self, TaskState::Completed | TaskState::Killed | TaskState::Exception | TaskState::Cancelled)
    }

    pub fn as_str(&self) -> &str {
        match self {
            TaskState::New => "New",
            TaskState::Starting => "Starting",
            TaskState::Running => "Running",
            TaskState::Suspended => "Suspended",
            TaskState::Interrupted => "Interrupted",
            TaskState::Pending => "Pending",
            TaskState::Stopping => "Stopping",
            TaskState::Completed => "Completed",
            TaskState::Killed => "Killed",
            TaskState::Exception => "Exception",
            TaskState::Service => "Service",
            TaskState::Cancelling => "Cancelling",
            TaskState::Cancelled => "Cancelled",
            TaskState::Other(s) => s,
        }
    }
}

/// Where an accepted update can be followed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "path", rename_all = "kebab-case")]
pub enum TaskRef {
    /// A Task resource or its monitor, by path on the BMC.
    Task(String),
    /// The BMC named no Task: the request completed when it was answered.
    None,
}

impl TaskRef {
    /// The Task an answer names: a Task in the body first (its `@odata.id`), else `Location`.
    pub fn from_reply(reply: &Reply) -> TaskRef {
        let body = &reply.body;
        let is_task = body.get("TaskState").is_some()
            || body.get("@odata.type").and_then(Value::as_str).is_some_and(|t| t.starts_with("#Task."));
        if is_task {
            if let Some(id) = text(body, "@odata.id") {
                return TaskRef::Task(id);
            }
        }
        match reply.location.as_deref().map(path_of) {
            Some(p) if !p.is_empty() => TaskRef::Task(p.to_string()),
            _ => TaskRef::None,
        }
    }
}

/// The path of a `Location` value, which may be a whole URL.
fn path_of(location: &str) -> &str {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => location,
    }
}

/// A Task as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    pub path: String,
    pub state: TaskState,
    /// `TaskStatus` (`OK`, `Warning`, `Critical`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u64>,
    /// `Messages[].Message`, with the `MessageId` where given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

impl TaskStatus {
    /// `Running 40%`, `Completed`.
    pub fn summary(&self) -> String {
        match self.percent {
            Some(p) => format!("{} {p}%", self.state.as_str()),
            None => self.state.as_str().to_string(),
        }
    }

    fn from_body(path: &str, body: &Value) -> Option<TaskStatus> {
        let state = text(body, "TaskState")?;
        let messages = body
            .get("Messages")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|m| {
                        let message = text(m, "Message")?;
                        Some(match text(m, "MessageId") {
                            Some(id) => format!("{message} ({id})"),
                            None => message,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(TaskStatus {
            path: path.to_string(),
            state: TaskState::from_redfish(&state),
            health: text(body, "TaskStatus"),
            percent: body.get("PercentComplete").and_then(Value::as_u64),
            messages,
        })
    }
}

/// How long to follow a Task, and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskWait {
    pub deadline: Duration,
    pub every: Duration,
}

impl RedfishBmc {
    /// Poll `task` until it ends or `wait.deadline` passes. `Ok` only for `Completed` with a
    /// `TaskStatus` that is not `Critical`; `progress` sees every change of state or percent.
    pub fn follow_task(
        &self,
        task: &TaskRef,
        wait: TaskWait,
        progress: &mut dyn FnMut(&TaskStatus),
    ) -> Result<TaskStatus, BmcError> {
        let path = match task {
            TaskRef::Task(p) => p.clone(),
            TaskRef::None => {
                return Ok(TaskStatus {
                    path: String::new(),
                    state: TaskState::Completed,
                    health: None,
                    percent: None,
                    messages: vec!["the BMC named no task: the update completed with its answer".into()],
                })
            }
        };
        let start = Instant::now();
        let mut last: Option<TaskStatus> = None;
        let mut last_problem: Option<String>;
        loop {
            match self.client().get(&path) {
                Ok(reply) => {
                    last_problem = None;
                    let status = match TaskStatus::from_body(&path, &reply.body) {
                        Some(s) => s,
                        // A task monitor: 202 while running, any other 2xx once done.
                        None if reply.status == 202 => TaskStatus {
                            path: path.clone(),
                            state: TaskState::Running,
                            health: None,
                            percent: None,
                            messages: Vec::new(),
                        },
                        None => TaskStatus {
                            path: path.clone(),
                            state: TaskState::Completed,
                            health: None,
                            percent: None,
                            messages: Vec::new(),
                        },
                    };
                    if last.as_ref().is_none_or(|l| l.state != status.state || l.percent != status.percent) {
                        tracing::info!(bmc = %self.label(), task = %path, state = %status.summary(), "firmware task");
                        progress(&status);
                    }
                    if status.state.is_final() {
                        return self.judge_final(status);
                    }
                    last = Some(status);
                }
                // The task is gone (a BMC that restarted forgets its tasks) or we may not look:
                // waiting longer cannot help.
                Err(e @ (BmcError::Status { status: 404, .. } | BmcError::Unauthorized { .. })) => return Err(e),
                Err(e) => {
                    tracing::debug!(bmc = %self.label(), task = %path, error = %e, "task poll failed; polling on");
                    last_problem = Some(e.to_string());
                }
            }
            if start.elapsed() + wait.every > wait.deadline {
                let seen = last.as_ref().map(TaskStatus::summary).unwrap_or_else(|| "no answer".into());
                let last = match last_problem {
                    Some(p) => format!("{seen}; then {p}"),
                    None => seen,
                };
                return Err(BmcError::TaskDeadline {
                    bmc: self.label().to_string(),
                    task: path,
                    last,
                    waited: wait.deadline,
                });
            }
            thread::sleep(wait.every);
        }
    }

    fn judge_final(&self, status: TaskStatus) -> Result<TaskStatus, BmcError> {
        let failed = status.state != TaskState::Completed || status.health.as_deref() == Some("Critical");
        if !failed {
            return Ok(status);
        }
        let messages =
            if status.messages.is_empty() { "(no messages)".to_string() } else { status.messages.join("; ") };
        let state = match &status.health {
            Some(h) => format!("{} ({h})", status.state.as_str()),
            None => status.state.as_str().to_string(),
        };
        Err(BmcError::TaskFailed { bmc: self.label().to_string(), task: status.path, state, messages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(status: u16, body: Value, location: Option<&str>) -> Reply {
        Reply { status, etag: None, body, location: location.map(str::to_string) }
    }

    #[test]
    fn the_task_in_the_body_wins_over_its_monitor() {
        let body = json!({"@odata.id": "/redfish/v1/TaskService/Tasks/0", "@odata.type": "#Task.v1_4_3.Task", "TaskState": "Running"});
        let r = reply(202, body, Some("/redfish/v1/TaskService/Tasks/0/Monitor"));
        assert_eq!(TaskRef::from_reply(&r), TaskRef::Task("/redfish/v1/TaskService/Tasks/0".into()));
    }

    #[test]
    fn a_location_alone_names_the_task_and_nothing_means_done() {
        let r = reply(204, Value::Null, Some("/redfish/v1/TaskService/Tasks/42"));
        assert_eq!(TaskRef::from_reply(&r), TaskRef::Task("/redfish/v1/TaskService/Tasks/42".into()));
        let r = reply(202, Value::Null, Some("https://10.0.0.1:443/redfish/v1/TaskService/Tasks/7/Monitor"));
        assert_eq!(TaskRef::from_reply(&r), TaskRef::Task("/redfish/v1/TaskService/Tasks/7/Monitor".into()));
        assert_eq!(TaskRef::from_reply(&reply(204, Value::Null, None)), TaskRef::None);
    }

    #[test]
    fn a_task_body_reads_state_percent_and_messages() {
        let body = json!({"TaskState": "Exception", "TaskStatus": "Critical", "PercentComplete": 40,
            "Messages": [{"MessageId": "Update.1.0.VerificationFailed", "Message": "Verification of image 'x' at 'y' failed."}]});
        let s = TaskStatus::from_body("/t", &body).expect("a task");
        assert_eq!(
            (s.state.clone(), s.percent, s.health.as_deref()),
            (TaskState::Exception, Some(40), Some("Critical"))
        );
        assert_eq!(s.messages, ["Verification of image 'x' at 'y' failed. (Update.1.0.VerificationFailed)"]);
        assert!(s.state.is_final());
        assert!(TaskStatus::from_body("/t", &json!({"Status": "x"})).is_none());
    }
}
