//! The key ring that signs update manifests (docs/api.md §3.1, §3.5): ES256 (ECDSA P-256 with
//! SHA-256) as a JWS compact serialization, so that a device verifies a manifest with mbedTLS
//! alone. The first key signs; every key is published (`GET /api/ota/keys`), so that a rotation
//! can publish the next key (second) until devices have it, and only then put it first.
//!
//! The ring is kept as text, one key a line: the private scalar as 64 hex characters, with `#`
//! starting a comment. The same text is the embedded server's `manifest-keys` file, the Lambda
//! functions' Secrets Manager secret and `OTA_MANIFEST_KEYS`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::SigningKey;
use rand::RngCore;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::manifest::ManifestClaims;

/// The JWS `typ` of a manifest: a device refuses a token of another kind signed by the same key.
pub const MANIFEST_TYP: &str = "ota-manifest+jwt";

/// One public key of the ring as a JWK (RFC 7517, RFC 7518 §6.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Jwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// The public point's x coordinate, 32 bytes, base64url without padding.
    pub x: String,
    /// The public point's y coordinate, 32 bytes, base64url without padding.
    pub y: String,
    /// RFC 7638 thumbprint of the key: what a manifest's header names as `kid`.
    pub kid: String,
    /// `ES256`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    #[schema(rename = "use")]
    pub use_: String,
}

/// The published key set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct JwkSet {
    /// Every key of the ring; the first signs.
    pub keys: Vec<Jwk>,
}

#[derive(Clone)]
struct Key {
    /// ring's signer: ~9x faster than the RustCrypto one (22 against 190 µs a signature here,
    /// `cargo bench -p ota-core --bench manifest_sign`), and a signature is made on every check
    /// of the device client, which sends a nonce each time.
    signing: Arc<EcdsaKeyPair>,
    public: Jwk,
}

impl Key {
    /// `None` when ring refuses the pair (it never does for a scalar p256 accepted).
    fn new(scalar: &SigningKey) -> Option<Self> {
        let point = scalar.verifying_key().to_encoded_point(false);
        let signing = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &scalar.to_bytes(),
            point.as_bytes(),
            &SystemRandom::new(),
        )
        .ok()?;
        // An uncompressed point that is not the identity (a public key never is) has both.
        let coordinate =
            |c: Option<&p256::FieldBytes>| c.map(|c| URL_SAFE_NO_PAD.encode(c)).unwrap_or_default();
        let (x, y) = (coordinate(point.x()), coordinate(point.y()));
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
        let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()));
        Some(Self {
            signing: Arc::new(signing),
            public: Jwk {
                kty: "EC".to_owned(),
                crv: "P-256".to_owned(),
                x,
                y,
                kid,
                alg: "ES256".to_owned(),
                use_: "sig".to_owned(),
            },
        })
    }
}

/// The signing keys of update manifests, in the order of their text.
#[derive(Clone)]
pub struct ManifestKeys {
    /// Never empty: [`ManifestKeys::parse`] refuses a text without a key.
    keys: Vec<Key>,
}

impl std::fmt::Debug for ManifestKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The kids are public; the scalars never appear in a log.
        let kids: Vec<&str> = self.keys.iter().map(|k| k.public.kid.as_str()).collect();
        write!(f, "ManifestKeys({kids:?})")
    }
}

impl ManifestKeys {
    /// The ring from its text. The error says which line is wrong and why, never the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let scalar = hex::decode(line)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    format!(
                        "line {}: a key is a P-256 private key as 64 hex characters",
                        n + 1
                    )
                })?;
            let key = SigningKey::from_slice(&scalar)
                .ok()
                .and_then(|scalar| Key::new(&scalar))
                .ok_or_else(|| {
                    format!(
                        "line {}: not a P-256 private key (zero, or not below the curve order)",
                        n + 1
                    )
                })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no key: one P-256 private key (64 hex characters) a line".to_owned());
        }
        Ok(Self { keys })
    }

    /// A new key as a line of the ring's text, from 32 random bytes (drawn again in the rare
    /// case they are not a valid scalar).
    pub fn generate_line() -> String {
        loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return hex::encode(key.to_bytes());
            }
        }
    }

    /// The `kid` of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.signing_key().public.kid
    }

    /// Every public key, the signing one first.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.keys.iter().map(|k| k.public.clone()).collect(),
        }
    }

    /// `claims` as a JWS compact serialization signed by the first key: base64url (no padding)
    /// of the header and of the claims' JSON, and of the raw `r || s` signature (64 bytes) over
    /// the ASCII `header.payload` (RFC 7515, RFC 7518 §3.4). ring draws each signature's nonce
    /// from the system's random source mixed with the key, so the same claims sign differently
    /// each time; every one verifies.
    pub fn sign(&self, claims: &ManifestClaims) -> String {
        let key = self.signing_key();
        // Written out rather than serialized, so that its bytes are exactly the documented ones.
        let header = format!(
            r#"{{"alg":"ES256","kid":"{}","typ":"{MANIFEST_TYP}"}}"#,
            key.public.kid
        );
        let payload = match serde_json::to_vec(claims) {
            Ok(json) => json,
            // Strings, numbers and booleans only: serde_json has nothing to refuse.
            Err(e) => unreachable!("manifest claims serialize: {e}"),
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = match key
            .signing
            .sign(&SystemRandom::new(), signing_input.as_bytes())
        {
            Ok(signature) => signature,
            // ring fails only when the operating system's random source does, which leaves
            // nothing a check could answer with safely.
            Err(e) => panic!("the system's random source failed while signing a manifest: {e}"),
        };
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    fn signing_key(&self) -> &Key {
        // `parse` refuses an empty ring.
        &self.keys[0]
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::{Signature, VerifyingKey};

    use super::*;

    /// RFC 7515 Appendix A.3's P-256 key (its `d`, as hex).
    const RFC_D: &str = "8e9b109e719098bf980487df1f5d77e9cb29606ebed2263b5f57c213df84f4b2";

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        let keys = ManifestKeys::parse(RFC_D).unwrap();
        let jwk = &keys.jwks().keys[0];
        // RFC 7515 A.3 gives the public point of this private key.
        assert_eq!(jwk.x, "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU");
        assert_eq!(jwk.y, "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0");
        let thumbprint = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk.x, jwk.y
        );
        assert_eq!(
            jwk.kid,
            URL_SAFE_NO_PAD.encode(Sha256::digest(thumbprint.as_bytes()))
        );
        assert_eq!(keys.signing_kid(), jwk.kid);
    }

    #[test]
    fn the_text_has_comments_and_the_first_key_signs() {
        let second = ManifestKeys::generate_line();
        let text = format!("# rotation of 2026-12\n{second}  # new\n\n{RFC_D}\n");
        let keys = ManifestKeys::parse(&text).unwrap();
        let jwks = keys.jwks();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(keys.signing_kid(), jwks.keys[0].kid);
        assert_ne!(jwks.keys[0].kid, jwks.keys[1].kid);
        assert_eq!(
            jwks.keys[1].kid,
            ManifestKeys::parse(RFC_D).unwrap().signing_kid()
        );
    }

    #[test]
    fn bad_texts_are_refused_by_line_without_the_key() {
        for (text, says) in [
            ("", "no key"),
            ("# only a comment\n", "no key"),
            ("abcd", "line 1"),
            (&format!("\n{}", "z".repeat(64)), "line 2"),
            (&"0".repeat(64), "line 1: not a P-256 private key"),
            (&"f".repeat(64), "line 1: not a P-256 private key"),
        ] {
            let e = ManifestKeys::parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(text.trim().is_empty() || !e.contains(text.trim()), "{e}");
        }
    }

    #[test]
    fn a_manifest_is_a_compact_es256_jws_over_the_ascii_input() {
        let keys = ManifestKeys::parse(RFC_D).unwrap();
        let claims = crate::manifest::tests::up_to_date_claims();
        let token = keys.sign(&claims);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(!token.contains('='));
        let header = URL_SAFE_NO_PAD.decode(parts[0]).unwrap();
        assert_eq!(
            String::from_utf8(header).unwrap(),
            format!(
                r#"{{"alg":"ES256","kid":"{}","typ":"ota-manifest+jwt"}}"#,
                keys.signing_kid()
            )
        );
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[1]).unwrap(),
            serde_json::to_vec(&claims).unwrap()
        );
        // Verified by another implementation (RustCrypto's) than the one that signed (ring).
        let d = hex::decode(RFC_D).unwrap();
        let public = VerifyingKey::from(&SigningKey::from_slice(&d).unwrap());
        let verifies = |token: &str| {
            let parts: Vec<&str> = token.split('.').collect();
            let raw = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            assert_eq!(raw.len(), 64, "r || s");
            let signature = Signature::from_slice(&raw).unwrap();
            let input = format!("{}.{}", parts[0], parts[1]);
            public.verify(input.as_bytes(), &signature).is_ok()
        };
        assert!(verifies(&token));
        // A fresh nonce each time: the same claims sign differently, and both verify.
        let again = keys.sign(&claims);
        assert_ne!(again, token);
        assert_eq!(
            again.rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().0
        );
        assert!(verifies(&again));
        // A changed payload does not.
        let mut forged: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(b"{}");
        forged[1] = &other;
        assert!(!verifies(&forged.join(".")));
    }

    #[test]
    fn generated_lines_are_keys_of_their_own() {
        let (a, b) = (ManifestKeys::generate_line(), ManifestKeys::generate_line());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(ManifestKeys::parse(&a).is_ok());
    }
}
