//! A rollout's offer budget (docs/api.md §9.6): at most `max_offers_per_hour` devices get
//! their first offer of the rollout in any rolling hour, counted by the minute (any 60
//! consecutive minutes hold at most that many). A device refused hears `update_available:
//! false` and comes back when the oldest counted minute leaves the hour. A device already
//! offered keeps its offer: only first offers take from the budget.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::error::OpError;

/// The largest budget a rollout may set.
pub const MAX_OFFERS_PER_HOUR: u32 = 1_000_000;

/// Minutes in the rolling window.
const WINDOW_MINUTES: i64 = 60;

/// The first offers of one rollout, by minute, within the last hour: what a store keeps per
/// rollout and moves through [`OfferBudget::take`] in one conditional write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferBudget {
    /// (minute since the epoch, first offers in it), oldest first, at most 60 entries.
    pub minutes: Vec<(i64, u32)>,
}

/// The answer of [`OfferBudget::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Granted,
    /// The hour is full until then.
    Full {
        frees_at: OffsetDateTime,
    },
}

impl OfferBudget {
    /// Takes one first offer at `at` from a budget of `limit` an hour, when there is room.
    pub fn take(&mut self, limit: u32, at: OffsetDateTime) -> Taken {
        let minute = at.unix_timestamp().div_euclid(60);
        self.minutes.retain(|&(m, _)| m > minute - WINDOW_MINUTES);
        let used: u64 = self.minutes.iter().map(|&(_, n)| u64::from(n)).sum();
        if used >= u64::from(limit) {
            let oldest = self.minutes.first().map_or(minute, |&(m, _)| m);
            let frees_at = OffsetDateTime::from_unix_timestamp((oldest + WINDOW_MINUTES) * 60)
                .unwrap_or(at + Duration::minutes(WINDOW_MINUTES));
            return Taken::Full { frees_at };
        }
        match self.minutes.last_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => self.minutes.push((minute, 1)),
        }
        Taken::Granted
    }
}

/// The budget of a create: 1 to [`MAX_OFFERS_PER_HOUR`].
pub fn validated(limit: Option<u32>) -> Result<Option<u32>, OpError> {
    match limit {
        Some(n) if n == 0 || n > MAX_OFFERS_PER_HOUR => Err(OpError::invalid(
            "max_offers_per_hour",
            format!("must be from 1 to {MAX_OFFERS_PER_HOUR}"),
        )),
        n => Ok(n),
    }
}

/// The poll interval of a refused device: seconds from `now` until `frees_at`, at least 1,
/// plus up to a minute by the device's canary bucket (`spread`, 0..10000), so that the devices
/// refused together do not all race for the budget the second it frees.
pub fn retry_in_s(frees_at: OffsetDateTime, now: OffsetDateTime, spread: u32) -> u64 {
    let s = (frees_at - now).whole_seconds();
    u64::try_from(s).unwrap_or(0).max(1) + u64::from(spread % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn at_most_the_limit_in_any_sixty_minutes() {
        let mut b = OfferBudget::default();
        // 1_800_000_000 is a minute's start: one offer in each of three minutes.
        for s in [0, 60, 150] {
            assert_eq!(b.take(3, at(s)), Taken::Granted);
        }
        let full = b.take(3, at(170));
        // The first offer's minute leaves the hour at 3,600 s.
        assert_eq!(full, Taken::Full { frees_at: at(3600) });
        assert_eq!(b.take(3, at(3599)), full);
        // Its minute left: one more fits, and then the second offer's minute is the oldest.
        assert_eq!(b.take(3, at(3600)), Taken::Granted);
        assert_eq!(b.take(3, at(3601)), Taken::Full { frees_at: at(3660) });
        assert_eq!(b.take(3, at(3660)), Taken::Granted);
        assert_eq!(b.take(3, at(3661)), Taken::Full { frees_at: at(3720) });
        assert!(b.minutes.len() <= 60);
    }

    #[test]
    fn never_more_than_sixty_minutes_kept() {
        let mut b = OfferBudget::default();
        for m in 0..500 {
            assert_eq!(b.take(u32::MAX, at(m * 60)), Taken::Granted);
        }
        assert_eq!(b.minutes.len(), 60);
    }

    #[test]
    fn bounds_and_retry() {
        assert_eq!(validated(None), Ok(None));
        assert_eq!(validated(Some(1)), Ok(Some(1)));
        assert!(validated(Some(0)).is_err());
        assert!(validated(Some(MAX_OFFERS_PER_HOUR + 1)).is_err());
        assert_eq!(retry_in_s(at(90), at(0), 0), 90);
        assert_eq!(retry_in_s(at(0), at(5), 0), 1);
        assert_eq!(retry_in_s(at(90), at(0), 9_999), 90 + 39);
    }
}
