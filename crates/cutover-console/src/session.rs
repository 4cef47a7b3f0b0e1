//! Sessions: kept in the console's memory, named by a random id that the
//! browser holds in a signed, `HttpOnly`, `Secure`, `SameSite=Lax` cookie
//! (the `cookie` crate's signed jar, with a key made at start). Each
//! session has its CSRF token, which every form carries; signing out, or
//! the session's age passing the configured length, ends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cookie::{Cookie, CookieJar, Key, SameSite};
use sha2::Digest as _;

use crate::signin::Identity;

/// The session cookie's name.
pub const SESSION: &str = "cutover_session";
/// The cookie that ties a sign-in under way to the browser that began it.
pub const SIGN_IN: &str = "cutover_sign_in";

/// A signed-in person's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who.
    pub identity: Identity,
    /// The token every form of this session carries.
    pub csrf: String,
    started: Instant,
}

/// The sessions and the key that signs their cookies.
pub struct Sessions {
    key: Key,
    length: Duration,
    sessions: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // getrandom fails only where the OS has no randomness, where nothing here could be safe.
    getrandom::fill(&mut bytes).expect("the operating system's random numbers");
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether two secrets are equal, in time that does not depend on where
/// they differ (their SHA-256 digests are compared).
pub fn same_secret(a: &str, b: &str) -> bool {
    sha2::Sha256::digest(a.as_bytes()) == sha2::Sha256::digest(b.as_bytes())
}

/// The jar of a request's `Cookie` header.
pub fn jar(header: Option<&str>) -> CookieJar {
    let mut jar = CookieJar::new();
    for part in header.unwrap_or_default().split(';') {
        if let Ok(cookie) = Cookie::parse(part.trim().to_owned()) {
            jar.add_original(cookie);
        }
    }
    jar
}

impl Sessions {
    /// Sessions lasting `length`, signed with a key new at every start (so
    /// a restart signs everyone out).
    pub fn new(length: Duration) -> Sessions {
        Sessions {
            key: Key::generate(),
            length,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A signed cookie's value, if its signature holds.
    pub fn verified(&self, jar: &CookieJar, name: &str) -> Option<String> {
        jar.signed(&self.key)
            .get(name)
            .map(|cookie| cookie.value().to_owned())
    }

    /// The `Set-Cookie` value of a signed cookie (`value` None removes it).
    pub fn set_cookie(&self, name: &str, value: Option<&str>, max_age: Option<Duration>) -> String {
        let mut jar = CookieJar::new();
        let mut cookie = Cookie::build((name.to_owned(), value.unwrap_or_default().to_owned()))
            .path("/")
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Lax)
            .build();
        match value {
            Some(_) => {
                if let Some(age) = max_age {
                    cookie.set_max_age(cookie::time::Duration::seconds(age.as_secs() as i64));
                }
                jar.signed_mut(&self.key).add(cookie);
            }
            None => {
                cookie.set_max_age(cookie::time::Duration::ZERO);
                jar.add(cookie);
            }
        }
        jar.delta()
            .next()
            .map(|cookie| cookie.to_string())
            .unwrap_or_default()
    }

    /// Starts a session; its id (for the cookie) and the session.
    pub fn start(&self, identity: Identity) -> (String, Session) {
        let id = random_token();
        let session = Session {
            identity,
            csrf: random_token(),
            started: Instant::now(),
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, session| session.started.elapsed() < self.length);
        sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session a request's cookies name, while it lasts.
    pub fn current(&self, jar: &CookieJar) -> Lookup {
        if jar.get(SESSION).is_none() {
            return Lookup::None;
        }
        let Some(id) = self.verified(jar, SESSION) else {
            return Lookup::Tampered;
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(&id) {
            Some(session) if session.started.elapsed() < self.length => {
                Lookup::Valid(id, session.clone())
            }
            Some(_) => {
                sessions.remove(&id);
                Lookup::Expired
            }
            None => Lookup::Expired,
        }
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// What a request's session cookie comes to.
pub enum Lookup {
    /// No session cookie.
    None,
    /// A cookie whose signature does not hold.
    Tampered,
    /// A session that ended (expired, signed out, or from before a restart).
    Expired,
    /// A live session, with its id.
    Valid(String, Session),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            issuer: "https://id.example.org".to_owned(),
            subject: "s".to_owned(),
            name: "n".to_owned(),
            email: None,
            groups: Vec::new(),
        }
    }

    #[test]
    fn a_signed_session_cookie_is_found_and_a_changed_one_is_refused() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (id, _) = sessions.start(identity());
        let header = sessions.set_cookie(SESSION, Some(&id), None);
        assert!(
            header.contains("HttpOnly")
                && header.contains("Secure")
                && header.contains("SameSite=Lax")
        );
        let pair = header.split(';').next().expect("pair");
        assert!(
            matches!(sessions.current(&jar(Some(pair))), Lookup::Valid(found, _) if found == id)
        );
        let (name, value) = pair.split_once('=').expect("name=value");
        let mut forged: Vec<char> = value.chars().collect();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == 'a' { 'b' } else { 'a' };
        let forged = format!("{name}={}", forged.into_iter().collect::<String>());
        assert!(matches!(
            sessions.current(&jar(Some(&forged))),
            Lookup::Tampered
        ));
        sessions.end(&id);
        assert!(matches!(
            sessions.current(&jar(Some(pair))),
            Lookup::Expired
        ));
    }
}
