//! Sealing secret payloads: AES-256-GCM (ring) under the deployment's
//! key-encryption key (KEK), with a fresh random 96-bit nonce per seal and
//! the secret's id and project as associated data, so a sealed payload copied
//! into another secret's row (or another project's) does not open.
//!
//! The KEK never leaves this module's [`Kek`]: it is read by `statera serve`
//! from a file (32 random bytes, base64), and a sealed payload names it only
//! by [`Kek::id`], a digest, so a node holding another key says so instead of
//! failing to authenticate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use statera_model::keymanager::Sealed;
use uuid::Uuid;

/// The key length of AES-256.
pub const KEK_LEN: usize = 32;

/// Why a KEK could not be made or a payload could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a key-encryption key is {KEK_LEN} bytes, base64-encoded; this one is {0} bytes")]
    KekLength(usize),
    #[error("the key-encryption key is not valid base64")]
    KekEncoding,
    #[error(
        "the payload was sealed under key-encryption key {sealed_with}, and this node holds {held}"
    )]
    OtherKek { sealed_with: String, held: String },
    #[error("the sealed payload is damaged or does not belong to this secret")]
    Damaged,
}

/// The deployment's key-encryption key.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// A KEK of exactly [`KEK_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Kek, SealError> {
        if bytes.len() != KEK_LEN {
            return Err(SealError::KekLength(bytes.len()));
        }
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"statera-kek-id\0".as_slice(), bytes].concat(),
        );
        let id = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::KekLength(0))?;
        Ok(Kek {
            id,
            key: LessSafeKey::new(key),
        })
    }

    /// A KEK from its file's text: base64 of [`KEK_LEN`] bytes (surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Kek, SealError> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| SealError::KekEncoding)?;
        Kek::from_bytes(&bytes)
    }

    /// A new random KEK's file text.
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; KEK_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random source failed");
        B64.encode(bytes)
    }

    /// The key's name in sealed payloads (a digest: it says which key, not
    /// what it is).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `plaintext` sealed for secret `id` of `project`.
    pub fn seal(&self, id: Uuid, project: &str, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("the system's random source failed");
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(id, project)),
                &mut buf,
            )
            .expect("AES-GCM sealing a payload within its length limit cannot fail");
        Sealed {
            kek_id: self.id.clone(),
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(buf),
        }
    }

    /// The plaintext of secret `id` of `project`, sealed as `sealed`.
    pub fn open(&self, id: Uuid, project: &str, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        if sealed.kek_id != self.id {
            return Err(SealError::OtherKek {
                sealed_with: sealed.kek_id.clone(),
                held: self.id.clone(),
            });
        }
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Damaged)?;
        let mut buf = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| SealError::Damaged)?;
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(id, project)),
                &mut buf,
            )
            .map_err(|_| SealError::Damaged)?;
        Ok(plain.to_vec())
    }
}

fn aad(id: Uuid, project: &str) -> Vec<u8> {
    format!("statera-secret\0{id}\0{project}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::from_base64(&Kek::generate_base64()).unwrap()
    }

    #[test]
    fn seals_and_opens_bound_to_its_secret() {
        let k = kek();
        let id = Uuid::new_v4();
        let s = k.seal(id, "p1", b"-----BEGIN PRIVATE KEY-----");
        assert!(!s.ciphertext.contains("BEGIN"));
        assert_eq!(
            k.open(id, "p1", &s).unwrap(),
            b"-----BEGIN PRIVATE KEY-----"
        );
        // Another secret's or another project's row: refused.
        assert_eq!(k.open(Uuid::new_v4(), "p1", &s), Err(SealError::Damaged));
        assert_eq!(k.open(id, "p2", &s), Err(SealError::Damaged));
        // Two seals of one payload differ (fresh nonces).
        assert_ne!(
            k.seal(id, "p1", b"x").ciphertext,
            k.seal(id, "p1", b"x").ciphertext
        );
    }

    #[test]
    fn a_damaged_payload_or_another_key_is_refused() {
        let k = kek();
        let id = Uuid::new_v4();
        let mut s = k.seal(id, "p", b"payload");
        let other = kek();
        assert!(matches!(
            other.open(id, "p", &s),
            Err(SealError::OtherKek { .. })
        ));
        let mut bytes = B64.decode(&s.ciphertext).unwrap();
        bytes[0] ^= 1;
        s.ciphertext = B64.encode(bytes);
        assert_eq!(k.open(id, "p", &s), Err(SealError::Damaged));
    }

    #[test]
    fn kek_text_is_checked() {
        assert_eq!(
            Kek::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::KekLength(5)
        );
        assert_eq!(Kek::from_base64("!!").unwrap_err(), SealError::KekEncoding);
        let text = Kek::generate_base64();
        assert_eq!(
            Kek::from_base64(&text).unwrap().id(),
            Kek::from_base64(&format!("  {text}\n")).unwrap().id()
        );
        // Debug shows the id, never the key.
        let k = kek();
        assert_eq!(format!("{k:?}"), format!("Kek {{ id: {:?}, .. }}", k.id()));
    }
}
