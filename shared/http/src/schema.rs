//! Schemas of the OpenAPI document for fields that are plain strings or numbers in Rust but have
//! a rule in `ota_core::fields`: the document states the rule's own pattern and bounds, so a
//! generated client or a tester sends what the server accepts.

use std::borrow::Cow;

use ota_core::fields;
use ota_core::status::OtaStatus;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// Declares a named string schema with the pattern of a rule.
macro_rules! patterned {
    ($name:ident, $pattern:expr, $description:literal, $example:literal) => {
        #[doc = $description]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some($pattern))
                    .description(Some($description))
                    .examples([$example])
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

patterned!(
    Channel,
    fields::CHANNEL_PATTERN,
    "A release channel: 1-64 characters of `[A-Za-z0-9_.-]`.",
    "stable"
);
patterned!(
    GroupName,
    fields::GROUP_PATTERN,
    "A device group: 1-64 characters of `[A-Za-z0-9_.:-]`.",
    "lab"
);
patterned!(
    Sha256Hex,
    fields::SHA256_PATTERN,
    "A SHA-256 digest as 64 hex characters.",
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
);
patterned!(
    Nonce,
    fields::NONCE_PATTERN,
    "A device's nonce, echoed in the signed manifest: 16-64 hex characters.",
    "8f14e45fceea167a5a36dedd4bea2543"
);
patterned!(
    ResetReason,
    fields::RESET_REASON_PATTERN,
    "A reset reason: ESP-IDF's `esp_reset_reason_t` name lowercased without `ESP_RST_` (`panic`, `int_wdt`), or another token of 1-32 characters of `[a-z0-9_]` starting with a letter.",
    "panic"
);
patterned!(
    EventId,
    fields::OPAQUE_KEY_PATTERN,
    "An idempotency key: 1-128 printable ASCII characters.",
    "boot-7f3a"
);

/// A rollout's name: 1-200 characters, not only spaces, tabs or line breaks.
pub struct RolloutName;

impl PartialSchema for RolloutName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(fields::ROLLOUT_NAME_PATTERN))
            .min_length(Some(1))
            .max_length(Some(fields::MAX_ROLLOUT_NAME_CHARS))
            .description(Some(
                "1-200 characters, not only spaces, tabs or line breaks (which are trimmed).",
            ))
            .examples(["1.4.0 to the lab"])
            .into()
    }
}

impl ToSchema for RolloutName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RolloutName")
    }
}

/// A percentage, 0 to 100 inclusive.
pub struct Percent;

impl PartialSchema for Percent {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0))
            .maximum(Some(100))
            .description(Some("A percentage, 0 to 100 inclusive."))
            .into()
    }
}

impl ToSchema for Percent {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Percent")
    }
}

/// A status a device reports: every status but `timed_out`, which only the server writes.
pub struct ReportedStatus;

impl PartialSchema for ReportedStatus {
    fn schema() -> RefOr<Schema> {
        let reported = OtaStatus::ALL
            .into_iter()
            .filter(|s| *s != OtaStatus::TimedOut)
            .map(OtaStatus::as_str);
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(reported))
            .description(Some(
                "A status a device reports (`timed_out` is written by the server only).",
            ))
            .into()
    }
}

impl ToSchema for ReportedStatus {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ReportedStatus")
    }
}

/// A chip as `Chip::from_name` reads it: a canonical name in any case, with dashes or
/// underscores anywhere (`esp32c3`, `ESP32-C3`).
pub struct ChipName;

impl ChipName {
    pub fn pattern() -> String {
        let names: Vec<String> = esp_image::Chip::ALL
            .iter()
            .map(|c| {
                c.name()
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphabetic() {
                            format!("[{}{}]", ch, ch.to_ascii_uppercase())
                        } else {
                            ch.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("[-_]*")
            })
            .collect();
        format!("^[-_]*({})[-_]*$", names.join("|"))
    }
}

impl PartialSchema for ChipName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(Self::pattern()))
            .description(Some(
                "A chip as esptool or ESP-IDF names it (`esp32`, `esp32c3`, `ESP32-C3`, ...).",
            ))
            .examples(["esp32c3"])
            .into()
    }
}

impl ToSchema for ChipName {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChipName")
    }
}

/// Free text of at most `MAX` characters.
pub struct Text<const MAX: usize>;

impl<const MAX: usize> PartialSchema for Text<MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX))
            .into()
    }
}

impl<const MAX: usize> ToSchema for Text<MAX> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("Text{MAX}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use esp_image::Chip;
    use proptest::prelude::*;

    proptest! {
        /// The chip pattern accepts exactly what `Chip::from_name` does.
        #[test]
        fn chip_pattern_says_what_from_name_does(
            s in "[-_]?(esp|ESP|Esp)[-_]?32[-_]?(c3|C3|s|h2|p4|c61|x|)[-_]?[0-9]?"
        ) {
            let matches = regex::Regex::new(&ChipName::pattern()).unwrap().is_match(&s);
            prop_assert_eq!(matches, Chip::from_name(&s).is_some(), "{}", s);
        }
    }
}

/// Declares a named integer schema with bounds.
macro_rules! bounded_integer {
    ($name:ident, $min:expr, $max:expr, $description:literal) => {
        #[doc = $description]
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some($min))
                    .maximum(Some($max))
                    .description(Some($description))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

bounded_integer!(
    Count,
    0,
    fields::MAX_STORED_INTEGER,
    "A count the stores keep exactly: 0 to 2^63-1."
);
bounded_integer!(U32, 0, u32::MAX, "0 to 2^32-1.");
bounded_integer!(
    FileSize,
    1,
    fields::MAX_STORED_INTEGER,
    "A file size in bytes, at least 1 (and at most the deployment's upload limit, 413 above)."
);
