//! Each device type's release view, kept in memory between checks and exact, not merely fresh.
//!
//! Every check reads its type's view (the active rollouts with their firmware), and parsing
//! those JSON documents on every check was most of what a check cost. Any change to the three
//! tables a view is built from (`watch`) bumps a generation number; a view read at an older
//! generation is read again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ota_core::ids::DeviceType;
use ota_core::ports::ReleaseView;
use rusqlite::Connection;

use crate::watch;

/// The tables `release_view` reads.
const VIEW_TABLES: [&str; 3] = ["device_types", "firmware", "rollouts"];

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
        watch::on_change(conn, "ota_view_changed", &VIEW_TABLES, None, move |_| {
            generation.fetch_add(1, Ordering::AcqRel);
        })
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
