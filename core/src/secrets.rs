//! Secrets at rest. AppSecrets, EncodingAESKeys and webhook secrets are sealed with
//! AES-256-GCM under the master key before they reach the database.
//!
//! Stored form: `wxs1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`. The key id (the first
//! 8 hex digits of SHA-256 of the key) lets a reader pick the right key while the master
//! key is being rotated. The associated data names the row and column the value belongs
//! to, so a ciphertext copied into another row does not decrypt.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox as Zeroizing, SecretString};
use sha2::{Digest, Sha256};

const FORMAT: &str = "wxs1";
const NONCE_LEN: usize = 12;

/// Why a master key could not be had or a stored secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The configured key is not 32 bytes of base64.
    #[error("the master key must be 32 bytes encoded as base64 ({0})")]
    BadKey(String),
    /// The key file could not be read or written.
    #[error("master key file {path}: {source}")]
    KeyFile {
        /// The file in question.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The stored value is not in our format.
    #[error("stored secret is malformed")]
    Malformed,
    /// It was sealed under a key we do not hold.
    #[error("stored secret was sealed under master key {0}, which is not configured")]
    UnknownKey(String),
    /// Authentication failed: wrong key, wrong row, or tampering.
    #[error("stored secret failed authentication")]
    Tampered,
}

/// A 256-bit master key. Never printed.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    /// Parses a base64 (standard or URL-safe, padded or not) 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let trimmed = text.trim();
        let decoded = decode_any_base64(trimmed)
            .ok_or_else(|| SecretError::BadKey("not valid base64".into()))?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|v: Vec<u8>| SecretError::BadKey(format!("{} bytes", v.len())))?;
        Ok(Self {
            bytes: Zeroizing::new(Box::new(bytes)),
        })
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self {
            bytes: Zeroizing::new(Box::new(bytes)),
        }
    }

    /// The key as base64, for writing a key file or printing once on request.
    pub fn to_base64(&self) -> SecretString {
        SecretString::from(STANDARD.encode(self.bytes.expose_secret()))
    }

    /// Short public identifier of the key: the first 8 hex digits of its SHA-256.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.bytes.expose_secret())[..4])
    }

    /// A subkey for another purpose (JWT signing), so the master key itself signs nothing.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(b"wxpilot-derive-v1\0");
        hasher.update(purpose.as_bytes());
        hasher.update(b"\0");
        hasher.update(self.bytes.expose_secret());
        hasher.finalize().into()
    }

    /// Reads the key file at `path`, or creates it (mode 0600) with a new random key.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretError> {
        let file_err = |source| SecretError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir).map_err(file_err)?;
                }
                let key = Self::generate();
                let mut file = create_private_file(path).map_err(file_err)?;
                file.write_all(key.to_base64().expose_secret().as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .and_then(|()| file.sync_all())
                    .map_err(file_err)?;
                Ok((key, true))
            }
            Err(e) => Err(file_err(e)),
        }
    }

    /// Reads an existing key file.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_base64(&text)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.bytes.expose_secret().into())
    }
}

/// Creates `dir` (and parents) readable by the owner only, when it does not exist yet.
/// It holds the embedded database and the master key.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

fn decode_any_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Seals and opens secrets. Holds the current master key and, during a rotation, the
/// previous ones (accepted for reading only).
pub struct SecretBox {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("current", &self.current.id())
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl SecretBox {
    /// A box that seals under `current` and also opens what `previous` keys sealed.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// The master key new secrets are sealed with.
    pub fn current_key(&self) -> &MasterKey {
        &self.current
    }

    /// Seals `plaintext` for the place named by `context` (e.g. `official_accounts/<id>/app_secret`).
    pub fn seal(&self, plaintext: &str, context: &str) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .current
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a secret failed"))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{FORMAT}:{}:{}",
            self.current.id(),
            STANDARD.encode(blob)
        ))
    }

    /// Opens a value sealed by [`SecretBox::seal`] for the same `context`.
    pub fn open(&self, stored: &str, context: &str) -> Result<SecretString, SecretError> {
        let mut parts = stored.splitn(3, ':');
        let (Some(FORMAT), Some(kid), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Malformed);
        };
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id() == kid)
            .ok_or_else(|| SecretError::UnknownKey(kid.to_owned()))?;
        let blob = STANDARD.decode(body).map_err(|_| SecretError::Malformed)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(SecretError::Malformed);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Tampered)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::Malformed)
    }

    /// Whether `stored` was sealed under the current key (rotation skips those).
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .split(':')
            .nth(1)
            .is_some_and(|kid| kid == self.current.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open() -> anyhow::Result<()> {
        let secrets = SecretBox::new(MasterKey::generate(), vec![]);
        let stored = secrets.seal("0123456789abcdef0123456789abcdef", "accounts/1/app_secret")?;
        assert!(stored.starts_with("wxs1:"));
        assert!(!stored.contains("0123456789abcdef"));
        let opened = secrets.open(&stored, "accounts/1/app_secret")?;
        assert_eq!(opened.expose_secret(), "0123456789abcdef0123456789abcdef");
        Ok(())
    }

    #[test]
    fn other_context_or_key_fails() -> anyhow::Result<()> {
        let a = SecretBox::new(MasterKey::generate(), vec![]);
        let b = SecretBox::new(MasterKey::generate(), vec![]);
        let stored = a.seal("s3cret", "accounts/1/app_secret")?;
        assert!(matches!(
            a.open(&stored, "accounts/2/app_secret"),
            Err(SecretError::Tampered)
        ));
        assert!(matches!(
            b.open(&stored, "accounts/1/app_secret"),
            Err(SecretError::UnknownKey(_))
        ));
        assert!(matches!(
            a.open("garbage", "x"),
            Err(SecretError::Malformed)
        ));
        assert!(matches!(
            a.open(&format!("wxs1:{}:!!!", a.current_key().id()), "x"),
            Err(SecretError::Malformed)
        ));
        Ok(())
    }

    #[test]
    fn previous_keys_still_open() -> anyhow::Result<()> {
        let old = MasterKey::generate();
        let old_copy = MasterKey::from_base64(old.to_base64().expose_secret())?;
        let stored = SecretBox::new(old, vec![]).seal("v", "c")?;
        let rotated = SecretBox::new(MasterKey::generate(), vec![old_copy]);
        assert_eq!(rotated.open(&stored, "c")?.expose_secret(), "v");
        assert!(!rotated.is_current(&stored));
        Ok(())
    }

    #[test]
    fn key_parsing() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64 at all").is_err());
        let key = MasterKey::generate();
        let text = key.to_base64();
        let parsed = MasterKey::from_base64(text.expose_secret());
        assert!(parsed.is_ok_and(|p| p.id() == key.id()));
        assert!(!format!("{key:?}").contains(text.expose_secret()));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private_and_reused() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("nested/master.key");
        let (first, created) = MasterKey::load_or_create(&path)?;
        assert!(created);
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created_again) = MasterKey::load_or_create(&path)?;
        assert!(!created_again);
        assert_eq!(first.id(), second.id());
        Ok(())
    }
}
