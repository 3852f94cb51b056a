//! What a check needs to know about a device (its row, its attempts and the rollouts that name
//! it), kept in memory so that a device polling again touches no SQLite at all.
//!
//! Exact, like the view cache: any insert, update or delete of a device's row, of one of its
//! attempts or of one of its memberships (`watch`) drops that device's entry, inside the
//! writing statement. The batched `last_seen` and `last_boot` go to a table of their own
//! (`device_seen`, not watched): a check never reads `last_seen` from here, and its `last_boot`
//! is put here by the check that noted it (`refresh`), since dropping every device that polled
//! in the last seconds would leave nothing cached for a fleet polling once a minute.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ota_core::device::DeviceSnapshot;
use ota_core::ids::DeviceId;
use rusqlite::Connection;

use crate::watch;

/// About 30 MiB of snapshots at most; beyond it an arbitrary entry makes room.
const CAPACITY: usize = 50_000;

#[derive(Default, Clone)]
pub(crate) struct DeviceCache {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Shared, not copied: a steady poll reads its device once and replaces it once.
    entries: Mutex<HashMap<String, Arc<DeviceSnapshot>>>,
}

impl DeviceCache {
    pub(crate) fn watch(&self, conn: &Connection) -> rusqlite::Result<()> {
        let inner = self.inner.clone();
        let tables = ["devices", "attempts", "rollout_targets"];
        watch::on_change(
            conn,
            "ota_device_changed",
            &tables,
            Some("device_id"),
            move |id| {
                if let (Some(id), Ok(mut entries)) = (id, inner.entries.lock()) {
                    entries.remove(&id);
                }
            },
        )
    }

    /// The device as stored when it was last read, unless written since.
    pub(crate) fn get(&self, id: &DeviceId) -> Option<Arc<DeviceSnapshot>> {
        self.inner.entries.lock().ok()?.get(id.as_str()).cloned()
    }

    /// Keeps `snapshot`, just read. Call it holding the connection, so that no write can come
    /// between the read and this.
    pub(crate) fn put(&self, snapshot: Arc<DeviceSnapshot>) {
        if let Ok(mut entries) = self.inner.entries.lock() {
            if entries.len() >= CAPACITY
                && let Some(any) = entries.keys().next().cloned()
            {
                entries.remove(&any);
            }
            entries.insert(snapshot.device.device_id.as_str().to_owned(), snapshot);
        }
    }

    /// Replaces the entry `read` (a check read it, and its refresh of `last_seen` and
    /// `last_boot` now waits to be written) with `refreshed`, unless a write dropped or replaced
    /// it meanwhile: then what is cached, if anything, is newer than both.
    pub(crate) fn refresh(&self, read: &Arc<DeviceSnapshot>, refreshed: Arc<DeviceSnapshot>) {
        if let Ok(mut entries) = self.inner.entries.lock()
            && let Some(entry) = entries.get_mut(read.device.device_id.as_str())
            && (Arc::ptr_eq(entry, read) || **entry == **read)
        {
            *entry = refreshed;
        }
    }
}
