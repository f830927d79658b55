//! The key manager's key-encryption key (KEK): read from `[key_manager]
//! kek_file` (`--kek-file`), or from `<data-dir>/key-manager.kek`, made on
//! the first start (32 random bytes, base64, mode 0600: written to a
//! temporary file, synced, linked into place without replacing anything,
//! then the directory synced — a crash leaves either no key file or a whole
//! one).
//!
//! The store records the id of the deployment's key (`KekRecord`, written by
//! the first node to start): a node holding another key, or missing its key
//! file while the store names one, refuses to start, so no two nodes ever
//! seal with different keys and no key is replaced under sealed secrets.

use crate::settings::Settings;
use anyhow::Context as _;
use statera_model::keymanager::KekRecord;
use statera_service::keymanager::{Kek, KeyManager};
use statera_store::Store;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

const RECORD: &str = "kek";

/// The default KEK file of a data directory.
pub fn default_kek_path(settings: &Settings) -> PathBuf {
    settings.store.data_dir.join("key-manager.kek")
}

/// The key manager of `settings` over `store`: its key loaded (or made, on
/// a store that names none) and recorded as the deployment's.
pub async fn start(settings: &Settings, store: &Store) -> anyhow::Result<KeyManager> {
    let recorded = store
        .snapshot()
        .kek
        .get(&RECORD.to_string())
        .map(|r| r.kek_id.clone());
    let km = load(settings, recorded.as_deref())?;
    let id = km.kek.id().to_string();
    store
        .write(|txn| {
            match txn.state().kek.get(&RECORD.to_string()) {
                Some(r) if r.kek_id != id => {
                    return Err(anyhow::anyhow!(mismatch(&id, &r.kek_id)));
                }
                Some(_) => {}
                None => txn.put(KekRecord {
                    id: RECORD.to_string(),
                    kek_id: id.clone(),
                })?,
            }
            Ok(())
        })
        .await?;
    Ok(km)
}

fn mismatch(ours: &str, deployment: &str) -> String {
    format!(
        "this node's key-encryption key (id {ours}) is not the deployment's (id {deployment}, \
         recorded in the store): every node sharing a store needs the same [key_manager] \
         kek_file (--kek-file)"
    )
}

fn load(settings: &Settings, recorded: Option<&str>) -> anyhow::Result<KeyManager> {
    let configured = settings.key_manager.kek_file.clone();
    let path = configured
        .clone()
        .unwrap_or_else(|| default_kek_path(settings));
    if !path.exists() {
        if let Some(id) = recorded {
            anyhow::bail!(
                "the key manager's key-encryption key {} is missing, and the store's secrets are \
                 sealed with key {id}: restore the file (or name it with [key_manager] kek_file); \
                 a new key could not open them",
                path.display()
            );
        }
        if configured.is_some() {
            anyhow::bail!(
                "the key-encryption key file {} does not exist (make one with: head -c 32 \
                 /dev/urandom | base64 > FILE; chmod 600 FILE)",
                path.display()
            );
        }
        make_key_file(&path)?;
        tracing::info!(path = %path.display(), "key manager: made a new key-encryption key; keep a copy of it, secrets cannot be read without it");
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
    if let Some(id) = recorded
        && id != kek.id()
    {
        anyhow::bail!(mismatch(kek.id(), id));
    }
    tracing::info!(kek = kek.id(), "key manager");
    Ok(KeyManager {
        kek,
        max_secrets: settings.key_manager.max_secrets_per_project,
        max_containers: settings.key_manager.max_containers_per_project,
        // Tenants' bundles are read by this very binary in a child process
        // under limits (`statera internal-read-pkcs12`): `/proc/self/exe`,
        // which stays this process's executable even when an upgrade has
        // replaced or removed the file it was started from.
        pkcs12: statera_tls::Isolation::Subprocess {
            exe: PathBuf::from("/proc/self/exe"),
        },
    })
}

/// A new key at `path`, whole or not at all; an existing file is kept (two
/// starts racing: the second finds the first's key).
fn make_key_file(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("kek"),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(Kek::generate_base64().as_bytes())?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        std::fs::File::open(dir)?.sync_all()
    };
    let r = write();
    let _ = std::fs::remove_file(&tmp);
    r.with_context(|| format!("making the key-encryption key {}", path.display()))
}
