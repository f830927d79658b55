//! The key manager's objects (Barbican's v1 subset): secrets, containers of
//! secret references, their ACLs and consumers, as the store keeps them.
//!
//! A secret's payload is never kept in clear: [`Sealed`] is what the service
//! layer's sealing made of it (AES-256-GCM under the deployment's
//! key-encryption key, bound to the secret's id and project), and only the
//! service layer opens it.

use crate::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A secret: its metadata, and its payload sealed once it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    pub id: Uuid,
    pub project_id: String,
    /// The user who stored it (Barbican's `creator_id`).
    pub creator_id: String,
    pub name: Option<String>,
    /// `symmetric`, `public`, `private`, `passphrase`, `certificate`,
    /// `opaque` (Barbican's default).
    pub secret_type: String,
    pub algorithm: Option<String>,
    pub bit_length: Option<u32>,
    pub mode: Option<String>,
    /// After it, the secret reads as not found (Barbican's behaviour).
    pub expiration: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The payload's content type (`text/plain`, `application/octet-stream`,
    /// …); `None` until a payload is stored.
    pub content_type: Option<String>,
    pub payload: Option<Sealed>,
    #[serde(default)]
    pub acl: Acl,
    /// Services that use this secret (Barbican's secret consumers).
    #[serde(default)]
    pub consumers: Vec<SecretConsumer>,
}

/// A payload sealed with AES-256-GCM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Which key-encryption key sealed it (a digest of the key, not the key).
    pub kek_id: String,
    /// The 96-bit nonce, base64.
    pub nonce: String,
    /// Ciphertext and tag, base64.
    pub ciphertext: String,
}

/// Who besides the project may read an object (Barbican's `read` ACL).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Acl {
    /// `None`: no ACL was set (the project's readers may read).
    pub read: Option<AclEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// Users (by id) given read access, whatever their project.
    pub users: Vec<String>,
    /// `false`: the object is private to its creator and `users`.
    pub project_access: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A secret consumer (Barbican API 1.1): a service resource using the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretConsumer {
    /// The project that registered it (only it or the secret's project may
    /// remove it).
    #[serde(default)]
    pub project_id: String,
    pub service: String,
    pub resource_type: String,
    pub resource_id: String,
    pub created_at: Timestamp,
}

/// A container of secret references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretContainer {
    pub id: Uuid,
    pub project_id: String,
    pub creator_id: String,
    pub name: Option<String>,
    /// `generic`, `certificate` or `rsa`.
    pub kind: String,
    /// Named references, in the order given.
    pub secret_refs: Vec<ContainerSecret>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default)]
    pub acl: Acl,
    #[serde(default)]
    pub consumers: Vec<ContainerConsumer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSecret {
    /// `certificate`, `private_key`, `private_key_passphrase`,
    /// `intermediates` in a certificate container; free in a generic one.
    pub name: String,
    pub secret_id: Uuid,
}

/// A container consumer: `{name, URL}` (what Octavia registers for a
/// listener using a certificate container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConsumer {
    /// The project that registered it.
    #[serde(default)]
    pub project_id: String,
    pub name: String,
    pub url: String,
    pub created_at: Timestamp,
}

/// The deployment's key-encryption key, by id (one row, `id` = `kek`): the
/// first node to start records its key's id, and a node holding another
/// key refuses to start, so no two nodes seal with different keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KekRecord {
    pub id: String,
    pub kek_id: String,
}
