//! Whether a share is over a percentage limit, in integers (docs/api.md §8): the limit is
//! counted in millionths of a percent (exact for any limit written with up to six decimals), so
//! that a share exactly at the limit never exceeds it by floating-point rounding: 69 of 375 is
//! 18.4 %, but 18.4 * 375 is 6899.999999999999 in f64. Rule 4 and the health gate both decide
//! with it.

/// Millionths of a percent in a percent.
const MICRO: u128 = 1_000_000;

/// Whether `part` of `whole` is more than `limit_percent` percent ("exceeds": exactly at the
/// limit is not over it). Nothing of an empty whole is over any limit. `limit_percent` is one
/// checked at input (`fields::percentage`): 0 to 100, no sign to lose.
pub fn exceeds(part: u64, whole: u64, limit_percent: f64) -> bool {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let limit = (limit_percent * MICRO as f64).round() as u128;
    whole > 0 && u128::from(part) * 100 * MICRO > limit * u128::from(whole)
}

/// `part` of `whole` in percent, for display only (decisions use [`exceeds`]); None of an
/// empty whole.
pub fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_at_a_decimal_limit_is_not_over_it() {
        // Each share is exactly the limit; in f64, limit * whole falls just below the part.
        for (limit, part, whole) in [(18.4, 69, 375), (9.2, 69, 750), (4.6, 69, 1500)] {
            assert!(!exceeds(part, whole, limit), "{limit} %");
            assert!(exceeds(part + 1, whole, limit), "{limit} % and one more");
        }
        assert!(!exceeds(1, 8, 12.5));
        // 1 in a million is 0.0001 %: the smallest step a limit can take.
        assert!(!exceeds(1, 1_000_000, 0.0001));
        assert!(exceeds(1, 999_999, 0.0001));
    }

    #[test]
    fn the_ends_of_the_scale() {
        assert!(!exceeds(0, 0, 0.0), "an empty whole is over nothing");
        assert!(!exceeds(0, 10, 0.0), "0 % is not exceeded without a part");
        assert!(exceeds(1, 10, 0.0));
        assert!(!exceeds(10, 10, 100.0), "100 % is never exceeded");
        assert!(
            exceeds(u64::MAX, u64::MAX - 1, 100.0),
            "no overflow at the top"
        );
        assert_eq!(percent(1, 4), Some(25.0));
        assert_eq!(percent(0, 0), None);
    }
}
