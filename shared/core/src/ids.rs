//! Identifiers that arrive from the outside world, parsed once at the edge so that the rest of
//! the code can rely on their shape ("parse, don't validate").

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, de};
use utoipa::ToSchema;

/// Why an identifier was refused; the HTTP edge turns it into a 400 with the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdError(pub String);

/// A product line: `^[a-z0-9][a-z0-9_-]{0,63}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "scales_bridge_tab5")]
pub struct DeviceType(String);

impl DeviceType {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes = s.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= 64 {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(
                "device_type must match ^[a-z0-9][a-z0-9_-]{0,63}$".to_owned(),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DeviceType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceType::parse(&s).map_err(de::Error::custom)
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A device: 1–128 chars of `[A-Za-z0-9_.:-]`. Devices flashed with older clients send it as a
/// JSON number, which is read as its decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9_.:-]{1,128}$", example = "a4cf12b3c4d5")]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdError(
                "device_id must be 1-128 characters of [A-Za-z0-9_.:-]".to_owned(),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not an untagged enum: an absent field then reads "missing field
        // `device_id`", and the field's own error is not replaced by a generic one.
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = String;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device id (a string or an integer)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
                Ok(v.to_owned())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
                Ok(v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
                Ok(v.to_string())
            }
        }
        let s = d.deserialize_any(Visitor)?;
        DeviceId::parse(&s).map_err(de::Error::custom)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SemVer 2.0 version; a leading `v` is accepted and dropped. Major, minor and patch have at
/// most 18 digits, so that the document's pattern can say exactly what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, ToSchema)]
#[schema(value_type = String, example = "1.1.0",
    pattern = r"^v?(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})\.(0|[1-9][0-9]{0,17})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")]
pub struct Version(semver::Version);

impl Version {
    /// Largest major, minor or patch number (18 digits).
    const MAX_NUMBER: u64 = 999_999_999_999_999_999;

    pub fn parse(s: &str) -> Result<Self, IdError> {
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        let v = semver::Version::parse(trimmed)
            .map_err(|e| IdError(format!("'{s}' is not a SemVer 2.0 version: {e}")))?;
        if [v.major, v.minor, v.patch]
            .iter()
            .any(|n| *n > Self::MAX_NUMBER)
        {
            return Err(IdError(format!(
                "'{s}': major, minor and patch have at most 18 digits"
            )));
        }
        Ok(Self(v))
    }
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }

    /// A string whose byte order equals SemVer precedence (build metadata ignored), so that
    /// stores can sort releases "newest first" with a plain index on a text column.
    pub fn sort_key(&self) -> String {
        let v = &self.0;
        let mut key = format!("{:020}.{:020}.{:020}", v.major, v.minor, v.patch);
        if v.pre.is_empty() {
            // A release ranks above every pre-release of the same triple.
            key.push('~');
        } else {
            key.push('-');
            for (i, ident) in v.pre.as_str().split('.').enumerate() {
                if i > 0 {
                    // '!' sorts below every identifier character, so a shorter list ranks lower.
                    key.push('!');
                }
                match ident.parse::<u64>() {
                    // Numeric identifiers rank below alphanumeric ones and compare numerically.
                    Ok(n) if ident.bytes().all(|b| b.is_ascii_digit()) => {
                        key.push_str(&format!("0{n:020}"));
                    }
                    _ => {
                        key.push('1');
                        key.push_str(ident);
                    }
                }
            }
        }
        key
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    /// SemVer precedence; build metadata only breaks ties so that the order is total.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .cmp_precedence(&other.0)
            .then_with(|| self.0.build.cmp(&other.0.build))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Version::parse(&s).map_err(de::Error::custom)
    }
}

/// Ids the service mints itself: UUIDv7 strings, so they sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The document's pattern of a version, from the schema it is published in.
    fn version_pattern() -> String {
        let schema = serde_json::to_value(<Version as utoipa::PartialSchema>::schema()).unwrap();
        schema["pattern"].as_str().unwrap().to_owned()
    }

    proptest! {
        /// What the pattern accepts parses; what it refuses does not, near-misses included.
        #[test]
        fn version_pattern_says_what_parse_does(
            s in "v?(0|[1-9][0-9]{0,19}|0[0-9])\\.[0-9]{1,3}\\.[0-9]{1,2}(-[0-9A-Za-z.-]{0,6})?(\\+[0-9A-Za-z.-]{0,4})?"
        ) {
            let matches = regex::Regex::new(&version_pattern()).unwrap().is_match(&s);
            prop_assert_eq!(matches, Version::parse(&s).is_ok(), "{}", s);
        }
    }

    #[test]
    fn device_type_shape() {
        assert!(DeviceType::parse("scales_bridge_tab5").is_ok());
        assert!(DeviceType::parse("a").is_ok());
        assert!(DeviceType::parse(&"a".repeat(64)).is_ok());
        assert!(DeviceType::parse(&"a".repeat(65)).is_err());
        assert!(DeviceType::parse("_a").is_err());
        assert!(DeviceType::parse("Abc").is_err());
        assert!(DeviceType::parse("").is_err());
    }

    #[test]
    fn device_id_from_number_or_string() {
        let id: DeviceId = serde_json::from_str("12345").unwrap();
        assert_eq!(id.as_str(), "12345");
        let id: DeviceId = serde_json::from_str("\"a4:cf.12_b3-c4\"").unwrap();
        assert_eq!(id.as_str(), "a4:cf.12_b3-c4");
        assert!(serde_json::from_str::<DeviceId>("\"has space\"").is_err());
        assert!(serde_json::from_str::<DeviceId>("\"\"").is_err());
        assert!(serde_json::from_str::<DeviceId>("1.5").is_err());
        assert!(serde_json::from_str::<DeviceId>(&format!("\"{}\"", "x".repeat(129))).is_err());
    }

    #[test]
    fn leading_v_dropped() {
        assert_eq!(Version::parse("v1.2.3").unwrap().to_string(), "1.2.3");
        assert!(Version::parse("1.2").is_err());
    }

    fn version_strategy() -> impl Strategy<Value = Version> {
        let ident = prop_oneof![
            (0u64..30).prop_map(|n| n.to_string()),
            "[a-zA-Z-][a-zA-Z0-9-]{0,5}",
        ];
        (
            0u64..4,
            0u64..4,
            0u64..4,
            proptest::collection::vec(ident, 0..3),
        )
            .prop_map(|(a, b, c, pre)| {
                let s = if pre.is_empty() {
                    format!("{a}.{b}.{c}")
                } else {
                    format!("{a}.{b}.{c}-{}", pre.join("."))
                };
                Version::parse(&s).unwrap()
            })
    }

    proptest! {
        #[test]
        fn sort_key_orders_like_semver(a in version_strategy(), b in version_strategy()) {
            let by_semver = a.semver().cmp_precedence(b.semver());
            prop_assert_eq!(a.sort_key().cmp(&b.sort_key()), by_semver);
        }
    }
}
