//! TERMINATED_HTTPS listeners: their certificates read from the key manager
//! for the load balancer's project and carried in the configuration.
//!
//! The API checked every reference with the caller's rights when it was
//! set; here they are read again for each configuration as the load
//! balancer's project (a reference deleted since, or expired, makes the
//! listener unservable: its data plane refuses it and says why). Reading a
//! PKCS#12 bundle costs a child process and key derivation, so bundles are
//! remembered by the digest of their bytes: a secret's payload never
//! changes, and the digest follows one that is deleted and stored again.

use statera_config::{Hsts, ListenerTls, PrivateKeyPem, TlsCertificate};
use statera_model::{ClientAuthentication, Listener};
use statera_service::keymanager::KeyManager;
use statera_service::keymanager::tls::{Reader, certificate, pem_payload};
use statera_store::State;
use statera_tls::{CertBundle, CertError};
use std::collections::HashMap;
use std::sync::Arc;

/// Bundles remembered at most (a few KiB each).
const MAX_REMEMBERED: usize = 1024;

pub struct Certificates {
    km: Arc<KeyManager>,
    /// PKCS#12 bundles read, by the SHA-256 of their bytes.
    read: HashMap<Vec<u8>, CertBundle>,
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
        let reader = Reader::Project(project);
        let mut refs: Vec<&String> = l.default_tls_container_ref.iter().collect();
        for r in &l.sni_container_refs {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        if refs.is_empty() {
            return Err("the listener has no default_tls_container_ref".into());
        }
        let mut certificates = Vec::with_capacity(refs.len());
        let km = self.km.clone();
        for r in refs {
            let bundle = certificate(reader, &km, s, r, |bytes| self.pkcs12(bytes))
                .map_err(|e| format!("certificate {r}: {e}"))?;
            certificates.push(TlsCertificate {
                reference: r.clone(),
                chain_pem: bundle.chain_pem(),
                key_pem: PrivateKeyPem(bundle.key_pem()),
                names: bundle.names,
            });
        }
        let pem = |r: &Option<String>, what: &str| -> Result<Option<String>, String> {
            let Some(r) = r else { return Ok(None) };
            let bytes = pem_payload(reader, &km, s, r)
                .ok_or_else(|| format!("{what} {r} could not be read"))?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| format!("{what} {r} is not PEM text"))
        };
        let client_ca_pem = pem(&l.client_ca_tls_container_ref, "client CA")?;
        let client_crl_pem = pem(&l.client_crl_container_ref, "client CRL")?;
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

    fn pkcs12(&mut self, bytes: &[u8]) -> Result<CertBundle, CertError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes)
            .as_ref()
            .to_vec();
        if let Some(b) = self.read.get(&digest) {
            return Ok(b.clone());
        }
        // Off the async runtime's worker while the child reads it.
        let read = || statera_tls::read_pkcs12(bytes, &self.km.pkcs12);
        let bundle = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(read),
            _ => read(),
        }?;
        if self.read.len() >= MAX_REMEMBERED {
            self.read.clear();
        }
        self.read.insert(digest, bundle.clone());
        Ok(bundle)
    }
}
