//! TERMINATED_HTTPS and pools over TLS: the files HAProxy reads
//! (certificates with their keys, a crt-list, CAs and CRLs) and the `bind`
//! and `server` options and headers that name them.
//!
//! The files of one set of certificates live in a directory named after
//! their contents (`<lb dir>/tls/<digest>/<listener>/`): the rendered text
//! changes only when a certificate does, so a new version of the load
//! balancer that changes no certificate reloads nothing for it, and the
//! files of the configuration being served are never rewritten under it.

use super::quote;
use statera_config::{
    ClientCertHeaders, DataPlaneError, LbConfig, ListenerConfig, ListenerTls, PoolConfig, PoolTls,
};
use statera_model::{AlpnProtocol, ClientAuthentication, TlsVersion};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One file HAProxy reads; every one is written readable by its owner only
/// (they hold private keys, or sit beside them).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsFile {
    pub path: PathBuf,
    pub contents: String,
}

impl std::fmt::Debug for TlsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its contents may be a private key.
        f.debug_struct("TlsFile")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .finish()
    }
}

/// The directory of `config`'s certificate files under the load balancer's
/// directory `lb_dir`: named by a digest of what they hold.
pub fn tls_dir(config: &LbConfig, lb_dir: &Path) -> PathBuf {
    // SHA-256: tenants choose what is hashed, and two sets of certificates
    // must never share a directory.
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    let mut add = |bytes: &[u8]| {
        h.update(&(bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    for (l, tls) in tls_listeners(config) {
        add(l.id.as_bytes());
        for c in &tls.certificates {
            add(c.chain_pem.as_bytes());
            add(c.key_pem.0.as_bytes());
        }
        add(tls.client_ca_pem.as_deref().unwrap_or("-").as_bytes());
        add(tls.client_crl_pem.as_deref().unwrap_or("-").as_bytes());
    }
    for (p, tls) in tls_pools(config) {
        add(p.id.as_bytes());
        if let Some(c) = &tls.client_certificate {
            add(c.chain_pem.as_bytes());
            add(c.key_pem.0.as_bytes());
        }
        add(tls.ca_pem.as_deref().unwrap_or("-").as_bytes());
        add(tls.crl_pem.as_deref().unwrap_or("-").as_bytes());
    }
    let digest = h.finish();
    let name: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    lb_dir.join("tls").join(name)
}

fn tls_pools(config: &LbConfig) -> impl Iterator<Item = (&PoolConfig, &PoolTls)> {
    config
        .pools
        .iter()
        .filter_map(|p| p.tls.as_ref().map(|t| (p, t)))
}

fn pool_dir(dir: &Path, pool: &PoolConfig) -> PathBuf {
    dir.join(format!("pool-{}", pool.id))
}

fn tls_listeners(config: &LbConfig) -> impl Iterator<Item = (&ListenerConfig, &ListenerTls)> {
    config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref().map(|t| (l, t)))
}

fn listener_dir(dir: &Path, listener: &ListenerConfig) -> PathBuf {
    dir.join(listener.id.to_string())
}

/// Every file the listeners of `config` need, under `dir` (see [`tls_dir`]).
pub fn tls_files(config: &LbConfig, dir: &Path) -> Vec<TlsFile> {
    let mut files = Vec::new();
    for (l, tls) in tls_listeners(config) {
        let ldir = listener_dir(dir, l);
        let mut list = String::new();
        for (n, c) in tls.certificates.iter().enumerate() {
            let path = ldir.join(format!("{n}.pem"));
            // The first line is the default certificate; HAProxy matches
            // SNI against each certificate's CN and DNS names, wildcards
            // included.
            let _ = writeln!(list, "{}", path.display());
            files.push(TlsFile {
                path,
                contents: format!("{}{}", c.chain_pem, c.key_pem.0),
            });
        }
        files.push(TlsFile {
            path: ldir.join("crt-list"),
            contents: list,
        });
        if let Some(ca) = &tls.client_ca_pem {
            files.push(TlsFile {
                path: ldir.join("client-ca.pem"),
                contents: ca.clone(),
            });
        }
        if let Some(crl) = &tls.client_crl_pem {
            files.push(TlsFile {
                path: ldir.join("client-crl.pem"),
                contents: crl.clone(),
            });
        }
    }
    for (p, tls) in tls_pools(config) {
        let pdir = pool_dir(dir, p);
        if let Some(c) = &tls.client_certificate {
            files.push(TlsFile {
                path: pdir.join("client.pem"),
                contents: format!("{}{}", c.chain_pem, c.key_pem.0),
            });
        }
        if let Some(ca) = &tls.ca_pem {
            files.push(TlsFile {
                path: pdir.join("ca.pem"),
                contents: ca.clone(),
            });
        }
        if let Some(crl) = &tls.crl_pem {
            files.push(TlsFile {
                path: pdir.join("crl.pem"),
                contents: crl.clone(),
            });
        }
    }
    files
}

/// What a `server` line of a pool over TLS adds: `ssl`, the member verified
/// against the pool's CA (and CRL) or not at all without one (as in
/// Octavia), the client certificate, versions, ciphers, ALPN. Health checks
/// of such a server go over the same TLS.
pub fn server_options(
    pool: &PoolConfig,
    tls: &PoolTls,
    dir: &Path,
) -> Result<String, DataPlaneError> {
    if let Some(why) = &tls.unreadable {
        return Err(DataPlaneError::Other(format!(
            "pool {} (tls_enabled): {why}",
            pool.id
        )));
    }
    let pdir = pool_dir(dir, pool);
    let mut out = String::from(" ssl");
    match &tls.ca_pem {
        Some(_) => {
            let _ = write!(
                out,
                " verify required ca-file {}",
                pdir.join("ca.pem").display()
            );
            if tls.crl_pem.is_some() {
                let _ = write!(out, " crl-file {}", pdir.join("crl.pem").display());
            }
        }
        None => out.push_str(" verify none"),
    }
    if tls.client_certificate.is_some() {
        let _ = write!(out, " crt {}", pdir.join("client.pem").display());
    }
    versions(&mut out, &tls.versions);
    ciphers(
        &mut out,
        tls.ciphers.as_deref(),
        &format!("pool {}", pool.id),
    )?;
    alpn(&mut out, &tls.alpn_protocols);
    Ok(out)
}

/// What follows `bind <address>` for a TERMINATED_HTTPS listener.
pub fn bind_options(
    listener: &ListenerConfig,
    tls: &ListenerTls,
    dir: &Path,
) -> Result<String, DataPlaneError> {
    let ldir = listener_dir(dir, listener);
    let mut out = format!(" ssl crt-list {}", ldir.join("crt-list").display());
    if tls.client_authentication != ClientAuthentication::None {
        let verify = match tls.client_authentication {
            ClientAuthentication::Mandatory => "required",
            _ => "optional",
        };
        let _ = write!(
            out,
            " ca-file {} verify {verify}",
            ldir.join("client-ca.pem").display()
        );
        if tls.client_crl_pem.is_some() {
            let _ = write!(out, " crl-file {}", ldir.join("client-crl.pem").display());
        }
    }
    versions(&mut out, &tls.versions);
    ciphers(
        &mut out,
        tls.ciphers.as_deref(),
        &format!("listener {}", listener.id),
    )?;
    alpn(&mut out, &tls.alpn_protocols);
    Ok(out)
}

/// `ssl-min-ver`/`ssl-max-ver` around the listed versions. A version
/// between them that is not listed is accepted too: HAProxy ignores its
/// `no-tlsv1x` words once a minimum or maximum is set, and OpenSSL only
/// knows a range (Octavia's rendering ends the same way).
fn versions(out: &mut String, listed: &[TlsVersion]) {
    let (Some(min), Some(max)) = (
        listed.iter().min_by_key(|v| rank(**v)),
        listed.iter().max_by_key(|v| rank(**v)),
    ) else {
        return;
    };
    let _ = write!(
        out,
        " ssl-min-ver {} ssl-max-ver {}",
        version(*min),
        version(*max)
    );
}

/// An OpenSSL cipher string, which cannot leave its word of the line.
fn ciphers(out: &mut String, ciphers: Option<&str>, owner: &str) -> Result<(), DataPlaneError> {
    let Some(ciphers) = ciphers else {
        return Ok(());
    };
    if ciphers.is_empty()
        || !ciphers
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_+!@=.".contains(&b))
    {
        return Err(DataPlaneError::Unsupported(format!(
            "tls_ciphers of {owner} holds characters no OpenSSL cipher string has"
        )));
    }
    let _ = write!(out, " ciphers {ciphers}");
    Ok(())
}

fn alpn(out: &mut String, protocols: &[AlpnProtocol]) {
    if !protocols.is_empty() {
        let names: Vec<&str> = protocols.iter().map(|p| alpn_name(*p)).collect();
        let _ = write!(out, " alpn {}", names.join(","));
    }
}

/// The `http-request`/`http-response` lines of a TERMINATED_HTTPS listener:
/// the client certificate's headers, HSTS.
pub fn http_lines(
    out: &mut String,
    tls: &ListenerTls,
    h: &ClientCertHeaders,
) -> Result<(), DataPlaneError> {
    let headers: [(bool, &str, &str); 8] = [
        (h.verify, "X-SSL-Client-Verify", "%[ssl_c_verify]"),
        (h.has_cert, "X-SSL-Client-Has-Cert", "%[ssl_c_used]"),
        (h.dn, "X-SSL-Client-DN", "%{+Q}[ssl_c_s_dn]"),
        (h.cn, "X-SSL-Client-CN", "%{+Q}[ssl_c_s_dn(cn)]"),
        (h.issuer, "X-SSL-Issuer", "%{+Q}[ssl_c_i_dn]"),
        (h.sha1, "X-SSL-Client-SHA1", "%{+Q}[ssl_c_sha1,hex]"),
        (
            h.not_before,
            "X-SSL-Client-Not-Before",
            "%{+Q}[ssl_c_notbefore]",
        ),
        (
            h.not_after,
            "X-SSL-Client-Not-After",
            "%{+Q}[ssl_c_notafter]",
        ),
    ];
    for (on, name, value) in headers {
        if on {
            let _ = writeln!(out, "    http-request set-header {name} {value}");
        } else {
            // A client cannot forge what the member trusts as the proxy's.
            let _ = writeln!(out, "    http-request del-header {name}");
        }
    }
    if let Some(hsts) = tls.hsts {
        let mut value = format!("max-age={}", hsts.max_age);
        if hsts.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if hsts.preload {
            value.push_str("; preload");
        }
        let _ = writeln!(
            out,
            "    http-response set-header Strict-Transport-Security {}",
            quote(&value)?
        );
    }
    Ok(())
}

const ALL_VERSIONS: [TlsVersion; 5] = [
    TlsVersion::SslV3,
    TlsVersion::TlsV1,
    TlsVersion::TlsV1_1,
    TlsVersion::TlsV1_2,
    TlsVersion::TlsV1_3,
];

fn rank(v: TlsVersion) -> usize {
    ALL_VERSIONS.iter().position(|a| *a == v).unwrap_or(0)
}

fn version(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::SslV3 => "SSLv3",
        TlsVersion::TlsV1 => "TLSv1.0",
        TlsVersion::TlsV1_1 => "TLSv1.1",
        TlsVersion::TlsV1_2 => "TLSv1.2",
        TlsVersion::TlsV1_3 => "TLSv1.3",
    }
}

fn alpn_name(p: AlpnProtocol) -> &'static str {
    match p {
        AlpnProtocol::H2 => "h2",
        AlpnProtocol::Http11 => "http/1.1",
        AlpnProtocol::Http10 => "http/1.0",
    }
}
