//! Capability URLs of the embedded server: HMAC-SHA256 over what the URL may do, so that the URL
//! alone (no credential header, see docs/esp-image.md §5) grants exactly one operation until
//! expiry.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Path of the embedded server's capability endpoint (`{CAPABILITY_PATH}{key}?exp=..&sig=..`).
pub const CAPABILITY_PATH: &str = "/api/ota/blob/";

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct CapabilitySigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for CapabilitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CapabilitySigner(..)")
    }
}

impl CapabilitySigner {
    /// Derives a key of its own from the service secret, so that a capability signature can
    /// never double as a JWT signature or the other way round.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut mac = mac_with(secret);
        mac.update(b"ota capability url v1");
        Self {
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// Hex signature over the method, object key, expiry and any bound parameters.
    pub fn sign(&self, method: &str, key: &str, expires: i64, bound: &[&str]) -> String {
        hex::encode(
            self.mac(method, key, expires, bound)
                .finalize()
                .into_bytes(),
        )
    }

    /// Constant-time check of a signature made by [`Self::sign`].
    pub fn verify(
        &self,
        method: &str,
        key: &str,
        expires: i64,
        bound: &[&str],
        sig_hex: &str,
    ) -> bool {
        let Ok(sig) = hex::decode(sig_hex) else {
            return false;
        };
        self.mac(method, key, expires, bound)
            .verify_slice(&sig)
            .is_ok()
    }

    fn mac(&self, method: &str, key: &str, expires: i64, bound: &[&str]) -> HmacSha256 {
        let mut mac = mac_with(&self.key);
        // Length-prefix every field so that no two field lists serialise alike.
        for field in [method, key, &expires.to_string()]
            .into_iter()
            .chain(bound.iter().copied())
        {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

fn mac_with(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm cannot run.
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_tamper() {
        let s = CapabilitySigner::from_secret(b"secret");
        let sig = s.sign("GET", "firmware/a.bin", 100, &[]);
        assert!(s.verify("GET", "firmware/a.bin", 100, &[], &sig));
        assert!(!s.verify("GET", "firmware/b.bin", 100, &[], &sig));
        assert!(!s.verify("GET", "firmware/a.bin", 101, &[], &sig));
        assert!(!s.verify("PUT", "firmware/a.bin", 100, &[], &sig));
        assert!(!s.verify("GET", "firmware/a.bin", 100, &[], "zz"));
        let other = CapabilitySigner::from_secret(b"other");
        assert!(!other.verify("GET", "firmware/a.bin", 100, &[], &sig));
        let put = s.sign("PUT", "k", 1, &["10", "ab"]);
        assert!(!s.verify("PUT", "k", 1, &["1", "0ab"], &put));
    }
}
