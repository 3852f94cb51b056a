//! The memory maps of the objects being read, kept between reads.
//!
//! A download is many Range requests for the same object (the fleet simulator's devices fetch a
//! 256 KiB image in four), and opening, measuring and mapping the file for each one took two
//! hand-offs to the blocking pool per request: the largest share of the server's context
//! switches under a fleet's downloads. An object is never changed in place (it is written
//! beside its key and renamed over it, or unlinked), so a kept map stays exact as long as every
//! write and delete of its key forgets it; the generation number stops a read that started
//! before such a write from keeping the map it made of the old file.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

/// How many maps are kept. Far more than the releases a fleet downloads at once; a map costs
/// address space, not memory (its pages are the page cache's).
const KEPT: usize = 64;

#[derive(Default)]
pub(crate) struct MappedObjects {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// Moves on every `forget`: a map made before it may be of a file no longer at its key.
    generation: u64,
    maps: HashMap<String, Bytes>,
}

impl MappedObjects {
    /// The kept map of `key`, or the generation to hand back to `keep` with a fresh one.
    pub(crate) fn get(&self, key: &str) -> Result<Bytes, u64> {
        let kept = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.maps.get(key).cloned().ok_or(kept.generation)
    }

    /// Keeps `map` of `key`, made after `get` answered `generation`, unless a write or delete
    /// came between.
    pub(crate) fn keep(&self, key: &str, generation: u64, map: &Bytes) {
        let mut kept = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.generation != generation {
            return;
        }
        if kept.maps.len() >= KEPT && !kept.maps.contains_key(key) {
            // Any one: more than `KEPT` objects read at once is not a fleet's download pattern.
            if let Some(evicted) = kept.maps.keys().next().cloned() {
                kept.maps.remove(&evicted);
            }
        }
        kept.maps.insert(key.to_owned(), map.clone());
    }

    /// Forgets `key`'s map: its file has just been replaced or removed (after, not before: a
    /// read between a `forget` and the rename would map the old file and keep it). Reads in
    /// flight keep the map they hold.
    pub(crate) fn forget(&self, key: &str) {
        let mut kept = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.generation += 1;
        kept.maps.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_made_before_a_write_of_its_key_is_not_kept() {
        let maps = MappedObjects::default();
        let generation = maps.get("k").unwrap_err();
        maps.forget("k"); // the key was replaced while the old file was being mapped
        maps.keep("k", generation, &Bytes::from_static(b"old"));
        let fresh = maps.get("k").unwrap_err();
        assert_ne!(fresh, generation);
        maps.keep("k", fresh, &Bytes::from_static(b"new"));
        assert_eq!(maps.get("k").unwrap(), Bytes::from_static(b"new"));
    }

    #[test]
    fn at_most_kept_maps_are_held() {
        let maps = MappedObjects::default();
        for i in 0..=KEPT {
            let generation = maps.get(&i.to_string()).unwrap_err();
            maps.keep(&i.to_string(), generation, &Bytes::new());
        }
        let held = (0..=KEPT)
            .filter(|i| maps.get(&i.to_string()).is_ok())
            .count();
        assert_eq!(held, KEPT);
    }
}
