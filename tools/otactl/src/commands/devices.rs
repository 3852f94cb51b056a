//! `otactl devices list|get|groups|token`.

use ota_core::device::Device;
use serde_json::{Map, Value, json};

use super::{items, page_query, query};
use crate::cli::{DevicesCmd, Output};
use crate::client::{Client, seg, typed};
use crate::error::Result;
use crate::output;
use crate::table::{fields, opt};
use crate::views::{self, DeviceDetail};

pub async fn run(client: &Client, cmd: DevicesCmd, out: Output) -> Result<()> {
    match cmd {
        DevicesCmd::List {
            device_type,
            version,
            group,
            page,
        } => {
            let mut q = vec![
                ("device_type", device_type),
                ("version", version),
                ("group", group),
            ];
            q.extend(page_query(&page));
            let list = client.get("/api/ota/admin/devices", &query(q)).await?;
            let ds: Vec<Device> = items(&list, "device list")?;
            output::emit(out, &list, || {
                views::device_list(&ds) + &output::more_hint(&list)
            });
            Ok(())
        }
        DevicesCmd::Get { id } => {
            let v = client
                .get(&format!("/api/ota/admin/devices/{}", seg(&id)), &[])
                .await?;
            let d: DeviceDetail = typed(&v, "device")?;
            output::emit(out, &v, || views::device(&d));
            Ok(())
        }
        DevicesCmd::Groups { id, groups, clear } => {
            let path = format!("/api/ota/admin/devices/{}", seg(&id));
            let v = if groups.is_empty() && !clear {
                client.get(&path, &[]).await?
            } else {
                client.patch(&path, &json!({"groups": groups})).await?
            };
            let d: Device = typed(&v, "device")?;
            let shown = json!({"device_id": d.device_id, "groups": d.groups});
            output::emit(out, &shown, || {
                if d.groups.is_empty() {
                    format!("{}: no groups\n", d.device_id)
                } else {
                    format!("{}: {}\n", d.device_id, d.groups.join(", "))
                }
            });
            Ok(())
        }
        DevicesCmd::Token {
            id,
            device_type,
            ttl,
        } => {
            let mut body = Map::new();
            if let Some(dt) = device_type {
                body.insert("device_type".into(), json!(dt));
            }
            if let Some(t) = ttl {
                body.insert("ttl_s".into(), json!(t));
            }
            let v = client
                .post(
                    &format!("/api/ota/admin/devices/{}/token", seg(&id)),
                    &Value::Object(body),
                )
                .await?;
            let t: ota_http::routes::device_registry::MintedToken = typed(&v, "device token")?;
            output::emit(out, &v, || {
                fields(&[
                    ("device id", t.device_id.clone()),
                    ("device type", t.device_type.clone()),
                    ("expires", opt(&t.expires_at.as_ref().map(views::ts))),
                    ("token", t.token.clone()),
                ])
            });
            Ok(())
        }
    }
}
