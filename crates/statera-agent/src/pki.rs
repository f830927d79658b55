//! The agents' certificate authority, kept in `<data-dir>/agent-pki/` of the
//! controller (the directory 0700, keys and registers 0600):
//!
//! - `ca.pem`, `ca-key.pem`: the CA that signs agents' and the controller
//!   endpoint's certificates (ECDSA P-256, made at the first start);
//! - `tokens.json`: one-time enrolment tokens, by SHA-256 digest (the token
//!   itself is shown once, to the operator who made it), with an expiry;
//! - `agents.json`: every certificate issued, by SHA-256 fingerprint, with
//!   its agent's name and whether it is revoked. A session is accepted only
//!   from a certificate listed here and not revoked: a certificate signed
//!   by another CA fails the TLS handshake, one of ours that was revoked or
//!   replaced (re-enrolment under the same name) is refused at the session.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("the enrolment token is unknown, used or expired")]
    BadToken,
    #[error("invalid agent name {0:?}: 1 to 64 of A-Z a-z 0-9 . _ -")]
    BadName(String),
    #[error("invalid certificate request: {0}")]
    BadCsr(String),
    #[error("no agent named {0}")]
    NoAgent(String),
    #[error("an agent named {0} is enrolled: revoke it first (statera agents revoke {0})")]
    NameTaken(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("certificate authority: {0}")]
    Ca(String),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Ca(e.to_string())
    }
}

/// Held while the registers are read and written.
struct Guard<'a> {
    _file: Option<std::fs::File>,
    _inner: std::sync::MutexGuard<'a, ()>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Token {
    sha256: String,
    expires_unix: u64,
}

/// One issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentCert {
    pub name: String,
    pub fingerprint: String,
    pub issued_unix: u64,
    pub revoked: bool,
}

/// The CA and its registers. Operations are serialised (one process owns
/// the directory: the controller, or an operator's command while it runs,
/// whose changes the controller reads at each check).
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_key_pem: String,
    lock: Mutex<()>,
}

const DIR: &str = "agent-pki";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Hex of SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> Result<String, PkiError> {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Ca("no randomness".into()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) use statera_config::write_private;

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Pki {
    /// The CA in `data_dir`, made if absent.
    pub fn open(data_dir: &Path) -> Result<Pki, PkiError> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = data_dir.join(DIR);
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
        if !cert_path.exists() || !key_path.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, "Statera agents CA");
            params.distinguished_name = dn;
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = rcgen::date_time_ymd(2025, 1, 1);
            params.not_after = rcgen::date_time_ymd(2045, 1, 1);
            let cert = params.self_signed(&key)?;
            write_private(&key_path, &key.serialize_pem())?;
            write_private(&cert_path, &cert.pem())?;
        }
        Ok(Pki {
            ca_pem: std::fs::read_to_string(&cert_path)?,
            ca_key_pem: std::fs::read_to_string(&key_path)?,
            dir,
            lock: Mutex::new(()),
        })
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&self.ca_key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.ca_pem, key)?)
    }

    /// Serialises the registers' read-modify-writes: within this process
    /// (the mutex) and with `statera agents` commands run beside it (an
    /// exclusive flock on `agent-pki/lock`).
    fn guard(&self) -> Guard<'_> {
        let inner = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .and_then(|f| f.lock().map(|()| f))
            .ok();
        Guard {
            _file: file,
            _inner: inner,
        }
    }

    fn read<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> Result<T, PkiError> {
        match std::fs::read_to_string(self.dir.join(name)) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| PkiError::Ca(format!("{name}: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
            Err(e) => Err(e.into()),
        }
    }

    fn write<T: Serialize>(&self, name: &str, value: &T) -> Result<(), PkiError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| PkiError::Ca(e.to_string()))?;
        Ok(write_private(&self.dir.join(name), &text)?)
    }

    /// A certificate and key for the controller's agent endpoint, issued by
    /// the CA for [`crate::CONTROLLER_NAME`].
    pub fn controller_identity(&self) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![crate::CONTROLLER_NAME.to_string()])?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, crate::CONTROLLER_NAME);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A new one-time enrolment token, valid for `ttl`. Only its digest is
    /// kept.
    pub fn create_token(&self, ttl: Duration) -> Result<String, PkiError> {
        let _g = self.guard();
        let token = random_hex(32)?;
        let now = now_unix();
        let mut tokens: Vec<Token> = self.read("tokens.json")?;
        tokens.retain(|t| t.expires_unix > now);
        tokens.push(Token {
            sha256: sha256_hex(token.as_bytes()),
            expires_unix: now + ttl.as_secs(),
        });
        self.write("tokens.json", &tokens)?;
        Ok(token)
    }

    /// Trades `token` (used up, even if the rest fails) and a CSR for a
    /// certificate naming `name`, whatever subject the CSR asked for. A
    /// certificate issued earlier to the same name is revoked.
    pub fn enroll(&self, token: &str, name: &str, csr_pem: &str) -> Result<String, PkiError> {
        let _g = self.guard();
        let digest = sha256_hex(token.as_bytes());
        let now = now_unix();
        let mut tokens: Vec<Token> = self.read("tokens.json")?;
        let found = tokens
            .iter()
            .position(|t| t.expires_unix > now && constant_eq(&t.sha256, &digest));
        let Some(index) = found else {
            return Err(PkiError::BadToken);
        };
        tokens.remove(index);
        tokens.retain(|t| t.expires_unix > now);
        // Used up before anything is issued: a crash cannot make it reusable.
        self.write("tokens.json", &tokens)?;
        if !valid_name(name) {
            return Err(PkiError::BadName(name.to_string()));
        }
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        csr.params.distinguished_name = dn;
        csr.params.subject_alt_names = vec![SanType::DnsName(
            name.to_string()
                .try_into()
                .map_err(|_| PkiError::BadName(name.to_string()))?,
        )];
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.custom_extensions.clear();
        csr.params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        csr.params.not_after = rcgen::date_time_ymd(2045, 1, 1);
        csr.params.serial_number =
            Some(rcgen::SerialNumber::from_slice(random_hex(16)?.as_bytes()));
        let cert = csr.signed_by(&self.issuer()?)?;
        let fingerprint = sha256_hex(cert.der());
        let mut agents: Vec<AgentCert> = self.read("agents.json")?;
        if agents.iter().any(|a| a.name == name && !a.revoked) {
            // A token does not let its holder become an agent that exists.
            return Err(PkiError::NameTaken(name.to_string()));
        }
        agents.push(AgentCert {
            name: name.to_string(),
            fingerprint,
            issued_unix: now,
            revoked: false,
        });
        self.write("agents.json", &agents)?;
        Ok(cert.pem())
    }

    /// Revokes every certificate issued to `name`.
    pub fn revoke(&self, name: &str) -> Result<usize, PkiError> {
        let _g = self.guard();
        let mut agents: Vec<AgentCert> = self.read("agents.json")?;
        let mut n = 0;
        for a in agents.iter_mut().filter(|a| a.name == name && !a.revoked) {
            a.revoked = true;
            n += 1;
        }
        if n == 0 && !agents.iter().any(|a| a.name == name) {
            return Err(PkiError::NoAgent(name.to_string()));
        }
        self.write("agents.json", &agents)?;
        Ok(n)
    }

    /// The agent a client certificate (DER) was issued to, if it is in the
    /// register and not revoked.
    pub fn agent_of(&self, cert_der: &[u8]) -> Result<Option<String>, PkiError> {
        let _g = self.guard();
        let fingerprint = sha256_hex(cert_der);
        let agents: Vec<AgentCert> = self.read("agents.json")?;
        Ok(agents
            .into_iter()
            .find(|a| a.fingerprint == fingerprint && !a.revoked)
            .map(|a| a.name))
    }

    /// The fingerprints of every certificate not revoked.
    pub fn valid_fingerprints(&self) -> Result<HashSet<String>, PkiError> {
        Ok(self
            .agents()?
            .into_iter()
            .filter(|a| !a.revoked)
            .map(|a| a.fingerprint)
            .collect())
    }

    pub fn agents(&self) -> Result<Vec<AgentCert>, PkiError> {
        let _g = self.guard();
        self.read("agents.json")
    }
}

/// Compares two digests without stopping at the first difference.
fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An agent's key and certificate request for `name`.
pub fn new_key_and_csr(name: &str) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_enrols_once_and_revocation_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open(dir.path()).unwrap();
        let token = pki.create_token(Duration::from_secs(60)).unwrap();
        let (_key, csr) = new_key_and_csr("whatever-the-agent-asks").unwrap();
        let cert = pki.enroll(&token, "agent-1", &csr).unwrap();
        let der = rustls_pem(&cert);
        assert_eq!(pki.agent_of(&der).unwrap().as_deref(), Some("agent-1"));
        // The token is used up.
        assert!(matches!(
            pki.enroll(&token, "agent-2", &csr),
            Err(PkiError::BadToken)
        ));
        assert!(matches!(
            pki.enroll("0000", "agent-2", &csr),
            Err(PkiError::BadToken)
        ));
        // Revoked: refused.
        assert_eq!(pki.revoke("agent-1").unwrap(), 1);
        assert_eq!(pki.agent_of(&der).unwrap(), None);
        // The CA survives a reopen.
        let again = Pki::open(dir.path()).unwrap();
        assert_eq!(again.ca_pem(), pki.ca_pem());
    }

    #[test]
    fn an_expired_token_or_a_bad_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open(dir.path()).unwrap();
        let (_key, csr) = new_key_and_csr("a").unwrap();
        let expired = pki.create_token(Duration::ZERO).unwrap();
        assert!(matches!(
            pki.enroll(&expired, "a", &csr),
            Err(PkiError::BadToken)
        ));
        let token = pki.create_token(Duration::from_secs(60)).unwrap();
        assert!(matches!(
            pki.enroll(&token, "../x", &csr),
            Err(PkiError::BadName(_))
        ));
    }

    fn rustls_pem(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}
