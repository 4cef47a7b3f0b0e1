//! The policy's hooks, run around a refresh: SQL on the target or its
//! staging, or a shell command. Each is reported with its outcome and time;
//! its output never (a command's standard output and error are discarded,
//! since they may hold row values).

use std::time::Instant;

use cutover_db::Database;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::policy::{HookPoint, Policy};

/// What one hook did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HookOutcome {
    /// The hook's name.
    pub name: String,
    /// `before-copy`, `after-load` or `after-swap`.
    pub when: &'static str,
    /// `sql` or `command`.
    pub kind: &'static str,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Seconds it took.
    pub seconds: f64,
}

/// Where a point's hooks run.
pub(crate) struct HookPlace<'a> {
    /// The database SQL hooks run on (none: a SQLite target that does not
    /// exist yet).
    pub database: Option<&'a Database>,
    /// The environment commands get (`CUTOVER_HOOK` besides).
    pub env: Vec<(&'static str, String)>,
}

/// Problems with the policy's hooks: each needs exactly one of `sql` and `command`.
pub(crate) fn hook_problems(policy: &Policy) -> Vec<String> {
    policy
        .hooks
        .iter()
        .enumerate()
        .filter(|(_, hook)| hook.sql.is_some() == hook.command.is_some())
        .map(|(index, hook)| {
            format!(
                "hook {}: give it either sql or command, not {}",
                hook_name(index, hook.name.as_deref(), hook.when),
                if hook.sql.is_some() {
                    "both"
                } else {
                    "neither"
                }
            )
        })
        .collect()
}

fn hook_name(index: usize, name: Option<&str>, when: HookPoint) -> String {
    name.map_or_else(|| format!("{} #{}", when.name(), index + 1), str::to_owned)
}

/// Runs the hooks of `point` in order, recording each in `outcomes`; the
/// first failure stops and is returned (after being recorded).
pub(crate) async fn run_hooks(
    policy: &Policy,
    point: HookPoint,
    place: &HookPlace<'_>,
    outcomes: &mut Vec<HookOutcome>,
) -> Result<()> {
    for (index, hook) in policy.hooks.iter().enumerate() {
        if hook.when != point {
            continue;
        }
        let name = hook_name(index, hook.name.as_deref(), point);
        let started = Instant::now();
        let (kind, result) = match (&hook.sql, &hook.command) {
            (Some(sql), None) => (
                "sql",
                match place.database {
                    Some(database) => database
                        .execute_batch(sql)
                        .await
                        .map_err(|error| error.to_string()),
                    None => Err(
                        "the target does not exist yet, so there is nothing to run it on".into(),
                    ),
                },
            ),
            (None, Some(command)) => ("command", run_command(command, point, place).await),
            _ => {
                return Err(Error::Unsupported(format!(
                    "hook {name}: give it either sql or command"
                )));
            }
        };
        outcomes.push(HookOutcome {
            name: name.clone(),
            when: point.name(),
            kind,
            status: if result.is_ok() { "ok" } else { "failed" },
            seconds: started.elapsed().as_secs_f64(),
        });
        if let Err(reason) = result {
            let consequence = match point {
                HookPoint::BeforeCopy => "nothing was copied; the target is unchanged",
                HookPoint::AfterLoad => {
                    "the refresh stopped before the swap; the target is unchanged"
                }
                HookPoint::AfterSwap => {
                    "the refresh itself completed: the target holds the new data"
                }
            };
            return Err(Error::Unsupported(format!(
                "hook {name} ({}) failed: {reason}; {consequence}",
                point.name()
            )));
        }
    }
    Ok(())
}

async fn run_command(
    command: &str,
    point: HookPoint,
    place: &HookPlace<'_>,
) -> std::result::Result<(), String> {
    let mut process = tokio::process::Command::new("sh");
    process
        .arg("-c")
        .arg(command)
        .env("CUTOVER_HOOK", point.name())
        .envs(place.env.iter().map(|(name, value)| (*name, value)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let status = process
        .status()
        .await
        .map_err(|error| format!("could not start sh: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(match status.code() {
            Some(code) => format!("the command exited with status {code}"),
            None => "the command was killed by a signal".to_owned(),
        })
    }
}
