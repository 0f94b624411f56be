//! The token endpoints' JSON (sensu-compat 6.3): `GET /auth` and `POST /auth/token` answer a
//! [`Tokens`]; `POST /auth/token` and `POST /auth/logout` take a [`RefreshTokenRequest`];
//! access tokens are JWTs carrying [`Claims`]; [`RefreshTokenRecord`] is what the store keeps
//! of an issued refresh token.

use serde::{Deserialize, Serialize};

use crate::serde_util::null_as_default;

/// `{"access_token", "expires_at", "refresh_token"}`; `expires_at` is Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tokens {
    #[serde(deserialize_with = "null_as_default")]
    pub access_token: String,
    #[serde(deserialize_with = "null_as_default")]
    pub expires_at: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub refresh_token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshTokenRequest {
    #[serde(deserialize_with = "null_as_default")]
    pub refresh_token: String,
}

/// Who authenticated the subject (Sensu's `provider` claim; `basic/default` for stored users).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthProvider {
    #[serde(deserialize_with = "null_as_default")]
    pub provider_id: String,
    #[serde(deserialize_with = "null_as_default")]
    pub provider_type: String,
    #[serde(deserialize_with = "null_as_default")]
    pub user_id: String,
}

/// The claims of an access token, Sensu's set: `sub`, `exp`, `jti` (32 hex digits), `iss`,
/// `groups` (with `system:users`), `provider`, `api_key`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Claims {
    #[serde(deserialize_with = "null_as_default")]
    pub sub: String,
    #[serde(deserialize_with = "null_as_default")]
    pub exp: i64,
    #[serde(deserialize_with = "null_as_default")]
    pub jti: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub iss: String,
    #[serde(deserialize_with = "null_as_default")]
    pub groups: Vec<String>,
    #[serde(deserialize_with = "null_as_default")]
    pub provider: AuthProvider,
    #[serde(deserialize_with = "null_as_default")]
    pub api_key: bool,
}

/// What the store keeps of an issued refresh token, at a key derived from a digest of the
/// token (never the token itself). Deleting it revokes the token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RefreshTokenRecord {
    #[serde(deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(deserialize_with = "null_as_default")]
    pub issued_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_use_sensus_keys() {
        let t = Tokens {
            access_token: "a".into(),
            expires_at: 5,
            refresh_token: "r".into(),
        };
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"access_token":"a","expires_at":5,"refresh_token":"r"}"#
        );
        let back: Tokens = serde_json::from_str(r#"{"access_token":null,"expires_at":7}"#).unwrap();
        assert_eq!(back.expires_at, 7);
        assert!(back.access_token.is_empty());
    }
}
