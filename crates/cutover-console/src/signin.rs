//! Sign-in by OpenID Connect: the authorization code flow with PKCE, by
//! the `openidconnect` crate. Discovery and the issuer's keys are read at
//! start (an unreachable issuer stops the console from starting); the ID
//! token's signature, issuer, audience, expiry and nonce are checked by the
//! crate; the person's groups come from the verified ID token or, failing
//! that, from the user-info answer, whose subject must be the token's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};

use crate::ConsoleError;
use crate::config::SignIn;

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Every claim besides the standard ones, so that the configured groups
/// claim can be read from a verified token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct Extra {
    #[serde(flatten)]
    claims: HashMap<String, serde_json::Value>,
}

impl AdditionalClaims for Extra {}

type Token =
    IdToken<Extra, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// A signed-in person, as the issuer vouched for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The issuer.
    pub issuer: String,
    /// The subject (stable per issuer).
    pub subject: String,
    /// A display name (name, else preferred username, else e-mail, else subject).
    pub name: String,
    /// The e-mail address, when given and not marked unverified.
    pub email: Option<String>,
    /// The groups claim.
    pub groups: Vec<String>,
}

/// A sign-in under way: what the callback must match.
struct Pending {
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    return_to: String,
    started: Instant,
}

/// How long a sign-in may take at the issuer.
const PENDING_FOR: Duration = Duration::from_secs(600);
/// At most this many sign-ins under way (the oldest are dropped).
const PENDING_MAX: usize = 10_000;

/// The console's OpenID Connect client.
pub struct Provider {
    settings: SignIn,
    secret: Option<String>,
    redirect: RedirectUrl,
    http: reqwest::Client,
    client: Mutex<(Client, Instant)>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Provider")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

/// Reads the issuer's discovery document and keys.
async fn discover(
    settings: &SignIn,
    secret: &Option<String>,
    redirect: &RedirectUrl,
    http: &reqwest::Client,
) -> Result<Client, String> {
    let issuer = IssuerUrl::new(settings.issuer.clone()).map_err(|error| error.to_string())?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|error| describe(&error))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(settings.client_id.clone()),
        secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(redirect.clone()))
}

impl Provider {
    /// Discovers the issuer; an issuer that cannot be reached or does not
    /// answer as one is an error, so the console does not start.
    pub async fn start(settings: SignIn, redirect: &str) -> Result<Provider, ConsoleError> {
        let secret = match &settings.client_secret_env {
            Some(variable) => Some(std::env::var(variable).map_err(|_| {
                ConsoleError::Config(format!(
                    "sign_in.client_secret_env names {variable}, which is not set"
                ))
            })?),
            None => None,
        };
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|error| ConsoleError::Config(format!("redirect URL {redirect}: {error}")))?;
        let http = reqwest::Client::builder()
            // Following redirects would open the console to request forgery.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|error| ConsoleError::Config(error.to_string()))?;
        let client = discover(&settings, &secret, &redirect, &http)
            .await
            .map_err(|message| {
                ConsoleError::Issuer(format!(
                    "the issuer {} could not be used: {message}",
                    settings.issuer
                ))
            })?;
        Ok(Provider {
            settings,
            secret,
            redirect,
            http,
            client: Mutex::new((client, Instant::now())),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn client(&self) -> Client {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Starts a sign-in: the issuer's authorization URL, and the state that
    /// the browser's sign-in cookie carries to the callback.
    pub fn begin(&self, return_to: &str) -> (String, String) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, sign_in| sign_in.started.elapsed() < PENDING_FOR);
        if pending.len() >= PENDING_MAX {
            let oldest = pending
                .iter()
                .min_by_key(|(_, sign_in)| sign_in.started)
                .map(|(state, _)| state.clone());
            if let Some(oldest) = oldest {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                nonce,
                verifier,
                return_to: return_to.to_owned(),
                started: Instant::now(),
            },
        );
        (url.to_string(), state.secret().clone())
    }

    /// Finishes a sign-in: `state` must be the one this browser started
    /// (its cookie) and the one the issuer sent back; the code is exchanged
    /// once (a second use finds no sign-in under way). The identity and
    /// where to go next.
    pub async fn finish(
        &self,
        cookie_state: Option<&str>,
        state: &str,
        code: &str,
    ) -> Result<(Identity, String), String> {
        if cookie_state != Some(state) {
            return Err("this sign-in was not started by this browser (or its cookie expired): sign in again".to_owned());
        }
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(state)
            .filter(|pending| pending.started.elapsed() < PENDING_FOR)
            .ok_or("no sign-in is under way for this answer (it was used already, or took too long): sign in again")?;
        let client = self.client();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|error| error.to_string())?
            .set_pkce_verifier(pending.verifier)
            .request_async(&self.http)
            .await
            .map_err(|error| format!("the issuer refused the sign-in: {}", describe(&error)))?;
        let id_token = tokens
            .id_token()
            .ok_or("the issuer answered without an ID token")?;
        let token: Token = id_token
            .to_string()
            .parse()
            .map_err(|_| "the ID token could not be read".to_owned())?;
        let claims = match token.claims(&client.id_token_verifier(), &pending.nonce) {
            Ok(claims) => claims.clone(),
            Err(first) => {
                // The issuer may have rotated its keys since start: read them again, once.
                let fresh = discover(&self.settings, &self.secret, &self.redirect, &self.http)
                    .await
                    .map_err(|_| format!("the ID token was refused: {first}"))?;
                let claims = token
                    .claims(&fresh.id_token_verifier(), &pending.nonce)
                    .map_err(|error| format!("the ID token was refused: {error}"))?
                    .clone();
                *self.client.lock().unwrap_or_else(|e| e.into_inner()) = (fresh, Instant::now());
                claims
            }
        };
        if let Some(expected) = claims.access_token_hash() {
            let verifier = client.id_token_verifier();
            let actual = token
                .signing_alg()
                .ok()
                .zip(token.signing_key(&verifier).ok())
                .and_then(|(algorithm, key)| {
                    AccessTokenHash::from_token(tokens.access_token(), algorithm, key).ok()
                });
            if actual.as_ref() != Some(expected) {
                return Err("the access token does not belong to the ID token".to_owned());
            }
        }
        let mut name = claims
            .name()
            .and_then(|name| name.get(None))
            .map(|name| name.as_str().to_owned())
            .or_else(|| {
                claims
                    .preferred_username()
                    .map(|name| name.as_str().to_owned())
            });
        let mut email = claims
            .email()
            .filter(|_| claims.email_verified() != Some(false))
            .map(|email| email.as_str().to_owned());
        let mut groups = strings(
            claims
                .additional_claims()
                .claims
                .get(&self.settings.groups_claim),
        );
        if email.is_none() || name.is_none() || groups.is_none() {
            if let Ok(request) = client.user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            ) {
                let info: UserInfoClaims<Extra, CoreGenderClaim> =
                    request.request_async(&self.http).await.map_err(|error| {
                        format!("the user-info answer was refused: {}", describe(&error))
                    })?;
                if email.is_none() {
                    email = info
                        .email()
                        .filter(|_| info.email_verified() != Some(false))
                        .map(|email| email.as_str().to_owned());
                }
                if name.is_none() {
                    name = info
                        .name()
                        .and_then(|name| name.get(None))
                        .map(|name| name.as_str().to_owned());
                }
                if groups.is_none() {
                    groups = strings(
                        info.additional_claims()
                            .claims
                            .get(&self.settings.groups_claim),
                    );
                }
            }
        }
        let subject = claims.subject().as_str().to_owned();
        Ok((
            Identity {
                issuer: claims.issuer().as_str().to_owned(),
                name: name
                    .or_else(|| email.clone())
                    .unwrap_or_else(|| subject.clone()),
                subject,
                email,
                groups: groups.unwrap_or_default(),
            },
            pending.return_to,
        ))
    }
}

/// A claim holding a string or a list of strings.
fn strings(value: Option<&serde_json::Value>) -> Option<Vec<String>> {
    match value? {
        serde_json::Value::String(one) => Some(vec![one.clone()]),
        serde_json::Value::Array(many) => Some(
            many.iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

/// An error with its causes, never with a token in it (the crate's errors
/// name the issuer's answer, not the request).
fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
