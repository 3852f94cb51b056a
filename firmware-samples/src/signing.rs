//! Secure Boot V2 signing with keys derived from a seed, laid out as `espsecure sign-data
//! --version 2` lays them out, so tests can make signed images without key files.

use p256::ecdsa::signature::hazmat::{PrehashSigner, RandomizedPrehashSigner};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::BigUint;
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256, Sha384};

pub const SECTOR_SIZE: usize = 4096;
pub const BLOCK_LEN: usize = 1216;
const CRC_COVERS: usize = 1196;

/// Key type, and so signature block format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
///
/// No P-192: the RustCrypto `p192` crate verifies but, following NIST SP 800-131A, does not
/// sign. Tests that need a P-192 signature get one from `espsecure sign-data`.
pub enum Scheme {
    Rsa3072,
    EcdsaP256,
    EcdsaP384,
}

impl Scheme {
    pub const ALL: [Scheme; 3] = [Scheme::Rsa3072, Scheme::EcdsaP256, Scheme::EcdsaP384];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Rsa3072 => "rsa3072",
            Scheme::EcdsaP256 => "ecdsa256",
            Scheme::EcdsaP384 => "ecdsa384",
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| format!("unknown scheme {s:?}; rsa3072, ecdsa256 or ecdsa384"))
    }
}

#[derive(Clone)]
enum Key {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

/// The RSA-3072 key `SigningKey::from_seed(Scheme::Rsa3072, 1)` derives, kept as PEM because
/// deriving it takes ~40 s in a debug build (~1.5 s in release): tests load this instead.
pub const RSA3072_SEED1_PEM: &str = include_str!("../keys/rsa3072-seed1.pem");

/// A signing key, derived deterministically from `(scheme, seed)` or loaded from PEM; signing
/// with it is deterministic too, so signed test images are reproducible. Test keys only.
#[derive(Clone)]
pub struct SigningKey {
    seed: Option<u64>,
    key: Key,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digest = self.key_digest();
        write!(
            f,
            "SigningKey({}, seed {:?}, digest {:02x}{:02x}{:02x}{:02x}..)",
            self.scheme().name(),
            self.seed,
            digest[0],
            digest[1],
            digest[2],
            digest[3]
        )
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.scheme() == other.scheme() && self.key_digest() == other.key_digest()
    }
}

/// Candidate secret scalars for an ECDSA key: hashes of the seed and a counter, tried in
/// order until one is a valid scalar for the curve.
fn scalar_candidates(label: &'static str, seed: u64) -> impl Iterator<Item = [u8; 48]> {
    (0u32..).map(move |counter| {
        let mut h = Sha384::new();
        h.update(label.as_bytes());
        h.update(seed.to_le_bytes());
        h.update(counter.to_le_bytes());
        h.finalize().into()
    })
}

impl SigningKey {
    /// RSA-3072 generation runs the prime search in debug builds too; expect seconds.
    pub fn from_seed(scheme: Scheme, seed: u64) -> SigningKey {
        let key = match scheme {
            Scheme::Rsa3072 => {
                let mut rng = ChaCha20Rng::seed_from_u64(seed);
                match rsa::RsaPrivateKey::new(&mut rng, 3072) {
                    Ok(k) => Key::Rsa(Box::new(k)),
                    Err(e) => unreachable!("RSA-3072 generation cannot fail with e=65537: {e}"),
                }
            }
            Scheme::EcdsaP256 => Key::P256(first_valid(scheme, seed, |c| {
                p256::ecdsa::SigningKey::from_slice(&c[..32]).ok()
            })),
            Scheme::EcdsaP384 => Key::P384(first_valid(scheme, seed, |c| {
                p384::ecdsa::SigningKey::from_slice(c).ok()
            })),
        };
        SigningKey {
            seed: Some(seed),
            key,
        }
    }

    /// Loads a PKCS#8 private key (RSA-3072, P-256 or P-384), e.g. one `espsecure
    /// generate-signing-key` wrote (converted with `openssl pkcs8 -topk8 -nocrypt` if it is in
    /// the traditional format) or [`RSA3072_SEED1_PEM`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, String> {
        let key = if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            if k.size() != 384 {
                return Err(format!("RSA key has {} bits, not 3072", k.size() * 8));
            }
            Key::Rsa(Box::new(k))
        } else if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Key::P256(k)
        } else if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            Key::P384(k)
        } else {
            return Err("not a PKCS#8 RSA-3072, P-256 or P-384 private key".to_owned());
        };
        Ok(SigningKey { seed: None, key })
    }

    pub fn scheme(&self) -> Scheme {
        match self.key {
            Key::Rsa(_) => Scheme::Rsa3072,
            Key::P256(_) => Scheme::EcdsaP256,
            Key::P384(_) => Scheme::EcdsaP384,
        }
    }

    /// `None` for keys loaded from PEM.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// PKCS#8 PEM, as `espsecure sign-data --keyfile` and `verify-signature` accept.
    pub fn private_key_pem(&self) -> String {
        let pem = match &self.key {
            Key::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF),
            Key::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            Key::P384(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        match pem {
            Ok(p) => p.to_string(),
            Err(e) => unreachable!("encoding an in-memory key as PEM cannot fail: {e}"),
        }
    }

    /// `SubjectPublicKeyInfo` PEM ("BEGIN PUBLIC KEY").
    pub fn public_key_pem(&self) -> String {
        let pem = match &self.key {
            Key::Rsa(k) => k.to_public_key().to_public_key_pem(LineEnding::LF),
            Key::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
            Key::P384(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
        };
        match pem {
            Ok(p) => p,
            Err(e) => unreachable!("encoding an in-memory key as PEM cannot fail: {e}"),
        }
    }

    /// The public key in its signature-block encoding: what `espsecure
    /// digest-sbv2-public-key` hashes.
    fn public_key_block_bytes(&self) -> Vec<u8> {
        match &self.key {
            Key::Rsa(k) => rsa_public_fields(k),
            Key::P256(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                ecdsa_public_fields(2, point.as_bytes())
            }
            Key::P384(k) => {
                let point = k.verifying_key().to_encoded_point(false);
                ecdsa_public_fields(3, point.as_bytes())
            }
        }
    }

    /// SHA-256 of the public key as burnt into eFuses; same bytes `espsecure
    /// digest-sbv2-public-key` writes.
    pub fn key_digest(&self) -> [u8; 32] {
        Sha256::digest(self.public_key_block_bytes()).into()
    }

    /// A 1216-byte signature block over `data` (everything before the signature sector).
    pub fn signature_block(&self, data: &[u8]) -> Vec<u8> {
        let mut block = vec![0xE7];
        match &self.key {
            Key::Rsa(k) => {
                let digest = Sha256::digest(data);
                block.extend([0x02, 0, 0]);
                block.extend(digest);
                block.extend(self.public_key_block_bytes());
                // PSS salt from an RNG seeded by key and data keeps signing reproducible.
                let mut rng = ChaCha20Rng::from_seed(
                    Sha256::new()
                        .chain_update(self.key_digest())
                        .chain_update(digest)
                        .finalize()
                        .into(),
                );
                let signer = rsa::pss::SigningKey::<Sha256>::new((**k).clone());
                let signature = match signer.sign_prehash_with_rng(&mut rng, &digest) {
                    Ok(s) => s,
                    Err(e) => unreachable!("PSS signing of a 32-byte digest cannot fail: {e}"),
                };
                let mut sig: Vec<u8> = Box::<[u8]>::from(signature).into_vec();
                sig.reverse();
                block.extend(sig);
            }
            Key::P256(k) => {
                let digest = Sha256::digest(data);
                block.extend([0x03, 0x00, 0]);
                block.extend(digest);
                block.extend(self.public_key_block_bytes());
                let sig: p256::ecdsa::Signature = sign(k, &digest);
                block.extend(le_halves(&sig.to_bytes()));
            }
            Key::P384(k) => {
                let digest = Sha384::digest(data);
                block.extend([0x03, 0x01, 0]);
                block.extend(digest);
                block.extend(self.public_key_block_bytes());
                let sig: p384::ecdsa::Signature = sign(k, &digest);
                block.extend(le_halves(&sig.to_bytes()));
            }
        }
        block.resize(CRC_COVERS, 0);
        let crc = crc32fast::hash(&block);
        block.extend(crc.to_le_bytes());
        block.resize(BLOCK_LEN, 0);
        block
    }
}

fn first_valid<K>(scheme: Scheme, seed: u64, make: impl Fn(&[u8; 48]) -> Option<K>) -> K {
    let label = scheme.name();
    match scalar_candidates(label, seed).find_map(|c| make(&c)) {
        Some(k) => k,
        None => unreachable!("the candidate iterator only ends after 2^32 invalid scalars"),
    }
}

/// RFC 6979 signing: deterministic, no RNG needed.
fn sign<S, K: PrehashSigner<S>>(key: &K, digest: &[u8]) -> S {
    match key.sign_prehash(digest) {
        Ok(s) => s,
        Err(e) => unreachable!("ECDSA signing of a digest cannot fail: {e}"),
    }
}

/// Big-endian `a‖b` halves to little-endian halves.
fn le_halves(be: &[u8]) -> Vec<u8> {
    let (a, b) = be.split_at(be.len() / 2);
    a.iter().rev().chain(b.iter().rev()).copied().collect()
}

fn pad(mut v: Vec<u8>, len: usize) -> Vec<u8> {
    v.resize(len, 0);
    v
}

/// Curve id, then X‖Y little-endian.
fn ecdsa_public_fields(curve_id: u8, uncompressed_sec1: &[u8]) -> Vec<u8> {
    let xy = uncompressed_sec1.get(1..).unwrap_or_default();
    let mut out = vec![curve_id];
    out.extend(le_halves(xy));
    out
}

/// n, e, R⁻¹ = 2^6144 mod n and M′ = −n⁻¹ mod 2³², the operands the ROM's RSA peripheral takes.
fn rsa_public_fields(key: &rsa::RsaPrivateKey) -> Vec<u8> {
    let n = key.n();
    let rinv = (BigUint::from(1u8) << 6144usize) % n;
    let n0 = n.to_bytes_le();
    let n_low = u32::from_le_bytes([n0[0], n0[1], n0[2], n0[3]]);
    let m_prime = modinv_u32(n_low).wrapping_neg();
    let mut out = pad(n.to_bytes_le(), 384);
    out.extend(pad(key.e().to_bytes_le(), 4));
    out.extend(pad(rinv.to_bytes_le(), 384));
    out.extend(m_prime.to_le_bytes());
    out
}

/// Inverse of an odd number modulo 2³² by the extended Euclidean algorithm on i128.
fn modinv_u32(a: u32) -> u32 {
    let m: i128 = 1 << 32;
    let (mut old_r, mut r) = (i128::from(a), m);
    let (mut old_s, mut s) = (1i128, 0i128);
    while r != 0 {
        let q = old_r / r;
        (old_r, r) = (r, old_r - q * r);
        (old_s, s) = (s, old_s - q * s);
    }
    u32::try_from(old_s.rem_euclid(m)).expect("a remainder modulo 2^32 fits in u32")
}

/// Appends a signature sector over `image` (padded with 0xFF to the next 4 KB boundary),
/// one block per key, as `espsecure sign-data --version 2` with several keys does.
pub fn sign_image(image: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    let mut out = image.to_vec();
    out.resize(image.len().div_ceil(SECTOR_SIZE) * SECTOR_SIZE, 0xFF);
    let blocks: Vec<Vec<u8>> = keys.iter().map(|k| k.signature_block(&out)).collect();
    let sector_start = out.len();
    for block in blocks {
        out.extend(block);
    }
    out.resize(sector_start + SECTOR_SIZE, 0xFF);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinv() {
        for a in [1u32, 3, 65537, 0xFFFF_FFFF, 0x8000_0001] {
            assert_eq!(a.wrapping_mul(modinv_u32(a)), 1);
        }
    }

    #[test]
    fn ecdsa_keys_are_deterministic_and_distinct() {
        for scheme in [Scheme::EcdsaP256, Scheme::EcdsaP384] {
            let a = SigningKey::from_seed(scheme, 1);
            assert_eq!(
                a.key_digest(),
                SigningKey::from_seed(scheme, 1).key_digest()
            );
            assert_ne!(
                a.key_digest(),
                SigningKey::from_seed(scheme, 2).key_digest()
            );
            assert_eq!(a.signature_block(b"x"), a.signature_block(b"x"));
            assert_eq!(a.signature_block(b"x").len(), BLOCK_LEN);
        }
    }

    #[test]
    fn pem_round_trip() {
        for scheme in [Scheme::EcdsaP256, Scheme::EcdsaP384] {
            let key = SigningKey::from_seed(scheme, 3);
            let back = SigningKey::from_pkcs8_pem(&key.private_key_pem());
            assert_eq!(back.as_ref(), Ok(&key));
            assert_eq!(back.map(|k| k.seed()), Ok(None));
        }
        let rsa = SigningKey::from_pkcs8_pem(RSA3072_SEED1_PEM);
        assert_eq!(rsa.as_ref().map(SigningKey::scheme), Ok(Scheme::Rsa3072));
        assert!(SigningKey::from_pkcs8_pem("nope").is_err());
    }

    #[test]
    fn committed_rsa_key_is_the_seed_1_key() {
        let derived = SigningKey::from_seed(Scheme::Rsa3072, 1);
        assert_eq!(derived.private_key_pem(), RSA3072_SEED1_PEM);
    }

    #[test]
    fn sector_layout() {
        let key = SigningKey::from_seed(Scheme::EcdsaP256, 7);
        let signed = sign_image(&[0u8; 5000], &[key.clone(), key]);
        assert_eq!(signed.len(), 8192 + 4096);
        assert!(signed[5000..8192].iter().all(|&b| b == 0xFF));
        assert_eq!(signed[8192], 0xE7);
        assert_eq!(signed[8192 + BLOCK_LEN], 0xE7);
        assert!(signed[8192 + 2 * BLOCK_LEN..].iter().all(|&b| b == 0xFF));
    }
}
