//! Connected-app credentials for local runs: an RSA key pair and a self-signed X.509
//! certificate, as an admin would create with `openssl req -x509` and upload to the connected
//! app. Generated fresh for each demo run; nothing secret is shipped in the repository.

use std::str::FromStr;
use std::time::Duration;

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::sha2::Sha256;
use rsa::{RsaPrivateKey, RsaPublicKey};
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::EncodePem;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

/// A private key (PKCS#8 PEM) and the matching self-signed certificate (PEM).
#[derive(Clone)]
pub struct ConnectedAppCredentials {
    pub private_key_pem: String,
    pub certificate_pem: String,
}

impl std::fmt::Debug for ConnectedAppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectedAppCredentials")
            .field("private_key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Why credentials could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate connected-app credentials: {0}")]
pub struct CredentialsError(String);

fn err(e: impl std::fmt::Display) -> CredentialsError {
    CredentialsError(e.to_string())
}

/// Generates a 2048-bit RSA key and a certificate valid for a year.
pub fn generate(common_name: &str) -> Result<ConnectedAppCredentials, CredentialsError> {
    let mut rng = rand::thread_rng();
    let private_key = RsaPrivateKey::new(&mut rng, 2048).map_err(err)?;
    let public_key = RsaPublicKey::from(&private_key);
    let signing_key = SigningKey::<Sha256>::new(private_key.clone());
    let spki = SubjectPublicKeyInfoOwned::from_key(public_key).map_err(err)?;
    let subject = Name::from_str(&format!("CN={common_name}")).map_err(err)?;
    let validity = Validity::from_now(Duration::from_secs(365 * 24 * 3600)).map_err(err)?;
    let builder = CertificateBuilder::new(
        Profile::Root,
        SerialNumber::from(1u32),
        validity,
        subject,
        spki,
        &signing_key,
    )
    .map_err(err)?;
    let certificate = builder.build::<rsa::pkcs1v15::Signature>().map_err(err)?;
    Ok(ConnectedAppCredentials {
        private_key_pem: private_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(err)?
            .to_string(),
        certificate_pem: certificate.to_pem(LineEnding::LF).map_err(err)?,
    })
}
