//! The key manager's key-encryption key (KEK): read from `[key_manager]
//! kek_file`, or from `<data-dir>/key-manager.kek`, made on the first start
//! (32 random bytes, base64, mode 0600, created exclusively so two starts
//! never write two keys).

use crate::settings::Settings;
use anyhow::Context as _;
use statera_service::keymanager::{Kek, KeyManager};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;

/// The default KEK file of a data directory.
pub fn default_kek_path(settings: &Settings) -> PathBuf {
    settings.store.data_dir.join("key-manager.kek")
}

/// The key manager of `settings`. `sealed_with` are the key ids the store's
/// sealed payloads name: when there are any, a missing default key file is
/// an error (a new key would leave every secret unreadable), not a new key,
/// and so is a key that is not among them (another node's, say).
pub fn load(
    settings: &Settings,
    sealed_with: &std::collections::BTreeSet<String>,
) -> anyhow::Result<KeyManager> {
    let sealed_secrets = !sealed_with.is_empty();
    let configured = settings.key_manager.kek_file.clone();
    let path = configured
        .clone()
        .unwrap_or_else(|| default_kek_path(settings));
    if configured.is_none() && !path.exists() && sealed_secrets {
        anyhow::bail!(
            "the key manager's key-encryption key {} is missing, and the store holds secrets sealed \
             with it: restore the file (or name it with [key_manager] kek_file); a new key could \
             not open them",
            path.display()
        );
    }
    if configured.is_none() && !path.exists() {
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match made {
            Ok(mut f) => {
                f.write_all(Kek::generate_base64().as_bytes())
                    .and_then(|()| f.sync_all())
                    .with_context(|| {
                        format!("writing the key-encryption key {}", path.display())
                    })?;
                tracing::info!(path = %path.display(), "key manager: made a new key-encryption key; keep a copy of it, secrets cannot be read without it");
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("making the key-encryption key {}", path.display()));
            }
        }
    }
    let meta = std::fs::metadata(&path).with_context(|| {
        format!(
            "the key manager's key-encryption key {} cannot be read",
            path.display()
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the key-encryption key file is readable by others than its owner (chmod 600 it)");
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the key-encryption key {}", path.display()))?;
    let kek = Kek::from_base64(&text)
        .with_context(|| format!("the key-encryption key {}", path.display()))?;
    if sealed_secrets && !sealed_with.contains(kek.id()) {
        anyhow::bail!(
            "the key-encryption key {} (id {}) is not the key the store's secrets are sealed with \
             (ids {:?}): every node sharing a store needs the same [key_manager] kek_file",
            path.display(),
            kek.id(),
            sealed_with
        );
    }
    tracing::info!(kek = kek.id(), "key manager");
    Ok(KeyManager {
        kek,
        max_secrets: settings.key_manager.max_secrets_per_project,
        max_containers: settings.key_manager.max_containers_per_project,
    })
}
