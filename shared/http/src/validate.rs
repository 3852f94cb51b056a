//! Small input checks shared by handlers, past what the types themselves enforce.

use crate::problem::Problem;

/// Channel names: 1–64 characters of `[A-Za-z0-9_.-]`.
pub fn channel(field: &str, value: Option<String>) -> Result<String, Problem> {
    let c = value.unwrap_or_else(|| ota_core::firmware::DEFAULT_CHANNEL.to_owned());
    let ok = !c.is_empty()
        && c.len() <= 64
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(c)
    } else {
        Err(Problem::bad_request(
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
) -> Result<Option<String>, Problem> {
    match value {
        Some(v) if v.chars().count() > max_chars => Err(Problem::bad_request(
            field,
            format!("{field} must be at most {max_chars} characters"),
        )),
        other => Ok(other),
    }
}

pub fn sha256_hex(field: &str, value: &str) -> Result<String, Problem> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(Problem::bad_request(
            field,
            "must be a SHA-256 as 64 hex characters",
        ))
    }
}

/// Event ids and other opaque client keys: 1–128 printable ASCII characters.
pub fn opaque_key(field: &str, value: &str) -> Result<(), Problem> {
    if !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Problem::bad_request(
            field,
            "must be 1-128 printable ASCII characters",
        ))
    }
}

/// An optional RFC 3339 lower bound of a list (`?since=`).
pub fn since(value: Option<&str>) -> Result<Option<time::OffsetDateTime>, Problem> {
    value
        .map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| Problem::bad_request("since", "must be an RFC 3339 time"))
        })
        .transpose()
}
