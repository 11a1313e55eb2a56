//! Input rules, as pure functions. Each collects every problem it finds, so a caller
//! fixing a request sees all of them at once.

use chrono::NaiveDate;

use crate::error::{FieldError, ServiceError, ServiceResult};

/// Collects field errors; `finish` turns them into a 422.
#[derive(Debug, Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error on `field`.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records `message` on `field` unless `ok`.
    pub fn check(&mut self, ok: bool, field: &str, message: impl Into<String>) {
        if !ok {
            self.fail(field, message);
        }
    }

    /// Text of `min..=max` characters with no control characters other than newlines and tabs.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let chars = value.chars().count();
        if chars < min {
            if min == 1 {
                self.fail(field, "must not be empty");
            } else {
                self.fail(field, format!("must be at least {min} characters"));
            }
        } else if chars > max {
            self.fail(field, format!("must be at most {max} characters"));
        } else if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            self.fail(field, "must not contain control characters");
        }
    }

    /// A one-line name: 1..=`max` characters, not only spaces.
    pub fn name(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.fail(field, "must not be empty");
        } else if value.contains(['\n', '\r']) {
            self.fail(field, "must be a single line");
        } else {
            self.text(field, value, 1, max);
        }
    }

    /// Ends the checks: `Ok` when nothing failed.
    pub fn finish(self) -> ServiceResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::Validation(self.0))
        }
    }
}

/// `wx` followed by 16 hexadecimal digits, as WeChat issues AppIDs.
pub fn is_app_id(value: &str) -> bool {
    value.len() == 18
        && value.starts_with("wx")
        && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// 32 letters or digits, the shape of an AppSecret.
pub fn is_app_secret(value: &str) -> bool {
    value.len() == 32 && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Exactly 43 characters of the base64 alphabet (WeChat's EncodingAESKey, no padding).
pub fn is_encoding_aes_key(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// 3 to 32 letters or digits, as WeChat's console allows for the callback token.
pub fn is_callback_token(value: &str) -> bool {
    (3..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `gh_` and then 4 to 32 letters or digits (the account's 原始 ID).
pub fn is_original_id(value: &str) -> bool {
    value.starts_with("gh_")
        && (4..=32).contains(&(value.len() - 3))
        && value[3..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A plausible email address: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Lower-case letters, digits and dashes, 2 to 63 long, starting with a letter or digit.
pub fn is_slug(value: &str) -> bool {
    (2..=63).contains(&value.len())
        && value
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted (argon2 handles more; this bounds the work per request).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Checks a new password's length.
pub fn password(checks: &mut Checks, field: &str, value: &str) {
    let chars = value.chars().count();
    checks.check(
        (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars),
        field,
        format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
    );
}

/// Earliest and latest years accepted for dates (every database stores these alike).
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=2200;

/// A date within [`YEARS`].
pub fn date_in_range(checks: &mut Checks, field: &str, date: Option<NaiveDate>) {
    use chrono::Datelike;
    if let Some(date) = date {
        checks.check(
            YEARS.contains(&date.year()),
            field,
            format!("must be between {} and {}", YEARS.start(), YEARS.end()),
        );
    }
}

/// Start on or before end, when both are given.
pub fn date_order(
    checks: &mut Checks,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    end_field: &str,
) {
    if let (Some(start), Some(end)) = (start, end) {
        checks.check(end >= start, end_field, "must not be before start_date");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_identifiers() {
        assert!(is_app_id("wx2c2769f8efd9abc2"));
        assert!(!is_app_id("wx2c2769f8efd9abc"));
        assert!(!is_app_id("wx2c2769f8efd9abcg"));
        assert!(!is_app_id("xw2c2769f8efd9abc2"));
        assert!(is_encoding_aes_key(
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
        ));
        assert!(!is_encoding_aes_key(
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF"
        ));
        assert!(!is_encoding_aes_key(
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF="
        ));
        assert!(is_callback_token("spamtest"));
        assert!(!is_callback_token("ab"));
        assert!(!is_callback_token("has space"));
        assert!(!is_callback_token(&"a".repeat(33)));
        assert!(is_original_id("gh_10f6c3c3ac5a"));
        assert!(!is_original_id("gh_"));
        assert!(!is_original_id("10f6c3c3ac5a"));
        assert!(is_app_secret("0123456789abcdef0123456789abcdef"));
        assert!(!is_app_secret("0123456789abcdef"));
    }

    #[test]
    fn emails_and_slugs() {
        assert!(is_email("li.lei@agency.cn"));
        assert!(!is_email("li.lei"));
        assert!(!is_email("a@b"));
        assert!(!is_email("a b@c.cn"));
        assert!(!is_email("a@b@c.cn"));
        assert!(is_slug("acme-digital"));
        assert!(!is_slug("Acme"));
        assert!(!is_slug("-acme"));
        assert!(!is_slug("a"));
    }

    #[test]
    fn checks_collect_every_error() {
        let mut checks = Checks::new();
        checks.name("name", "  ", 10);
        checks.text("brief", "0123456789x", 0, 10);
        checks.text("audience", "bad\u{7}", 0, 10);
        date_order(
            &mut checks,
            NaiveDate::from_ymd_opt(2026, 5, 2),
            NaiveDate::from_ymd_opt(2026, 5, 1),
            "end_date",
        );
        let Err(ServiceError::Validation(errors)) = checks.finish() else {
            panic!("expected validation errors");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "brief", "audience", "end_date"]);
        assert!(Checks::new().finish().is_ok());
    }
}
