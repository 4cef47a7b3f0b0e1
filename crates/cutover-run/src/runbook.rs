//! The runbook file: named steps of known kinds, in order or with `after`
//! dependencies, variables by value or by reference to an environment
//! variable, and the services a run needs. Everything is checked before
//! anything runs, and every problem names its line and column.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// A step's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Named people must approve (`cutover approve`); the run waits.
    Approval,
    /// A message to stdout, a file or a webhook.
    Notify,
    /// A shell command or a SQL count that must pass.
    Check,
    /// `cutover refresh`.
    Refresh,
    /// `cutover verify-refresh`.
    VerifyRefresh,
    /// `cutover diff`.
    Diff,
    /// `cutover send`.
    Send,
    /// `cutover verify`.
    Verify,
    /// `cutover ledger reconcile`.
    Reconcile,
    /// `cutover drain`.
    Drain,
    /// `cutover hold mode` or `cutover hold replay`.
    Hold,
    /// A shell command.
    Shell,
    /// Waits until a time.
    WaitUntil,
    /// A green / yellow / red summary from rules on earlier steps' evidence.
    Checkpoint,
}

impl Kind {
    /// Every kind with its name in runbooks.
    pub const ALL: [(Kind, &'static str); 14] = [
        (Kind::Approval, "approval"),
        (Kind::Notify, "notify"),
        (Kind::Check, "check"),
        (Kind::Refresh, "refresh"),
        (Kind::VerifyRefresh, "verify-refresh"),
        (Kind::Diff, "diff"),
        (Kind::Send, "send"),
        (Kind::Verify, "verify"),
        (Kind::Reconcile, "reconcile"),
        (Kind::Drain, "drain"),
        (Kind::Hold, "hold"),
        (Kind::Shell, "shell"),
        (Kind::WaitUntil, "wait-until"),
        (Kind::Checkpoint, "checkpoint"),
    ];

    /// The kind's name in runbooks.
    pub fn name(self) -> &'static str {
        Kind::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("?", |(_, name)| name)
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }

    /// Whether running the step twice does no harm, so a step cut short by
    /// a crash may simply run again. A notification could be sent twice,
    /// and a shell command may do anything: those stop the run and ask.
    pub fn idempotent(self) -> bool {
        !matches!(self, Kind::Notify | Kind::Shell)
    }

    /// The `cutover` subcommand a capability step runs, if it is one (its
    /// words separated by spaces).
    pub fn subcommand(self) -> Option<&'static str> {
        match self {
            Kind::Refresh => Some("refresh"),
            Kind::VerifyRefresh => Some("verify-refresh"),
            Kind::Diff => Some("diff"),
            Kind::Send => Some("send"),
            Kind::Verify => Some("verify"),
            Kind::Reconcile => Some("ledger reconcile"),
            Kind::Drain => Some("drain"),
            Kind::Hold => Some("hold"),
            _ => None,
        }
    }

    /// The fields a step of this kind may set, besides name, kind, after
    /// and description; the first ones listed before `|` are required.
    fn fields(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Kind::Approval => (&["approvers"], &["message", "to"]),
            Kind::Notify => (&["message"], &["to"]),
            Kind::Check => (&[], &["command", "sql", "url", "expect"]),
            Kind::Shell => (&["command"], &[]),
            Kind::WaitUntil => (&["until"], &[]),
            Kind::Checkpoint => (&["green"], &["yellow", "stop_on"]),
            _ => (&["args"], &[]),
        }
    }
}

/// A problem in a runbook, at a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Why a runbook could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The runbook has problems; nothing ran.
    #[error("{}", render(path, problems))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn render(path: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|problem| {
            format!(
                "{path}:{}:{}: {}",
                problem.line, problem.column, problem.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One step, checked, with its variables filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The step's name, unique in the runbook.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Steps that must finish first.
    pub after: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
    /// Who must approve (approval).
    pub approvers: Vec<String>,
    /// The message (approval, notify).
    pub message: Option<String>,
    /// Where a notification goes: `stdout`, `file:PATH`, or an http(s) URL.
    pub to: Vec<String>,
    /// A shell command (check, shell).
    pub command: Option<String>,
    /// A SQL query answering one number (check), on `url`.
    pub sql: Option<String>,
    /// The database the SQL runs on (check).
    pub url: Option<String>,
    /// The number the SQL must answer (check; default 0).
    pub expect: Option<i64>,
    /// The arguments of a capability step's `cutover` subcommand.
    pub args: Vec<String>,
    /// RFC 3339 time or `+DURATION` from the step's start (wait-until).
    pub until: Option<String>,
    /// Rules that make a checkpoint green.
    pub green: Vec<String>,
    /// Rules that make it yellow when it is not green.
    pub yellow: Vec<String>,
    /// The status at which the run stops (checkpoint): red (default), yellow or never.
    pub stop_on: String,
}

impl Step {
    /// The step with what the run defines (`${run.id}`, `${run.dir}`,
    /// `${services.NAME}`) filled in.
    pub fn expanded(&self, variables: &Variables) -> Result<Step, Vec<String>> {
        let one = |text: &Option<String>| -> Result<Option<String>, Vec<String>> {
            text.as_ref().map(|text| variables.expand(text)).transpose()
        };
        let all = |texts: &[String]| -> Result<Vec<String>, Vec<String>> {
            texts.iter().map(|text| variables.expand(text)).collect()
        };
        Ok(Step {
            message: one(&self.message)?,
            to: all(&self.to)?,
            command: one(&self.command)?,
            sql: one(&self.sql)?,
            url: one(&self.url)?,
            args: all(&self.args)?,
            until: one(&self.until)?,
            ..self.clone()
        })
    }
}

/// A background process the run starts before its first step and stops
/// after its last (a receiver, a hold proxy); ready at its first line of
/// output, which the steps can use as `${services.NAME}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// The `cutover` subcommand and arguments (e.g. receive --dir … --listen 127.0.0.1:0).
    pub args: Vec<String>,
}

/// A checked runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    /// Its name (runs are grouped by it).
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// The file it was read from.
    pub path: PathBuf,
    /// Values of environment variables named as secrets: never written anywhere.
    pub secrets: Vec<String>,
    /// Background services.
    pub services: Vec<Service>,
    /// The steps in the order they run.
    pub steps: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, Spanned<RawVar>>,
    #[serde(default, rename = "service")]
    services: Vec<RawService>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawVar {
    Value(String),
    Env {
        env: String,
        #[serde(default)]
        secret: bool,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    args: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
    #[serde(default)]
    description: Option<Spanned<String>>,
    #[serde(default)]
    approvers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    message: Option<Spanned<String>>,
    #[serde(default)]
    to: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    command: Option<Spanned<String>>,
    #[serde(default)]
    sql: Option<Spanned<String>>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    expect: Option<Spanned<i64>>,
    #[serde(default)]
    args: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    until: Option<Spanned<String>>,
    #[serde(default)]
    green: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    yellow: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    stop_on: Option<Spanned<String>>,
}

impl RawStep {
    /// The kind-specific fields that are set, with their spans.
    fn set_fields(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut set = Vec::new();
        let mut note = |name: &'static str, span: Option<std::ops::Range<usize>>| {
            if let Some(span) = span {
                set.push((name, span));
            }
        };
        note("approvers", self.approvers.as_ref().map(Spanned::span));
        note("message", self.message.as_ref().map(Spanned::span));
        note("to", self.to.as_ref().map(Spanned::span));
        note("command", self.command.as_ref().map(Spanned::span));
        note("sql", self.sql.as_ref().map(Spanned::span));
        note("url", self.url.as_ref().map(Spanned::span));
        note("expect", self.expect.as_ref().map(Spanned::span));
        note("args", self.args.as_ref().map(Spanned::span));
        note("until", self.until.as_ref().map(Spanned::span));
        note("green", self.green.as_ref().map(Spanned::span));
        note("yellow", self.yellow.as_ref().map(Spanned::span));
        note("stop_on", self.stop_on.as_ref().map(Spanned::span));
        set
    }
}

/// Turns byte offsets into lines and columns.
struct Positions<'a> {
    text: &'a str,
}

impl Positions<'_> {
    fn at(&self, offset: usize, message: String) -> Problem {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map_or(0, |line| line.chars().count())
            + 1;
        Problem {
            line,
            column,
            message,
        }
    }
}

/// Values for `${name}`: the runbook's variables, and what the run adds
/// (`run.id`, `run.dir`, `services.NAME`).
#[derive(Debug, Clone, Default)]
pub struct Variables {
    values: HashMap<String, String>,
    secret: Vec<String>,
}

impl Variables {
    /// Adds or replaces a value.
    pub fn set(&mut self, name: &str, value: &str) {
        self.values.insert(name.to_owned(), value.to_owned());
    }

    /// Fills `${name}` references in `text`; the names that are undefined
    /// or secret, when any.
    pub fn expand(&self, text: &str) -> Result<String, Vec<String>> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut bad = Vec::new();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            if self.secret.iter().any(|secret| secret == name) {
                bad.push(format!("{name} is a secret: pass it to commands by environment (e.g. --token-env), never in text"));
            } else {
                match self.values.get(name) {
                    Some(value) => out.push_str(value),
                    None => bad.push(format!("${{{name}}} is not defined")),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        if bad.is_empty() { Ok(out) } else { Err(bad) }
    }
}

/// Names the run itself defines, filled in when it starts.
const RUN_NAMES: [&str; 3] = ["run.id", "run.dir", "run.link"];

/// Reads and checks a runbook; `environment` answers environment variables.
pub fn load(
    path: &Path,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<(Runbook, Variables), RunbookError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunbookError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path, environment).map_err(|problems| RunbookError::Invalid {
        path: path.display().to_string(),
        problems,
    })
}

/// Checks runbook text; every problem at once.
pub fn parse(
    text: &str,
    path: &Path,
    environment: &dyn Fn(&str) -> Option<String>,
) -> Result<(Runbook, Variables), Vec<Problem>> {
    let positions = Positions { text };
    let raw: RawRunbook = toml::from_str(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        vec![positions.at(offset, error.message().trim().to_owned())]
    })?;
    let mut problems = Vec::new();

    // Variables: values, or environment variables (secret ones only checked for presence).
    let mut variables = Variables::default();
    let mut secrets = Vec::new();
    for (name, value) in &raw.vars {
        match value.get_ref() {
            RawVar::Value(text) => variables.set(name, text),
            RawVar::Env { env, secret } => match environment(env) {
                Some(found) if *secret => {
                    variables.secret.push(name.clone());
                    secrets.push(found);
                }
                Some(found) => variables.set(name, &found),
                None => problems.push(positions.at(
                    value.span().start,
                    format!("the environment variable {env} (for {name}) is not set"),
                )),
            },
        }
    }
    // What the run defines is filled in when it runs: checked here, kept as written.
    let mut known = variables.clone();
    for name in RUN_NAMES {
        known.set(name, &format!("${{{name}}}"));
    }
    for service in &raw.services {
        let name = format!("services.{}", service.name.get_ref());
        known.set(&name, &format!("${{{name}}}"));
    }
    let mut expand = |text: &Spanned<String>, problems: &mut Vec<Problem>| -> String {
        match known.expand(text.get_ref()) {
            Ok(expanded) => expanded,
            Err(bad) => {
                for message in bad {
                    problems.push(positions.at(text.span().start, message));
                }
                text.get_ref().clone()
            }
        }
    };

    let mut services = Vec::new();
    let mut service_names = Vec::new();
    for service in &raw.services {
        if service_names.contains(service.name.get_ref()) {
            problems.push(positions.at(
                service.name.span().start,
                format!("a second service named {}", service.name.get_ref()),
            ));
        }
        service_names.push(service.name.get_ref().clone());
        let args: Vec<String> = service
            .args
            .iter()
            .map(|arg| arg.get_ref().clone())
            .collect();
        if !matches!(args.first().map(String::as_str), Some("receive" | "hold")) {
            problems.push(positions.at(
                service.name.span().start,
                "a service runs `cutover receive` or `cutover hold`: args start with receive or hold".to_owned(),
            ));
        }
        services.push(Service {
            name: service.name.get_ref().clone(),
            args,
        });
    }

    let mut steps = Vec::new();
    let mut spans: HashMap<String, usize> = HashMap::new();
    for raw_step in &raw.steps {
        let step = raw_step.get_ref();
        let name = step.name.get_ref().clone();
        if name.is_empty() || name.contains(char::is_whitespace) {
            problems.push(positions.at(
                step.name.span().start,
                "a step name is one word (letters, digits, - or _)".to_owned(),
            ));
        }
        if spans.contains_key(&name) {
            problems.push(positions.at(
                step.name.span().start,
                format!("a second step named {name}"),
            ));
        }
        spans.insert(name.clone(), step.name.span().start);
        let Some(kind) = Kind::parse(step.kind.get_ref()) else {
            let names: Vec<&str> = Kind::ALL.iter().map(|(_, name)| *name).collect();
            problems.push(positions.at(
                step.kind.span().start,
                format!(
                    "{} is not a step kind (one of {})",
                    step.kind.get_ref(),
                    names.join(", ")
                ),
            ));
            continue;
        };
        let (required, optional) = kind.fields();
        let set = step.set_fields();
        for (field, span) in &set {
            if !required.contains(field) && !optional.contains(field) {
                problems.push(
                    positions.at(span.start, format!("a {} step has no {field}", kind.name())),
                );
            }
        }
        for field in required {
            if !set.iter().any(|(name, _)| name == field) {
                problems.push(positions.at(
                    raw_step.span().start,
                    format!("step {name}: a {} step needs {field}", kind.name()),
                ));
            }
        }
        let texts = |values: &Option<Spanned<Vec<Spanned<String>>>>,
                     problems: &mut Vec<Problem>,
                     expand: &mut dyn FnMut(&Spanned<String>, &mut Vec<Problem>) -> String|
         -> Vec<String> {
            values
                .as_ref()
                .map(|values| {
                    values
                        .get_ref()
                        .iter()
                        .map(|value| expand(value, problems))
                        .collect()
                })
                .unwrap_or_default()
        };
        let one =
            |value: &Option<Spanned<String>>,
             problems: &mut Vec<Problem>,
             expand: &mut dyn FnMut(&Spanned<String>, &mut Vec<Problem>) -> String|
             -> Option<String> { value.as_ref().map(|value| expand(value, problems)) };
        let args = texts(&step.args, &mut problems, &mut expand);
        if kind == Kind::Hold
            && !matches!(args.first().map(String::as_str), Some("mode" | "replay"))
        {
            problems.push(positions.at(
                step.args.as_ref().map_or(raw_step.span().start, |args| args.span().start),
                "a hold step switches the mode or replays: args start with mode or replay (a proxy is a [[service]])".to_owned(),
            ));
        }
        if kind == Kind::Check && step.command.is_none() && step.sql.is_none() {
            problems.push(positions.at(
                raw_step.span().start,
                format!("step {name}: a check step needs a command, or sql and url"),
            ));
        }
        if kind == Kind::Check && step.sql.is_some() != step.url.is_some() {
            problems.push(positions.at(
                raw_step.span().start,
                format!("step {name}: a SQL check needs both sql and url"),
            ));
        }
        let green = texts(&step.green, &mut problems, &mut expand);
        let yellow = texts(&step.yellow, &mut problems, &mut expand);
        for rule in step
            .green
            .iter()
            .chain(step.yellow.iter())
            .flat_map(|rules| rules.get_ref().iter())
        {
            if let Err(message) = crate::rules::Rule::parse(rule.get_ref()) {
                problems.push(positions.at(rule.span().start, message));
            }
        }
        let stop_on = step
            .stop_on
            .as_ref()
            .map_or_else(|| "red".to_owned(), |stop| stop.get_ref().clone());
        if !matches!(stop_on.as_str(), "red" | "yellow" | "never") {
            let offset = step.stop_on.as_ref().map_or(0, |stop| stop.span().start);
            problems.push(positions.at(offset, "stop_on is red, yellow or never".to_owned()));
        }
        let to: Vec<String> = match &step.to {
            Some(to) => to
                .get_ref()
                .iter()
                .map(|target| match known.expand(target) {
                    Ok(expanded) => expanded,
                    Err(bad) => {
                        for message in bad {
                            problems.push(positions.at(to.span().start, message));
                        }
                        target.clone()
                    }
                })
                .collect(),
            // A notification goes to stdout unless told otherwise; an
            // approval step notifies only where it is told to.
            None if kind == Kind::Notify => vec!["stdout".to_owned()],
            None => Vec::new(),
        };
        for target in &to {
            let valid = target == "stdout"
                || target.starts_with("file:")
                || target.starts_with("http://")
                || target.starts_with("https://");
            if !valid {
                let offset = step.to.as_ref().map_or(0, |to| to.span().start);
                problems.push(positions.at(
                    offset,
                    format!("{target}: a notification goes to stdout, file:PATH or an http(s) URL"),
                ));
            }
        }
        steps.push(Step {
            name,
            kind,
            after: step
                .after
                .iter()
                .map(|after| after.get_ref().clone())
                .collect(),
            description: step.description.as_ref().map(|text| text.get_ref().clone()),
            approvers: step
                .approvers
                .as_ref()
                .map(|approvers| approvers.get_ref().clone())
                .unwrap_or_default(),
            message: one(&step.message, &mut problems, &mut expand),
            to,
            command: one(&step.command, &mut problems, &mut expand),
            sql: one(&step.sql, &mut problems, &mut expand),
            url: one(&step.url, &mut problems, &mut expand),
            expect: step.expect.as_ref().map(|expect| *expect.get_ref()),
            args,
            until: one(&step.until, &mut problems, &mut expand),
            green,
            yellow,
            stop_on,
        });
        if kind == Kind::Approval
            && step
                .approvers
                .as_ref()
                .is_some_and(|approvers| approvers.get_ref().is_empty())
        {
            let offset = step
                .approvers
                .as_ref()
                .map_or(0, |approvers| approvers.span().start);
            problems.push(positions.at(offset, "name at least one approver".to_owned()));
        }
    }
    // `after` names known steps.
    for raw_step in &raw.steps {
        for after in &raw_step.get_ref().after {
            if !spans.contains_key(after.get_ref()) {
                problems.push(positions.at(
                    after.span().start,
                    format!("after names {}, which is not a step here", after.get_ref()),
                ));
            }
        }
    }
    if raw.steps.is_empty() {
        problems.push(positions.at(0, "the runbook has no [[step]]".to_owned()));
    }
    let ordered = match order(&steps) {
        Ok(ordered) => ordered,
        Err(cycle) => {
            let offset = spans.get(&cycle[0]).copied().unwrap_or(0);
            problems.push(positions.at(
                offset,
                format!("the steps' after form a cycle: {}", cycle.join(" → ")),
            ));
            steps.clone()
        }
    };
    problems.sort_by_key(|problem| (problem.line, problem.column));
    problems.dedup();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok((
        Runbook {
            name: raw.name.get_ref().clone(),
            description: raw.description,
            path: path.to_owned(),
            secrets,
            services,
            steps: ordered,
        },
        variables,
    ))
}

/// The steps in running order: file order, except that a step waits for
/// the steps it names in `after`. A cycle is returned as its names.
fn order(steps: &[Step]) -> Result<Vec<Step>, Vec<String>> {
    let mut done: Vec<String> = Vec::new();
    let mut ordered = Vec::new();
    let mut waiting: Vec<&Step> = steps.iter().collect();
    while !waiting.is_empty() {
        let ready = waiting.iter().position(|step| {
            step.after.iter().all(|after| {
                done.contains(after) || !steps.iter().any(|known| &known.name == after)
            })
        });
        match ready {
            Some(index) => {
                let step = waiting.remove(index);
                done.push(step.name.clone());
                ordered.push(step.clone());
            }
            None => {
                // Follow `after` from the first waiting step until a name repeats.
                let mut path = vec![waiting[0].name.clone()];
                loop {
                    let current = path.last().cloned().unwrap_or_default();
                    let next = waiting
                        .iter()
                        .find(|step| step.name == current)
                        .and_then(|step| step.after.iter().find(|after| !done.contains(after)))
                        .cloned();
                    match next {
                        Some(next) if path.contains(&next) => {
                            let start = path.iter().position(|name| *name == next).unwrap_or(0);
                            let mut cycle = path[start..].to_vec();
                            cycle.push(next);
                            return Err(cycle);
                        }
                        Some(next) => path.push(next),
                        None => return Err(path),
                    }
                }
            }
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<(Runbook, Variables), Vec<Problem>> {
        let environment = |name: &str| (name == "CUTOVER_TEST_SET").then(|| "value".to_owned());
        parse(text, Path::new("book.toml"), &environment)
    }

    #[test]
    fn steps_run_in_file_order_unless_after_says_otherwise() {
        let text = r#"
name = "book"
[vars]
db = "sqlite:a.db"
[[step]]
name = "b"
kind = "shell"
command = "echo ${db}"
after = ["a"]
[[step]]
name = "a"
kind = "notify"
message = "starting ${run.id}"
"#;
        let (runbook, _) = check(text).expect("valid");
        let names: Vec<&str> = runbook
            .steps
            .iter()
            .map(|step| step.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            runbook.steps[1].command.as_deref(),
            Some("echo sqlite:a.db")
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_column() {
        let text = r#"name = "book"
[vars]
token = { env = "CUTOVER_TEST_UNSET" }
[[step]]
name = "a"
kind = "teleport"
[[step]]
name = "a"
kind = "shell"
command = "echo ${nothing}"
after = ["c"]
[[step]]
name = "c"
kind = "shell"
command = "true"
after = ["d"]
[[step]]
name = "d"
kind = "shell"
command = "true"
after = ["c"]
"#;
        let problems = check(text).expect_err("invalid");
        let lines: Vec<(usize, &str)> = problems
            .iter()
            .map(|problem| (problem.line, problem.message.as_str()))
            .collect();
        assert!(
            lines
                .iter()
                .any(|(line, message)| *line == 3 && message.contains("CUTOVER_TEST_UNSET")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(
                |(line, message)| *line == 6 && message.contains("teleport is not a step kind")
            ),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(line, message)| *line == 8 && message.contains("a second step named a")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|(line, message)| *line == 10 && message.contains("${nothing} is not defined")), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|(_, message)| message.contains("cycle: c → d → c")),
            "{lines:?}"
        );
        assert_eq!(problems[0].column, 9, "{problems:?}");
    }

    #[test]
    fn fields_must_fit_the_kind_and_secrets_stay_out_of_text() {
        let text = r#"name = "book"
[vars]
token = { env = "CUTOVER_TEST_SET", secret = true }
[[step]]
name = "a"
kind = "shell"
command = "curl -H 'Authorization: ${token}'"
approvers = ["x"]
[[step]]
name = "b"
kind = "hold"
args = ["--listen", "127.0.0.1:0"]
"#;
        let problems = check(text).expect_err("invalid");
        let messages: Vec<&str> = problems
            .iter()
            .map(|problem| problem.message.as_str())
            .collect();
        assert!(
            messages
                .iter()
                .any(|message| message.contains("token is a secret")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|message| message.contains("a shell step has no approvers")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|message| message.contains("args start with mode or replay")),
            "{messages:?}"
        );
    }

    #[test]
    fn a_malformed_file_names_the_place() {
        let problems = check("name = \"book\"\n[[step]\n").expect_err("invalid");
        assert_eq!(problems[0].line, 2);
    }
}
