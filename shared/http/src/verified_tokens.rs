//! Device tokens this process has already verified, so that a device polling again is not
//! verified again: HMAC, two base64 decodes and two JSON parses cost about 4 µs, a tenth of a
//! steady check's CPU (docs/performance.md §Where a steady check's time goes).
//!
//! Remembering a success is sound because whether a token verifies depends only on its bytes,
//! the process's secret and settings (fixed for the life of an [`AuthConfig`](crate::auth::AuthConfig),
//! which owns this cache) and the clock. The clock only ever closes a token: `nbf` was
//! already passed when it was remembered, and `exp` is compared again on every use. There is no
//! revocation list a remembered token could miss (a device's token stays valid until its `exp`,
//! docs/api.md §2.3). Refusals are never remembered, so each one gets its own reason.
//!
//! Bounded: two generations of at most [`GENERATION`] tokens each. When the newer one is full it
//! becomes the older one and the older one is dropped; a token found in the older generation
//! moves to the newer. A fleet that polls more distinct devices than that through one process
//! is verified in full each time, as before.

use std::collections::HashMap;
use std::sync::Mutex;

/// Tokens in one generation: the two hold at most twice as many, about 10 MB with the
/// longest token remembered (a Lambda instance may have 128 MB).
pub const GENERATION: usize = 16_384;
/// Longer tokens are verified every time: they are not ours (ours are ~180 bytes) and would
/// only make the bound above larger.
const LONGEST: usize = 320;

/// What a verified device token said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    pub sub: String,
    pub device_type: String,
    pub exp: Option<i64>,
}

#[derive(Default)]
pub struct VerifiedTokens {
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    newer: HashMap<Box<str>, VerifiedDevice>,
    older: HashMap<Box<str>, VerifiedDevice>,
}

impl VerifiedTokens {
    /// The claims remembered for `token` while it is unexpired at `now` (unix seconds) with
    /// `leeway` seconds to spare; `None` to verify it in full.
    pub fn get(&self, token: &str, now: i64, leeway: u64) -> Option<VerifiedDevice> {
        let mut g = self.generations.lock().ok()?;
        let found = match g.newer.get(token) {
            Some(found) => found.clone(),
            None => {
                let (key, found) = g.older.remove_entry(token)?;
                g.insert(key, found.clone());
                found
            }
        };
        if found
            .exp
            .is_some_and(|exp| exp.saturating_add_unsigned(leeway) < now)
        {
            g.newer.remove(token);
            return None;
        }
        Some(found)
    }

    /// Remembers a token that has just verified.
    pub fn remember(&self, token: &str, device: &VerifiedDevice) {
        if token.len() > LONGEST {
            return;
        }
        if let Ok(mut g) = self.generations.lock() {
            g.insert(token.into(), device.clone());
        }
    }
}

impl Generations {
    fn insert(&mut self, token: Box<str>, device: VerifiedDevice) {
        if self.newer.len() >= GENERATION {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(token, device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: usize, exp: Option<i64>) -> VerifiedDevice {
        VerifiedDevice {
            sub: format!("d{n}"),
            device_type: "demo".into(),
            exp,
        }
    }

    #[test]
    fn a_remembered_token_is_found_until_it_expires() {
        let t = VerifiedTokens::default();
        assert_eq!(t.get("a", 1_000, 30), None);
        t.remember("a", &device(1, Some(1_000)));
        assert_eq!(t.get("a", 1_000, 30), Some(device(1, Some(1_000))));
        assert_eq!(t.get("a", 1_030, 30), Some(device(1, Some(1_000))));
        assert_eq!(t.get("a", 1_031, 30), None, "expired past the leeway");
        assert_eq!(t.get("a", 1_000, 30), None, "and forgotten");
        t.remember("b", &device(2, None));
        assert_eq!(t.get("b", i64::MAX, 30), Some(device(2, None)));
    }

    #[test]
    fn at_most_two_generations_are_kept_and_a_used_token_survives() {
        let t = VerifiedTokens::default();
        t.remember("kept", &device(0, None));
        for n in 1..GENERATION {
            t.remember(&format!("t{n}"), &device(n, None));
        }
        // The newer generation is full: the next token starts a new one.
        t.remember("next", &device(0, None));
        assert!(t.get("kept", 0, 0).is_some(), "found in the older, moved");
        for n in 0..GENERATION {
            t.remember(&format!("u{n}"), &device(n, None));
        }
        let g = t.generations.lock().unwrap();
        assert!(g.newer.len() <= GENERATION && g.older.len() <= GENERATION);
        assert!(g.older.contains_key("kept") || g.newer.contains_key("kept"));
        assert!(!g.older.contains_key("t1") && !g.newer.contains_key("t1"));
    }

    #[test]
    fn long_tokens_are_not_remembered() {
        let t = VerifiedTokens::default();
        let long = "x".repeat(LONGEST + 1);
        t.remember(&long, &device(1, None));
        assert_eq!(t.get(&long, 0, 0), None);
    }
}
