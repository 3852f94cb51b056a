//! Signed CloudFront URLs for the firmware a device downloads, when a distribution sits in front
//! of the bucket (infra/template.yaml, `CloudFront=enabled`): S3 stays private, reachable only by
//! the distribution (origin access control), and the distribution serves only URLs signed with
//! a key of its trusted key group.
//!
//! A canned policy, as CloudFront documents it ("Create a signed URL using a canned policy"): the
//! policy `{"Statement":[{"Resource":"<url>","Condition":{"DateLessThan":{"AWS:EpochTime":<exp>}}}]}`
//! without whitespace, signed with RSA (PKCS#1 v1.5) over SHA-1, base64 with `+`, `=`, `/`
//! replaced by `-`, `_`, `~`, sent as `Expires`, `Signature` and `Key-Pair-Id`. CloudFront now
//! also takes ECDSA P-256 keys and SHA-256 (with a `Hash-Algorithm=SHA256` parameter), but
//! RSA 2048 with SHA-1 is the form every CloudFront example, SDK and tool signs and checks; the
//! policy is ours, never an attacker's, so SHA-1's collisions give nobody a second URL.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ota_core::ports::{SignedUrl, StoreError, StoreResult};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use sha1::Sha1;
use time::OffsetDateTime;

/// CloudFront trusts RSA keys of exactly this size (and ECDSA P-256 ones, not used here).
pub const RSA_KEY_BITS: usize = 2048;

/// The private half of a key pair whose public half is in the distribution's trusted key group.
#[derive(Clone)]
pub struct CloudFrontKey(RsaPrivateKey);

impl fmt::Debug for CloudFrontKey {
    /// What it is, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloudFrontKey(RSA {} bits)", self.0.size() * 8)
    }
}

impl CloudFrontKey {
    /// The key from its PEM text: PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genrsa` writes
    /// since OpenSSL 3) or PKCS#1 (`BEGIN RSA PRIVATE KEY`), unencrypted, RSA 2048. The error
    /// says what the text is instead, never any of its content.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        const HINT: &str = "an unencrypted RSA 2048 private key in PEM (openssl genrsa -out \
                            cloudfront-key.pem 2048)";
        let pem = pem.trim();
        let label = pem
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.split_once("-----"))
            .map(|(label, _)| label);
        let key = match label {
            Some("PRIVATE KEY") => RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| format!("not {HINT}: a PKCS#8 key that is not RSA ({e})"))?,
            Some("RSA PRIVATE KEY") => RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| format!("not {HINT}: a broken PKCS#1 RSA key ({e})"))?,
            Some("EC PRIVATE KEY") => {
                return Err(format!("not {HINT}: an EC key"));
            }
            Some("ENCRYPTED PRIVATE KEY") => {
                return Err(format!(
                    "not {HINT}: the key is encrypted with a passphrase (openssl pkey -in key.pem \
                     -out plain.pem decrypts it)"
                ));
            }
            Some(label) if label.contains("PUBLIC KEY") => {
                return Err(format!(
                    "not {HINT}: a public key (it goes to CloudFront, as the template's \
                     CloudFrontPublicKeyPem; this setting is its private half)"
                ));
            }
            _ => return Err(format!("not {HINT}: no PEM private key block")),
        };
        let bits = key.size() * 8;
        if bits != RSA_KEY_BITS {
            return Err(format!(
                "not {HINT}: an RSA key of {bits} bits (CloudFront trusts RSA keys of \
                 {RSA_KEY_BITS} bits only)"
            ));
        }
        key.validate()
            .map_err(|e| format!("not {HINT}: an inconsistent RSA key ({e})"))?;
        Ok(Self(key))
    }
}

/// Signs download URLs of one distribution with one key of its trusted key group.
#[derive(Clone)]
pub struct CloudFrontSigner {
    /// `https://<domain>/`: the distribution serves https only.
    base: String,
    key_pair_id: String,
    key: SigningKey<Sha1>,
}

impl fmt::Debug for CloudFrontSigner {
    /// The distribution and the key's id, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudFrontSigner")
            .field("base", &self.base)
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

impl CloudFrontSigner {
    /// `domain` and `key_pair_id` as `ota_http::config` checked them (`OTA_CLOUDFRONT_DOMAIN`, a
    /// host name; `OTA_CLOUDFRONT_KEY_PAIR_ID`, the id CloudFront gave the public key).
    pub fn new(domain: &str, key_pair_id: &str, key: CloudFrontKey) -> Self {
        Self {
            base: format!("https://{domain}/"),
            key_pair_id: key_pair_id.to_owned(),
            key: SigningKey::new(key.0),
        }
    }

    /// The distribution's domain the URLs go to.
    pub fn domain(&self) -> &str {
        self.base
            .trim_start_matches("https://")
            .trim_end_matches('/')
    }

    /// The CloudFront id of the public key that checks these signatures.
    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    /// A URL for `key` that works for `ttl` from now. `Expires` is whole seconds, so the URL
    /// stops at the second before; `expires_at` says exactly that moment, never later.
    pub fn download_url(&self, key: &str, ttl: Duration) -> StoreResult<SignedUrl> {
        let expires = i64::try_from(ttl.as_secs())
            .ok()
            .and_then(|ttl| OffsetDateTime::now_utc().unix_timestamp().checked_add(ttl))
            .ok_or_else(|| StoreError::Internal("URL lifetime out of range".into()))?;
        let expires_at = OffsetDateTime::from_unix_timestamp(expires)
            .map_err(|e| StoreError::Internal(format!("URL expiry: {e}")))?;
        Ok(SignedUrl {
            url: self.signed_url(key, expires),
            expires_at,
        })
    }

    /// `https://<domain>/<key>?Expires=<expires>&Signature=<sig>&Key-Pair-Id=<id>`.
    fn signed_url(&self, key: &str, expires: i64) -> String {
        let resource = format!("{}{}", self.base, encode_path(key));
        let signature = self.key.sign(canned_policy(&resource, expires).as_bytes());
        format!(
            "{resource}?Expires={expires}&Signature={}&Key-Pair-Id={}",
            url_safe_base64(&signature.to_bytes()),
            self.key_pair_id
        )
    }
}

/// The canned policy of `resource` until `expires`, without whitespace. `resource` is written
/// as is: after `encode_path` it holds no `"` or `\` that JSON would need escaped.
fn canned_policy(resource: &str, expires: i64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    )
}

/// The object key as a URL path: RFC 3986 unreserved characters and `/` as they are, every
/// other byte percent-encoded, so that the URL a device requests is byte for byte the policy's
/// `Resource` (the keys the service writes, `firmware/<uuid>.bin`, need no encoding).
fn encode_path(key: &str) -> String {
    const PATH: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(key, PATH).to_string()
}

/// Base64 with the characters a query string cannot carry replaced as CloudFront expects.
fn url_safe_base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::signature::Verifier;

    use super::*;

    const KEY: &str = "firmware/0192f5a0-7b1c-7d4e-9a3b-5c6d7e8f9a0b.bin";
    const DOMAIN: &str = "d111111abcdef8.cloudfront.net";
    const KEY_PAIR_ID: &str = "K2JCJMDEHXQW5F";

    /// A key made for this test run, from a fixed seed (never deployed anywhere).
    fn test_key(bits: usize) -> RsaPrivateKey {
        RsaPrivateKey::new(&mut ChaCha8Rng::seed_from_u64(16), bits).unwrap()
    }

    fn signer(private: &RsaPrivateKey) -> CloudFrontSigner {
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        CloudFrontSigner::new(DOMAIN, KEY_PAIR_ID, CloudFrontKey::from_pem(&pem).unwrap())
    }

    /// The query parameters of `url`, in order.
    fn query(url: &str) -> Vec<(String, String)> {
        let (_, q) = url.split_once('?').unwrap();
        q.split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    /// Undoes CloudFront's substitutions, then base64.
    fn decode_signature(s: &str) -> Vec<u8> {
        let std: String = s
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '=',
                '~' => '/',
                c => c,
            })
            .collect();
        B64.decode(std).unwrap()
    }

    #[test]
    fn the_signature_verifies_with_the_public_key_over_the_canned_policy() {
        let private = test_key(RSA_KEY_BITS);
        let url = signer(&private).signed_url(KEY, 1_767_290_400);
        assert!(
            url.starts_with(&format!(
                "https://{DOMAIN}/{KEY}?Expires=1767290400&Signature="
            )),
            "{url}"
        );
        let q = query(&url);
        let names: Vec<&str> = q.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Expires", "Signature", "Key-Pair-Id"]);
        assert_eq!(q[2].1, KEY_PAIR_ID);
        assert!(
            !q[1].1.contains(['+', '=', '/']),
            "no character a query string cannot carry: {}",
            q[1].1
        );

        // Checked with the rsa crate's verifier, from the public key alone: the policy CloudFront
        // rebuilds from the URL and `Expires`, exactly as documented.
        let policy = format!(
            "{{\"Statement\":[{{\"Resource\":\"https://{DOMAIN}/{KEY}\",\"Condition\":\
             {{\"DateLessThan\":{{\"AWS:EpochTime\":1767290400}}}}}}]}}"
        );
        let verifier = VerifyingKey::<Sha1>::new(private.to_public_key());
        let signature = Signature::try_from(decode_signature(&q[1].1).as_slice()).unwrap();
        verifier.verify(policy.as_bytes(), &signature).unwrap();
        // Another expiry, or another object, is another policy: the signature does not carry.
        for other in [
            policy.replace("1767290400", "1767290401"),
            policy.replace(".bin", ".elf"),
        ] {
            assert!(verifier.verify(other.as_bytes(), &signature).is_err());
        }
    }

    #[test]
    fn download_urls_expire_with_the_ttl_in_whole_seconds() {
        let signer = signer(&test_key(RSA_KEY_BITS));
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let signed = signer.download_url(KEY, Duration::from_secs(900)).unwrap();
        let after = OffsetDateTime::now_utc().unix_timestamp();
        let expires: i64 = query(&signed.url)[0].1.parse().unwrap();
        assert!((before + 900..=after + 900).contains(&expires), "{expires}");
        assert_eq!(signed.expires_at.unix_timestamp(), expires);
        assert_eq!(signed.expires_at.nanosecond(), 0);
    }

    #[test]
    fn base64_takes_cloudfronts_substitutions() {
        // 0xfb 0xff 0xbf is "+/+/" in standard base64; one byte more pads with "==".
        assert_eq!(url_safe_base64(&[0xfb, 0xff, 0xbf]), "-~-~");
        assert_eq!(url_safe_base64(&[0xfb, 0xff, 0xbf, 0xfb]), "-~-~-w__");
        assert_eq!(
            encode_path("firmware/a b\"é.bin"),
            "firmware/a%20b%22%C3%A9.bin"
        );
    }

    #[test]
    fn both_pem_forms_of_rsa_2048_are_taken() {
        let private = test_key(RSA_KEY_BITS);
        let pkcs1 = private.to_pkcs1_pem(LineEnding::LF).unwrap();
        let pkcs8 = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        for pem in [
            pkcs1.as_str(),
            pkcs8.as_str(),
            &format!("\n  {}\n", pkcs8.as_str()),
        ] {
            let key = CloudFrontKey::from_pem(pem).unwrap();
            assert_eq!(key.0, private);
        }
    }

    /// A P-256 key of no use to anyone, in its two PEM forms: generated once for this test with
    /// `openssl ecparam -name prime256v1 -genkey -noout` and `openssl pkcs8 -topk8 -nocrypt`.
    const TEST_ONLY_EC_KEY_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIOMb78umrZ0OclQP+47nAt5b/raVJXbBP7FTpYKKQEgGoAoGCCqGSM49
AwEHoUQDQgAEH9E6v0E5Ux5+gOW+p8o+B4sIXyBRCemO6mPdYK2vaJJB4gUAtyuW
bQa7F1yE5Cjt6yDhhfr/gPVMrTBWkjZi+Q==
-----END EC PRIVATE KEY-----";
    const TEST_ONLY_EC_KEY_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4xvvy6atnQ5yVA/7
jucC3lv+tpUldsE/sVOlgopASAahRANCAAQf0Tq/QTlTHn6A5b6nyj4HiwhfIFEJ
6Y7qY91gra9okkHiBQC3K5ZtBrsXXITkKO3rIOGF+v+A9UytMFaSNmL5
-----END PRIVATE KEY-----";

    #[test]
    fn keys_that_are_not_rsa_2048_private_pem_are_refused_clearly() {
        let private = test_key(RSA_KEY_BITS);
        let public = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let small = test_key(1024).to_pkcs8_pem(LineEnding::LF).unwrap();
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED \
                         PRIVATE KEY-----";
        let cases: [(&str, &str); 8] = [
            ("", "no PEM private key block"),
            ("K2JCJMDEHXQW5F", "no PEM private key block"),
            (&public, "a public key"),
            (&small, "of 1024 bits"),
            (TEST_ONLY_EC_KEY_SEC1, "an EC key"),
            (TEST_ONLY_EC_KEY_PKCS8, "a PKCS#8 key that is not RSA"),
            (encrypted, "encrypted with a passphrase"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----",
                "a broken PKCS#1 RSA key",
            ),
        ];
        for (pem, why) in cases {
            let Err(e) = CloudFrontKey::from_pem(pem) else {
                panic!("{why}: accepted");
            };
            assert!(
                e.contains(why) && e.contains("RSA 2048 private key"),
                "{why}: {e}"
            );
        }
    }
}
