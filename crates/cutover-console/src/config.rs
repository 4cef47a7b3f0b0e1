//! The console's configuration file (TOML): who may read, how people sign
//! in (an OpenID Connect issuer and client), and which identities hold each
//! approver role of the runbooks (e-mail addresses or ID-token groups).
//! Everything is checked at start; a role that a runbook names and the file
//! does not map is refused then, not found out when someone tries to approve.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::ConsoleError;

/// Who may read the console's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Read {
    /// Anyone who reaches the address (a read-only console on a closed network).
    Anyone,
    /// Only people who signed in.
    SignedIn,
}

/// The OpenID Connect client the console signs people in with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The issuer (its discovery document is read at start).
    pub issuer: String,
    /// The console's client id at the issuer.
    pub client_id: String,
    /// The environment variable holding the client secret; none for a
    /// public client, which PKCE alone protects.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes besides `openid` (default: email and profile).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The ID-token (or user-info) claim listing the person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_scopes() -> Vec<String> {
    vec!["email".to_owned(), "profile".to_owned()]
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

/// Who holds an approver role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// E-mail addresses (compared without case; only verified addresses
    /// count when the issuer says whether they are).
    #[serde(default)]
    pub emails: Vec<String>,
    /// Groups, as the groups claim names them.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    read: Option<Read>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    sign_in: Option<SignIn>,
    #[serde(default)]
    roles: BTreeMap<String, Role>,
    #[serde(default)]
    ledgers: Vec<std::path::PathBuf>,
    #[serde(default)]
    drain: Vec<DrainSource>,
}

/// A db-scheduler table whose drain forecast the console shows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainSource {
    /// The database and table (`URL#table`; default table `scheduled_tasks`),
    /// as `cutover drain` takes it; read-only.
    pub url: String,
    /// Version and site rules (`cutover drain --rules`); default: versions
    /// from the task names.
    #[serde(default)]
    pub rules: Option<std::path::PathBuf>,
}

/// The console's configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address people reach the console at (links, the sign-in
    /// redirect, the origin forms must come from); by default the listen
    /// address.
    pub public_url: Option<url::Url>,
    /// Who may read.
    pub read: Read,
    /// How long a sign-in lasts.
    pub session: Duration,
    /// Sign-in, if configured (without it nothing can be approved).
    pub sign_in: Option<SignIn>,
    /// Approver roles.
    pub roles: BTreeMap<String, Role>,
    /// Delivery ledgers (`cutover send --ledger`) shown per day and stream.
    pub ledgers: Vec<std::path::PathBuf>,
    /// Drain sources.
    pub drain: Vec<DrainSource>,
}

impl Default for Config {
    /// No sign-in: a read-only console anyone on the address can read.
    fn default() -> Config {
        Config {
            public_url: None,
            read: Read::Anyone,
            session: Duration::from_secs(8 * 3600),
            sign_in: None,
            roles: BTreeMap::new(),
            ledgers: Vec::new(),
            drain: Vec::new(),
        }
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConsoleError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConsoleError::Config(format!("{shown}: {error}")))?;
        Config::parse(&text).map_err(|message| ConsoleError::Config(format!("{shown}: {message}")))
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let file: File = toml::from_str(text).map_err(|error| error.to_string())?;
        let public_url = file
            .public_url
            .map(|text| {
                url::Url::parse(&text)
                    .ok()
                    .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
                    .ok_or_else(|| format!("public_url {text}: not an http(s) URL"))
            })
            .transpose()?;
        let session = match file.session {
            Some(text) => match cutover_drain::parse_duration(&text) {
                Some(micros) if micros > 0 => Duration::from_micros(micros as u64),
                _ => return Err(format!("session {text}: not a duration (write e.g. 8h)")),
            },
            None => Duration::from_secs(8 * 3600),
        };
        if let Some(sign_in) = &file.sign_in {
            if url::Url::parse(&sign_in.issuer).is_err() {
                return Err(format!("sign_in.issuer {}: not a URL", sign_in.issuer));
            }
            if sign_in.client_id.is_empty() {
                return Err("sign_in.client_id is empty".to_owned());
            }
        }
        for (name, role) in &file.roles {
            if role.emails.is_empty() && role.groups.is_empty() {
                return Err(format!(
                    "roles.{name} maps nobody: give it emails or groups"
                ));
            }
        }
        if !file.roles.is_empty() && file.sign_in.is_none() {
            return Err(
                "roles are mapped but there is no [sign_in]: nobody could hold them".to_owned(),
            );
        }
        let read = file.read.unwrap_or(if file.sign_in.is_some() {
            Read::SignedIn
        } else {
            Read::Anyone
        });
        if read == Read::SignedIn && file.sign_in.is_none() {
            return Err("read = \"signed-in\" needs a [sign_in] section".to_owned());
        }
        Ok(Config {
            public_url,
            read,
            session,
            sign_in: file.sign_in,
            roles: file.roles,
            ledgers: file.ledgers,
            drain: file.drain,
        })
    }

    /// The approver roles a set of runbooks names that this configuration
    /// does not map: (role, runbook, step).
    pub fn unmapped<'a>(
        &self,
        runbooks: impl IntoIterator<Item = &'a cutover_run::Runbook>,
    ) -> Vec<(String, String, String)> {
        let mut missing = Vec::new();
        for runbook in runbooks {
            for step in runbook
                .steps
                .iter()
                .filter(|step| step.kind == cutover_run::Kind::Approval)
            {
                for role in &step.approvers {
                    if !self.roles.contains_key(role) {
                        missing.push((role.clone(), runbook.name.clone(), step.name.clone()));
                    }
                }
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_mapping_nobody_an_unknown_key_and_roles_without_sign_in_are_refused() {
        assert!(
            Config::parse("[roles.data-owner]\n")
                .expect_err("refused")
                .contains("maps nobody")
        );
        assert!(
            Config::parse("listen = 1\n")
                .expect_err("refused")
                .contains("listen")
        );
        assert!(
            Config::parse("[roles.x]\nemails = [\"a@b\"]\n")
                .expect_err("refused")
                .contains("no [sign_in]")
        );
        let config = Config::parse(
            "session = \"15m\"\n[sign_in]\nissuer = \"https://id.example.org\"\nclient_id = \"c\"\n[roles.x]\ngroups = [\"g\"]\n",
        )
        .expect("valid");
        assert_eq!(config.read, Read::SignedIn);
        assert_eq!(config.session, Duration::from_secs(900));
    }
}
