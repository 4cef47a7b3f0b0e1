//! Sign-in refuses bad ID tokens. No real provider issues a token for the
//! wrong audience, with a bad signature or already expired, so an issuer
//! written from OpenID Connect Core and Discovery serves them here on
//! loopback (discovery, keys, a token endpoint), signing with RSA keys that
//! openssl makes for the test; the first case is a good token, so that the
//! test can tell refusing from failing.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Value, json};

use cutover_console::config::SignIn;
use cutover_console::signin::Provider;

/// What the next token says and how it is signed.
#[derive(Clone)]
struct Knobs {
    issuer: String,
    audience: String,
    expires_in: i64,
    nonce: String,
    signed_by_other_key: bool,
}

struct Issuer {
    knobs: Mutex<Knobs>,
    key: RsaKeyPair,
    other: RsaKeyPair,
}

fn rsa_key(directory: &std::path::Path, name: &str) -> RsaKeyPair {
    let path = directory.join(name);
    cutover_testing::openssl(&[
        std::ffi::OsStr::new("genpkey"),
        "-algorithm".as_ref(),
        "RSA".as_ref(),
        "-pkeyopt".as_ref(),
        "rsa_keygen_bits:2048".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        path.as_os_str(),
    ]);
    // OpenSSL writes an RSAPrivateKey (PKCS#1) in DER.
    RsaKeyPair::from_der(&std::fs::read(&path).expect("key")).expect("an RSA key")
}

fn jwt(issuer: &Issuer) -> String {
    let knobs = issuer.knobs.lock().expect("knobs").clone();
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "RS256", "kid": "key-1", "typ": "JWT"});
    let claims = json!({
        "iss": knobs.issuer, "sub": "ada", "aud": knobs.audience,
        "iat": now - 5, "exp": now + knobs.expires_in, "nonce": knobs.nonce,
        "name": "Ada Approver", "email": "ada@example.org", "email_verified": true,
        "groups": ["approvers"],
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = if knobs.signed_by_other_key {
        &issuer.other
    } else {
        &issuer.key
    };
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

async fn discovery(State(issuer): State<Arc<Issuer>>) -> Json<Value> {
    let base = issuer.knobs.lock().expect("knobs").issuer.clone();
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> Json<Value> {
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = issuer.key.public().into();
    Json(json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "key-1",
        "n": URL_SAFE_NO_PAD.encode(&public.n),
        "e": URL_SAFE_NO_PAD.encode(&public.e),
    }]}))
}

async fn token(State(issuer): State<Arc<Issuer>>) -> Json<Value> {
    Json(json!({
        "access_token": "an access token", "token_type": "Bearer", "expires_in": 60,
        "id_token": jwt(&issuer),
    }))
}

/// A case: its name, what it changes in a good token, and the word its
/// refusal must contain (none: accepted).
type Case = (&'static str, fn(&mut Knobs), Option<&'static str>);

/// The nonce of an authorization URL.
fn nonce_of(url: &str) -> String {
    url::Url::parse(url)
        .expect("authorization URL")
        .query_pairs()
        .find(|(name, _)| name == "nonce")
        .map(|(_, value)| value.into_owned())
        .expect("a nonce")
}

#[tokio::test]
async fn tokens_for_another_audience_badly_signed_expired_or_with_another_nonce_are_refused() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let base = format!(
        "http://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let good = Knobs {
        issuer: base.clone(),
        audience: "cutover-console".to_owned(),
        expires_in: 300,
        nonce: String::new(),
        signed_by_other_key: false,
    };
    let issuer = Arc::new(Issuer {
        knobs: Mutex::new(good.clone()),
        key: rsa_key(directory.path(), "key.der"),
        other: rsa_key(directory.path(), "other.der"),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(issuer.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let settings = SignIn {
        issuer: base.clone(),
        client_id: "cutover-console".to_owned(),
        client_secret_env: None,
        scopes: vec!["email".to_owned()],
        groups_claim: "groups".to_owned(),
    };
    let provider = Provider::start(settings, "http://localhost:8480/auth/callback")
        .await
        .expect("the issuer is discovered");

    let cases: [Case; 5] = [
        ("a good token", |_| {}, None),
        (
            "another audience",
            |knobs| knobs.audience = "another-app".to_owned(),
            Some("audience"),
        ),
        (
            "a bad signature",
            |knobs| knobs.signed_by_other_key = true,
            Some("signature"),
        ),
        (
            "an expired token",
            |knobs| knobs.expires_in = -120,
            Some("expired"),
        ),
        (
            "another nonce",
            |knobs| knobs.nonce = "not the nonce".to_owned(),
            Some("nonce"),
        ),
    ];
    for (name, change, refusal) in cases {
        let (url, state) = provider.begin("/runs/x");
        {
            let mut knobs = issuer.knobs.lock().expect("knobs");
            *knobs = good.clone();
            knobs.nonce = nonce_of(&url);
            change(&mut knobs);
        }
        let answer = provider.finish(Some(&state), &state, "a code").await;
        match (refusal, answer) {
            (None, Ok((identity, return_to))) => {
                assert_eq!(
                    (identity.subject.as_str(), identity.issuer.as_str()),
                    ("ada", base.as_str())
                );
                assert_eq!(identity.groups, ["approvers"]);
                assert_eq!(return_to, "/runs/x");
            }
            (Some(word), Err(message)) => assert!(
                message.to_lowercase().contains(word),
                "{name}: refused, but for another reason: {message}"
            ),
            (expected, answer) => panic!("{name}: expected {expected:?}, got {answer:?}"),
        }
        // The same answer again: the sign-in it belonged to is gone.
        let again = provider.finish(Some(&state), &state, "a code").await;
        assert!(again.is_err(), "{name}: a replayed answer was taken");
    }
    // An answer this browser did not start.
    let (_, state) = provider.begin("/");
    let foreign = provider
        .finish(Some("another state"), &state, "a code")
        .await;
    assert!(
        foreign
            .expect_err("refused")
            .contains("not started by this browser")
    );
}
