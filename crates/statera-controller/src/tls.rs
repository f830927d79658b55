//! TERMINATED_HTTPS listeners and pools over TLS: their certificates, CAs
//! and CRLs read from the key manager for the load balancer's project and
//! carried in the configuration.
//!
//! The API checked every reference with the caller's rights when it was
//! set; here they are read again for each configuration as the load
//! balancer's project (a reference deleted since, or expired, makes the
//! listener unservable: its data plane leaves it out and says why). Reading
//! a PKCS#12 bundle costs a child process and key derivation, a container's
//! encrypted key a derivation, so what was read is remembered by the digest
//! of its bytes: a secret's payload never changes, and the digest follows
//! one that is deleted and stored again. The controller does this reading
//! off its async worker (`Controller::build`).

use statera_config::{Hsts, ListenerTls, PoolTls, PrivateKeyPem, TlsCertificate};
use statera_model::{ClientAuthentication, Listener, Pool};
use statera_service::keymanager::KeyManager;
use statera_service::keymanager::tls::{Reader, certificate, pem_payload};
use statera_store::State;
use statera_tls::{CertBundle, CertError, CertInput};
use std::collections::HashMap;
use std::sync::Arc;

/// Bundles remembered at most (a few KiB each).
const MAX_REMEMBERED: usize = 1024;
/// How long a failed read is remembered before it is tried again.
const RETRY_FAILED_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

pub struct Certificates {
    km: Arc<KeyManager>,
    /// Inputs read (bundles, containers' parts), by the SHA-256 of their
    /// bytes, with what reading them gave and when: a payload never
    /// changes, so neither does a success; a failure is tried again after
    /// [`RETRY_FAILED_AFTER`].
    read: HashMap<Vec<u8>, (Result<CertBundle, CertError>, std::time::Instant)>,
}

impl Certificates {
    pub fn new(km: Arc<KeyManager>) -> Certificates {
        Certificates {
            km,
            read: HashMap::new(),
        }
    }

    /// What `l` (of a load balancer of `project`) serves, or why it cannot.
    pub fn listener(
        &mut self,
        s: &State,
        project: &str,
        l: &Listener,
    ) -> Result<ListenerTls, String> {
        let mut refs: Vec<&String> = l.default_tls_container_ref.iter().collect();
        for r in &l.sni_container_refs {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        if refs.is_empty() {
            return Err("the listener has no default_tls_container_ref".into());
        }
        let certificates = refs
            .into_iter()
            .map(|r| self.certificate(s, project, r))
            .collect::<Result<Vec<_>, _>>()?;
        let client_ca_pem = self.pem(
            s,
            project,
            l.client_ca_tls_container_ref.as_deref(),
            "client CA",
        )?;
        let client_crl_pem = self.pem(
            s,
            project,
            l.client_crl_container_ref.as_deref(),
            "client CRL",
        )?;
        if l.client_authentication != ClientAuthentication::None && client_ca_pem.is_none() {
            return Err("client_authentication needs client_ca_tls_container_ref".into());
        }
        Ok(ListenerTls {
            certificates,
            client_authentication: l.client_authentication,
            client_ca_pem,
            client_crl_pem,
            versions: l.tls_versions.clone().unwrap_or_default(),
            ciphers: l.tls_ciphers.clone().filter(|c| !c.is_empty()),
            alpn_protocols: l.alpn_protocols.clone().unwrap_or_default(),
            hsts: l.hsts_max_age.and_then(|age| {
                Some(Hsts {
                    max_age: u64::try_from(age).ok()?,
                    include_subdomains: l.hsts_include_subdomains,
                    preload: l.hsts_preload,
                })
            }),
        })
    }

    /// How `p` (a `tls_enabled` pool of a load balancer of `project`) speaks
    /// TLS to its members; a reference that does not read leaves the pool
    /// marked unreadable (never served in plain text instead).
    pub fn pool(&mut self, s: &State, project: &str, p: &Pool) -> PoolTls {
        let read = |this: &mut Self| -> Result<PoolTls, String> {
            Ok(PoolTls {
                unreadable: None,
                client_certificate: p
                    .tls_container_ref
                    .as_deref()
                    .map(|r| this.certificate(s, project, r))
                    .transpose()?,
                ca_pem: this.pem(s, project, p.ca_tls_container_ref.as_deref(), "member CA")?,
                crl_pem: this.pem(s, project, p.crl_container_ref.as_deref(), "member CRL")?,
                versions: p.tls_versions.clone().unwrap_or_default(),
                ciphers: p.tls_ciphers.clone().filter(|c| !c.is_empty()),
                alpn_protocols: p.alpn_protocols.clone().unwrap_or_default(),
            })
        };
        read(self).unwrap_or_else(PoolTls::unreadable)
    }

    /// The certificate and key `r` names, read for `project`.
    fn certificate(&mut self, s: &State, project: &str, r: &str) -> Result<TlsCertificate, String> {
        let km = self.km.clone();
        let bundle = certificate(Reader::Project(project), &km, s, r, |input| {
            self.read(input)
        })
        .map_err(|e| format!("certificate {r}: {e}"))?;
        Ok(TlsCertificate {
            reference: r.to_string(),
            chain_pem: bundle.chain_pem(),
            key_pem: PrivateKeyPem(bundle.key_pem()),
            names: bundle.names,
        })
    }

    /// The PEM text of the secret `r` names (a CA or CRL), read for `project`.
    fn pem(
        &self,
        s: &State,
        project: &str,
        r: Option<&str>,
        what: &str,
    ) -> Result<Option<String>, String> {
        let Some(r) = r else { return Ok(None) };
        let bytes = pem_payload(Reader::Project(project), &self.km, s, r)
            .ok_or_else(|| format!("{what} {r} could not be read"))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{what} {r} is not PEM text"))
    }

    /// `input` read, or what reading it gave before.
    fn read(&mut self, input: CertInput<'_>) -> Result<CertBundle, CertError> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in input.parts() {
            // Each part length-prefixed (an absent one as u64::MAX), so
            // parts cannot run into each other.
            let (len, bytes) = part.map_or((u64::MAX, &[][..]), |p| (p.len() as u64, p));
            ctx.update(&len.to_be_bytes());
            ctx.update(bytes);
        }
        let digest = ctx.finish().as_ref().to_vec();
        match self.read.get(&digest) {
            // A failure may have been the reader's (a child that could not
            // start, a deadline under load): read again after a while.
            Some((Err(_), at)) if at.elapsed() > RETRY_FAILED_AFTER => {}
            Some((known, _)) => return known.clone(),
            None => {}
        }
        let result = input.read(&self.km.pkcs12);
        if self.read.len() >= MAX_REMEMBERED {
            self.read.clear();
        }
        self.read
            .insert(digest, (result.clone(), std::time::Instant::now()));
        result
    }
}
