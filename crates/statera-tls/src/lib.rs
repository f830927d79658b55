//! Certificates as tenants hand them to the key manager, read into what a
//! TLS listener serves: a chain (leaf first) and its private key.
//!
//! Two inputs, as Octavia takes them: a PKCS#12 bundle without a password
//! ([`from_pkcs12`], Octavia's preferred form), or the PEM parts of a
//! certificate container ([`from_pem`]: certificate, private key,
//! intermediates, the key's passphrase). Either way the key must match the
//! certificate (rustls' `CertifiedKey::keys_match`, ring underneath: the one
//! crypto provider of the build) and the certificate must name a host (its
//! CN or a DNS subject alternative name), as Octavia's `cert_parser`
//! requires. Errors carry Octavia's words.
//!
//! Parsing is bounded: a tenant writes these files, and a password-based
//! key derivation costs what its iteration count says. Before anything is
//! decrypted, every key derivation a DER input names is counted
//! ([`kdf_work`]); past [`MAX_KDF_ITERATIONS`] in all, or any scrypt, the
//! input is refused.

pub mod isolated;

pub use isolated::{Isolation, read_pkcs12};

use pkcs8::der::Decode as _;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// The most PBKDF2/PKCS#12-KDF iterations one input may ask for, all
/// derivations the outer DER names together (an iteration may cost several
/// hash blocks: 3DES's PBE runs the KDF three times). What encrypted
/// contents name is bounded by reading bundles in a limited child process
/// ([`isolated`]).
pub const MAX_KDF_ITERATIONS: u64 = 600_000;
/// The most certificates one chain or CA bundle holds.
pub const MAX_CERTS: usize = 16;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    /// Octavia's `UnreadablePKCS12` detail.
    #[error("{0}")]
    Pkcs12(String),
    #[error("Could not read X509 from PEM")]
    UnreadableCert,
    #[error("Could not read the private key")]
    UnreadableKey,
    #[error("Passphrase needed to decrypt key but client did not provide one.")]
    NeedsPassphrase,
    #[error("The private key could not be decrypted with the passphrase given")]
    WrongPassphrase,
    #[error("Key and x509 certificate do not match")]
    MismatchedKey,
    #[error("No CN or DNSName(s) found in certificate. The certificate is invalid.")]
    NoHostNames,
    #[error("the input asks for more key-derivation work than Statera allows ({0})")]
    TooCostly(String),
    #[error("more than {MAX_CERTS} certificates")]
    TooMany,
}

/// What a certificate reference holds, before it is read: a PKCS#12 bundle
/// or a certificate container's PEM parts.
#[derive(Clone, Copy)]
pub enum CertInput<'a> {
    Pkcs12(&'a [u8]),
    Pem {
        cert: &'a [u8],
        key: &'a [u8],
        passphrase: Option<&'a [u8]>,
        intermediates: Option<&'a [u8]>,
    },
}

impl CertInput<'_> {
    /// Reads it: a PKCS#12 bundle as `how` says (a child process for
    /// tenants' bundles), PEM parts here (their key derivation is bounded
    /// by [`kdf_work`]).
    pub fn read(self, how: &Isolation) -> Result<CertBundle, CertError> {
        match self {
            CertInput::Pkcs12(data) => read_pkcs12(data, how),
            CertInput::Pem {
                cert,
                key,
                passphrase,
                intermediates,
            } => from_pem(cert, key, passphrase, intermediates),
        }
    }

    /// Its parts, each once, in a fixed order (what a digest of it covers).
    pub fn parts(&self) -> [Option<&[u8]>; 5] {
        match *self {
            CertInput::Pkcs12(data) => [Some(b"pkcs12"), Some(data), None, None, None],
            CertInput::Pem {
                cert,
                key,
                passphrase,
                intermediates,
            } => [
                Some(b"pem"),
                Some(cert),
                Some(key),
                passphrase,
                intermediates,
            ],
        }
    }
}

/// A certificate chain (leaf first) and its private key, checked.
#[derive(Debug)]
pub struct CertBundle {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The leaf's CN and DNS subject alternative names (wildcards as given).
    pub names: Vec<String>,
}

impl Clone for CertBundle {
    fn clone(&self) -> Self {
        CertBundle {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            names: self.names.clone(),
        }
    }
}

impl CertBundle {
    /// What rustls serves.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        certified(&self.chain, &self.key).map(Arc::new)
    }

    /// The chain as PEM, leaf first.
    pub fn chain_pem(&self) -> String {
        let mut out = String::new();
        for cert in &self.chain {
            pem_block(&mut out, "CERTIFICATE", cert.as_ref());
        }
        out
    }

    /// The key as PEM (its own form: PKCS#8, PKCS#1 or SEC1), decrypted.
    pub fn key_pem(&self) -> String {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        let mut out = String::new();
        pem_block(&mut out, label, self.key.secret_der());
        out
    }
}

/// Appends `der` as a PEM block (RFC 7468: base64 in lines of 64).
fn pem_block(out: &mut String, label: &str, der: &[u8]) {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in text.as_bytes().chunks(64) {
        // Base64 is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
}

fn certified(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<CertifiedKey, CertError> {
    let signer = any_supported_type(key).map_err(|_| CertError::UnreadableKey)?;
    let ck = CertifiedKey::new(chain.to_vec(), signer);
    ck.keys_match().map_err(|_| CertError::MismatchedKey)?;
    Ok(ck)
}

pub(crate) fn checked(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertBundle, CertError> {
    if chain.len() > MAX_CERTS {
        return Err(CertError::TooMany);
    }
    let leaf = chain.first().ok_or(CertError::UnreadableCert)?;
    let names = host_names(leaf)?;
    certified(&chain, &key)?;
    Ok(CertBundle { chain, key, names })
}

/// A certificate's CN and DNS subject alternative names; none is
/// Octavia's "No CN or DNSName(s)".
pub fn host_names(cert: &CertificateDer<'_>) -> Result<Vec<String>, CertError> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| CertError::UnreadableCert)?;
    let mut names: Vec<String> = c
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n
                && !names.iter().any(|x| x == d)
            {
                names.push(d.to_string());
            }
        }
    }
    if names.is_empty() {
        return Err(CertError::NoHostNames);
    }
    Ok(names)
}

/// A PKCS#12 bundle without a password: its key, the certificate that key
/// belongs to first, then the bundle's other certificates.
pub fn from_pkcs12(data: &[u8]) -> Result<CertBundle, CertError> {
    kdf_work(data)?;
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(data, "")
        .map_err(|e| CertError::Pkcs12(pkcs12_detail(&e)))?;
    let [key] = archive.keys.as_slice() else {
        return Err(CertError::Pkcs12(format!(
            "the bundle holds {} private keys; exactly one is needed",
            archive.keys.len()
        )));
    };
    let key =
        PrivateKeyDer::try_from(key.key.as_der().to_vec()).map_err(|_| CertError::UnreadableKey)?;
    let certs: Vec<CertificateDer<'static>> = archive
        .certs
        .iter()
        .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
        .collect();
    if certs.len() > MAX_CERTS {
        return Err(CertError::TooMany);
    }
    // The leaf is the certificate the key matches.
    let leaf = certs
        .iter()
        .position(|c| certified(std::slice::from_ref(c), &key).is_ok())
        .ok_or(CertError::MismatchedKey)?;
    let mut chain = vec![certs[leaf].clone()];
    chain.extend(
        certs
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leaf)
            .map(|(_, c)| c.clone()),
    );
    checked(chain, key)
}

fn pkcs12_detail(e: &p12_keystore::error::Error) -> String {
    match e {
        p12_keystore::error::Error::InvalidParameters => {
            "the bundle's key-derivation parameters are out of bounds".into()
        }
        // A MAC or decryption failure with the empty password: the bundle
        // needs one.
        p12_keystore::error::Error::MacError(_)
        | p12_keystore::error::Error::Pkcs5Error(_)
        | p12_keystore::error::Error::UnpadError => {
            "Could not deserialize PKCS12 data: it requires a pass phrase".into()
        }
        other => format!("Could not deserialize PKCS12 data ({other})"),
    }
}

/// Every PEM certificate in `pem`, in order.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| CertError::UnreadableCert)?;
    if certs.is_empty() {
        return Err(CertError::UnreadableCert);
    }
    if certs.len() > MAX_CERTS {
        return Err(CertError::TooMany);
    }
    for c in &certs {
        x509_parser::parse_x509_certificate(c.as_ref()).map_err(|_| CertError::UnreadableCert)?;
    }
    Ok(certs)
}

/// A certificate container's parts: the certificate (PEM), its private key
/// (PEM: PKCS#8, PKCS#1 or SEC1; `ENCRYPTED PRIVATE KEY` with
/// `passphrase`), and intermediates (PEM).
pub fn from_pem(
    cert: &[u8],
    key: &[u8],
    passphrase: Option<&[u8]>,
    intermediates: Option<&[u8]>,
) -> Result<CertBundle, CertError> {
    let mut chain = certs_from_pem(cert)?;
    chain.truncate(1);
    if let Some(i) = intermediates.filter(|i| !i.trim_ascii().is_empty()) {
        chain.extend(certs_from_pem(i)?);
    }
    let key = private_key(key, passphrase)?;
    checked(chain, key)
}

fn private_key(pem: &[u8], passphrase: Option<&[u8]>) -> Result<PrivateKeyDer<'static>, CertError> {
    let text = std::str::from_utf8(pem).map_err(|_| CertError::UnreadableKey)?;
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let pass = passphrase
            .filter(|p| !p.is_empty())
            .ok_or(CertError::NeedsPassphrase)?;
        let (_, doc) =
            pkcs8::SecretDocument::from_pem(text).map_err(|_| CertError::UnreadableKey)?;
        kdf_work(doc.as_bytes())?;
        let info = pkcs8::EncryptedPrivateKeyInfo::from_der(doc.as_bytes())
            .map_err(|_| CertError::UnreadableKey)?;
        let plain = info.decrypt(pass).map_err(|_| CertError::WrongPassphrase)?;
        return PrivateKeyDer::try_from(plain.as_bytes().to_vec())
            .map_err(|_| CertError::UnreadableKey);
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        // OpenSSL's legacy encrypted PEM: not read (convert it to PKCS#8).
        return Err(if passphrase.is_some() {
            CertError::UnreadableKey
        } else {
            CertError::NeedsPassphrase
        });
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| CertError::UnreadableKey)
}

/// Every PEM certificate revocation list in `pem` (DER each), checked.
pub fn crls_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let crls: Vec<rustls_pki_types::CertificateRevocationListDer<'static>> =
        rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
    if crls.is_empty() {
        return Err("no X509 CRL in the PEM".into());
    }
    if crls.len() > MAX_CERTS {
        return Err(format!("more than {MAX_CERTS} revocation lists"));
    }
    crls.iter()
        .map(|c| {
            x509_parser::parse_x509_crl(c.as_ref())
                .map(|_| c.as_ref().to_vec())
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Whether the first CRL of `crls` (DER) is signed by one of `cas`
/// (Octavia's check that a client CRL belongs to the client CA; it reads
/// the first one only, so a file with an intermediate's CRL after the
/// root's passes). A signature whose algorithm ring cannot verify (RSA under
/// 2048 bits, P-521, …) is not held against it: only a signature that is
/// checked and wrong is.
pub fn crls_signed_by(crls: &[Vec<u8>], cas: &[CertificateDer<'_>]) -> bool {
    let Some(first) = crls.first() else {
        return true;
    };
    let Ok((_, crl)) = x509_parser::parse_x509_crl(first) else {
        return false;
    };
    cas.iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
        .any(|(_, ca)| {
            !matches!(
                crl.verify_signature(ca.public_key()),
                Err(x509_parser::error::X509Error::SignatureVerificationError)
            )
        })
}

// ------------------------------------------------------------------ bounds

/// DER of PBKDF2's OID (1.2.840.113549.1.5.12).
const PBKDF2_OID: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c,
];
/// DER of scrypt's OID (1.3.6.1.4.1.11591.4.11).
const SCRYPT_OID: &[u8] = &[
    0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x04, 0x0b,
];
/// DER prefix of PKCS#12's PBE OIDs (1.2.840.113549.1.12.1.x).
const PKCS12_PBE_PREFIX: &[u8] = &[
    0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01,
];

/// The key-derivation iterations `der` asks for, all together: every
/// PBKDF2 and PKCS#12 PBE parameter block (`SEQUENCE { salt OCTET STRING,
/// iterations INTEGER, … }` right after its algorithm's OID) and the
/// PKCS#12 MAC's iterations. DER is definite-length, so every derivation a
/// parser would run names its OID literally; one whose parameters cannot be
/// read here is refused rather than guessed at.
pub fn kdf_work(der: &[u8]) -> Result<u64, CertError> {
    if find_all(der, SCRYPT_OID).next().is_some() {
        return Err(CertError::TooCostly("scrypt".into()));
    }
    let mut total: u64 = 0;
    let too_costly = |what: &str| CertError::TooCostly(what.to_string());
    for at in find_all(der, PBKDF2_OID) {
        total += salt_then_iterations(&der[at + PBKDF2_OID.len()..])
            .ok_or_else(|| too_costly("unreadable PBKDF2 parameters"))?;
    }
    for at in find_all(der, PKCS12_PBE_PREFIX) {
        // The OID's last byte follows the prefix.
        let rest = der
            .get(at + PKCS12_PBE_PREFIX.len() + 1..)
            .ok_or_else(|| too_costly("unreadable PBE parameters"))?;
        total +=
            salt_then_iterations(rest).ok_or_else(|| too_costly("unreadable PBE parameters"))?;
    }
    total += pkcs12_mac_iterations(der);
    if total > MAX_KDF_ITERATIONS {
        return Err(CertError::TooCostly(format!(
            "{total} key-derivation iterations, at most {MAX_KDF_ITERATIONS}"
        )));
    }
    Ok(total)
}

fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// A DER header at `b`: (tag, content length, header length).
fn header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    if first < 0x80 {
        return Some((tag, first as usize, 2));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *b.get(2 + i)? as usize;
    }
    Some((tag, len, 2 + n))
}

/// `SEQUENCE { OCTET STRING salt, INTEGER iterations, … }` at `b` (the
/// parameters following an algorithm's OID): the iterations.
fn salt_then_iterations(b: &[u8]) -> Option<u64> {
    let (tag, _, h) = header(b)?;
    if tag != 0x30 {
        return None;
    }
    let b = &b[h..];
    let (tag, len, h) = header(b)?;
    if tag != 0x04 {
        return None;
    }
    let b = b.get(h + len..)?;
    integer(b)
}

fn integer(b: &[u8]) -> Option<u64> {
    let (tag, len, h) = header(b)?;
    if tag != 0x02 || len == 0 || len > 8 {
        return None;
    }
    let mut v: u64 = 0;
    for &x in b.get(h..h + len)? {
        v = (v << 8) | x as u64;
    }
    Some(v)
}

/// A PFX's `macData.iterations` (0 when there is none or `der` is not a
/// PFX: the MAC is then not what the parser runs).
fn pkcs12_mac_iterations(der: &[u8]) -> u64 {
    p12_keystore_pfx_mac_iterations(der).unwrap_or(0)
}

fn p12_keystore_pfx_mac_iterations(der: &[u8]) -> Option<u64> {
    // PFX ::= SEQUENCE { version INTEGER, authSafe ContentInfo, macData MacData OPTIONAL }
    // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
    let (tag, len, h) = header(der)?;
    if tag != 0x30 {
        return None;
    }
    let mut b = der.get(h..h + len)?;
    for _ in 0..2 {
        let (_, l, hh) = header(b)?;
        b = b.get(hh + l..)?;
    }
    if b.is_empty() {
        return Some(0);
    }
    let (tag, l, hh) = header(b)?;
    if tag != 0x30 {
        return None;
    }
    let mut m = b.get(hh..hh + l)?;
    for _ in 0..2 {
        let (_, l, hh) = header(m)?;
        m = m.get(hh + l..)?;
    }
    if m.is_empty() {
        return Some(1);
    }
    integer(m)
}

#[cfg(test)]
mod tests;
