//! Short-lived JWTs (HS256), signed with a key derived from the master key.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use wxpilot_core::MasterKey;
use wxpilot_core::service::{Actor, Scopes};
use wxpilot_entity::Role;

const ISSUER: &str = "wxpilot";

/// What a wxpilot JWT says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The subject: `user:<id>` or `api_key:<id>`.
    pub sub: String,
    /// The tenant.
    pub tid: String,
    /// The role.
    pub role: Role,
    /// The scopes.
    pub scopes: Vec<String>,
    /// Issuer, always `wxpilot`.
    pub iss: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Token id.
    pub jti: String,
}

/// Signs and checks tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

/// Why a token was refused; the message is what the caller sees.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenRejected(pub &'static str);

impl JwtKeys {
    /// Keys derived from the master key.
    pub fn new(master: &MasterKey, ttl_secs: u64, leeway_secs: u64) -> anyhow::Result<Self> {
        let secret = master.derive("jwt-hs256");
        Self::from_secret(&secret, ttl_secs, leeway_secs)
    }

    /// Keys from a raw HMAC secret.
    pub fn from_secret(secret: &[u8], ttl_secs: u64, leeway_secs: u64) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway_secs;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        validation.validate_nbf = false;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            ttl_secs,
        })
    }

    /// Lifetime of issued tokens.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A token for `actor`, and when it expires.
    pub fn issue(&self, actor: &Actor) -> anyhow::Result<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let mut expires =
            now + chrono::Duration::seconds(i64::try_from(self.ttl_secs).unwrap_or(900));
        // A token never outlives the key it was exchanged for.
        if let Some(limit) = actor.expires_at {
            expires = expires.min(limit);
        }
        self.issue_with_times(actor, now.timestamp(), expires.timestamp())
            .map(|t| (t, expires))
    }

    /// A token with explicit times (tests make expired ones with this).
    pub fn issue_with_times(&self, actor: &Actor, iat: i64, exp: i64) -> anyhow::Result<String> {
        let claims = Claims {
            sub: actor.subject.clone(),
            tid: actor.tenant_id.clone(),
            role: actor.role,
            scopes: actor.scopes.names(),
            iss: ISSUER.into(),
            iat,
            exp,
            jti: wxpilot_core::ids::new_id(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The actor a valid token stands for.
    pub fn verify(&self, token: &str) -> Result<Actor, TokenRejected> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenRejected("the token has expired"),
                ErrorKind::InvalidSignature => TokenRejected("the token's signature is not valid"),
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    TokenRejected("the token must be signed with HS256")
                }
                _ => TokenRejected("the token is malformed or not one of ours"),
            })?;
        let claims = data.claims;
        let scopes = Scopes::parse(&claims.scopes)
            .map_err(|_| TokenRejected("the token's scopes are invalid"))?;
        Ok(Actor {
            tenant_id: claims.tid,
            subject: claims.sub,
            role: claims.role,
            scopes,
            request_id: None,
            expires_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn actor() -> Actor {
        Actor {
            tenant_id: "01JTENANT000000000000000000".into(),
            subject: "user:01JUSER0000000000000000000".into(),
            role: Role::Editor,
            scopes: Scopes::all(),
            request_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn round_trip() {
        let keys = JwtKeys::from_secret(b"k1", 900, 5).unwrap();
        let (token, _) = keys.issue(&actor()).unwrap();
        let back = keys.verify(&token).unwrap();
        assert_eq!(back.tenant_id, actor().tenant_id);
        assert_eq!(back.role, Role::Editor);
    }

    #[test]
    fn rejects_expired_foreign_and_unsigned() {
        let keys = JwtKeys::from_secret(b"k1", 900, 5).unwrap();
        let now = Utc::now().timestamp();
        let expired = keys
            .issue_with_times(&actor(), now - 1000, now - 100)
            .unwrap();
        assert_eq!(
            keys.verify(&expired).unwrap_err().0,
            "the token has expired"
        );

        let other = JwtKeys::from_secret(b"k2", 900, 5).unwrap();
        let (foreign, _) = other.issue(&actor()).unwrap();
        assert!(keys.verify(&foreign).is_err());

        let (good, _) = keys.issue(&actor()).unwrap();
        let payload = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{none_header}.{payload}.")).is_err());
        assert!(keys.verify("not-a-jwt").is_err());
    }
}
