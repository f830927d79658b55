//! The certificate references of listeners and pools, read as Octavia reads
//! them, with the caller's rights: a reference the caller cannot decrypt is
//! the same 400 as one that names nothing.
//!
//! A certificate reference names a secret holding a PKCS#12 bundle
//! (Octavia's preferred form) or a certificate container (certificate,
//! private key, intermediates, passphrase). A client CA or CRL reference
//! names a secret holding PEM.
//!
//! Reading a PKCS#12 bundle costs key-derivation work, bounded by
//! `statera-tls`; callers run [`check_refs`] off the async runtime and
//! outside any write transaction.

use super::*;
use statera_tls::{CertBundle, CertError, CertInput};

/// One reference of a request, by what it must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsRef {
    /// A certificate and key (`default_tls_container_ref`,
    /// `sni_container_refs`, a pool's `tls_container_ref`).
    Certificate(String),
    /// PEM CA certificates (`client_ca_tls_container_ref`,
    /// `ca_tls_container_ref`).
    Ca(String),
    /// A PEM CRL (`client_crl_container_ref`, `crl_container_ref`).
    Crl(String),
}

/// What a reference names: `…/secrets/<uuid>` or `…/containers/<uuid>` (a
/// URL as the key manager renders it; the host part is not compared, as a
/// deployment has several names), or a bare secret UUID.
fn target(r: &str) -> Option<(bool, Uuid)> {
    let path = r.split(['?', '#']).next()?.trim_end_matches('/');
    let mut segs = path.rsplit('/');
    let id = Uuid::parse_str(segs.next()?).ok()?;
    match segs.next() {
        None => Some((false, id)),
        Some("secrets") => Some((false, id)),
        Some("containers") => Some((true, id)),
        Some(_) => None,
    }
}

fn pkcs12_unreadable(detail: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(format!(
        "The PKCS12 bundle is unreadable. Please check the PKCS12 bundle validity. In addition, make sure it does not require a pass phrase. Error: {detail}"
    ))
}

/// Why one certificate reference failed: unreadable (Octavia lists those
/// refs), or an error of its own.
enum Failure {
    Unreadable,
    Own(ServiceError),
}

/// Who reads a reference.
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    /// A request's caller, with its rights (the API's checks), for a load
    /// balancer of the given project: only that project's objects, since
    /// the load balancer reads its certificates as its project (`Project`
    /// below), so a reference to another project's object that an ACL lets
    /// the caller read would pass here and never serve. (Octavia reads
    /// those through its service user's ACL entry; Statera has no such
    /// user.)
    Caller(&'a Context, &'a str),
    /// The controller, for a load balancer of this project: objects the
    /// project owns, unexpired (what the API let the project's member
    /// reference; an ACL grants users, not the load balancer).
    Project(&'a str),
}

impl Reader<'_> {
    fn read<G: Guarded>(
        self,
        s: &impl StoreRead,
        id: Uuid,
        rule: &str,
        op: &str,
    ) -> Option<Arc<G>> {
        match self {
            Reader::Caller(ctx, project) => guarded::<G>(ctx, s, id, rule, op)
                .ok()
                .filter(|o| o.project() == project),
            Reader::Project(project) => s
                .get::<G>(&id)
                .filter(|o| o.project() == project && !o.expired(now())),
        }
    }
}

/// The certificate and key a reference names, as `reader` may read it,
/// read by `read` (`CertInput::read` with the key manager's isolation, or a
/// cache in front of it).
pub fn certificate(
    reader: Reader<'_>,
    km: &KeyManager,
    s: &impl StoreRead,
    r: &str,
    read: impl FnOnce(CertInput<'_>) -> Result<CertBundle, CertError>,
) -> Result<CertBundle, ServiceError> {
    certificate_inner(reader, km, s, r, read).map_err(|f| match f {
        Failure::Unreadable => could_not_retrieve(&[r]),
        Failure::Own(e) => e,
    })
}

fn certificate_inner(
    reader: Reader<'_>,
    km: &KeyManager,
    s: &impl StoreRead,
    r: &str,
    read: impl FnOnce(CertInput<'_>) -> Result<CertBundle, CertError>,
) -> Result<CertBundle, Failure> {
    let (container, id) = target(r).ok_or(Failure::Unreadable)?;
    let payload = |id: Uuid| -> Result<Vec<u8>, Failure> {
        let secret = reader
            .read::<Secret>(s, id, SECRET_DECRYPT, "Secret payload retrieval")
            .ok_or(Failure::Unreadable)?;
        open_payload(km, &secret)
            .map(|(bytes, _)| bytes)
            .map_err(|_| Failure::Unreadable)
    };
    let named = |e: CertError| match e {
        CertError::NoHostNames => Failure::Own(ServiceError::Invalid(e.to_string())),
        CertError::TooCostly(_) => Failure::Own(ServiceError::validation(e)),
        _ => Failure::Unreadable,
    };
    if !container {
        let bytes = payload(id)?;
        return read(CertInput::Pkcs12(&bytes)).map_err(|e| match e {
            CertError::Pkcs12(d) => Failure::Own(pkcs12_unreadable(d)),
            CertError::NoHostNames | CertError::TooCostly(_) => named(e),
            other => Failure::Own(pkcs12_unreadable(other)),
        });
    }
    let c = reader
        .read::<SecretContainer>(s, id, CONTAINER_GET, "Container retrieval")
        .ok_or(Failure::Unreadable)?;
    if c.kind != "certificate" {
        return Err(Failure::Unreadable);
    }
    let part = |name: &str| -> Result<Option<Vec<u8>>, Failure> {
        match c.secret_refs.iter().find(|r| r.name == name) {
            Some(r) => payload(r.secret_id).map(Some),
            None => Ok(None),
        }
    };
    let cert = part("certificate")?.ok_or(Failure::Unreadable)?;
    let key = part("private_key")?.ok_or(Failure::Unreadable)?;
    let pass = part("private_key_passphrase")?;
    let inter = part("intermediates")?;
    read(CertInput::Pem {
        cert: &cert,
        key: &key,
        passphrase: pass.as_deref(),
        intermediates: inter.as_deref(),
    })
    .map_err(named)
}

/// Octavia's 400 for references it could not read.
fn could_not_retrieve(refs: &[&str]) -> ServiceError {
    let list: Vec<String> = refs.iter().map(|r| format!("'{r}'")).collect();
    ServiceError::Invalid(format!(
        "Could not retrieve certificate: [{}]",
        list.join(", ")
    ))
}

/// The PEM payload of a CA or CRL reference (a secret), as `reader` may
/// read it.
pub fn pem_payload(
    reader: Reader<'_>,
    km: &KeyManager,
    s: &impl StoreRead,
    r: &str,
) -> Option<Vec<u8>> {
    let (false, id) = target(r)? else {
        return None;
    };
    let secret = reader.read::<Secret>(s, id, SECRET_DECRYPT, "Secret payload retrieval")?;
    open_payload(km, &secret).ok().map(|(b, _)| b)
}

/// Every reference of one request for a load balancer of `project`:
/// certificates first (all unreadable ones in one message, as Octavia lists
/// them), then CAs, then CRLs.
pub fn check_refs(
    ctx: &Context,
    km: &KeyManager,
    s: &impl StoreRead,
    refs: &[TlsRef],
    project: &str,
) -> ServiceResult<()> {
    let mut unreadable: Vec<&str> = Vec::new();
    for r in refs {
        if let TlsRef::Certificate(r) = r {
            let read = |input: CertInput<'_>| input.read(&km.pkcs12);
            match certificate_inner(Reader::Caller(ctx, project), km, s, r, read) {
                Ok(_) => {}
                Err(Failure::Unreadable) => unreadable.push(r),
                Err(Failure::Own(e)) => return Err(e),
            }
        }
    }
    if !unreadable.is_empty() {
        return Err(could_not_retrieve(&unreadable));
    }
    let mut cas = Vec::new();
    for r in refs {
        if let TlsRef::Ca(r) = r {
            let pem = pem_payload(Reader::Caller(ctx, project), km, s, r)
                .ok_or_else(|| could_not_retrieve(&[r]))?;
            let certs = statera_tls::certs_from_pem(&pem).map_err(|e| {
                ServiceError::validation(format!(
                    "The client authentication CA certificate is invalid. It must be a valid x509 PEM format certificate. Error: {e}"
                ))
            })?;
            cas.extend(certs);
        }
    }
    for r in refs {
        if let TlsRef::Crl(r) = r {
            let pem = pem_payload(Reader::Caller(ctx, project), km, s, r)
                .ok_or_else(|| could_not_retrieve(&[r]))?;
            let crls = statera_tls::crls_from_pem(&pem).map_err(|e| {
                ServiceError::validation(format!(
                    "The client authentication certificate revocation list is invalid. It must be a valid x509 PEM format certificate revocation list. Error: {e}"
                ))
            })?;
            // Octavia's check: the CRL is the CA's (signed by it).
            if !cas.is_empty() && !statera_tls::crls_signed_by(&crls, &cas) {
                return Err(ServiceError::validation(
                    "The CRL specified is not valid for client certificate authority reference supplied.",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_secrets_or_containers() {
        let id = Uuid::new_v4();
        assert_eq!(
            target(&format!("http://h:9876/key-manager/v1/secrets/{id}")),
            Some((false, id))
        );
        assert_eq!(
            target(&format!("https://kms/v1/containers/{id}/")),
            Some((true, id))
        );
        assert_eq!(target(&id.to_string()), Some((false, id)));
        assert_eq!(target(&format!("http://h/v1/orders/{id}")), None);
        assert_eq!(target("http://h/v1/secrets/not-a-uuid"), None);
    }
}
