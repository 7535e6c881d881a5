//! Who may use the Flight SQL server: users with Argon2id password hashes, Basic credentials in
//! the handshake, and expiring Bearer tokens on every call after it.
//!
//! Flight SQL clients (ADBC, JDBC, pyarrow) log in once with a handshake that carries
//! `authorization: Basic base64(user:password)`, keep the `authorization: Bearer ...` header the
//! server answers with, and send it on each later call. Tokens are random, live only in the
//! server's memory and expire; passwords are kept only as hashes. Neither is ever logged or put
//! into an error message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// Errors reading users or credentials. None of them holds a password or a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("could not read the users file '{path}': {source}")]
    ReadUsers {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "users file '{path}', line {line}: expected NAME:HASH, with HASH from `usagelake hash-password` (an Argon2id PHC string)"
    )]
    BadUserLine { path: PathBuf, line: usize },
    #[error("users file '{path}' names no user: add a line NAME:HASH")]
    NoUsers { path: PathBuf },
    #[error("could not hash the password: {0}")]
    Hash(String),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
    #[error("the authorization header is not 'Basic' followed by base64 of user:password")]
    BadBasic,
}

/// The users allowed in, each with the hash of their password.
#[derive(Debug, Clone)]
pub struct Users {
    hashes: HashMap<String, String>,
}

/// Base64 as clients send it: with or without its `=` padding.
const BASE64_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Users {
    /// One user, from `--user` and `--password`.
    pub fn single(name: &str, password: &str) -> Result<Self, AuthError> {
        Ok(Self {
            hashes: HashMap::from([(name.to_string(), hash_password(password)?)]),
        })
    }

    /// Reads a users file: one `NAME:HASH` line per user; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadUsers {
            path: path.to_path_buf(),
            source,
        })?;
        let mut hashes = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || AuthError::BadUserLine {
                path: path.to_path_buf(),
                line: index + 1,
            };
            let (name, hash) = line.split_once(':').ok_or_else(bad)?;
            if name.is_empty() || PasswordHash::new(hash).is_err() {
                return Err(bad());
            }
            hashes.insert(name.to_string(), hash.to_string());
        }
        if hashes.is_empty() {
            return Err(AuthError::NoUsers {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { hashes })
    }

    /// True when `password` is the user's. An unknown user costs the same hash as a known one, so
    /// the time of an answer does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (hash, known) = match self.hashes.get(name) {
            Some(hash) => (hash.as_str(), true),
            None => (
                DECOY
                    .get_or_init(|| hash_password("decoy").unwrap_or_default())
                    .as_str(),
                false,
            ),
        };
        let matches = PasswordHash::new(hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && matches
    }
}

/// The Argon2id hash of a password as a PHC string (`$argon2id$v=19$...`), with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The user and password of an `authorization: Basic ...` header value.
pub fn parse_basic(header: &str) -> Result<(String, String), AuthError> {
    let (scheme, encoded) = header.trim().split_once(' ').ok_or(AuthError::BadBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::BadBasic);
    }
    let decoded = BASE64_ANY_PADDING
        .decode(encoded.trim())
        .map_err(|_| AuthError::BadBasic)?;
    let text = String::from_utf8(decoded).map_err(|_| AuthError::BadBasic)?;
    // A password may hold ':', a user name may not (RFC 7617).
    let (user, password) = text.split_once(':').ok_or(AuthError::BadBasic)?;
    Ok((user.to_string(), password.to_string()))
}

/// Live Bearer tokens, each for the value (a connection) it was issued with.
#[derive(Debug)]
pub struct Tokens<T> {
    lifetime: Duration,
    live: Mutex<HashMap<String, (Instant, Arc<T>)>>,
}

impl<T> Tokens<T> {
    /// Tokens that expire `lifetime` after they are issued.
    pub fn new(lifetime: Duration) -> Self {
        Self {
            lifetime,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// A new random token for `value`; expired tokens are forgotten on the way.
    pub fn issue(&self, value: Arc<T>) -> Result<String, AuthError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, (expires, _)| *expires > now);
        live.insert(token.clone(), (now + self.lifetime, value));
        Ok(token)
    }

    /// The value of a live token; `None` for an unknown or expired one.
    pub fn get(&self, token: &str) -> Option<Arc<T>> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(token) {
            Some((expires, value)) if *expires > Instant::now() => Some(Arc::clone(value)),
            Some(_) => {
                live.remove(token);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        // "ann:pa:ss" is 9 bytes: base64 "YW5uOnBhOnNz" needs no padding; "bob:x" pads to "Ym9iOng=".
        assert_eq!(
            parse_basic("Basic YW5uOnBhOnNz").unwrap(),
            ("ann".into(), "pa:ss".into())
        );
        assert_eq!(
            parse_basic("Basic Ym9iOng=").unwrap(),
            ("bob".into(), "x".into())
        );
        assert_eq!(
            parse_basic("basic Ym9iOng").unwrap(),
            ("bob".into(), "x".into())
        );
        for bad in ["Bearer abc", "Basic", "Basic !!!", "Basic Ym9i"] {
            assert!(parse_basic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let users = Users::single("ann", "secret").unwrap();
        assert!(users.verify("ann", "secret"));
        assert!(!users.verify("ann", "Secret"));
        assert!(!users.verify("bob", "secret"));
    }

    #[test]
    fn users_file_reads_hashes_and_names_a_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let hash = hash_password("pw").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        std::fs::write(&path, format!("# analysts\nann:{hash}\n\n")).unwrap();
        let users = Users::load(&path).unwrap();
        assert!(users.verify("ann", "pw"));

        std::fs::write(&path, format!("ann:{hash}\nbob:plaintext\n")).unwrap();
        let error = Users::load(&path).unwrap_err().to_string();
        assert!(error.contains("line 2"), "{error}");
        assert!(!error.contains("plaintext"), "{error}");
    }

    #[test]
    fn tokens_expire_and_unknown_tokens_are_refused() {
        let tokens = Tokens::new(Duration::from_millis(50));
        let token = tokens.issue(Arc::new(7)).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(tokens.get(&token).as_deref(), Some(&7));
        assert_eq!(tokens.get("not-a-token"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(tokens.get(&token), None);
    }
}
