//! `otactl firmware list|get|update|deactivate`.

use ota_core::release::Release;
use serde_json::{Map, Value};

use super::{items, page_query, query};
use crate::cli::{FirmwareCmd, Output};
use crate::client::{Client, seg, typed};
use crate::error::{Error, Result};
use crate::{output, views};

pub async fn run(client: &Client, cmd: FirmwareCmd, out: Output) -> Result<()> {
    match cmd {
        FirmwareCmd::List {
            device_type,
            channel,
            state,
            page,
        } => {
            let mut q = vec![
                ("device_type", device_type),
                ("channel", channel),
                ("state", state),
            ];
            q.extend(page_query(&page));
            let list = client.get("/api/ota/admin/firmware", &query(q)).await?;
            let fws: Vec<Release> = items(&list, "release list")?;
            output::emit(out, &list, || {
                views::release_list(&fws) + &output::more_hint(&list)
            });
            Ok(())
        }
        FirmwareCmd::Get { id } => {
            let v = client
                .get(&format!("/api/ota/admin/firmware/{}", seg(&id)), &[])
                .await?;
            show(&v, out)
        }
        FirmwareCmd::Update {
            id,
            description,
            notes,
            channel,
            active,
            min_current_version,
            clear_min_current_version,
        } => {
            let mut body = Map::new();
            let mut set = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    body.insert(k.to_owned(), v);
                }
            };
            set("description", description.map(Value::from));
            set("release_notes", notes.map(Value::from));
            set("channel", channel.map(Value::from));
            set("is_active", active.map(Value::from));
            set("min_current_version", min_current_version.map(Value::from));
            if clear_min_current_version {
                set("min_current_version", Some(Value::Null));
            }
            if body.is_empty() {
                return Err(Error::usage(
                    "nothing to change: give --description, --notes, --channel, --active, --min-current-version or --clear-min-current-version",
                ));
            }
            let v = client
                .patch(
                    &format!("/api/ota/admin/firmware/{}", seg(&id)),
                    &Value::Object(body),
                )
                .await?;
            show(&v, out)
        }
        FirmwareCmd::Deactivate { id } => {
            let v = client
                .delete(&format!("/api/ota/admin/firmware/{}", seg(&id)))
                .await?;
            show(&v, out)
        }
    }
}

fn show(v: &Value, out: Output) -> Result<()> {
    let fw: Release = typed(v, "release")?;
    output::emit(out, v, || views::release(&fw));
    Ok(())
}
