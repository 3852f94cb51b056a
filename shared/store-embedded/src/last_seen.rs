//! The `last_seen` of devices whose check changed nothing else, held in memory for up to a
//! second and written in one batch, with the boot report such a check refreshes.
//!
//! Most checks are a device polling again with the same version and nothing new to offer; the
//! only things such a check changes are the device's `last_seen` and, when it reports its boot,
//! the `last_boot` it keeps (a later uptime, the time received), which move no counter.
//! Writing that row on every poll made each check a write transaction, serialised on the one
//! connection. Instead the refreshes wait here and every transaction of the store writes the
//! waiting ones first, so anything that reads or rewrites a device sees its latest `last_seen`
//! and `last_boot`. A check writes them itself once the oldest has waited [`FLUSH_AFTER`] or
//! [`FLUSH_AT`] are waiting, and dropping the store writes what is left. What a crash can lose
//! is at most that second of refreshes (an older uptime to compare the next boot report with:
//! at worst a restart that only the uptime shows goes uncounted); no offer, version, report,
//! new image or counter ever waits here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ota_core::device::Device;
use ota_core::device_health::LastBoot;
use ota_core::ids::DeviceId;
use ota_core::ports::StoreResult;
use rusqlite::{Connection, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::sql::{db_err, one_doc, to_doc};

pub(crate) const FLUSH_AFTER: Duration = Duration::from_secs(1);
pub(crate) const FLUSH_AT: usize = 4096;

#[derive(Default)]
pub(crate) struct LastSeen {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    times: HashMap<DeviceId, Seen>,
    since: Option<Instant>,
}

/// A device's latest check that changed nothing but these.
#[derive(Clone)]
struct Seen {
    at: OffsetDateTime,
    boot: Option<LastBoot>,
}

impl LastSeen {
    /// Remembers that `device` checked in at `at`, its last boot report then being `boot`; true
    /// when the waiting times are due to be written.
    pub(crate) fn note(
        &self,
        device: &DeviceId,
        at: OffsetDateTime,
        boot: Option<LastBoot>,
    ) -> bool {
        let Ok(mut w) = self.waiting.lock() else {
            return true;
        };
        let seen = Seen { at, boot };
        let latest = w
            .times
            .entry(device.clone())
            .or_insert_with(|| seen.clone());
        if seen.at > latest.at {
            *latest = seen;
        }
        let since = *w.since.get_or_insert_with(Instant::now);
        w.times.len() >= FLUSH_AT || since.elapsed() >= FLUSH_AFTER
    }

    /// Writes every waiting time in one transaction of its own, so that no later failure of
    /// the caller's transaction can take them along. A device gone meanwhile is skipped, and a
    /// time never moves a `last_seen` backwards. On failure the times wait for the next try.
    pub(crate) fn flush(&self, conn: &mut Connection) -> StoreResult<()> {
        let times = match self.waiting.lock() {
            Ok(mut w) if !w.times.is_empty() => {
                w.since = None;
                std::mem::take(&mut w.times)
            }
            _ => return Ok(()),
        };
        let written = write(conn, &times);
        if written.is_err() {
            for (id, seen) in times {
                self.note(&id, seen.at, seen.boot);
            }
        }
        written
    }
}

fn write(conn: &mut Connection, times: &HashMap<DeviceId, Seen>) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    {
        let mut update = tx
            .prepare_cached("UPDATE devices SET doc = ?2 WHERE device_id = ?1")
            .map_err(db_err)?;
        for (id, seen) in times {
            let found: Option<Device> = one_doc(
                &tx,
                "SELECT doc FROM devices WHERE device_id = ?1",
                &[&id.as_str()],
            )?;
            if let Some(mut device) = found.filter(|d| d.last_seen < seen.at) {
                device.last_seen = seen.at;
                if seen.boot.is_some() {
                    device.last_boot.clone_from(&seen.boot);
                }
                update
                    .execute(params![id.as_str(), to_doc(&device)?])
                    .map_err(db_err)?;
            }
        }
    }
    tx.commit().map_err(db_err)
}
