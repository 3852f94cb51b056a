//! Rules for the free-form fields the service accepts, past what the identifier types enforce
//! themselves (docs/api.md §Conventions): each names the field it refuses.

use crate::error::OpError;
use crate::release::DEFAULT_CHANNEL;

/// Longest description or release notes.
pub const MAX_TEXT_CHARS: usize = 4096;
/// Longest error message a device may report.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1024;
/// Longest rollout name.
pub const MAX_ROLLOUT_NAME_CHARS: usize = 200;
/// Most groups one device may belong to.
pub const MAX_GROUPS: usize = 32;

// The same rules as regular expressions, for the OpenAPI document (a test below holds them
// equal to the functions on the edges of each rule).
pub const CHANNEL_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";
pub const GROUP_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,64}$";
pub const SHA256_PATTERN: &str = "^[0-9A-Fa-f]{64}$";
pub const OPAQUE_KEY_PATTERN: &str = "^[!-~]{1,128}$";
pub const NONCE_PATTERN: &str = "^[0-9A-Fa-f]{16,64}$";
pub const RESET_REASON_PATTERN: &str = "^[a-z][a-z0-9_]{0,31}$";
/// Unanchored: a name has at least one character that is not blank (with its length bounded
/// apart, by `MAX_ROLLOUT_NAME_CHARS`).
pub const ROLLOUT_NAME_PATTERN: &str = "[^ \t\r\n]";

/// What a rollout name may not be made of only (the characters a form or a script pads with).
const BLANK: [char; 4] = [' ', '\t', '\r', '\n'];

/// Largest number a count field (build number, image size) may hold: what every store keeps
/// exactly (SQLite and DynamoDB's signed 64-bit integers).
pub const MAX_STORED_INTEGER: u64 = i64::MAX.unsigned_abs();

/// A count a store must keep exactly.
pub fn stored_integer(field: &str, value: Option<u64>) -> Result<Option<u64>, OpError> {
    match value {
        Some(v) if v > MAX_STORED_INTEGER => Err(OpError::invalid(
            field,
            format!("{field} must be at most {MAX_STORED_INTEGER}"),
        )),
        other => Ok(other),
    }
}

/// A rollout's name: 1-200 characters, not all blank; stored without surrounding blanks.
pub fn rollout_name(field: &str, value: &str) -> Result<String, OpError> {
    let trimmed = value.trim_matches(BLANK);
    if trimmed.is_empty() || value.chars().count() > MAX_ROLLOUT_NAME_CHARS {
        return Err(OpError::invalid(
            field,
            format!("{field} must be 1-{MAX_ROLLOUT_NAME_CHARS} characters, not only blanks"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Channel names: 1–64 characters of `[A-Za-z0-9_.-]`; absent means `stable`.
pub fn channel(field: &str, value: Option<String>) -> Result<String, OpError> {
    let c = value.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
    let ok = !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(c)
    } else {
        Err(OpError::invalid(
            field,
            "channel must be 1-64 characters of [A-Za-z0-9_.-]",
        ))
    }
}

/// Free text with a length cap (descriptions, notes, error messages).
pub fn text(
    field: &str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, OpError> {
    match value {
        Some(v) if v.chars().count() > max_chars => Err(OpError::invalid(
            field,
            format!("{field} must be at most {max_chars} characters"),
        )),
        other => Ok(other),
    }
}

/// A SHA-256 as 64 hex characters, returned in lowercase.
pub fn sha256_hex(field: &str, value: &str) -> Result<String, OpError> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(OpError::invalid(
            field,
            "must be a SHA-256 as 64 hex characters",
        ))
    }
}

/// Event ids and other opaque client keys: 1–128 printable ASCII characters.
pub fn opaque_key(field: &str, value: &str) -> Result<(), OpError> {
    if !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(OpError::invalid(
            field,
            "must be 1-128 printable ASCII characters",
        ))
    }
}

/// A device's nonce for a signed manifest (docs/api.md §3.1): 16–64 hex characters, so at least
/// 64 bits a device can draw from its RNG, and short enough to echo in every manifest. Echoed as
/// sent (the device compares it with what it sent, byte for byte).
pub fn nonce(field: &str, value: Option<&str>) -> Result<(), OpError> {
    match value {
        Some(n) if !(16..=64).contains(&n.len()) || !n.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(OpError::invalid(
                field,
                "nonce must be 16-64 hex characters",
            ))
        }
        _ => Ok(()),
    }
}

/// A device's reset reason (docs/api.md §3.1): a lowercase token of 1-32 characters, so that
/// ESP-IDF's names (`panic`, `int_wdt`) pass and so does one a newer ESP-IDF adds, without the
/// server knowing it first; it is also a DynamoDB attribute name's tail and a SQL value.
pub fn reset_reason(field: &str, value: Option<&str>) -> Result<(), OpError> {
    let ok = |r: &str| {
        let mut bytes = r.bytes();
        r.len() <= 32
            && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match value {
        Some(r) if !ok(r) => Err(OpError::invalid(
            field,
            "reset_reason must be 1-32 characters of [a-z0-9_], starting with a letter",
        )),
        _ => Ok(()),
    }
}

/// A percentage: 0–100, finite.
pub fn percentage(field: &str, p: f64) -> Result<f64, OpError> {
    if p.is_finite() && (0.0..=100.0).contains(&p) {
        Ok(p)
    } else {
        Err(OpError::invalid(field, "must be between 0 and 100"))
    }
}

/// A group name: 1–64 characters of `[A-Za-z0-9_.:-]`. The one rule for a device's groups and
/// for the groups a rollout targets, so that a rollout never names a group no device can have.
pub fn group(field: &str, g: &str) -> Result<(), OpError> {
    let ok = !g.is_empty()
        && g.len() <= 64
        && g.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(OpError::invalid(
            field,
            format!("invalid group name '{g}': 1-64 characters of [A-Za-z0-9_.:-]"),
        ))
    }
}

/// A device's groups: at most [`MAX_GROUPS`], each a [`group`] name; returned sorted, without
/// repeats.
pub fn groups(field: &str, mut groups: Vec<String>) -> Result<Vec<String>, OpError> {
    if groups.len() > MAX_GROUPS {
        return Err(OpError::invalid(
            field,
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    for g in &groups {
        group(field, g)?;
    }
    groups.sort();
    groups.dedup();
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused<T: std::fmt::Debug>(r: Result<T, OpError>, field: &str) {
        match r {
            Err(OpError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected {field} refused, got {other:?}"),
        }
    }

    #[test]
    fn channels() {
        assert_eq!(channel("c", None).unwrap(), "stable");
        assert_eq!(
            channel("c", Some("beta-2.x_y".into())).unwrap(),
            "beta-2.x_y"
        );
        assert!(channel("c", Some("a".repeat(64))).is_ok());
        refused(channel("c", Some("a".repeat(65))), "c");
        refused(channel("c", Some(String::new())), "c");
        refused(channel("c", Some("has space".into())), "c");
    }

    #[test]
    fn texts_count_characters_not_bytes() {
        assert!(text("t", Some("é".repeat(4)), 4).is_ok());
        refused(text("t", Some("é".repeat(5)), 4), "t");
        assert_eq!(text("t", None, 0).unwrap(), None);
    }

    #[test]
    fn hashes_keys_and_percentages() {
        assert_eq!(sha256_hex("h", &"AB".repeat(32)).unwrap(), "ab".repeat(32));
        refused(sha256_hex("h", &"ab".repeat(31)), "h");
        refused(sha256_hex("h", &"zz".repeat(32)), "h");
        assert!(opaque_key("k", "check-in:d1:f1").is_ok());
        refused(opaque_key("k", "has space"), "k");
        refused(opaque_key("k", &"k".repeat(129)), "k");
        assert_eq!(percentage("p", 0.0).unwrap(), 0.0);
        assert_eq!(percentage("p", 100.0).unwrap(), 100.0);
        refused(percentage("p", 100.01), "p");
        refused(percentage("p", f64::NAN), "p");
        assert!(nonce("n", None).is_ok());
        assert!(nonce("n", Some(&"00AAbb11".repeat(2))).is_ok());
        assert!(nonce("n", Some(&"a".repeat(64))).is_ok());
        refused(nonce("n", Some(&"a".repeat(15))), "n");
        refused(nonce("n", Some(&"a".repeat(65))), "n");
        refused(nonce("n", Some(&"g".repeat(16))), "n");
        assert!(reset_reason("r", None).is_ok());
        assert!(reset_reason("r", Some("task_wdt")).is_ok());
        assert!(reset_reason("r", Some(&"a".repeat(32))).is_ok());
        refused(reset_reason("r", Some(&"a".repeat(33))), "r");
        refused(reset_reason("r", Some("")), "r");
        refused(reset_reason("r", Some("1st")), "r");
        refused(reset_reason("r", Some("Panic")), "r");
    }

    #[test]
    fn groups_sorted_unique_and_bounded() {
        assert_eq!(
            groups("g", vec!["b".into(), "a".into(), "b".into()]).unwrap(),
            ["a", "b"]
        );
        refused(groups("g", vec!["bad name".into()]), "g");
        refused(groups("g", (0..33).map(|i| format!("g{i}")).collect()), "g");
        assert!(group("g", "site:eu-1.lab_2").is_ok());
        refused(group("g", &"g".repeat(65)), "g");
        refused(group("g", ""), "g");
    }

    proptest::proptest! {
        /// The OpenAPI document's patterns accept exactly what the rules accept: near-misses
        /// (lengths around the limits, spaces, other punctuation, non-ASCII) included.
        #[test]
        fn patterns_say_what_the_rules_do(s in "[A-Za-z0-9_.:-]{63,65}|[!-~]{127,129}|[0-9A-Fa-fg]{15,17}|[0-9a-f]{63,65}|[ \t\r\na\u{85}]{0,3}|[a ]{199,201}|[A-Za-z0-9_.:!~ é-]{0,8}|[a-z0-9_A]{31,33}|[_0-9aZ][a-z0-9_]{0,3}\n?|\\PC{0,8}") {
            let matches = |pattern: &str| regex::Regex::new(pattern).unwrap().is_match(&s);
            proptest::prop_assert_eq!(matches(CHANNEL_PATTERN), channel("f", Some(s.clone())).is_ok());
            proptest::prop_assert_eq!(matches(GROUP_PATTERN), groups("f", vec![s.clone()]).is_ok());
            proptest::prop_assert_eq!(matches(SHA256_PATTERN), sha256_hex("f", &s).is_ok());
            proptest::prop_assert_eq!(matches(OPAQUE_KEY_PATTERN), opaque_key("f", &s).is_ok());
            proptest::prop_assert_eq!(matches(NONCE_PATTERN), nonce("f", Some(&s)).is_ok());
            proptest::prop_assert_eq!(
                matches(RESET_REASON_PATTERN),
                reset_reason("f", Some(&s)).is_ok()
            );
            let name_fits = !s.is_empty() && s.chars().count() <= MAX_ROLLOUT_NAME_CHARS;
            proptest::prop_assert_eq!(
                matches(ROLLOUT_NAME_PATTERN) && name_fits,
                rollout_name("f", &s).is_ok()
            );
        }

        #[test]
        fn hashes_match_their_pattern(s in "[0-9A-Fa-f]{63,65}") {
            let matches = regex::Regex::new(SHA256_PATTERN).unwrap().is_match(&s);
            proptest::prop_assert_eq!(matches, sha256_hex("f", &s).is_ok());
        }
    }
}
