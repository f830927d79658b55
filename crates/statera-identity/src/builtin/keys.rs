//! The token key repository, as Keystone's Fernet key repository: a directory
//! (mode 0700) of key files (mode 0600) named by number. `0` is the staged
//! key (it validates, and becomes the next primary), the highest number is the
//! primary (it signs), the others are secondary (they still validate tokens
//! signed before the last rotations). Each file holds 32 random bytes in
//! url-safe base64.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("token key repository {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("token key repository {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The keys of a repository, read at one moment.
#[derive(Clone)]
pub struct KeySet {
    /// (number, key), highest number first; `0` (staged) last.
    keys: Vec<(u32, Vec<u8>)>,
}

impl KeySet {
    /// The key new tokens are signed with.
    pub fn primary(&self) -> &[u8] {
        &self.keys[0].1
    }

    /// Every key that validates (primary, secondaries, staged).
    pub fn all(&self) -> impl Iterator<Item = &[u8]> {
        self.keys.iter().map(|(_, k)| k.as_slice())
    }

    pub fn numbers(&self) -> Vec<u32> {
        self.keys.iter().map(|(n, _)| *n).collect()
    }
}

fn new_key() -> String {
    use rand::RngCore;
    let mut k = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut k);
    URL_SAFE_NO_PAD.encode(k)
}

/// Write `text` to `dir/name` with mode 0600, atomically (a temporary file
/// renamed over it).
fn write_key(dir: &Path, name: &str, text: &str) -> Result<(), KeyError> {
    let tmp = dir.join(format!(".tmp-{name}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

/// The repository in `dir`.
pub struct KeyRepository {
    dir: PathBuf,
}

impl KeyRepository {
    pub fn new(dir: impl Into<PathBuf>) -> KeyRepository {
        KeyRepository { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create the repository if it has no keys (`keystone-manage
    /// fernet_setup`): a staged key `0` and a primary `1`. Existing keys are
    /// kept. Returns whether keys were created.
    pub fn setup(&self) -> Result<bool, KeyError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io(&self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(&self.dir))?;
        if !self.numbers()?.is_empty() {
            return Ok(false);
        }
        write_key(&self.dir, "0", &new_key())?;
        write_key(&self.dir, "1", &new_key())?;
        Ok(true)
    }

    fn numbers(&self) -> Result<Vec<u32>, KeyError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            if let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// Read every key. A repository without a staged key and a primary is
    /// refused (run setup first).
    pub fn load(&self) -> Result<KeySet, KeyError> {
        let numbers = self.numbers()?;
        if numbers.len() < 2 || !numbers.contains(&0) {
            return Err(KeyError::Invalid {
                path: self.dir.clone(),
                reason: "needs a staged key 0 and a primary key (run `statera bootstrap` or \
                         `statera token-keys rotate`)"
                    .into(),
            });
        }
        let mut keys = Vec::with_capacity(numbers.len());
        for n in numbers {
            let path = self.dir.join(n.to_string());
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let key = URL_SAFE_NO_PAD
                .decode(text.trim().trim_end_matches('='))
                .ok()
                .filter(|k| k.len() >= 32)
                .ok_or_else(|| KeyError::Invalid {
                    path: path.clone(),
                    reason: "not a 32-byte url-safe base64 key".into(),
                })?;
            keys.push((n, key));
        }
        Ok(KeySet { keys })
    }

    /// `keystone-manage fernet_rotate`: the staged key becomes the primary
    /// (numbered above every other), a new staged key is made, and the oldest
    /// secondaries go so that at most `max_active_keys` (staged included, at
    /// least 2) remain. Tokens signed by a dropped key are no longer valid.
    /// Returns the key numbers left, highest first.
    pub fn rotate(&self, max_active_keys: usize) -> Result<Vec<u32>, KeyError> {
        self.setup()?;
        let numbers = self.numbers()?;
        let next = numbers.first().copied().unwrap_or(0) + 1;
        let staged = self.dir.join("0");
        let primary = self.dir.join(next.to_string());
        std::fs::rename(&staged, &primary).map_err(io(&primary))?;
        write_key(&self.dir, "0", &new_key())?;
        let mut numbers = self.numbers()?;
        let keep = max_active_keys.max(2);
        // Highest first, 0 last: drop the lowest non-zero ones beyond `keep`.
        while numbers.len() > keep {
            let drop = numbers[numbers.len() - 2];
            let path = self.dir.join(drop.to_string());
            std::fs::remove_file(&path).map_err(io(&path))?;
            numbers.retain(|n| *n != drop);
        }
        Ok(numbers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_rotate_and_modes_follow_keystone() {
        let dir = tempfile::tempdir().unwrap();
        let repo = KeyRepository::new(dir.path().join("token-keys"));
        assert!(repo.setup().unwrap());
        assert!(!repo.setup().unwrap(), "setup keeps existing keys");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(repo.dir()), 0o700);
        assert_eq!(mode(&repo.dir().join("0")), 0o600);
        assert_eq!(mode(&repo.dir().join("1")), 0o600);
        let first = repo.load().unwrap();
        assert_eq!(first.numbers(), vec![1, 0]);
        let staged = std::fs::read(repo.dir().join("0")).unwrap();
        assert_eq!(repo.rotate(3).unwrap(), vec![2, 1, 0]);
        // The staged key became the primary.
        assert_eq!(std::fs::read(repo.dir().join("2")).unwrap(), staged);
        assert_eq!(repo.rotate(3).unwrap(), vec![3, 2, 0]);
        assert_eq!(mode(&repo.dir().join("0")), 0o600);
        assert!(!repo.dir().join("1").exists());
    }
}
