//! TERMINATED_HTTPS: a listener's TLS settings made into what rustls serves
//! (`ServerTls`, built once per configuration change), and what a client
//! certificate tells the member and the L7 rules (`PeerCert`, read once per
//! connection).
//!
//! The rules follow what the HAProxy provider renders for the same listener
//! (`statera-haproxy`'s `render/tls.rs`), so the behaviour suite holds both:
//!
//! - **Certificates.** The default certificate first, then the SNI ones; a
//!   client's SNI picks the first certificate with that exact name, else the
//!   first whose wildcard (`*.example.com`, one label) covers it, else the
//!   default. No SNI, or a name nobody has: the default.
//! - **Versions.** The listed versions are a range, as HAProxy's
//!   `ssl-min-ver`/`ssl-max-ver` make them; of that range this data plane
//!   speaks TLS 1.2 and 1.3 (rustls has nothing older, and Octavia's default
//!   is 1.2 and up). A range with neither is refused.
//! - **Ciphers** are OpenSSL names as Octavia takes them. Names of suites
//!   rustls has are kept in the listed order (the server's order decides, as
//!   `prefer-server-ciphers` does in HAProxy), `!`/`-` take a name out,
//!   common aliases (`HIGH`, `ECDHE`, `AESGCM`, …) stand for the suites they
//!   cover, and names of suites rustls does not have (DHE, CBC, CCM, static
//!   RSA) are skipped, as OpenSSL skips names it does not know: Octavia's
//!   default list names three DHE suites. The list restricts TLS 1.2; TLS 1.3
//!   suites are restricted only when it names some (OpenSSL keeps them apart
//!   too). A list that leaves a spoken version without any suite is refused
//!   (OpenSSL's "no cipher match").
//! - **ALPN**: `h2`, `http/1.1` and `http/1.0` as listed, in the listed
//!   order of preference (Octavia's default lists `h2` first). A client
//!   that chooses `h2` is served over HTTP/2 (`http/http2.rs`).
//! - **Client certificates**: NONE asks for none; OPTIONAL asks, and
//!   accepts a client without one; MANDATORY refuses a handshake without one.
//!   A certificate shown is verified against the client CA and its CRLs
//!   (the whole chain, an unknown status and an expired CRL refused, as
//!   OpenSSL's CRL_CHECK_ALL does); one that fails ends the handshake, so
//!   every connection that gets to HTTP has a verified certificate or none.
//! - **Sessions** resume by stateless tickets (a ticket key per listener,
//!   rotated by rustls) rather than a server-side cache that would hold
//!   memory per client.

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite as suites;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, SupportedCipherSuite};
use statera_config::{ListenerTls, TlsCertificate};
use statera_model::{AlpnProtocol, ClientAuthentication, TlsVersion};
use std::collections::HashMap;
use std::sync::Arc;

/// A listener's TLS, ready to serve.
#[derive(Debug)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// The same without ALPN: for clients that offer only protocols the
    /// listener does not list.
    pub without_alpn: Arc<ServerConfig>,
    /// The `Strict-Transport-Security` line added to member responses.
    pub hsts: Option<Box<[u8]>>,
    /// What it was built from: an unchanged listener keeps its `ServerTls`
    /// (and its ticket key) over a configuration change.
    pub source: ListenerTls,
}

impl ServerTls {
    pub fn build(tls: &ListenerTls) -> Result<ServerTls, String> {
        let versions = versions(&tls.versions)?;
        let cipher_suites = cipher_suites(tls.ciphers.as_deref(), &versions)?;
        let provider = Arc::new(CryptoProvider {
            cipher_suites,
            ..rustls::crypto::ring::default_provider()
        });
        let resolver = Arc::new(SniResolver::new(tls)?);
        let verifier = match tls.client_authentication {
            ClientAuthentication::None => WebPkiClientVerifier::no_client_auth(),
            mode => {
                let ca = tls.client_ca_pem.as_deref().ok_or_else(|| {
                    format!("client authentication {mode} without a client CA certificate")
                })?;
                let mut builder = WebPkiClientVerifier::builder_with_provider(
                    roots(ca, "client CA")?,
                    provider.clone(),
                );
                if let Some(crl) = tls.client_crl_pem.as_deref() {
                    builder = builder
                        .with_crls(crls(crl, "client CRL")?)
                        .enforce_revocation_expiration();
                }
                if mode == ClientAuthentication::Optional {
                    builder = builder.allow_unauthenticated();
                }
                builder
                    .build()
                    .map_err(|e| format!("client verification: {e}"))?
            }
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(resolver);
        config.ignore_client_order = true;
        config.alpn_protocols = tls
            .alpn_protocols
            .iter()
            .map(|p| match p {
                AlpnProtocol::H2 => b"h2".to_vec(),
                AlpnProtocol::Http11 => b"http/1.1".to_vec(),
                AlpnProtocol::Http10 => b"http/1.0".to_vec(),
            })
            .collect();
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
        let hsts = tls.hsts.map(|hsts| {
            let mut line = format!("Strict-Transport-Security: max-age={}", hsts.max_age);
            if hsts.include_subdomains {
                line.push_str("; includeSubDomains");
            }
            if hsts.preload {
                line.push_str("; preload");
            }
            line.push_str("\r\n");
            line.into_bytes().into_boxed_slice()
        });
        let mut without_alpn = config.clone();
        without_alpn.alpn_protocols.clear();
        Ok(ServerTls {
            config: Arc::new(config),
            without_alpn: Arc::new(without_alpn),
            hsts,
            source: tls.clone(),
        })
    }
}

/// The versions of the listed range this data plane speaks; all it speaks
/// when none are listed.
pub(crate) fn versions(
    listed: &[TlsVersion],
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |v: &TlsVersion| match v {
        TlsVersion::SslV3 => 0,
        TlsVersion::TlsV1 => 1,
        TlsVersion::TlsV1_1 => 2,
        TlsVersion::TlsV1_2 => 3,
        TlsVersion::TlsV1_3 => 4,
    };
    let (min, max) = match (listed.iter().map(rank).min(), listed.iter().map(rank).max()) {
        (Some(min), Some(max)) => (min, max),
        _ => (3, 4),
    };
    let mut out = Vec::new();
    if (min..=max).contains(&3) {
        out.push(&rustls::version::TLS12);
    }
    if (min..=max).contains(&4) {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(
            "tls_versions allow neither TLSv1.2 nor TLSv1.3, the versions this data plane speaks"
                .into(),
        );
    }
    Ok(out)
}

const TLS13: [(&str, SupportedCipherSuite); 3] = [
    ("TLS_AES_128_GCM_SHA256", suites::TLS13_AES_128_GCM_SHA256),
    ("TLS_AES_256_GCM_SHA384", suites::TLS13_AES_256_GCM_SHA384),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        suites::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

const TLS12: [(&str, SupportedCipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// The TLS 1.2 suites an OpenSSL name stands for: the suite itself, the
/// ones an alias covers, or (`A+B`) those both parts cover.
fn tls12_named(name: &str) -> Vec<SupportedCipherSuite> {
    if name.contains('+') {
        let mut parts = name.split('+').filter(|p| !p.is_empty());
        let mut out = parts.next().map(tls12_named).unwrap_or_default();
        for part in parts {
            let more = tls12_named(part);
            out.retain(|s| more.contains(s));
        }
        return out;
    }
    let by = |keep: &dyn Fn(&str) -> bool| -> Vec<SupportedCipherSuite> {
        TLS12
            .iter()
            .filter(|(n, _)| keep(n))
            .map(|(_, s)| *s)
            .collect()
    };
    match name {
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "AEAD"
        | "TLSv1.2" => by(&|_| true),
        "AESGCM" | "AES" => by(&|n| n.contains("-AES")),
        "AES128" => by(&|n| n.contains("AES128")),
        "AES256" => by(&|n| n.contains("AES256")),
        "CHACHA20" => by(&|n| n.contains("CHACHA20")),
        // `RSA` is OpenSSL's static RSA key exchange (kRSA): none of these.
        "aRSA" | "ECDHE-RSA" => by(&|n| n.starts_with("ECDHE-RSA")),
        "aECDSA" | "ECDSA" | "ECDHE-ECDSA" => by(&|n| n.starts_with("ECDHE-ECDSA")),
        // `SSLv3`/`TLSv1` are suites whose minimum version is that one, and
        // `SHA256`/`SHA384` MACs: none of these AEAD suites. Like every
        // name not listed, they match nothing.
        exact => by(&|n| n == exact),
    }
}

/// The suites the listener offers (see the module notes): all three TLS
/// 1.3 suites (HAProxy renders `tls_ciphers` as `ciphers`, which OpenSSL
/// applies to TLS 1.2 and older only), then the TLS 1.2 suites the list
/// leaves, in its order. As in OpenSSL, `-NAME` takes suites out of the
/// list so far (a later word may add them back) and `!NAME` takes them out
/// for good.
pub(crate) fn cipher_suites(
    list: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut suites: Vec<SupportedCipherSuite> = TLS13.iter().map(|(_, s)| *s).collect();
    let Some(list) = list.map(str::trim).filter(|l| !l.is_empty()) else {
        suites.extend(TLS12.iter().map(|(_, s)| *s));
        return Ok(suites);
    };
    let mut tls12: Vec<SupportedCipherSuite> = Vec::new();
    let mut banned: Vec<SupportedCipherSuite> = Vec::new();
    for word in list.split([':', ',', ' ']).filter(|w| !w.is_empty()) {
        match word.as_bytes()[0] {
            b'!' => banned.extend(tls12_named(&word[1..])),
            b'-' => {
                let out = tls12_named(&word[1..]);
                tls12.retain(|s| !out.contains(s));
            }
            // `+NAME` moves suites to the end in OpenSSL; the set is the same.
            b'+' => {}
            _ => {
                for suite in tls12_named(word) {
                    if !tls12.contains(&suite) {
                        tls12.push(suite);
                    }
                }
            }
        }
    }
    tls12.retain(|s| !banned.contains(s));
    let speaks12 = versions
        .iter()
        .any(|v| v.version == rustls::version::TLS12.version);
    if speaks12 && tls12.is_empty() {
        return Err(format!(
            "tls_ciphers {list:?} name no TLSv1.2 cipher suite this data plane has \
             (it has {})",
            TLS12.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ));
    }
    suites.extend(tls12);
    Ok(suites)
}

/// The trust anchors of a PEM bundle (`what` names it in errors).
pub(crate) fn roots(pem: &str, what: &str) -> Result<Arc<rustls::RootCertStore>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in statera_tls::certs_from_pem(pem.as_bytes()).map_err(|e| format!("{what}: {e}"))? {
        roots
            .add(cert)
            .map_err(|e| format!("{what} certificate: {e}"))?;
    }
    Ok(Arc::new(roots))
}

/// The CRLs of a PEM bundle (`what` names it in errors).
pub(crate) fn crls(
    pem: &str,
    what: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let crls = statera_tls::crls_from_pem(pem.as_bytes()).map_err(|e| format!("{what}: {e}"))?;
    Ok(crls
        .into_iter()
        .map(CertificateRevocationListDer::from)
        .collect())
}

/// A certificate with its chain and key, as rustls presents it.
pub(crate) fn certified_key(cert: &TlsCertificate) -> Result<Arc<CertifiedKey>, String> {
    statera_tls::from_pem(
        cert.chain_pem.as_bytes(),
        cert.key_pem.0.as_bytes(),
        None,
        None,
    )
    .and_then(|mut bundle| {
        // `from_pem` keeps the first certificate of its first argument; the
        // rest of the chain is its intermediates.
        bundle.chain = statera_tls::certs_from_pem(cert.chain_pem.as_bytes())?;
        bundle.certified_key()
    })
    .map_err(|e| format!("certificate {}: {e}", cert.reference))
}

/// Picks a certificate by the client's SNI (see the module notes).
#[derive(Debug)]
struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, usize>,
    /// `*.example.com` entries, by `example.com`.
    wildcard: HashMap<String, usize>,
}

impl SniResolver {
    fn new(tls: &ListenerTls) -> Result<SniResolver, String> {
        let mut resolver = SniResolver {
            keys: Vec::with_capacity(tls.certificates.len()),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        for (i, cert) in tls.certificates.iter().enumerate() {
            let bundle = certified_key(cert)?;
            resolver.keys.push(bundle);
            for name in &cert.names {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                match name.strip_prefix("*.") {
                    Some(suffix) => {
                        resolver.wildcard.entry(suffix.to_string()).or_insert(i);
                    }
                    None => {
                        resolver.exact.entry(name).or_insert(i);
                    }
                }
            }
        }
        if resolver.keys.is_empty() {
            return Err("no certificate".into());
        }
        Ok(resolver)
    }

    fn pick(&self, name: Option<&str>) -> usize {
        let Some(name) = name else {
            return 0;
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(i) = self.exact.get(&name) {
            return *i;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .copied()
            .unwrap_or(0)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.keys[self.pick(hello.server_name())].clone())
    }
}

/// What the client's certificate says, as the `X-SSL-*` headers and the
/// `SSL_*` L7 rules read it. A connection without a certificate has
/// `has_cert` false and the rest empty.
#[derive(Debug, Default, Clone)]
pub struct PeerCert {
    pub has_cert: bool,
    /// Subject and issuer as OpenSSL's one-line form: `/C=FR/O=x/CN=y`.
    pub dn: String,
    pub issuer: String,
    /// The subject's fields, in order, by OpenSSL short name.
    pub fields: Vec<(String, String)>,
    /// SHA-1 of the DER, uppercase hex.
    pub sha1: String,
    /// `YYMMDDhhmmssZ`, as OpenSSL prints an ASN.1 time.
    pub not_before: String,
    pub not_after: String,
}

impl PeerCert {
    pub fn of(leaf: Option<&CertificateDer<'_>>) -> PeerCert {
        let Some(leaf) = leaf else {
            return PeerCert::default();
        };
        let mut out = PeerCert {
            has_cert: true,
            ..PeerCert::default()
        };
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf.as_ref());
        out.sha1 = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) {
            out.fields = dn_fields(cert.subject());
            out.dn = one_line(&out.fields);
            out.issuer = one_line(&dn_fields(cert.issuer()));
            out.not_before = asn1_time(&cert.validity().not_before);
            out.not_after = asn1_time(&cert.validity().not_after);
        }
        out
    }

    /// The first value of a subject field by its short name, any case
    /// (`CN`, `cn`, `O`; a dotted OID for one without), as HAProxy's
    /// `ssl_c_s_dn(field)` compares it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Appends the `X-SSL-*` lines `wanted` asks for.
    pub fn write_headers(&self, out: &mut Vec<u8>, wanted: &statera_config::ClientCertHeaders) {
        let quoted = |out: &mut Vec<u8>, name: &str, value: &str| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": \"");
            // Control bytes escaped, never passed (a CR or LF would end
            // the header) nor cut (the member would read another name).
            for b in value.bytes() {
                match b {
                    b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                    0..0x20 | 0x7f => {
                        out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
                    }
                    _ => out.push(b),
                }
            }
            out.extend_from_slice(b"\"\r\n");
        };
        if wanted.verify {
            // Only verified certificates get through the handshake.
            out.extend_from_slice(b"X-SSL-Client-Verify: 0\r\n");
        }
        if wanted.has_cert {
            out.extend_from_slice(if self.has_cert {
                b"X-SSL-Client-Has-Cert: 1\r\n"
            } else {
                b"X-SSL-Client-Has-Cert: 0\r\n"
            });
        }
        if wanted.dn {
            quoted(out, "X-SSL-Client-DN", &self.dn);
        }
        if wanted.cn {
            quoted(out, "X-SSL-Client-CN", self.field("CN").unwrap_or(""));
        }
        if wanted.issuer {
            quoted(out, "X-SSL-Issuer", &self.issuer);
        }
        if wanted.sha1 {
            quoted(out, "X-SSL-Client-SHA1", &self.sha1);
        }
        if wanted.not_before {
            quoted(out, "X-SSL-Client-Not-Before", &self.not_before);
        }
        if wanted.not_after {
            quoted(out, "X-SSL-Client-Not-After", &self.not_after);
        }
    }
}

/// The client-certificate headers a TERMINATED_HTTPS listener sets or, when
/// not asked for, takes out of what the client sent.
pub const CLIENT_CERT_HEADERS: [&[u8]; 8] = [
    b"x-ssl-client-verify",
    b"x-ssl-client-has-cert",
    b"x-ssl-client-dn",
    b"x-ssl-client-cn",
    b"x-ssl-issuer",
    b"x-ssl-client-sha1",
    b"x-ssl-client-not-before",
    b"x-ssl-client-not-after",
];

/// Attribute types by OID, with OpenSSL's short and long names.
const DN_NAMES: [(&str, &str, &str); 19] = [
    ("2.5.4.3", "CN", "commonName"),
    ("2.5.4.4", "SN", "surname"),
    ("2.5.4.5", "serialNumber", "serialNumber"),
    ("2.5.4.6", "C", "countryName"),
    ("2.5.4.7", "L", "localityName"),
    ("2.5.4.8", "ST", "stateOrProvinceName"),
    ("2.5.4.9", "street", "streetAddress"),
    ("2.5.4.10", "O", "organizationName"),
    ("2.5.4.11", "OU", "organizationalUnitName"),
    ("2.5.4.12", "title", "title"),
    ("2.5.4.17", "postalCode", "postalCode"),
    ("2.5.4.41", "name", "name"),
    ("2.5.4.42", "GN", "givenName"),
    ("2.5.4.43", "initials", "initials"),
    ("2.5.4.46", "dnQualifier", "dnQualifier"),
    ("2.5.4.65", "pseudonym", "pseudonym"),
    ("0.9.2342.19200300.100.1.1", "UID", "userId"),
    ("0.9.2342.19200300.100.1.25", "DC", "domainComponent"),
    ("1.2.840.113549.1.9.1", "emailAddress", "emailAddress"),
];

/// A name's fields in order, each by OpenSSL's short name (the dotted OID
/// when OpenSSL has none here), values as text (BMPString and
/// UniversalString decoded; other undecodable bytes replaced).
fn dn_fields(name: &x509_parser::x509::X509Name<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let short = DN_NAMES
                .iter()
                .find(|(o, _, _)| *o == oid)
                .map_or(oid.clone(), |(_, short, _)| short.to_string());
            let any = attr.attr_value();
            let value = match attr.as_str() {
                Ok(text) => text.to_string(),
                Err(_) => match any.tag().0 {
                    // BMPString: UTF-16BE.
                    30 => char::decode_utf16(
                        any.data
                            .chunks(2)
                            .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])),
                    )
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
                    // UniversalString: UTF-32BE.
                    28 => any
                        .data
                        .chunks(4)
                        .map(|c| {
                            let mut b = [0u8; 4];
                            b[..c.len()].copy_from_slice(c);
                            char::from_u32(u32::from_be_bytes(b))
                                .unwrap_or(char::REPLACEMENT_CHARACTER)
                        })
                        .collect(),
                    _ => String::from_utf8_lossy(any.data).into_owned(),
                },
            };
            out.push((short, value));
        }
    }
    out
}

fn one_line(fields: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        out.push('/');
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// OpenSSL's ASN.1 time text for certificates from 2000 to 2099
/// (`YYMMDDhhmmssZ`); empty outside them, as HAProxy gives nothing it
/// cannot print in that form.
fn asn1_time(time: &x509_parser::time::ASN1Time) -> String {
    let t = time.to_datetime();
    if !(2000..2100).contains(&t.year()) {
        return String::new();
    }
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(suites: &[SupportedCipherSuite]) -> Vec<String> {
        suites.iter().map(|s| format!("{:?}", s.suite())).collect()
    }

    #[test]
    fn octavia_default_ciphers_keep_what_rustls_has() {
        let octavia = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
            ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
            ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
            ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:\
            ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:\
            DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256";
        let v = versions(&[]).unwrap();
        let got = cipher_suites(Some(octavia), &v).unwrap();
        // 3 TLS 1.3 + the 6 ECDHE AEAD suites, in the listed order.
        assert_eq!(got.len(), 9);
        let n = names(&got);
        assert!(n[3].contains("ECDHE_ECDSA_WITH_AES_256_GCM"), "{n:?}");
        assert!(n[4].contains("ECDHE_RSA_WITH_AES_256_GCM"), "{n:?}");
    }

    #[test]
    fn aliases_and_removals() {
        let v = versions(&[]).unwrap();
        let tls12 = |list: &str| names(&cipher_suites(Some(list), &v).unwrap()[3..]);
        let n = tls12("HIGH:!aRSA:!CHACHA20");
        assert_eq!(n.len(), 2, "{n:?}");
        assert!(n.iter().all(|n| n.contains("ECDSA") && n.contains("AES")));
        // `A+B`: both; `EDH` (DHE) has none here.
        assert_eq!(tls12("EECDH+AESGCM:EDH+AESGCM").len(), 4);
        // `RSA` is static RSA key exchange: `!RSA` takes none of these.
        assert_eq!(tls12("ECDHE-RSA-AES128-GCM-SHA256:!RSA").len(), 1);
        // `-` takes out of the list so far; a later word adds back. `!` is
        // for good.
        assert_eq!(tls12("HIGH:-CHACHA20:ECDHE-RSA-CHACHA20-POLY1305").len(), 5);
        assert_eq!(tls12("HIGH:!CHACHA20:ECDHE-RSA-CHACHA20-POLY1305").len(), 4);
        // Common lists that ban old versions or MACs keep these suites.
        assert_eq!(tls12("HIGH:!aNULL:!SSLv3:!TLSv1:!SHA256:!SHA384").len(), 6);
        let err = cipher_suites(Some("DHE-RSA-AES128-SHA"), &v).unwrap_err();
        assert!(err.contains("no TLSv1.2 cipher suite"), "{err}");
        // Only TLS 1.3 spoken: a TLS 1.2 list that matches nothing is fine.
        let only13 = versions(&[TlsVersion::TlsV1_3]).unwrap();
        assert_eq!(
            cipher_suites(Some("DHE-RSA-AES128-SHA"), &only13)
                .unwrap()
                .len(),
            3
        );
        // TLS 1.3 names do not restrict TLS 1.3 (HAProxy's `ciphers`).
        let got = cipher_suites(
            Some("TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256"),
            &v,
        )
        .unwrap();
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn header_values_escape_what_could_end_or_change_them() {
        let peer = PeerCert {
            has_cert: true,
            fields: vec![("CN".into(), "admin\r\nX-Evil: 1\u{1}\"q\"".into())],
            ..PeerCert::default()
        };
        let mut out = Vec::new();
        peer.write_headers(
            &mut out,
            &statera_config::ClientCertHeaders {
                cn: true,
                ..Default::default()
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "X-SSL-Client-CN: \"admin\\x0D\\x0AX-Evil: 1\\x01\\\"q\\\"\"\r\n"
        );
        assert_eq!(peer.field("cn"), peer.field("CN"));
        assert!(peer.field("CN").is_some());
        assert_eq!(peer.field("commonName"), None);
    }

    #[test]
    fn versions_are_a_range_of_what_rustls_speaks() {
        assert_eq!(versions(&[]).unwrap().len(), 2);
        assert_eq!(
            versions(&[TlsVersion::TlsV1, TlsVersion::TlsV1_2])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            versions(&[TlsVersion::TlsV1_1, TlsVersion::TlsV1_3])
                .unwrap()
                .len(),
            2
        );
        assert!(versions(&[TlsVersion::TlsV1, TlsVersion::TlsV1_1]).is_err());
    }

    #[test]
    fn sni_exact_then_one_label_wildcard_then_default() {
        let r = SniResolver {
            keys: Vec::new(),
            exact: HashMap::from([("www.example.com".into(), 1)]),
            wildcard: HashMap::from([("sni.example".into(), 2)]),
        };
        assert_eq!(r.pick(Some("WWW.example.com")), 1);
        assert_eq!(r.pick(Some("a.sni.example")), 2);
        assert_eq!(r.pick(Some("a.b.sni.example")), 0);
        assert_eq!(r.pick(Some("sni.example")), 0);
        assert_eq!(r.pick(Some("other")), 0);
        assert_eq!(r.pick(None), 0);
    }
}
