//! `otactl logs [--follow]`: the OTA log, newest first; following polls, since the API has no
//! push channel, and prints each new entry once, oldest first.

use std::collections::HashSet;
use std::time::Duration;

use ota_core::device::LogEntry;
use serde_json::Value;

use super::{items, query};
use crate::cli::{LogsArgs, Output};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::output;
use crate::views::{self, ts};

/// An hour between polls is already more than following; the bound also keeps the value inside
/// what a `Duration` holds.
const MAX_INTERVAL_S: f64 = 3600.0;

pub async fn run(client: &Client, args: &LogsArgs, out: Output) -> Result<()> {
    if !(args.interval.is_finite() && (0.1..=MAX_INTERVAL_S).contains(&args.interval)) {
        return Err(Error::usage(format!(
            "--interval must be between 0.1 and {MAX_INTERVAL_S} seconds"
        )));
    }
    let filters = |since: Option<String>| {
        query(vec![
            ("device_id", args.device.clone()),
            ("firmware_id", args.firmware_id.clone()),
            ("status", args.status.clone()),
            ("since", since),
            ("limit", args.limit.map(|l| l.to_string())),
        ])
    };
    let list = client
        .get("/api/ota/admin/logs", &filters(args.since.clone()))
        .await?;
    let entries: Vec<LogEntry> = items(&list, "log")?;
    if !args.follow {
        output::emit(out, &list, || {
            views::log_list(&entries) + &output::more_hint(&list)
        });
        return Ok(());
    }
    let raw = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut since = args.since.clone();
    print_new(&raw, &entries, &mut seen, &mut since, out)?;
    loop {
        tokio::time::sleep(Duration::from_secs_f64(args.interval)).await;
        // `since` is inclusive, so entries stamped at the newest time seen come back: `seen`
        // drops them. A poll that fails (server restarting) is retried, not fatal.
        match client
            .get("/api/ota/admin/logs", &filters(since.clone()))
            .await
        {
            Ok(list) => {
                let entries: Vec<LogEntry> = items(&list, "log")?;
                let raw = list
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                print_new(&raw, &entries, &mut seen, &mut since, out)?;
            }
            Err(e @ Error::Refused(_)) if e.status().is_some_and(|s| s < 500) => return Err(e),
            Err(e) => eprintln!("poll failed ({e}); retrying"),
        }
    }
}

/// Prints the entries not printed before, oldest first (JSON: one object per line).
fn print_new(
    raw: &[Value],
    entries: &[LogEntry],
    seen: &mut HashSet<String>,
    since: &mut Option<String>,
    out: Output,
) -> Result<()> {
    for (v, e) in raw.iter().zip(entries).rev() {
        if !seen.insert(e.id.clone()) {
            continue;
        }
        match out {
            Output::Json => println!("{}", serde_json::to_string(v).unwrap_or_default()),
            Output::Table => println!("{}", views::log_line(e)),
        }
        let stamp = ts(&e.created_at);
        if since.as_ref().is_none_or(|s| *s < stamp) {
            *since = Some(stamp);
        }
    }
    // Followers read stdout through a pipe: flush so each entry shows as it arrives.
    use std::io::Write;
    std::io::stdout()
        .flush()
        .map_err(|e| Error::failed(format!("writing output: {e}")))?;
    Ok(())
}
