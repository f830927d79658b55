//! The token format: a compact binary payload followed by its HMAC-SHA256,
//! the whole in url-safe base64 without padding.
//!
//! The payload says who (user id), how (methods), for what (scope), when
//! (issued at, expires at, in microseconds since the epoch) and which audit
//! chain (the token's own audit id, then the one it was rescoped from); an
//! application-credential token names its credential. Roles are not in it:
//! they are computed from the current assignments at every validation, so a
//! removed role takes effect at once. Ids of 32 lowercase hex digits (every id
//! the built-in Keystone makes) take 16 bytes; any other id is stored as text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const MAC_LEN: usize = 32;
/// Longer text is refused before decoding (Keystone's tokens are ~200 bytes).
pub const MAX_TOKEN_CHARS: usize = 1024;

/// How the token's holder authenticated (Keystone's `methods`), a bit set.
pub const METHOD_PASSWORD: u8 = 1;
pub const METHOD_TOKEN: u8 = 2;
pub const METHOD_APPLICATION_CREDENTIAL: u8 = 4;

/// The method names of a bit set, in Keystone's spelling.
pub fn method_names(methods: u8) -> Vec<&'static str> {
    let mut out = Vec::new();
    if methods & METHOD_PASSWORD != 0 {
        out.push("password");
    }
    if methods & METHOD_TOKEN != 0 {
        out.push("token");
    }
    if methods & METHOD_APPLICATION_CREDENTIAL != 0 {
        out.push("application_credential");
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Unscoped,
    Project(String),
    Domain(String),
    /// The whole system (`{"system": {"all": true}}`).
    System,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub methods: u8,
    pub user_id: String,
    pub scope: Scope,
    /// Microseconds since the epoch.
    pub issued_at: i64,
    pub expires_at: i64,
    /// The token's own audit id first, then the one of the token it was
    /// rescoped from (its audit chain); 16 random bytes each.
    pub audit_ids: Vec<[u8; 16]>,
    pub application_credential_id: Option<String>,
}

/// An audit id as Keystone shows it: 16 bytes in url-safe base64 (22 chars).
pub fn audit_id_text(id: &[u8; 16]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

pub fn new_audit_id() -> [u8; 16] {
    use rand::RngCore;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

fn put_id(out: &mut Vec<u8>, id: &str) {
    let packable = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if packable {
        out.push(0);
        for pair in id.as_bytes().chunks(2) {
            let hex = std::str::from_utf8(pair).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("checked hex"));
        }
    } else {
        // Ids are bounded by the store (Keystone: 64 chars); 255 is the cap.
        let bytes = &id.as_bytes()[..id.len().min(255)];
        out.push(1);
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated payload".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, String> {
        let b = self.take(8)?;
        Ok(i64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn id(&mut self) -> Result<String, String> {
        match self.u8()? {
            0 => Ok(self.take(16)?.iter().map(|b| format!("{b:02x}")).collect()),
            1 => {
                let n = self.u8()? as usize;
                String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "id is not UTF-8".into())
            }
            t => Err(format!("unknown id tag {t}")),
        }
    }
}

impl Payload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(VERSION);
        out.push(self.methods);
        put_id(&mut out, &self.user_id);
        match &self.scope {
            Scope::Unscoped => out.push(0),
            Scope::Project(id) => {
                out.push(1);
                put_id(&mut out, id);
            }
            Scope::Domain(id) => {
                out.push(2);
                put_id(&mut out, id);
            }
            Scope::System => out.push(3),
        }
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        out.push(self.audit_ids.len() as u8);
        for a in &self.audit_ids {
            out.extend_from_slice(a);
        }
        match &self.application_credential_id {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                put_id(&mut out, id);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Payload, String> {
        let mut r = Reader { bytes };
        let version = r.u8()?;
        if version != VERSION {
            return Err(format!("unknown token version {version}"));
        }
        let methods = r.u8()?;
        let user_id = r.id()?;
        let scope = match r.u8()? {
            0 => Scope::Unscoped,
            1 => Scope::Project(r.id()?),
            2 => Scope::Domain(r.id()?),
            3 => Scope::System,
            t => return Err(format!("unknown scope tag {t}")),
        };
        let issued_at = r.i64()?;
        let expires_at = r.i64()?;
        let n = r.u8()? as usize;
        if n == 0 || n > 2 {
            return Err(format!("{n} audit ids"));
        }
        let mut audit_ids = Vec::with_capacity(n);
        for _ in 0..n {
            audit_ids.push(r.take(16)?.try_into().expect("16 bytes"));
        }
        let application_credential_id = match r.u8()? {
            0 => None,
            1 => Some(r.id()?),
            t => return Err(format!("unknown credential tag {t}")),
        };
        if !r.bytes.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(Payload {
            methods,
            user_id,
            scope,
            issued_at,
            expires_at,
            audit_ids,
            application_credential_id,
        })
    }
}

fn mac(key: &[u8], payload: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(payload);
    m
}

/// The token text of `payload`, signed with `key`.
pub fn seal(key: &[u8], payload: &Payload) -> String {
    let mut bytes = payload.encode();
    let tag = mac(key, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The payload of `token` if one of `keys` signed it (compared in constant
/// time); why not otherwise (for the log).
pub fn open<'k>(keys: impl IntoIterator<Item = &'k [u8]>, token: &str) -> Result<Payload, String> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err("token too long".into());
    }
    // Only the canonical text is accepted: no padding, no whitespace, no
    // stray bits in the last character (the decoder refuses all three).
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "token is not canonical url-safe base64".to_string())?;
    if bytes.len() <= MAC_LEN {
        return Err("token too short".into());
    }
    let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    let signed = keys
        .into_iter()
        .any(|k| mac(k, payload).verify_slice(tag).is_ok());
    if !signed {
        return Err("signature matches no key".into());
    }
    Payload::decode(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Payload {
        Payload {
            methods: METHOD_PASSWORD | METHOD_TOKEN,
            user_id: "0123456789abcdef0123456789abcdef".into(),
            scope: Scope::Project("default-ish project".into()),
            issued_at: 1_700_000_000_123_456,
            expires_at: 1_700_003_600_123_456,
            audit_ids: vec![[1; 16], [2; 16]],
            application_credential_id: Some("fedcba9876543210fedcba9876543210".into()),
        }
    }

    #[test]
    fn a_payload_roundtrips_and_is_compact() {
        for scope in [
            Scope::Unscoped,
            Scope::System,
            Scope::Domain("default".into()),
            Scope::Project("0123456789abcdef0123456789abcdef".into()),
        ] {
            let p = Payload { scope, ..sample() };
            let t = seal(b"k", &p);
            assert!(t.len() < 200, "{} chars", t.len());
            assert_eq!(open([&b"k"[..]], &t).unwrap(), p);
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let t = seal(b"key", &sample());
        let bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(
                open([&b"key"[..]], &URL_SAFE_NO_PAD.encode(&b)).is_err(),
                "byte {i}"
            );
        }
        assert!(open([&b"other"[..]], &t).is_err());
        assert!(open([&b"key"[..]], "not a token!").is_err());
        assert!(open([&b"key"[..]], "").is_err());
        assert!(open([&b"key"[..]], &"A".repeat(5000)).is_err());
    }

    #[test]
    fn only_the_canonical_text_is_accepted() {
        let t = seal(b"key", &sample());
        assert!(open([&b"key"[..]], &t).is_ok());
        for variant in [
            format!("{t}="),
            format!("{t}=="),
            format!(" {t}"),
            format!("{t} "),
            format!("{t}\n"),
        ] {
            assert!(open([&b"key"[..]], &variant).is_err(), "{variant:?}");
        }
        // The same bytes with other bits in the unused tail of the last
        // character (a second spelling of one token).
        let bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        if !bytes.len().is_multiple_of(3) {
            let mut other: Vec<char> = t.chars().collect();
            let last = other.pop().unwrap();
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let i = alphabet.iter().position(|&c| c as char == last).unwrap();
            other.push(alphabet[i ^ 1] as char);
            let other: String = other.into_iter().collect();
            assert!(open([&b"key"[..]], &other).is_err(), "{other}");
        }
    }
}
