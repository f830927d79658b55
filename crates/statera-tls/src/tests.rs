use super::*;
use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain,
};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a leaf it signed for `names` (the first also the CN).
struct Pki {
    ca_pem: String,
    leaf_pem: String,
    leaf_key: KeyPair,
}

fn pki(names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = names.first() {
        leaf.distinguished_name.push(DnType::CommonName, *cn);
    }
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        leaf_pem: leaf_cert.pem(),
        leaf_key,
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn p12(p: &Pki, key: &KeyPair, password: &str, iterations: Option<u32>) -> Vec<u8> {
    let chain = PrivateKeyChain::new(
        vec![1u8; 20],
        PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [
            Certificate::from_der(&der_of(&p.leaf_pem)).unwrap(),
            Certificate::from_der(&der_of(&p.ca_pem)).unwrap(),
        ],
    );
    let mut ks = KeyStore::new();
    ks.add_entry("server", KeyStoreEntry::PrivateKeyChain(chain));
    let mut w = ks
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256);
    if let Some(n) = iterations {
        w = w.encryption_iterations(n).mac_iterations(n);
    }
    w.write().unwrap()
}

#[test]
fn a_pkcs12_bundle_gives_its_chain_leaf_first_and_its_key() {
    let p = pki(&["www.example.com", "*.example.org"]);
    let b = from_pkcs12(&p12(&p, &p.leaf_key, "", None)).unwrap();
    assert_eq!(b.chain.len(), 2);
    assert_eq!(b.chain[0].as_ref(), der_of(&p.leaf_pem).as_slice());
    assert_eq!(b.names, ["www.example.com", "*.example.org"]);
    b.certified_key().unwrap();
    // Its KDF work is counted and within bounds.
    let work = kdf_work(&p12(&p, &p.leaf_key, "", None)).unwrap();
    assert!(work > 0 && work <= MAX_KDF_ITERATIONS, "{work}");
}

#[test]
fn pkcs12_refusals() {
    let p = pki(&["www.example.com"]);
    // A password: Octavia needs bundles without one.
    let e = from_pkcs12(&p12(&p, &p.leaf_key, "secret", None)).unwrap_err();
    assert!(
        matches!(e, CertError::Pkcs12(ref m) if m.contains("pass phrase")),
        "{e}"
    );
    // Not PKCS#12 at all.
    assert!(matches!(
        from_pkcs12(b"-----BEGIN CERTIFICATE-----").unwrap_err(),
        CertError::Pkcs12(_)
    ));
    // A key that is not the certificate's.
    let other = KeyPair::generate().unwrap();
    assert_eq!(
        from_pkcs12(&p12(&p, &other, "", None)).unwrap_err(),
        CertError::MismatchedKey
    );
    // Key derivation beyond the bound: refused before any is run.
    let costly = p12(&p, &p.leaf_key, "", Some(250_000));
    assert!(matches!(
        kdf_work(&costly).unwrap_err(),
        CertError::TooCostly(_)
    ));
    assert!(matches!(
        from_pkcs12(&costly).unwrap_err(),
        CertError::TooCostly(_)
    ));
}

#[test]
fn a_certificate_container_in_pem() {
    let p = pki(&["api.example.com"]);
    let key = p.leaf_key.serialize_pem();
    let b = from_pem(
        p.leaf_pem.as_bytes(),
        key.as_bytes(),
        None,
        Some(p.ca_pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(b.chain.len(), 2);
    assert_eq!(b.names, ["api.example.com"]);
    assert_eq!(
        from_pem(b"not a cert", key.as_bytes(), None, None).unwrap_err(),
        CertError::UnreadableCert
    );
    let other = KeyPair::generate().unwrap().serialize_pem();
    assert_eq!(
        from_pem(p.leaf_pem.as_bytes(), other.as_bytes(), None, None).unwrap_err(),
        CertError::MismatchedKey
    );
    assert_eq!(
        from_pem(p.leaf_pem.as_bytes(), b"junk", None, None).unwrap_err(),
        CertError::UnreadableKey
    );
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMA==\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert_eq!(
        from_pem(p.leaf_pem.as_bytes(), encrypted.as_bytes(), None, None).unwrap_err(),
        CertError::NeedsPassphrase
    );
}

#[test]
fn a_certificate_without_host_names_is_refused() {
    let p = pki(&[]);
    let key = p.leaf_key.serialize_pem();
    assert_eq!(
        from_pem(p.leaf_pem.as_bytes(), key.as_bytes(), None, None).unwrap_err(),
        CertError::NoHostNames
    );
}

#[test]
fn kdf_parameters_are_read_from_der() {
    // PBKDF2 OID, then SEQUENCE { OCTET STRING(2), INTEGER 0x07a120 (500,000) }
    let mut der = PBKDF2_OID.to_vec();
    der.extend([
        0x30, 0x09, 0x04, 0x02, 0xaa, 0xbb, 0x02, 0x03, 0x07, 0xa1, 0x20,
    ]);
    assert_eq!(kdf_work(&der).unwrap(), 500_000);
    der.extend(PBKDF2_OID);
    der.extend([
        0x30, 0x09, 0x04, 0x02, 0xaa, 0xbb, 0x02, 0x03, 0x07, 0xa1, 0x20,
    ]);
    assert!(matches!(kdf_work(&der), Err(CertError::TooCostly(_))));
    // Parameters that cannot be read are refused, not skipped.
    let mut bad = PBKDF2_OID.to_vec();
    bad.extend([0x05, 0x00]);
    assert!(matches!(kdf_work(&bad), Err(CertError::TooCostly(_))));
    assert!(matches!(kdf_work(SCRYPT_OID), Err(CertError::TooCostly(_))));
}

/// A stand-in for the reader process that misbehaves as `body` says.
fn script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join("reader");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn a_reader_that_burns_cpu_is_stopped_by_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let exe = script(dir.path(), "exec yes > /dev/null");
    let t = std::time::Instant::now();
    let e = read_pkcs12(b"x", &Isolation::Subprocess { exe }).unwrap_err();
    assert!(matches!(e, CertError::TooCostly(_)), "{e}");
    assert!(t.elapsed() < isolated::WALL + std::time::Duration::from_secs(1));
}

#[test]
fn a_reader_that_hangs_is_killed_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let exe = script(dir.path(), "exec sleep 30");
    let t = std::time::Instant::now();
    let e = read_pkcs12(b"x", &Isolation::Subprocess { exe }).unwrap_err();
    assert!(matches!(e, CertError::TooCostly(_)), "{e}");
    assert!(t.elapsed() < isolated::WALL + std::time::Duration::from_secs(2));
}

#[test]
fn a_readers_answer_is_checked_again() {
    let dir = tempfile::tempdir().unwrap();
    // A well-formed "ok" whose key is not the certificate's.
    let p = pki(&["www.example.com"]);
    let other = KeyPair::generate().unwrap();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let answer = format!(
        "ok\n{}\n{}\n",
        b64(&other.serialize_der()),
        b64(&der_of(&p.leaf_pem))
    );
    let exe = script(
        dir.path(),
        &format!("cat > /dev/null; printf '{}'", answer.replace('\n', "\\n")),
    );
    assert_eq!(
        read_pkcs12(b"x", &Isolation::Subprocess { exe }).unwrap_err(),
        CertError::MismatchedKey
    );
    // An error line comes back as the error.
    let exe = script(dir.path(), "cat > /dev/null; echo 'err no-names '");
    assert_eq!(
        read_pkcs12(b"x", &Isolation::Subprocess { exe }).unwrap_err(),
        CertError::NoHostNames
    );
}

#[test]
fn a_bundle_written_as_pem_reads_back_the_same() {
    let p = pki(&["www.example.com"]);
    let b = from_pkcs12(&p12(&p, &p.leaf_key, "", None)).unwrap();
    let chain = b.chain_pem();
    let key = b.key_pem();
    assert!(
        chain.starts_with("-----BEGIN CERTIFICATE-----\n"),
        "{chain}"
    );
    assert!(chain.lines().all(|l| l.len() <= 64));
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key}");
    assert_eq!(certs_from_pem(chain.as_bytes()).unwrap(), b.chain);
    // (A container's certificate is its leaf: the rest are its intermediates.)
    let again = from_pem(chain.as_bytes(), key.as_bytes(), None, None).unwrap();
    assert_eq!(again.chain[0], b.chain[0]);
    assert_eq!(again.key.secret_der(), b.key.secret_der());
    assert_eq!(again.names, b.names);
}

/// A self-signed CA: its certificate (DER) and its issuer.
fn ca(name: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.der().to_vec(), Issuer::new(params, key))
}

#[test]
fn a_crl_belongs_to_the_ca_that_signed_it() {
    let (ca1, issuer1) = ca("CA one");
    let (ca2, _) = ca("CA two");
    let now = rcgen::date_time_ymd(2026, 1, 1);
    let crl = rcgen::CertificateRevocationListParams {
        this_update: now,
        next_update: rcgen::date_time_ymd(2036, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer1)
    .unwrap();
    let crls = crls_from_pem(crl.pem().unwrap().as_bytes()).unwrap();
    let der = |d: &[u8]| CertificateDer::from(d.to_vec());
    assert!(crls_signed_by(&crls, &[der(&ca1)]));
    assert!(crls_signed_by(&crls, &[der(&ca2), der(&ca1)]));
    assert!(!crls_signed_by(&crls, &[der(&ca2)]));
}
