//! Credentials (docs/api.md §Credentials): admin JWTs with a role, device JWTs bound to one
//! device, verified here and handed to the commands as an `Admin` or a `DeviceGrant`.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ota_core::access::{Admin, DeviceGrant};
use ota_core::ids::{DeviceId, DeviceType};
use ota_core::ports::{DeviceCredentials, StoreError, StoreResult};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::state::AppState;
use crate::verified_tokens::{VerifiedDevice, VerifiedTokens};

pub const ADMIN_AUDIENCE: &str = "ota-admin";
pub const DEVICE_AUDIENCE: &str = "ota-device";
/// The header a device may carry its token in, so that a redirect to a presigned S3 URL does
/// not carry an `Authorization` header S3 would refuse (docs/esp-image.md §5).
pub const DEVICE_TOKEN_HEADER: &str = "x-ota-device-token";

pub use ota_core::access::Role;

/// Seconds a token's `exp` and `nbf` may be off (docs/api.md §2.3): clocks of devices and CI
/// runners drift.
pub const LEEWAY_S: u64 = 30;

/// A token's claims as verified, before ours are read from them.
type Claims = serde_json::Map<String, serde_json::Value>;

/// Why a token was refused, in the contract's words: the library's messages name its internals
/// (serde's, the algorithm list), which a client has no use for.
fn refusal(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::InvalidAudience => "the token is not meant for this API (aud)".to_owned(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".to_owned(),
        ErrorKind::InvalidAlgorithm => "the token's signing algorithm is not accepted".to_owned(),
        // The claim names come from our own list of required claims.
        ErrorKind::MissingRequiredClaim(claim) => format!("the token lacks the claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's claim {claim} is malformed"),
        _ => "the bearer token is not a valid JWT".to_owned(),
    }
}

/// A claim that must be a string.
fn text_claim<'c>(claims: &'c Claims, name: &str) -> Result<&'c str, Problem> {
    match claims.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s),
        None => Err(Problem::unauthorized(format!(
            "the token lacks the claim {name}"
        ))),
        Some(_) => Err(Problem::unauthorized(format!(
            "the token's claim {name} must be a string"
        ))),
    }
}

/// A time claim (unix seconds) the library has already checked, when present.
fn time_claim(claims: &Claims, name: &str) -> Option<i64> {
    claims.get(name).and_then(serde_json::Value::as_i64)
}

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

pub struct AuthConfig {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: Option<String>,
    pub external_admin_key: Option<ExternalAdminKey>,
    /// `OTA_DEVICE_AUTH=off` for bench setups: device endpoints accept anyone.
    pub device_auth: bool,
    /// Built once: every device request checks against it.
    device_validation: Validation,
    verified: VerifiedTokens,
}

impl AuthConfig {
    pub fn new(secret: &[u8], issuer: Option<String>, device_auth: bool) -> Self {
        let device_validation =
            validation(issuer.as_deref(), Algorithm::HS256, DEVICE_AUDIENCE, false);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer,
            external_admin_key: None,
            device_auth,
            device_validation,
            verified: VerifiedTokens::default(),
        }
    }

    pub fn with_external_admin_key(mut self, key: ExternalAdminKey) -> Self {
        self.external_admin_key = Some(key);
        self
    }

    /// The token's claims once its signature and its registered claims verify. They are read as
    /// a JSON object and then checked here, rather than deserialized into a struct, so that a
    /// refusal says which claim is wrong in our words, never in serde's.
    fn verified_claims(
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<Claims, Problem> {
        jsonwebtoken::decode::<Claims>(token, key, validation)
            .map(|d| d.claims)
            .map_err(|e| Problem::unauthorized(refusal(e.kind())))
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
        let claims = Self::verified_claims(
            token,
            key,
            &validation(self.issuer.as_deref(), alg, ADMIN_AUDIENCE, true),
        )?;
        let role = match text_claim(&claims, "role")? {
            "viewer" => Role::Viewer,
            "publisher" => Role::Publisher,
            "admin" => Role::Admin,
            _ => {
                return Err(Problem::unauthorized(
                    "the token's role must be viewer, publisher or admin",
                ));
            }
        };
        Ok(AdminClaims {
            sub: text_claim(&claims, "sub")?.to_owned(),
            role,
            aud: ADMIN_AUDIENCE.to_owned(),
            exp: time_claim(&claims, "exp").unwrap_or_default(),
            iss: self.issuer.clone(),
        })
    }

    /// The device a token names, verified in full the first time this process sees the token
    /// and remembered after that (`verified_tokens.rs`).
    pub fn verify_device(&self, token: &str) -> Result<VerifiedDevice, Problem> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(known) = self.verified.get(token, now, LEEWAY_S) {
            return Ok(known);
        }
        let claims = Self::verified_claims(token, &self.decoding, &self.device_validation)?;
        let device = VerifiedDevice {
            sub: text_claim(&claims, "sub")?.to_owned(),
            device_type: text_claim(&claims, "device_type")?.to_owned(),
            exp: time_claim(&claims, "exp"),
        };
        self.verified.remember(token, &device);
        Ok(device)
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

/// What a token must be for `audience`, signed with `algorithm` and issued by `issuer` when one
/// is configured.
fn validation(
    issuer: Option<&str>,
    algorithm: Algorithm,
    audience: &str,
    require_exp: bool,
) -> Validation {
    let mut v = Validation::new(algorithm);
    // RFC 7519 §4.1.3: `aud` may be one string or an array; jsonwebtoken accepts either
    // when one of its values is ours.
    v.set_audience(&[audience]);
    let mut required: HashSet<String> = ["aud", "sub"].iter().map(ToString::to_string).collect();
    if require_exp {
        required.insert("exp".into());
    }
    v.required_spec_claims = required;
    v.validate_exp = true;
    // `nbf` is checked when present, with the same leeway as `exp` (docs/api.md §2.3).
    v.validate_nbf = true;
    v.leeway = LEEWAY_S;
    if let Some(iss) = issuer {
        v.set_issuer(&[iss]);
        // jsonwebtoken checks `iss` only when present unless it is required.
        v.required_spec_claims.insert("iss".into());
    }
    v
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

    fn signed(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    }

    fn refused_admin(claims: &serde_json::Value) -> String {
        config().verify_admin(&signed(claims)).unwrap_err().detail
    }

    fn refused_device(claims: &serde_json::Value) -> String {
        config().verify_device(&signed(claims)).unwrap_err().detail
    }

    #[test]
    fn not_before_is_checked_with_the_leeway() {
        let admin = |nbf: i64| {
            serde_json::json!({"sub": "a", "role": "admin", "aud": "ota-admin",
                               "exp": now() + 7200, "nbf": nbf})
        };
        assert_eq!(
            refused_admin(&admin(now() + 86_400)),
            "the token is not valid yet"
        );
        // Within the leeway of a drifting clock, and in the past: valid.
        assert!(config().verify_admin(&signed(&admin(now() + 10))).is_ok());
        assert!(config().verify_admin(&signed(&admin(now() - 60))).is_ok());
        let device = serde_json::json!({"sub": "d1", "aud": "ota-device", "device_type": "t",
                                        "nbf": now() + 86_400});
        assert_eq!(refused_device(&device), "the token is not valid yet");
    }

    #[test]
    fn an_audience_array_holding_ours_is_accepted() {
        let admin = |aud: serde_json::Value| serde_json::json!({"sub": "a", "role": "viewer", "aud": aud, "exp": now() + 60});
        let claims = config()
            .verify_admin(&signed(&admin(serde_json::json!(["other", "ota-admin"]))))
            .unwrap();
        assert_eq!(claims.role, Role::Viewer);
        assert_eq!(
            refused_admin(&admin(serde_json::json!(["other", "ota-device"]))),
            "the token is not meant for this API (aud)"
        );
        let device = serde_json::json!({"sub": "d1", "aud": ["ota-device"], "device_type": "t"});
        assert_eq!(
            config()
                .verify_device(&signed(&device))
                .unwrap()
                .device_type,
            "t"
        );
    }

    #[test]
    fn the_expiry_leeway_is_thirty_seconds() {
        let admin = |exp: i64| serde_json::json!({"sub": "a", "role": "admin", "aud": "ota-admin", "exp": exp});
        assert!(config().verify_admin(&signed(&admin(now() - 20))).is_ok());
        assert_eq!(refused_admin(&admin(now() - 40)), "the token has expired");
    }

    #[test]
    fn refusals_say_what_is_wrong_in_our_words() {
        let c = config();
        let device = serde_json::json!({"sub": "d1", "aud": "ota-device"});
        assert_eq!(
            refused_device(&device),
            "the token lacks the claim device_type"
        );
        let admin = serde_json::json!({"sub": "a", "aud": "ota-admin", "exp": now() + 60});
        assert_eq!(refused_admin(&admin), "the token lacks the claim role");
        let admin = serde_json::json!({"sub": "a", "role": "root", "aud": "ota-admin",
                                       "exp": now() + 60});
        assert_eq!(
            refused_admin(&admin),
            "the token's role must be viewer, publisher or admin"
        );
        let admin = serde_json::json!({"sub": "a", "role": "admin", "aud": "ota-admin"});
        assert_eq!(refused_admin(&admin), "the token lacks the claim exp");
        let foreign = AuthConfig::new(b"other", None, true)
            .mint_admin("x", Role::Admin, 60)
            .unwrap();
        assert_eq!(
            c.verify_admin(&foreign).unwrap_err().detail,
            "the token's signature does not verify"
        );
        let es256 = es256_admin_token(ADMIN_AUDIENCE);
        assert_eq!(
            c.verify_device(&es256).unwrap_err().detail,
            "the token's signing algorithm is not accepted"
        );
        assert_eq!(
            c.verify_admin("not.a.jwt").unwrap_err().detail,
            "the bearer token is not a valid JWT"
        );
    }
}
