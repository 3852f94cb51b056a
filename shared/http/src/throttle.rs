//! A per-device request budget. A device stuck polling in a loop (a firmware bug, a reboot loop)
//! gets 429 with `Retry-After` instead of eating the capacity every other device shares.
//! Fixed one-minute windows kept in memory: per process on the embedded server, per instance on
//! Lambda, which bounds a runaway device without any storage request.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before old windows are dropped, so that a flood of distinct ids cannot grow
/// the map without bound.
const MAX_TRACKED: usize = 100_000;
const WINDOW_S: i64 = 60;

pub struct DeviceThrottle {
    per_minute: u32,
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl DeviceThrottle {
    /// `per_minute` = 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `device` at `now` (unix seconds); `Err(seconds)` to wait when over
    /// budget.
    pub fn admit(&self, device: &str, now: i64) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let window = now.div_euclid(WINDOW_S);
        let Ok(mut map) = self.windows.lock() else {
            // A poisoned lock only means another request panicked; never refuse for it.
            return Ok(());
        };
        // The key is copied only for a device not tracked yet: most requests come from one
        // that is, and an allocation per request showed in the steady check's profile.
        if !map.contains_key(device) {
            if map.len() >= MAX_TRACKED {
                map.retain(|_, (w, _)| *w == window);
            }
            map.insert(device.to_owned(), (window, 0));
        }
        let Some(entry) = map.get_mut(device) else {
            return Ok(());
        };
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= self.per_minute {
            let next = (window + 1) * WINDOW_S;
            return Err(u64::try_from(next - now).unwrap_or(1).max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_device_and_window() {
        let t = DeviceThrottle::new(3);
        for _ in 0..3 {
            assert_eq!(t.admit("a", 120), Ok(()));
        }
        assert_eq!(t.admit("a", 130), Err(50));
        assert_eq!(t.admit("b", 130), Ok(()), "other devices are not affected");
        assert_eq!(t.admit("a", 180), Ok(()), "a new minute, a new budget");
        let off = DeviceThrottle::new(0);
        for _ in 0..1000 {
            assert_eq!(off.admit("a", 0), Ok(()));
        }
    }

    #[test]
    fn tracking_is_bounded() {
        let t = DeviceThrottle::new(1);
        for i in 0..MAX_TRACKED + 10 {
            let _ = t.admit(&format!("d{i}"), i64::try_from(i).unwrap_or(0) * WINDOW_S);
        }
        assert!(t.windows.lock().map_or(0, |m| m.len()) <= MAX_TRACKED);
    }
}
