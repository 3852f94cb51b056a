//! Where results go: JSON for scripts (the server's own answer, pretty-printed), text for people.

use serde_json::Value;

use crate::cli::Output;
use crate::error::{Error, Result};

/// Prints `value` as JSON, or the table `render` builds from it.
pub fn emit(output: Output, value: &Value, render: impl FnOnce() -> String) {
    match output {
        Output::Json => json(value),
        Output::Table => print!("{}", render()),
    }
}

pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A list answer's `next_cursor`, as a hint under a table.
pub fn more_hint(list: &Value) -> String {
    match list.get("next_cursor").and_then(Value::as_str) {
        Some(c) => format!("(more: --cursor {c})\n"),
        None => String::new(),
    }
}

/// Followers are read through a pipe: a flush makes each line show as it arrives.
pub fn flush() -> Result<()> {
    use std::io::Write;
    std::io::stdout()
        .flush()
        .map_err(|e| Error::failed(format!("writing output: {e}")))
}
