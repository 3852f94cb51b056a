//! HTTP Range parsing for single byte ranges, the only kind ESP-IDF sends. A resumed download
//! must get 206: answering 200 would make the device append the whole file again.

use ota_core::ports::ByteRange;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    Partial(ByteRange),
    /// No byte of the object is in the range: 416.
    Unsatisfiable,
    /// Malformed or multi-range: RFC 9110 lets a server ignore the header and send 200.
    Ignore,
}

pub fn parse_range(header: &str, len: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if spec.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix range: the last n bytes.
        let Ok(n) = b.parse::<u64>() else {
            return RangeAnswer::Ignore;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial(ByteRange {
            start: len.saturating_sub(n),
            end: len - 1,
        });
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAnswer::Ignore;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeAnswer::Ignore,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial(ByteRange {
        start,
        end: end.min(len - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: u64, e: u64) -> RangeAnswer {
        RangeAnswer::Partial(ByteRange { start: s, end: e })
    }

    #[test]
    fn forms() {
        assert_eq!(parse_range("bytes=0-99", 1000), p(0, 99));
        assert_eq!(parse_range("bytes=500-", 1000), p(500, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=-100", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=999-999", 1000), p(999, 999));
        assert_eq!(parse_range("bytes=1000-", 1000), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 1000), RangeAnswer::Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeAnswer::Ignore);
        assert_eq!(parse_range("items=0-1", 1000), RangeAnswer::Ignore);
        assert_eq!(parse_range("bytes=x-1", 1000), RangeAnswer::Ignore);
    }

    proptest::proptest! {
        #[test]
        fn never_out_of_bounds(s in "\\PC{0,24}", len in 0u64..10_000) {
            if let RangeAnswer::Partial(r) = parse_range(&format!("bytes={s}"), len) {
                proptest::prop_assert!(r.start <= r.end && r.end < len);
            }
        }
    }
}
