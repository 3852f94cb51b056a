//! `otactl keys`: the manifest keys (docs/api.md §3.1, §3.5).
//!
//! `generate`: a new signing key, made by the server's own code (`ota_core::manifest_keys`), as a
//! line of the key ring's text. SAM and Secrets Manager cannot generate an EC key, so the AWS
//! deployment's secret is created from this line (infra/README.md).
//!
//! `export --c-header`: the ring's public keys as a C header that the ESP-IDF client component
//! compiles in (its `ota_client_key_t`), so that a device verifies manifests with keys it was
//! built with rather than ones fetched over the network it is to distrust. From the server's
//! `GET /api/ota/keys` (no credential), or offline from a key ring file at a factory.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ota_core::manifest_keys::ManifestKeys;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::{KeysCmd, Output};
use crate::client::{Client, typed};
use crate::error::{Error, Result};
use crate::output;

pub async fn run(cmd: &KeysCmd, server: Option<&str>, out: Output) -> Result<()> {
    match cmd {
        KeysCmd::Generate => {
            generate(out);
            Ok(())
        }
        KeysCmd::Export { keys_file, .. } => {
            let jwks = match keys_file {
                Some(path) => ring_keys(path)?,
                None => {
                    Client::anonymous(super::server(server)?)?
                        .get("/api/ota/keys", &[])
                        .await?
                }
            };
            let keys = public_keys(&jwks)?;
            let header = c_header(&keys);
            let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
            output::emit(out, &json!({"c_header": header, "kids": kids}), || header);
            Ok(())
        }
    }
}

fn generate(out: Output) {
    let line = ManifestKeys::generate_line();
    let kid = match ManifestKeys::parse(&line) {
        Ok(keys) => keys.signing_kid().to_owned(),
        // `generate_line` draws until the bytes are a valid key.
        Err(e) => unreachable!("a generated key parses: {e}"),
    };
    // Table mode is the line itself, its kid as a comment (which the key file allows) so that an
    // operator can tell the lines of a rotation apart: `otactl keys generate >> manifest-keys`.
    output::emit(out, &json!({"key": line, "kid": kid}), || {
        format!("{line}  # kid {kid}\n")
    });
}

/// The public keys of a key ring file, as the server would publish them.
fn ring_keys(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::failed(format!("reading {}: {e}", path.display())))?;
    let ring = ManifestKeys::parse(&text)
        .map_err(|e| Error::failed(format!("{}: {e}", path.display())))?;
    serde_json::to_value(ring.jwks())
        .map_err(|e| Error::failed(format!("the key set does not encode: {e}")))
}

/// A JWK as published (RFC 7517), with what a manifest key must be left to check.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// One manifest key as firmware holds it.
#[derive(Debug, PartialEq)]
struct PublicKey {
    kid: String,
    /// The uncompressed SEC1 point: 0x04, x, y.
    sec1: Vec<u8>,
}

/// The keys of a JWK set, in its order (the signing key first); refused, naming the key, unless
/// every one is an ES256 key: EC on P-256, with a `kid` and a point on the curve.
fn public_keys(jwks: &Value) -> Result<Vec<PublicKey>> {
    let set: JwkSet = typed(jwks, "key set")?;
    if set.keys.is_empty() {
        return Err(Error::failed("the key set has no key"));
    }
    set.keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let refuse = |why: String| {
                let name = k.kid.as_deref().unwrap_or("without a kid");
                Error::failed(format!(
                    "key {i} ({name}) is not an ES256 manifest key: {why}"
                ))
            };
            let field = |v: &Option<String>| v.as_deref().unwrap_or("none").to_owned();
            if k.kty != "EC" || k.crv.as_deref() != Some("P-256") {
                return Err(refuse(format!(
                    "kty {} crv {}, not EC P-256",
                    k.kty,
                    field(&k.crv)
                )));
            }
            if k.alg.as_deref().is_some_and(|a| a != "ES256") {
                return Err(refuse(format!("alg {}", field(&k.alg))));
            }
            // An RFC 7638 kid is base64url: nothing in it needs escaping in a C string.
            let kid = k
                .kid
                .clone()
                .filter(|kid| {
                    !kid.is_empty()
                        && kid
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                })
                .ok_or_else(|| refuse("no kid of base64url characters".into()))?;
            let coordinate = |name: &str, v: &Option<String>| {
                v.as_deref()
                    .and_then(|c| URL_SAFE_NO_PAD.decode(c).ok())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| refuse(format!("{name} is not 32 bytes of base64url")))
            };
            let mut sec1 = vec![0x04];
            sec1.extend(coordinate("x", &k.x)?);
            sec1.extend(coordinate("y", &k.y)?);
            p256::PublicKey::from_sec1_bytes(&sec1)
                .map_err(|_| refuse("its point is not on P-256".into()))?;
            Ok(PublicKey { kid, sec1 })
        })
        .collect()
}

/// Bytes of a point a line of the header holds.
const BYTES_PER_LINE: usize = 8;

/// The header the ESP-IDF component includes: these names are its interface.
fn c_header(keys: &[PublicKey]) -> String {
    let mut h = String::from(
        "/* Manifest verification keys of ota-server, from `otactl keys export --c-header`.\n \
         * The first key signs today; every key listed is accepted. Regenerate after a rotation. */\n\
         #pragma once\n\
         #include \"ota_client.h\"\n\
         \n\
         static const ota_client_key_t OTA_MANIFEST_KEYS[] = {\n",
    );
    for key in keys {
        let _ = writeln!(
            h,
            "    {{\n        .kid = \"{}\",\n        .public_key = {{",
            key.kid
        );
        // 0x04 on a line of its own, then x and y: a key reads as the JWK's coordinates.
        let (tag, coordinates) = key.sec1.split_at(1);
        for line in [tag].into_iter().chain(coordinates.chunks(BYTES_PER_LINE)) {
            let bytes: Vec<String> = line.iter().map(|b| format!("0x{b:02x},")).collect();
            let _ = writeln!(h, "            {}", bytes.join(" "));
        }
        h.push_str("        },\n    },\n");
    }
    h.push_str(
        "};\n\
         #define OTA_MANIFEST_KEYS_COUNT (sizeof(OTA_MANIFEST_KEYS) / sizeof(OTA_MANIFEST_KEYS[0]))\n",
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7515 Appendix A.3's P-256 key.
    const RFC_D: &str = "8e9b109e719098bf980487df1f5d77e9cb29606ebed2263b5f57c213df84f4b2";

    fn rfc_jwk() -> Value {
        let ring = ManifestKeys::parse(RFC_D).unwrap();
        serde_json::to_value(ring.jwks()).unwrap()["keys"][0].clone()
    }

    fn refused(jwk: &Value) -> String {
        match public_keys(&json!({"keys": [jwk]})) {
            Err(e) => e.to_string(),
            Ok(keys) => panic!("accepted: {keys:?}"),
        }
    }

    #[test]
    fn keys_that_are_not_es256_are_refused_naming_the_key_and_why() {
        let with = |k: &str, v: Value| {
            let mut jwk = rfc_jwk();
            jwk[k] = v;
            jwk
        };
        let rsa = json!({"kty": "RSA", "kid": "r1", "n": "AQAB", "e": "AQAB"});
        for (jwk, says) in [
            (
                rsa,
                "key 0 (r1) is not an ES256 manifest key: kty RSA crv none",
            ),
            (with("crv", json!("P-384")), "crv P-384"),
            (with("alg", json!("ES384")), "alg ES384"),
            (with("x", json!("AAAA")), "x is not 32 bytes"),
            (with("y", Value::Null), "y is not 32 bytes"),
            (with("kid", Value::Null), "(without a kid)"),
            (with("kid", json!("a\"b")), "no kid of base64url characters"),
            // A point off the curve: x with y of another point.
            (
                with("y", json!(URL_SAFE_NO_PAD.encode([7u8; 32]))),
                "not on P-256",
            ),
        ] {
            let e = refused(&jwk);
            assert!(e.contains(says), "{e}");
        }
        let e = public_keys(&json!({"keys": []})).unwrap_err();
        assert!(e.to_string().contains("no key"), "{e}");
    }

    #[test]
    fn the_header_holds_each_point_after_its_kid_eight_bytes_a_line() {
        let keys = public_keys(&json!({"keys": [rfc_jwk(), with_alg_absent()]})).unwrap();
        assert_eq!(keys.len(), 2);
        let h = c_header(&keys);
        assert!(h.starts_with(
            "/* Manifest verification keys of ota-server, from `otactl keys export --c-header`.\n \
             * The first key signs today; every key listed is accepted. Regenerate after a rotation. */\n\
             #pragma once\n#include \"ota_client.h\"\n\n\
             static const ota_client_key_t OTA_MANIFEST_KEYS[] = {\n"
        ), "{h}");
        assert!(h.ends_with(
            "};\n#define OTA_MANIFEST_KEYS_COUNT (sizeof(OTA_MANIFEST_KEYS) / sizeof(OTA_MANIFEST_KEYS[0]))\n"
        ), "{h}");
        // RFC 7515 A.3's x starts 7f cd ce 27 70 f6 c4 5d.
        assert!(
            h.contains(
                "            0x04,\n            0x7f, 0xcd, 0xce, 0x27, 0x70, 0xf6, 0xc4, 0x5d,\n"
            ),
            "{h}"
        );
        assert_eq!(h.matches(".public_key").count(), 2);
        assert_eq!(h.matches("0x").count(), 2 * 65);
        assert!(h.lines().all(|l| l.len() <= 100), "{h}");
    }

    fn with_alg_absent() -> Value {
        let mut jwk = rfc_jwk();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk
    }
}
