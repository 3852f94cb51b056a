//! Each device type's release view, kept in memory between checks and exact, not merely fresh.
//!
//! Every check reads its type's view (the active rollouts with their firmware), and parsing
//! those JSON documents on every check was most of what a check cost. The server is the only
//! process writing its database, so the cache can know exactly when a view goes stale:
//! temporary triggers on the three tables a view is built from call back into this process,
//! which bumps a generation number; a view read at an older generation is read again. The
//! triggers are `TEMP`, so they exist only on this connection and never reach the file (a
//! `sqlite3` shell on the same file neither needs nor sees the callback).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ota_core::ids::DeviceType;
use ota_core::ports::ReleaseView;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// The tables `release_view` reads.
const VIEW_TABLES: [&str; 3] = ["device_types", "firmware", "rollouts"];
const CALLBACK: &str = "ota_release_view_changed";

#[derive(Default)]
pub(crate) struct ViewCache {
    generation: Arc<AtomicU64>,
    views: Mutex<HashMap<DeviceType, (u64, Arc<ReleaseView>)>>,
}

impl ViewCache {
    /// Installs the triggers on `conn`: from now on any insert, update or delete of a view's
    /// tables, committed or not, moves the generation. (A rolled-back change only costs one
    /// needless re-read.)
    pub(crate) fn watch(&self, conn: &Connection) -> rusqlite::Result<()> {
        let generation = self.generation.clone();
        conn.create_scalar_function(CALLBACK, 0, FunctionFlags::SQLITE_UTF8, move |_| {
            generation.fetch_add(1, Ordering::AcqRel);
            Ok(0_i64)
        })?;
        let mut sql = String::new();
        for table in VIEW_TABLES {
            for event in ["insert", "update", "delete"] {
                sql.push_str(&format!(
                    "CREATE TEMP TRIGGER IF NOT EXISTS {table}_{event}_view AFTER {event} ON main.{table}
                     BEGIN SELECT {CALLBACK}(); END;\n"
                ));
            }
        }
        conn.execute_batch(&sql)
    }

    /// The generation to read a view at. Read it while holding the connection, before reading
    /// the view: no write can be half-done then, so the view read matches the number.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached view, if nothing it was built from has changed since.
    pub(crate) fn get(&self, device_type: &DeviceType) -> Option<Arc<ReleaseView>> {
        let now = self.generation();
        let views = self.views.lock().ok()?;
        views
            .get(device_type)
            .filter(|(at, _)| *at == now)
            .map(|(_, view)| view.clone())
    }

    /// Keeps `view`, read at `generation`, unless a newer read is already kept.
    pub(crate) fn put(&self, device_type: &DeviceType, generation: u64, view: Arc<ReleaseView>) {
        if let Ok(mut views) = self.views.lock() {
            let newer_kept = views
                .get(device_type)
                .is_some_and(|(at, _)| *at > generation);
            if !newer_kept {
                views.insert(device_type.clone(), (generation, view));
            }
        }
    }
}
