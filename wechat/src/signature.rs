//! Request signatures WeChat puts on every callback.
//!
//! * The URL check (and every plain-mode callback) carries
//!   `signature = sha1(sort([token, timestamp, nonce]).concat())`.
//! * Encrypted modes carry `msg_signature = sha1(sort([token, timestamp, nonce, encrypt]).concat())`.
//!   The plain `signature` is *not* a valid `msg_signature`.
//!
//! Comparisons are constant-time so a caller cannot learn a valid signature byte by byte.

use std::time::Duration;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// How far a request timestamp may be from the server clock by default (either direction).
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);

/// `sha1` over the parts sorted byte-wise and concatenated, as lower-case hex.
fn sorted_sha1_hex(parts: &mut [&str]) -> String {
    // Byte order equals the code-point order the official SDKs sort by.
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts.iter() {
        hasher.update(part.as_bytes());
    }
    to_hex(hasher.finalize().as_slice())
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The plain `signature` of the URL check and of plain-mode callbacks.
pub fn url_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    sorted_sha1_hex(&mut [token, timestamp, nonce])
}

/// The `msg_signature` of an encrypted body (`<Encrypt>` value) in compatible or safe mode.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    sorted_sha1_hex(&mut [token, timestamp, nonce, encrypt])
}

/// Constant-time equality of an expected hex signature and one received from a peer.
///
/// Hex case is ignored (WeChat sends lower case; some proxies upper-case query values).
/// Only the length can leak through timing, and the length of a SHA-1 hex digest is public.
pub fn signatures_match(expected: &str, received: &str) -> bool {
    if expected.len() != received.len() {
        return false;
    }
    let received = received.to_ascii_lowercase();
    let expected = expected.to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// Whether `signature` is the URL-check signature for these values.
pub fn verify_url_signature(token: &str, timestamp: &str, nonce: &str, signature: &str) -> bool {
    signatures_match(&url_signature(token, timestamp, nonce), signature)
}

/// Whether `signature` is the `msg_signature` for these values and this `Encrypt` text.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    signature: &str,
) -> bool {
    signatures_match(&msg_signature(token, timestamp, nonce, encrypt), signature)
}

/// Why a request timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// The value is not a decimal count of seconds since the Unix epoch.
    #[error("timestamp {0:?} is not a number of seconds")]
    Invalid(String),
    /// The value is further from `now` than the window allows.
    #[error("timestamp is {skew_secs} s away from now, more than the {window_secs} s allowed")]
    OutsideWindow {
        /// `timestamp - now` in seconds (negative: in the past).
        skew_secs: i64,
        /// The window that was applied.
        window_secs: u64,
    },
}

/// Checks that a request `timestamp` (Unix seconds, as sent in the query) lies within
/// `window` of `now_unix_secs`, in either direction (clocks drift both ways).
///
/// Signatures alone do not stop a captured request from being replayed later; this does,
/// together with message deduplication.
pub fn check_timestamp(
    timestamp: &str,
    now_unix_secs: i64,
    window: Duration,
) -> Result<(), TimestampError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| TimestampError::Invalid(timestamp.to_owned()))?;
    let skew = i128::from(ts) - i128::from(now_unix_secs);
    let window_secs = window.as_secs();
    if skew.unsigned_abs() > u128::from(window_secs) {
        return Err(TimestampError::OutsideWindow {
            skew_secs: i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX }),
            window_secs,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Values from the Tencent sample (vector A in the conformance file).
    const TOKEN: &str = "spamtest";
    const TS: &str = "1409735669";
    const NONCE: &str = "1320562132";
    const ENCRYPT: &str = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";

    #[test]
    fn url_signature_matches_published_value() {
        assert_eq!(
            url_signature(TOKEN, TS, NONCE),
            "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
        );
    }

    #[test]
    fn msg_signature_matches_published_value() {
        assert_eq!(
            msg_signature(TOKEN, TS, NONCE, ENCRYPT),
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        );
    }

    #[test]
    fn argument_order_does_not_matter_because_parts_are_sorted() {
        assert_eq!(
            url_signature(TS, NONCE, TOKEN),
            url_signature(TOKEN, TS, NONCE)
        );
    }

    #[test]
    fn correct_msg_signature_accepted_and_wrong_ones_rejected() {
        let good = "5d197aaffba7e9b25a30732f161a50dee96bd5fa";
        assert!(verify_msg_signature(TOKEN, TS, NONCE, ENCRYPT, good));
        assert!(verify_msg_signature(
            TOKEN,
            TS,
            NONCE,
            ENCRYPT,
            &good.to_ascii_uppercase()
        ));
        // The plain URL signature is not a msg_signature.
        let plain = url_signature(TOKEN, TS, NONCE);
        assert!(!verify_msg_signature(TOKEN, TS, NONCE, ENCRYPT, &plain));
        // Wrong nonce, truncated, empty.
        assert!(!verify_msg_signature(
            TOKEN,
            TS,
            "1320562133",
            ENCRYPT,
            good
        ));
        assert!(!verify_msg_signature(
            TOKEN,
            TS,
            NONCE,
            ENCRYPT,
            &good[..39]
        ));
        assert!(!verify_msg_signature(TOKEN, TS, NONCE, ENCRYPT, ""));
    }

    #[test]
    fn url_signature_verification() {
        let sig = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a";
        assert!(verify_url_signature(TOKEN, TS, NONCE, sig));
        assert!(!verify_url_signature("other", TS, NONCE, sig));
    }

    #[test]
    fn timestamp_window() {
        let w = Duration::from_secs(300);
        assert_eq!(check_timestamp("1000", 1000, w), Ok(()));
        assert_eq!(check_timestamp("700", 1000, w), Ok(()));
        assert_eq!(check_timestamp("1300", 1000, w), Ok(()));
        assert_eq!(
            check_timestamp("699", 1000, w),
            Err(TimestampError::OutsideWindow {
                skew_secs: -301,
                window_secs: 300
            })
        );
        assert_eq!(
            check_timestamp("1301", 1000, w),
            Err(TimestampError::OutsideWindow {
                skew_secs: 301,
                window_secs: 300
            })
        );
        assert_eq!(
            check_timestamp("12a", 1000, w),
            Err(TimestampError::Invalid("12a".into()))
        );
        assert!(check_timestamp(&i64::MIN.to_string(), i64::MAX, w).is_err());
    }
}
