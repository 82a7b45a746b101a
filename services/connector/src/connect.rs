//! `sextant connect`: a person approves Sextant in their org once; the connector keeps the
//! refresh token, encrypted at rest.
//!
//! The OAuth 2.0 web-server flow with PKCE (S256): we print the authorisation URL, catch the
//! browser's callback on a loopback port (the connected app's callback URL, by default
//! `http://localhost:1717/OauthRedirect`, the port the Salesforce CLI uses), check `state`,
//! exchange the code with the verifier, and seal the refresh token with AES-256-GCM under a
//! 32-byte key kept in a separate file (created with mode 0600 when absent). The token file's
//! metadata (login URL, client id) is authenticated as associated data, so a token cannot be
//! moved to another org's file unnoticed. Neither the token nor the key is ever logged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sextant_salesforce::SalesforceError;
use sextant_salesforce::auth::{
    Pkce, RefreshTokenConfig, authorize_url, exchange_code, random_state,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why connecting, sealing or opening failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("{0}")]
    Config(String),
    #[error("key file {path}: {problem}")]
    Key { path: PathBuf, problem: String },
    #[error("token file {path}: {problem}")]
    TokenFile { path: PathBuf, problem: String },
    #[error("the org refused the authorisation: {error}: {description}")]
    Denied { error: String, description: String },
    #[error("the callback's state does not match the request (possible forgery); start again")]
    StateMismatch,
    #[error("no callback within {0:?}; start again")]
    TimedOut(Duration),
    #[error("Salesforce: {0}")]
    Salesforce(#[from] SalesforceError),
    #[error("the org granted no refresh token: add the `refresh_token` scope to the connected app")]
    NoRefreshToken,
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What `sextant connect` needs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `https://login.salesforce.com`, `https://test.salesforce.com` or the org's My Domain.
    pub login_url: String,
    pub client_id: String,
    /// Only if the connected app requires the secret for the web-server flow.
    pub client_secret: Option<SecretString>,
    /// A loopback callback URL registered on the connected app.
    pub redirect_uri: String,
    pub scope: String,
    /// 32-byte AES key (raw or base64); created when absent.
    pub key_path: PathBuf,
    /// Where the sealed refresh token goes.
    pub token_path: PathBuf,
    /// How long to wait for the browser.
    pub timeout: Duration,
}

/// The sealed token file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedToken {
    pub version: u32,
    pub algorithm: String,
    pub login_url: String,
    pub client_id: String,
    pub instance_url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub nonce: String,
    pub ciphertext: String,
}

/// What a successful connect stored.
#[derive(Debug, Clone)]
pub struct ConnectOutcome {
    pub instance_url: String,
    pub token_path: PathBuf,
    pub key_created: bool,
}

fn key_err(path: &Path, problem: impl Into<String>) -> ConnectError {
    ConnectError::Key {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)?.write_all(bytes)
}

/// Reads a 32-byte key (raw bytes or base64 text); creates one when `create` and absent.
pub fn load_key(path: &Path, create: bool) -> Result<([u8; 32], bool), ConnectError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let raw = if bytes.len() == 32 {
                bytes
            } else {
                let text = String::from_utf8(bytes)
                    .map_err(|_| key_err(path, "neither 32 raw bytes nor base64 text"))?;
                B64.decode(text.trim())
                    .map_err(|_| key_err(path, "neither 32 raw bytes nor base64 text"))?
            };
            let key: [u8; 32] = raw.try_into().map_err(|v: Vec<u8>| {
                key_err(path, format!("{} bytes; AES-256 needs 32", v.len()))
            })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            write_private(path, B64.encode(key).as_bytes())
                .map_err(|e| key_err(path, e.to_string()))?;
            Ok((key, true))
        }
        Err(e) => Err(key_err(path, e.to_string())),
    }
}

fn aad(login_url: &str, client_id: &str, instance_url: &str) -> Vec<u8> {
    format!("sextant-refresh-token-v1\n{login_url}\n{client_id}\n{instance_url}").into_bytes()
}

/// Seals a refresh token.
pub fn seal(
    key: &[u8; 32],
    login_url: &str,
    client_id: &str,
    instance_url: &str,
    refresh_token: &SecretString,
) -> Result<SealedToken, ConnectError> {
    let cipher = Aes256Gcm::new(&Key::<Aes256Gcm>::from(*key));
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: refresh_token.expose_secret().as_bytes(),
                aad: &aad(login_url, client_id, instance_url),
            },
        )
        .map_err(|_| ConnectError::Config("encryption failed".into()))?;
    Ok(SealedToken {
        version: 1,
        algorithm: "AES-256-GCM".into(),
        login_url: login_url.to_owned(),
        client_id: client_id.to_owned(),
        instance_url: instance_url.to_owned(),
        created_at: chrono::Utc::now(),
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    })
}

/// Opens a sealed token file into a refresh-token login configuration.
pub fn open_token_file(
    token_path: &Path,
    key_path: &Path,
    client_secret: Option<SecretString>,
) -> Result<RefreshTokenConfig, ConnectError> {
    let bad = |problem: &str| ConnectError::TokenFile {
        path: token_path.to_owned(),
        problem: problem.to_owned(),
    };
    let text = std::fs::read_to_string(token_path).map_err(|e| bad(&e.to_string()))?;
    let sealed: SealedToken =
        serde_json::from_str(&text).map_err(|e| bad(&format!("not a sealed token: {e}")))?;
    if sealed.version != 1 || sealed.algorithm != "AES-256-GCM" {
        return Err(bad("unsupported version or algorithm"));
    }
    let (key, _) = load_key(key_path, false)?;
    let nonce: [u8; 12] = B64
        .decode(&sealed.nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| bad("bad nonce"))?;
    let ciphertext = B64
        .decode(&sealed.ciphertext)
        .map_err(|_| bad("bad ciphertext"))?;
    let plain = Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &ciphertext,
                aad: &aad(&sealed.login_url, &sealed.client_id, &sealed.instance_url),
            },
        )
        .map_err(|_| {
            bad("cannot be decrypted with this key (wrong key, or the file was altered)")
        })?;
    let token = String::from_utf8(plain).map_err(|_| bad("decrypted token is not text"))?;
    Ok(RefreshTokenConfig {
        login_url: sealed.login_url,
        client_id: sealed.client_id,
        client_secret,
        refresh_token: SecretString::from(token),
    })
}

/// Runs the web-server flow: `show_url` gets the authorisation URL to print (or open).
pub async fn connect(
    opts: &ConnectOptions,
    http: &reqwest::Client,
    show_url: impl FnOnce(&str),
) -> Result<ConnectOutcome, ConnectError> {
    let redirect = url::Url::parse(&opts.redirect_uri)
        .map_err(|e| ConnectError::Config(format!("redirect URI {}: {e}", opts.redirect_uri)))?;
    let loopback = matches!(
        redirect.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]")
    );
    if !loopback || redirect.scheme() != "http" {
        return Err(ConnectError::Config(format!(
            "the redirect URI must be a loopback http URL (e.g. http://localhost:1717/OauthRedirect), not {}",
            opts.redirect_uri
        )));
    }
    let port = redirect.port_or_known_default().unwrap_or(80);
    // Check the key before anyone approves anything.
    let (key, key_created) = load_key(&opts.key_path, true)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let pkce = Pkce::generate();
    let state = random_state();
    let url = authorize_url(
        &opts.login_url,
        &opts.client_id,
        &opts.redirect_uri,
        &opts.scope,
        &state,
        &pkce,
    )?;
    show_url(&url);
    let params = tokio::time::timeout(opts.timeout, wait_for_callback(&listener, redirect.path()))
        .await
        .map_err(|_| ConnectError::TimedOut(opts.timeout))??;
    if let Some(error) = params.get("error") {
        return Err(ConnectError::Denied {
            error: error.clone(),
            description: params.get("error_description").cloned().unwrap_or_default(),
        });
    }
    if params.get("state") != Some(&state) {
        return Err(ConnectError::StateMismatch);
    }
    let code = params
        .get("code")
        .ok_or_else(|| ConnectError::Config("the callback carried no code".into()))?;
    let tokens = exchange_code(
        http,
        &opts.login_url,
        &opts.client_id,
        opts.client_secret.as_ref(),
        &opts.redirect_uri,
        code,
        &pkce,
    )
    .await?;
    let refresh = tokens
        .refresh_token
        .map(SecretString::from)
        .ok_or(ConnectError::NoRefreshToken)?;
    let sealed = seal(
        &key,
        &opts.login_url,
        &opts.client_id,
        &tokens.instance_url,
        &refresh,
    )?;
    let json =
        serde_json::to_vec_pretty(&sealed).map_err(|e| ConnectError::Config(e.to_string()))?;
    write_private(&opts.token_path, &json).map_err(|e| ConnectError::TokenFile {
        path: opts.token_path.clone(),
        problem: e.to_string(),
    })?;
    Ok(ConnectOutcome {
        instance_url: tokens.instance_url,
        token_path: opts.token_path.clone(),
        key_created,
    })
}

/// Serves the loopback port until the browser arrives on `path`; answers other paths 404.
async fn wait_for_callback(
    listener: &tokio::net::TcpListener,
    path: &str,
) -> Result<std::collections::HashMap<String, String>, ConnectError> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        while len < buf.len() {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let (p, query) = target.split_once('?').unwrap_or((target, ""));
        if p != path {
            stream
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
            continue;
        }
        let body = "<html><body><h1>Sextant</h1><p>You can close this window and return to the terminal.</p></body></html>";
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(resp.as_bytes()).await?;
        return Ok(url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_with_their_key_and_metadata()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let key_path = dir.path().join("token.key");
        let (key, created) = load_key(&key_path, true)?;
        assert!(created);
        let (again, created) = load_key(&key_path, true)?;
        assert!(!created && again == key, "the key is kept");
        let token = SecretString::from("5Aep861secret-refresh".to_owned());
        let sealed = seal(
            &key,
            "https://login.salesforce.com",
            "cid",
            "https://acme.my.salesforce.com",
            &token,
        )?;
        let file = dir.path().join("org.token");
        std::fs::write(&file, serde_json::to_vec(&sealed)?)?;
        let text = std::fs::read_to_string(&file)?;
        assert!(!text.contains("secret-refresh"), "never in clear");
        let opened = open_token_file(&file, &key_path, None)?;
        assert_eq!(
            opened.refresh_token.expose_secret(),
            "5Aep861secret-refresh"
        );
        assert_eq!(opened.client_id, "cid");

        // Moving the token to another org's metadata is detected.
        let mut moved = sealed.clone();
        moved.login_url = "https://test.salesforce.com".into();
        std::fs::write(&file, serde_json::to_vec(&moved)?)?;
        assert!(
            matches!(open_token_file(&file, &key_path, None), Err(ConnectError::TokenFile { problem, .. }) if problem.contains("wrong key"))
        );

        // Another key cannot open it.
        std::fs::write(&file, serde_json::to_vec(&sealed)?)?;
        let other = dir.path().join("other.key");
        load_key(&other, true)?;
        assert!(open_token_file(&file, &other, None).is_err());

        // A short key is refused with its length.
        std::fs::write(&other, B64.encode([1u8; 16]))?;
        assert!(
            matches!(load_key(&other, false), Err(ConnectError::Key { problem, .. }) if problem.contains("16 bytes"))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key_path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        Ok(())
    }
}
