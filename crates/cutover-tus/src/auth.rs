//! Sign-in that outlives a token. A sender either has a fixed bearer token
//! or signs in: an OAuth 2.0 password grant (a form POST of `username` and
//! `password` to the login URL, as the data-exchange service's system
//! accounts do) or a client-credentials grant. The access token is sent as
//! `Authorization: Bearer`, refreshed (a POST of the refresh token to
//! `LOGIN/refresh`) before `expires_in` runs out, replaced by a new sign-in
//! when the refresh is refused, and renewed once more after any 401 before
//! a call counts as failed.
//!
//! Secrets never leave this module in text: `Debug` hides them, and errors
//! name the login URL (redacted by the caller) and the server's error code,
//! never a password, secret or token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{clip, connection_failure};

/// How to obtain a token from the login URL.
#[derive(Clone)]
pub enum Grant {
    /// A system account: `username` and `password` (the password grant).
    Password {
        /// The account.
        username: String,
        /// Its password (never printed).
        password: String,
    },
    /// OAuth 2.0 client credentials.
    ClientCredentials {
        /// The client's id.
        client_id: String,
        /// Its secret (never printed).
        client_secret: String,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Password { username, .. } => formatter
                .debug_struct("Password")
                .field("username", username)
                .field("password", &"***")
                .finish(),
            Grant::ClientCredentials { client_id, .. } => formatter
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &"***")
                .finish(),
        }
    }
}

/// Where and how to sign in.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The token endpoint (e.g. `https://host/oauth`); `URL/refresh` refreshes.
    pub url: String,
    /// The grant.
    pub grant: Grant,
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The login URL refused the credentials (the server's error code and description).
    #[error("sign-in refused: {0}")]
    Refused(String),
    /// The login URL answered, but not as a token endpoint.
    #[error("the login URL is not a token endpoint: {0}")]
    NotTokenEndpoint(String),
    /// The login URL could not be reached.
    #[error("signing in: {0}")]
    Unreachable(String),
    /// A call was refused with 401 even with a renewed token.
    #[error("the receiver refused the renewed token (status 401)")]
    Unauthorized,
}

/// A bearer token source: none, a fixed token, or a signed-in session.
/// Cheap to clone; clones share the session.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    kind: Kind,
}

#[derive(Debug, Clone, Default)]
enum Kind {
    #[default]
    None,
    Fixed(Arc<Secret>),
    Session(Arc<Session>),
}

/// A token that does not print.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("***")
    }
}

#[derive(Debug)]
struct Session {
    http: reqwest::Client,
    sign_in: SignIn,
    current: tokio::sync::Mutex<Token>,
}

#[derive(Debug)]
struct Token {
    access: Secret,
    refresh: Option<Secret>,
    /// When to renew: before the token's expiry, with a margin.
    renew_at: Instant,
    /// Counts renewals, so that concurrent 401s renew once.
    generation: u64,
    /// Sign-ins and refreshes so far.
    renewals: u64,
}

/// A call that could not be made.
#[derive(Debug)]
pub enum SendError {
    /// No connection or no answer.
    Http(reqwest::Error),
    /// No token could be had.
    Auth(AuthError),
}

impl From<Option<String>> for Auth {
    fn from(token: Option<String>) -> Auth {
        match token {
            Some(token) => Auth::fixed(token),
            None => Auth::none(),
        }
    }
}

impl Auth {
    /// No authorization header.
    pub fn none() -> Auth {
        Auth::default()
    }

    /// A fixed bearer token.
    pub fn fixed(token: String) -> Auth {
        Auth {
            kind: Kind::Fixed(Arc::new(Secret(token))),
        }
    }

    /// Signs in now (so that wrong credentials fail before anything is
    /// sent) and keeps the session fresh from then on.
    pub async fn sign_in(sign_in: SignIn) -> Result<Auth, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| AuthError::Unreachable(format!("the HTTP client: {error}")))?;
        let token = obtain(&http, &sign_in, None, 0).await?;
        Ok(Auth {
            kind: Kind::Session(Arc::new(Session {
                http,
                sign_in,
                current: tokio::sync::Mutex::new(token),
            })),
        })
    }

    /// Whether calls carry a token at all.
    pub fn is_some(&self) -> bool {
        !matches!(self.kind, Kind::None)
    }

    /// Whether `answer` (to [`Auth::send`]) refuses the account itself: a
    /// 401 to the call made again with a renewed token, which every other
    /// call would get too. A fixed token is never renewed, so its 401 is the
    /// caller's to judge.
    pub fn refused(&self, answer: &reqwest::Response) -> bool {
        answer.status() == reqwest::StatusCode::UNAUTHORIZED
            && matches!(self.kind, Kind::Session(_))
    }

    /// How many times the session signed in or refreshed (1 after the
    /// first sign-in; 0 without a session).
    pub async fn renewals(&self) -> u64 {
        match &self.kind {
            Kind::Session(session) => session.current.lock().await.renewals,
            _ => 0,
        }
    }

    /// The current bearer token and its generation, renewed first when it
    /// is about to expire.
    async fn bearer(&self) -> Result<Option<(String, u64)>, AuthError> {
        match &self.kind {
            Kind::None => Ok(None),
            Kind::Fixed(token) => Ok(Some((token.0.clone(), 0))),
            Kind::Session(session) => {
                let mut current = session.current.lock().await;
                if Instant::now() >= current.renew_at {
                    let generation = current.generation;
                    *current = session.renew(&current, generation).await?;
                }
                Ok(Some((current.access.0.clone(), current.generation)))
            }
        }
    }

    /// After a 401 with the token of `generation`: renew it, unless another
    /// call already did. Whether a renewed token is worth a retry.
    async fn renew_after_refusal(&self, generation: u64) -> Result<bool, AuthError> {
        let Kind::Session(session) = &self.kind else {
            return Ok(false);
        };
        let mut current = session.current.lock().await;
        if current.generation == generation {
            *current = session.renew(&current, generation).await?;
        }
        Ok(true)
    }

    /// Sends `request` with the bearer token. On a 401, the token is
    /// renewed and the call made once more; a second 401 is returned as it
    /// is, for the caller to judge.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SendError> {
        let request = request.build().map_err(SendError::Http)?;
        let retry = request.try_clone();
        let bearer = self.bearer().await.map_err(SendError::Auth)?;
        let answer = http
            .execute(authorized(request, bearer.as_ref()))
            .await
            .map_err(SendError::Http)?;
        let (Some(retry), Some((_, generation))) = (retry, bearer) else {
            return Ok(answer);
        };
        if answer.status() != reqwest::StatusCode::UNAUTHORIZED
            || !self
                .renew_after_refusal(generation)
                .await
                .map_err(SendError::Auth)?
        {
            return Ok(answer);
        }
        let bearer = self.bearer().await.map_err(SendError::Auth)?;
        http.execute(authorized(retry, bearer.as_ref()))
            .await
            .map_err(SendError::Http)
    }
}

fn authorized(mut request: reqwest::Request, bearer: Option<&(String, u64)>) -> reqwest::Request {
    if let Some((token, _)) = bearer {
        if let Ok(mut value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")) {
            value.set_sensitive(true);
            request
                .headers_mut()
                .insert(reqwest::header::AUTHORIZATION, value);
        }
    }
    request
}

impl SendError {
    /// The failure in words, without URLs or secrets.
    pub fn describe(&self) -> String {
        match self {
            SendError::Http(error) => connection_failure(error),
            SendError::Auth(error) => error.to_string(),
        }
    }
}

impl Session {
    /// A new token: by refresh where there is a refresh token, and by a
    /// new sign-in when there is none or the refresh is refused.
    async fn renew(&self, current: &Token, generation: u64) -> Result<Token, AuthError> {
        let next = generation + 1;
        if let Some(refresh) = &current.refresh {
            match obtain(&self.http, &self.sign_in, Some(&refresh.0), next).await {
                Ok(mut token) => {
                    token.renewals = current.renewals + 1;
                    return Ok(token);
                }
                // Unreachable: signing in again would fail the same way.
                Err(AuthError::Unreachable(reason)) => return Err(AuthError::Unreachable(reason)),
                Err(_) => {}
            }
        }
        let mut token = obtain(&self.http, &self.sign_in, None, next).await?;
        token.renewals = current.renewals + 1;
        Ok(token)
    }
}

/// Asks the token endpoint for a token: by `refresh` when given, else by
/// the grant.
async fn obtain(
    http: &reqwest::Client,
    sign_in: &SignIn,
    refresh: Option<&str>,
    generation: u64,
) -> Result<Token, AuthError> {
    let (url, form): (String, Vec<(&str, &str)>) = match (refresh, &sign_in.grant) {
        (Some(refresh), _) => (
            format!("{}/refresh", sign_in.url.trim_end_matches('/')),
            vec![("refresh_token", refresh)],
        ),
        (None, Grant::Password { username, password }) => (
            sign_in.url.clone(),
            vec![
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
        ),
        (
            None,
            Grant::ClientCredentials {
                client_id,
                client_secret,
            },
        ) => (
            sign_in.url.clone(),
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ],
        ),
    };
    let started = Instant::now();
    let answer = http
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|error| AuthError::Unreachable(connection_failure(&error)))?;
    let status = answer.status().as_u16();
    let body: Option<serde_json::Value> = answer.json().await.ok();
    let text = |name: &str| {
        body.as_ref()
            .and_then(|body| body.get(name))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if !(200..300).contains(&status) {
        return Err(match (status, text("error")) {
            (400 | 401 | 403, Some(error)) => {
                let description = text("error_description")
                    .map(|description| format!(" ({})", clip(&description, 200)))
                    .unwrap_or_default();
                AuthError::Refused(format!("{}{description}", clip(&error, 200)))
            }
            (401 | 403, None) => AuthError::Refused(format!("status {status}")),
            _ => AuthError::NotTokenEndpoint(format!("status {status}")),
        });
    }
    let Some(access) = text("access_token").filter(|token| !token.is_empty()) else {
        return Err(AuthError::NotTokenEndpoint(
            "the answer has no access_token".to_owned(),
        ));
    };
    let lifetime = body
        .as_ref()
        .and_then(|body| body.get("expires_in"))
        .and_then(|value| {
            value
                .as_f64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
        })
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(Duration::from_secs(3600), Duration::from_secs_f64);
    Ok(Token {
        access: Secret(access),
        refresh: text("refresh_token")
            .filter(|token| !token.is_empty())
            .map(Secret),
        renew_at: started + lifetime - renewal_margin(lifetime),
        generation,
        renewals: 1,
    })
}

/// How long before expiry a token is renewed: a quarter of its life, at
/// most a minute.
fn renewal_margin(lifetime: Duration) -> Duration {
    (lifetime / 4).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let grant = Grant::Password {
            username: "sender".into(),
            password: "hunter2".into(),
        };
        let text = format!("{grant:?}");
        assert!(
            text.contains("sender") && !text.contains("hunter2"),
            "{text}"
        );
        let auth = Auth::fixed("tok-123".into());
        assert!(!format!("{auth:?}").contains("tok-123"));
    }

    #[test]
    fn tokens_are_renewed_a_quarter_before_expiry_at_most_a_minute() {
        assert_eq!(
            renewal_margin(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            renewal_margin(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
    }
}
