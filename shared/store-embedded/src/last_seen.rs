//! The `last_seen` of devices whose check changed nothing else, held in memory for up to five
//! seconds and written in one batch, with the boot report such a check refreshes.
//!
//! Most checks are a device polling again with the same version and nothing new to offer; the
//! only things such a check changes are the device's `last_seen` and, when it reports its boot,
//! the `last_boot` it keeps (a later uptime, the time received), which move no counter.
//! Writing that row on every poll made each check a write transaction, serialised on the one
//! connection. Instead the refreshes wait here and every transaction of the store writes the
//! waiting ones first, so anything that reads or rewrites a device sees its latest `last_seen`
//! and `last_boot`. Once the oldest has waited [`FLUSH_AFTER`] or [`FLUSH_AT`] are waiting, the
//! check that notices starts writing them beside its answer (a narrow row a device, in one
//! transaction), and dropping the store writes what is left. What a crash can lose
//! is at most those seconds of refreshes (an older uptime to compare the next boot report with:
//! at worst a restart that only the uptime shows goes uncounted); no offer, version, report,
//! new image or counter ever waits here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ota_core::device_health::LastBoot;
use ota_core::ids::DeviceId;
use ota_core::ports::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::sql::{db_err, to_doc};

/// A device polling more often than this is written once per window, not once per poll: at a
/// second the batch's write took a seventh of a busy steady poll's CPU (docs/performance.md).
pub(crate) const FLUSH_AFTER: Duration = Duration::from_secs(5);
pub(crate) const FLUSH_AT: usize = 65_536;

#[derive(Default)]
pub(crate) struct LastSeen {
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    times: HashMap<DeviceId, Seen>,
    since: Option<Instant>,
    /// A flush is due and one caller was told so: the others are not, until it has run.
    due: bool,
}

/// A device's latest check that changed nothing but these.
struct Seen {
    at: OffsetDateTime,
    boot: Option<LastBoot>,
}

impl LastSeen {
    /// Remembers that `device` checked in at `at`, its last boot report then being `boot`; true
    /// when the waiting times are due to be written, for one caller until they are.
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
        // Looked up before it is inserted: a device polling again within the window is the
        // common case, and needs no copy of its id.
        match w.times.get_mut(device) {
            Some(latest) if seen.at > latest.at => *latest = seen,
            Some(_) => {}
            None => {
                w.times.insert(device.clone(), seen);
            }
        }
        let since = *w.since.get_or_insert_with(Instant::now);
        let due = w.times.len() >= FLUSH_AT || since.elapsed() >= FLUSH_AFTER;
        let first = due && !w.due;
        w.due |= due;
        first
    }

    /// Writes every waiting time in one transaction of its own, so that no later failure of
    /// the caller's transaction can take them along. A time never moves a `last_seen`
    /// backwards. On failure the times wait for the next try.
    pub(crate) fn flush(&self, conn: &mut Connection) -> StoreResult<()> {
        let times = match self.waiting.lock() {
            Ok(mut w) if !w.times.is_empty() => {
                w.since = None;
                w.due = false;
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

/// One row a device in `device_seen` (schema version 4), beside its document: the batch writes
/// ~60 bytes a device, where editing each document in place rewrote all of it (and fired the
/// device cache's triggers), which made the batch's write the steady poll's longest stall
/// (docs/performance.md). Readers apply the row through the `device_docs` view when it is newer
/// than the document. `julianday` compares the RFC 3339 times at millisecond precision: a time
/// within the same millisecond as the stored one is not written, which the second of precision
/// `last_seen` promises allows.
fn write(conn: &mut Connection, times: &HashMap<DeviceId, Seen>) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)?;
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO device_seen (device_id, last_seen, last_boot) VALUES (?1, ?2, ?3)
                 ON CONFLICT (device_id) DO UPDATE
                     SET last_seen = excluded.last_seen, last_boot = excluded.last_boot
                     WHERE julianday(excluded.last_seen) > julianday(device_seen.last_seen)",
            )
            .map_err(db_err)?;
        for (id, seen) in times {
            let at = seen
                .at
                .format(&Rfc3339)
                .map_err(|e| StoreError::Internal(format!("last_seen {}: {e}", seen.at)))?;
            let boot = seen.boot.as_ref().map(to_doc).transpose()?;
            upsert
                .execute(params![id.as_str(), at, boot])
                .map_err(db_err)?;
        }
    }
    tx.commit().map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_core::device::Device;
    use ota_core::device_health::BootReport;
    use ota_store_conformance::fixtures::{check_in, dev};

    fn stored(conn: &Connection) -> Device {
        crate::meta::load_device(conn, "d1").unwrap().unwrap()
    }

    /// A waiting time moves `last_seen` forward only, with its boot when it has one, and leaves
    /// every other field of the document as it was.
    #[test]
    fn a_flush_moves_last_seen_forward_only() {
        let mut conn = crate::schema::open(std::path::Path::new(":memory:")).unwrap();
        let c = check_in("d1", "demo", "1.0.0");
        let device = Device::checked_in(None, &c, None).device;
        conn.execute(
            "INSERT INTO devices (device_id, device_type, version, groups, doc) VALUES ('d1', 'demo', '1.0.0', '[]', ?1)",
            [to_doc(&device).unwrap()],
        )
        .unwrap();
        let seen = LastSeen::default();
        let earlier = device.last_seen - time::Duration::seconds(5);
        seen.note(&dev("d1"), earlier, None);
        seen.flush(&mut conn).unwrap();
        assert_eq!(stored(&conn), device, "an older time is not written");

        let later = device.last_seen + time::Duration::milliseconds(1_500);
        let boot = LastBoot {
            report: BootReport {
                reset_reason: Some("poweron".into()),
                boots_since_update: Some(1),
                crashes_since_last_check: Some(0),
                uptime_s: Some(60),
            },
            received_at: later,
        };
        seen.note(&dev("d1"), later, Some(boot.clone()));
        seen.flush(&mut conn).unwrap();
        let expect = Device {
            last_seen: later,
            last_boot: Some(boot),
            ..device
        };
        assert_eq!(stored(&conn), expect);
    }
}
