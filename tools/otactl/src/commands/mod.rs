//! One module per subcommand group; each turns arguments into API calls and prints the answer.

mod devices;
mod firmware;
mod keys;
mod logs;
mod publish;
mod rollout;
mod token;
mod watch;

use std::time::Duration;

use serde_json::Value;

use crate::cli::{Cli, Command, Output};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::{image, output};

pub async fn run(cli: Cli) -> Result<()> {
    let out = cli.output;
    // The offline commands need no token, and no server but to read public keys.
    match &cli.command {
        Command::Inspect { file } => return inspect(file, out).await,
        Command::Token(cmd) => return token::run(cmd, out),
        Command::Keys(cmd) => return keys::run(cmd, cli.server.as_deref(), out).await,
        _ => {}
    }
    let client = connect(&cli)?;
    match cli.command {
        Command::Upload(args) => publish::upload(&client, &args, out).await,
        Command::Release(args) => publish::release(&client, &args, out).await,
        Command::Firmware(cmd) => firmware::run(&client, cmd, out).await,
        Command::Rollout(cmd) => rollout::run(&client, cmd, out).await,
        Command::Devices(cmd) => devices::run(&client, cmd, out).await,
        Command::Logs(args) => logs::run(&client, &args, out).await,
        Command::Metrics => metrics(&client, out).await,
        Command::Inspect { .. } | Command::Token(_) | Command::Keys(_) => Ok(()),
    }
}

/// The server's base URL as given, or the usage error of its absence.
fn server(server: Option<&str>) -> Result<&str> {
    server
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::usage("no server: pass --server URL or set OTA_SERVER"))
}

fn connect(cli: &Cli) -> Result<Client> {
    let server = server(cli.server.as_deref())?;
    let token = cli
        .token
        .as_deref()
        .ok_or_else(|| Error::usage("no token: pass --token JWT or set OTA_TOKEN"))?;
    Client::new(server, token)
}

async fn inspect(file: &std::path::Path, out: Output) -> Result<()> {
    let local = image::read(file).await?;
    output::emit(out, &local.to_json(file), || local.render(file));
    match local.refusal(file) {
        Some(refusal) => Err(refusal),
        None => Ok(()),
    }
}

async fn metrics(client: &Client, out: Output) -> Result<()> {
    let v = client.get("/api/ota/admin/metrics", &[]).await?;
    let m = crate::client::typed(&v, "metrics")?;
    output::emit(out, &v, || crate::views::metrics(&m));
    Ok(())
}

/// An hour between polls is already more than following; the bound also keeps the value inside
/// what a `Duration` holds.
const MAX_POLL_S: f64 = 3600.0;

/// The wait between the polls of a follower (`logs --follow`, `rollout watch`), from its flag.
fn poll_every(flag: &str, seconds: f64) -> Result<Duration> {
    if !(seconds.is_finite() && (0.1..=MAX_POLL_S).contains(&seconds)) {
        return Err(Error::usage(format!(
            "{flag} must be between 0.1 and {MAX_POLL_S} seconds"
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A follower's poll after its first: the answer, or None when it failed in a way that passes
/// (the server restarting, a 5xx), said on stderr so that the next poll retries. A 4xx ends
/// the follow: asking again would be refused again.
async fn poll(client: &Client, path: &str, query: &[(&str, String)]) -> Result<Option<Value>> {
    match client.get(path, query).await {
        Ok(v) => Ok(Some(v)),
        Err(e @ Error::Refused(_)) if e.status().is_some_and(|s| s < 500) => Err(e),
        Err(e) => {
            eprintln!("poll failed ({e}); retrying");
            Ok(None)
        }
    }
}

/// A list answer's items as typed views.
fn items<T: serde::de::DeserializeOwned>(list: &Value, what: &str) -> Result<Vec<T>> {
    let items = list
        .get("items")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    crate::client::typed(&items, what)
}

/// Optional query parameters, dropping the ones not given.
fn query(pairs: Vec<(&'static str, Option<String>)>) -> Vec<(&'static str, String)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
}

fn page_query(page: &crate::cli::Page) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("limit", page.limit.map(|l| l.to_string())),
        ("cursor", page.cursor.clone()),
    ]
}
