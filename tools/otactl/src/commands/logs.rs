//! `otactl logs [--follow]`: the OTA log, newest first; following polls, since the API has no
//! push channel, and prints each new entry once, oldest first.

use std::collections::HashSet;

use ota_core::device::LogEntry;
use serde_json::Value;

use super::{items, poll, poll_every, query};
use crate::cli::{LogsArgs, Output};
use crate::client::Client;
use crate::error::Result;
use crate::output;
use crate::views::{self, ts};

pub async fn run(client: &Client, args: &LogsArgs, out: Output) -> Result<()> {
    let every = poll_every("--interval", args.interval)?;
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
        tokio::time::sleep(every).await;
        // `since` is inclusive, so entries stamped at the newest time seen come back: `seen`
        // drops them.
        if let Some(list) = poll(client, "/api/ota/admin/logs", &filters(since.clone())).await? {
            let entries: Vec<LogEntry> = items(&list, "log")?;
            let raw = list
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            print_new(&raw, &entries, &mut seen, &mut since, out)?;
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
    output::flush()
}
