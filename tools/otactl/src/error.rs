//! What can go wrong, sorted by the exit code each outcome maps to (0 success, 1 refused or
//! failed, 2 usage), so that CI scripts can tell "the server said no" from "the command is wrong".

use std::fmt;
use std::process::ExitCode;

use serde::Deserialize;

/// An RFC 9457 problem as the server sends it (docs/api.md §Conventions).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FieldError {
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for Problem {
    /// One line: scripts grep it and people read it, so the field errors follow the detail
    /// instead of being printed as a list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = if self.title.is_empty() {
            "request refused"
        } else {
            &self.title
        };
        write!(f, "{} ({title})", self.status)?;
        if !self.detail.is_empty() {
            // A 400's detail is its field error's message: the field says which flag it was.
            let field = self
                .errors
                .iter()
                .find(|e| e.message == self.detail && !e.field.is_empty())
                .map(|e| format!("{}: ", e.field))
                .unwrap_or_default();
            write!(f, ": {field}{}", one_line(&self.detail))?;
        }
        let extra: Vec<String> = self
            .errors
            .iter()
            .filter(|e| !self.detail.contains(&e.message))
            .map(|e| one_line(&format!("{}: {}", e.field, e.message)))
            .collect();
        if !extra.is_empty() {
            write!(f, " [{}]", extra.join("; "))?;
        }
        Ok(())
    }
}

/// Newlines inside a server message would break the one-line promise.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a problem.
    #[error("server refused: {0}")]
    Refused(Problem),
    /// Something refused or failed before or around the request: an image the local validator
    /// rejects, an unreadable file, an unreachable server, a release in a state that cannot
    /// finish.
    #[error("{0}")]
    Failed(String),
    /// The command line cannot be acted on (clap reports its own errors the same way).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    pub fn failed(msg: impl Into<String>) -> Self {
        Error::Failed(msg.into())
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Refused(_) | Error::Failed(_) => ExitCode::from(1),
            Error::Usage(_) => ExitCode::from(2),
        }
    }

    /// The HTTP status of a refusal, for callers that handle some of them (409 on create).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused(p) => Some(p.status),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_prints_on_one_line_with_title_and_detail() {
        let p: Problem = serde_json::from_str(
            r#"{"type":"x","title":"Conflict","status":409,"detail":"version 1.0.0\nexists",
                "errors":[{"field":"version","message":"taken"}]}"#,
        )
        .unwrap();
        let line = p.to_string();
        assert_eq!(
            line,
            "409 (Conflict): version 1.0.0 exists [version: taken]"
        );
        assert!(!line.contains('\n'));
        let p: Problem = serde_json::from_str(
            r#"{"title":"Bad Request","status":400,"detail":"must be above 0",
                "errors":[{"field":"stages[0].percent","message":"must be above 0"}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.to_string(),
            "400 (Bad Request): stages[0].percent: must be above 0"
        );
    }

    #[test]
    fn exit_codes_separate_refusal_from_usage() {
        assert_eq!(
            Error::Refused(Problem::default()).exit_code(),
            ExitCode::from(1)
        );
        assert_eq!(Error::failed("x").exit_code(), ExitCode::from(1));
        assert_eq!(Error::usage("x").exit_code(), ExitCode::from(2));
    }
}
