//! Credentials (docs/api.md §Credentials): admin JWTs with a role, device JWTs bound to one
//! device, verified here and handed to the commands as an `Admin` or a `DeviceGrant`.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ota_core::access::{Admin, DeviceGrant};
use ota_core::ids::{DeviceId, DeviceType};
use ota_core::ports::{DeviceCredentials, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::state::AppState;

pub const ADMIN_AUDIENCE: &str = "ota-admin";
pub const DEVICE_AUDIENCE: &str = "ota-device";
/// The header a device may carry its token in, so that a redirect to a presigned S3 URL does
/// not carry an `Authorization` header S3 would refuse (docs/esp-image.md §5).
pub const DEVICE_TOKEN_HEADER: &str = "x-ota-device-token";

pub use ota_core::access::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminClaims {
    pub sub: String,
    pub role: Role,
    pub aud: String,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceClaims {
    pub sub: String,
    pub aud: String,
    pub device_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

/// An external identity provider's public key for admin tokens (ES256 or RS256).
#[derive(Clone)]
pub struct ExternalAdminKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl ExternalAdminKey {
    /// A PEM public key for `ES256` or `RS256` admin tokens.
    pub fn from_pem(algorithm: &str, pem: &[u8]) -> Result<Self, String> {
        let (algorithm, key) = match algorithm {
            "ES256" => (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
            "RS256" => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
            other => {
                return Err(format!(
                    "unsupported admin key algorithm '{other}' (ES256 or RS256)"
                ));
            }
        };
        let key = key.map_err(|e| format!("the admin public key is not a valid PEM key: {e}"))?;
        Ok(Self { algorithm, key })
    }
}

#[derive(Clone)]
pub struct AuthConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub issuer: Option<String>,
    pub external_admin_key: Option<ExternalAdminKey>,
    /// `OTA_DEVICE_AUTH=off` for bench setups: device endpoints accept anyone.
    pub device_auth: bool,
}

impl AuthConfig {
    pub fn new(secret: &[u8], issuer: Option<String>, device_auth: bool) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer,
            external_admin_key: None,
            device_auth,
        }
    }

    pub fn with_external_admin_key(mut self, key: ExternalAdminKey) -> Self {
        self.external_admin_key = Some(key);
        self
    }

    fn validation(&self, algorithm: Algorithm, audience: &str, require_exp: bool) -> Validation {
        let mut v = Validation::new(algorithm);
        v.set_audience(&[audience]);
        let mut required: HashSet<String> =
            ["aud", "sub"].iter().map(ToString::to_string).collect();
        if require_exp {
            required.insert("exp".into());
        }
        v.required_spec_claims = required;
        v.validate_exp = true;
        v.leeway = 30;
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            // jsonwebtoken checks `iss` only when present unless it is required.
            v.required_spec_claims.insert("iss".into());
        }
        v
    }

    pub fn verify_admin(&self, token: &str) -> Result<AdminClaims, Problem> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Problem::unauthorized("the bearer token is not a valid JWT"))?;
        let (alg, key) = match (&self.external_admin_key, header.alg) {
            (_, Algorithm::HS256) => (Algorithm::HS256, &self.decoding),
            (Some(ext), alg) if alg == ext.algorithm => (alg, &ext.key),
            _ => {
                return Err(Problem::unauthorized(
                    "the token's signing algorithm is not accepted",
                ));
            }
        };
        jsonwebtoken::decode::<AdminClaims>(token, key, &self.validation(alg, ADMIN_AUDIENCE, true))
            .map(|d| d.claims)
            .map_err(|e| Problem::unauthorized(format!("the admin token was refused: {e}")))
    }

    pub fn verify_device(&self, token: &str) -> Result<DeviceClaims, Problem> {
        jsonwebtoken::decode::<DeviceClaims>(
            token,
            &self.decoding,
            &self.validation(Algorithm::HS256, DEVICE_AUDIENCE, false),
        )
        .map(|d| d.claims)
        .map_err(|e| Problem::unauthorized(format!("the device token was refused: {e}")))
    }

    pub fn mint_admin(&self, sub: &str, role: Role, ttl_s: i64) -> Result<String, Problem> {
        let claims = AdminClaims {
            sub: sub.to_owned(),
            role,
            aud: ADMIN_AUDIENCE.to_owned(),
            exp: time::OffsetDateTime::now_utc().unix_timestamp() + ttl_s,
            iss: self.issuer.clone(),
        };
        self.encode(&claims)
    }

    pub fn mint_device(
        &self,
        device_id: &DeviceId,
        device_type: &DeviceType,
        exp: Option<i64>,
    ) -> Result<String, Problem> {
        let claims = DeviceClaims {
            sub: device_id.to_string(),
            aud: DEVICE_AUDIENCE.to_owned(),
            device_type: device_type.to_string(),
            exp,
            iss: self.issuer.clone(),
        };
        self.encode(&claims)
    }

    fn encode<T: Serialize>(&self, claims: &T) -> Result<String, Problem> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            Problem::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the token could not be signed",
            )
        })
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl DeviceCredentials for AuthConfig {
    fn mint(
        &self,
        device_id: &DeviceId,
        device_type: &DeviceType,
        expires_at: Option<time::OffsetDateTime>,
    ) -> StoreResult<String> {
        self.mint_device(
            device_id,
            device_type,
            expires_at.map(time::OffsetDateTime::unix_timestamp),
        )
        .map_err(|p| StoreError::Internal(p.detail))
    }
}

/// An admin or CI caller, from a verified admin bearer token.
impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = bearer(parts).ok_or_else(|| {
            Problem::unauthorized("an admin bearer token is required (Authorization: Bearer <jwt>)")
        })?;
        let claims = state.auth.verify_admin(token)?;
        Ok(Admin {
            actor: claims.sub,
            role: claims.role,
        })
    }
}

/// What the calling device's token reaches: everything when device authentication is off for
/// this deployment.
impl FromRequestParts<AppState> for DeviceGrant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        if !state.auth.device_auth {
            return Ok(DeviceGrant::Any);
        }
        let token = bearer(parts)
            .or_else(|| parts.headers.get(DEVICE_TOKEN_HEADER)?.to_str().ok())
            .ok_or_else(|| {
                Problem::unauthorized(
                    "a device token is required (Authorization: Bearer <jwt> or X-OTA-Device-Token)",
                )
            })?;
        let claims = state.auth.verify_device(token)?;
        Ok(DeviceGrant::Device {
            device_id: claims.sub,
            device_type: claims.device_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

    const ES256_PRIVATE: &[u8] = include_bytes!("../tests/keys/test-es256-private.pem");
    const ES256_PUBLIC: &[u8] = include_bytes!("../tests/keys/test-es256-public.pem");

    fn config() -> AuthConfig {
        AuthConfig::new(b"secret", None, true)
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    fn es256_admin_token(aud: &str) -> String {
        let claims = AdminClaims {
            sub: "idp-user".into(),
            role: Role::Publisher,
            aud: aud.into(),
            exp: now() + 60,
            iss: None,
        };
        let key = EncodingKey::from_ec_pem(ES256_PRIVATE).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap()
    }

    #[test]
    fn external_es256_key_accepted_only_when_configured() {
        let token = es256_admin_token(ADMIN_AUDIENCE);
        assert!(config().verify_admin(&token).is_err());
        let with_key = config()
            .with_external_admin_key(ExternalAdminKey::from_pem("ES256", ES256_PUBLIC).unwrap());
        let claims = with_key.verify_admin(&token).unwrap();
        assert_eq!(claims.role, Role::Publisher);
        assert!(
            with_key
                .verify_admin(&es256_admin_token(DEVICE_AUDIENCE))
                .is_err()
        );
        // Own HS256 tokens keep working beside the external key.
        let own = with_key.mint_admin("ci", Role::Viewer, 60).unwrap();
        assert_eq!(with_key.verify_admin(&own).unwrap().role, Role::Viewer);
    }

    #[test]
    fn audiences_do_not_cross() {
        let c = config();
        let admin = c.mint_admin("a", Role::Admin, 60).unwrap();
        let device = c
            .mint_device(
                &DeviceId::parse("d1").unwrap(),
                &DeviceType::parse("t").unwrap(),
                None,
            )
            .unwrap();
        assert!(c.verify_device(&admin).is_err());
        assert!(c.verify_admin(&device).is_err());
        assert!(c.verify_device(&device).is_ok());
    }

    #[test]
    fn unsigned_and_foreign_tokens_refused() {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = format!(
            r#"{{"sub":"x","role":"admin","aud":"ota-admin","exp":{}}}"#,
            now() + 60
        );
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert!(config().verify_admin(&none).is_err());
        let foreign = AuthConfig::new(b"other", None, true)
            .mint_admin("x", Role::Admin, 60)
            .unwrap();
        assert!(config().verify_admin(&foreign).is_err());
        let expired = config().mint_admin("x", Role::Admin, -3600).unwrap();
        assert!(config().verify_admin(&expired).is_err());
        assert!(ExternalAdminKey::from_pem("HS256", ES256_PUBLIC).is_err());
        assert!(ExternalAdminKey::from_pem("ES256", b"not a key").is_err());
    }

    #[test]
    fn issuer_checked_when_configured() {
        let with_iss = AuthConfig::new(b"secret", Some("https://idp".into()), true);
        let token = config().mint_admin("x", Role::Admin, 60).unwrap();
        assert!(with_iss.verify_admin(&token).is_err());
        let good = with_iss.mint_admin("x", Role::Admin, 60).unwrap();
        assert!(with_iss.verify_admin(&good).is_ok());
    }
}
