//! TERMINATED_HTTPS: the files HAProxy reads (certificates with their keys,
//! a crt-list, client CA and CRL) and the `bind` options and headers that
//! name them.
//!
//! The files of one set of certificates live in a directory named after
//! their contents (`<lb dir>/tls/<digest>/<listener>/`): the rendered text
//! changes only when a certificate does, so a new version of the load
//! balancer that changes no certificate reloads nothing for it, and the
//! files of the configuration being served are never rewritten under it.

use super::quote;
use statera_config::{ClientCertHeaders, DataPlaneError, LbConfig, ListenerConfig, ListenerTls};
use statera_model::{AlpnProtocol, ClientAuthentication, TlsVersion};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// One file HAProxy reads; every one is written readable by its owner only
/// (they hold private keys, or sit beside them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFile {
    pub path: PathBuf,
    pub contents: String,
}

/// The directory of `config`'s certificate files under the load balancer's
/// directory `lb_dir`: named by a digest of what they hold.
pub fn tls_dir(config: &LbConfig, lb_dir: &Path) -> PathBuf {
    // The same in every process of one build (a new build may name the
    // directory differently: one reload); it names a directory and guards
    // nothing.
    let mut h = std::hash::DefaultHasher::new();
    for l in tls_listeners(config) {
        l.0.id.hash(&mut h);
        for c in &l.1.certificates {
            c.chain_pem.hash(&mut h);
            c.key_pem.0.hash(&mut h);
        }
        l.1.client_ca_pem.hash(&mut h);
        l.1.client_crl_pem.hash(&mut h);
    }
    lb_dir.join("tls").join(format!("{:016x}", h.finish()))
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
    files
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
    let versions: Vec<&str> = tls.versions.iter().map(|v| version(*v)).collect();
    if let (Some(min), Some(max)) = (
        tls.versions.iter().min_by_key(|v| rank(**v)),
        tls.versions.iter().max_by_key(|v| rank(**v)),
    ) {
        let _ = write!(
            out,
            " ssl-min-ver {} ssl-max-ver {}",
            version(*min),
            version(*max)
        );
        // A version between them that is not listed is refused too.
        for v in ALL_VERSIONS {
            if rank(v) > rank(*min) && rank(v) < rank(*max) && !versions.contains(&version(v)) {
                let _ = write!(out, " {}", no_version(v));
            }
        }
    }
    if let Some(ciphers) = &tls.ciphers {
        if !ciphers
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_+!@=.".contains(&b))
        {
            return Err(DataPlaneError::Unsupported(format!(
                "tls_ciphers of listener {} holds characters no OpenSSL cipher string has",
                listener.id
            )));
        }
        let _ = write!(out, " ciphers {ciphers}");
    }
    if !tls.alpn_protocols.is_empty() {
        let alpn: Vec<&str> = tls.alpn_protocols.iter().map(|p| alpn(*p)).collect();
        let _ = write!(out, " alpn {}", alpn.join(","));
    }
    Ok(out)
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

fn no_version(v: TlsVersion) -> &'static str {
    match v {
        TlsVersion::SslV3 => "no-sslv3",
        TlsVersion::TlsV1 => "no-tlsv10",
        TlsVersion::TlsV1_1 => "no-tlsv11",
        TlsVersion::TlsV1_2 => "no-tlsv12",
        TlsVersion::TlsV1_3 => "no-tlsv13",
    }
}

fn alpn(p: AlpnProtocol) -> &'static str {
    match p {
        AlpnProtocol::H2 => "h2",
        AlpnProtocol::Http11 => "http/1.1",
        AlpnProtocol::Http10 => "http/1.0",
    }
}
