//! API key material: generation, the recognisable prefix, and the stored hash.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Every key starts with this, so secret scanners and people can recognise one.
pub const KEY_PREFIX: &str = "wxp_";
/// Random characters after the prefix: 32 of base62 is about 190 bits.
const RANDOM_LEN: usize = 32;
/// How much of the key is kept in clear to tell keys apart.
const DISPLAY_LEN: usize = KEY_PREFIX.len() + 8;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: the full secret (shown once) and what gets stored.
pub struct GeneratedKey {
    /// The whole key, returned to the caller once and never stored.
    pub secret: String,
    /// Safe-to-show start of the key.
    pub display_prefix: String,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
}

/// Makes a new random API key.
pub fn generate() -> GeneratedKey {
    let mut rng = rand::rngs::OsRng;
    let random: String = (0..RANDOM_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    let secret = format!("{KEY_PREFIX}{random}");
    GeneratedKey {
        display_prefix: secret[..DISPLAY_LEN].to_owned(),
        hash: hash(&secret),
        secret,
    }
}

/// Hex SHA-256 of a presented key, the form it is looked up by.
pub fn hash(presented: &str) -> String {
    hex::encode(Sha256::digest(presented.as_bytes()))
}

/// Whether a bearer credential looks like one of our API keys (rather than a JWT).
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.len() == KEY_PREFIX.len() + RANDOM_LEN
        && credential.starts_with(KEY_PREFIX)
        && credential[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_recognised_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(looks_like_api_key(&a.secret));
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(&a.display_prefix));
        assert_eq!(a.display_prefix.len(), 12);
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
    }

    #[test]
    fn jwts_and_junk_are_not_keys() {
        assert!(!looks_like_api_key("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
        assert!(!looks_like_api_key("wxp_short"));
        assert!(!looks_like_api_key("wxp_0123456789abcdef0123456789abcde!"));
    }
}
