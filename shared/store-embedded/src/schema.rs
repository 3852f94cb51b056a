//! The SQLite schema. Each record is kept whole as JSON in `doc`; the other columns exist only
//! to be filtered, sorted or made unique on.

use rusqlite::Connection;

const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS device_types (
    name TEXT PRIMARY KEY,
    doc  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS firmware (
    id           TEXT PRIMARY KEY,
    device_type  TEXT NOT NULL,
    version      TEXT NOT NULL,
    -- SemVer precedence as text; unique so that 1.0.0+a and 1.0.0+b cannot both be releases.
    sort_key     TEXT NOT NULL,
    build_number INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    state        TEXT NOT NULL,
    doc          TEXT NOT NULL,
    UNIQUE (device_type, sort_key)
);
CREATE INDEX IF NOT EXISTS firmware_order ON firmware (sort_key DESC, build_number DESC, id DESC);
CREATE TABLE IF NOT EXISTS rollouts (
    id          TEXT PRIMARY KEY,
    device_type TEXT NOT NULL,
    firmware_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rollouts_by_type ON rollouts (device_type, state);
CREATE TABLE IF NOT EXISTS devices (
    device_id   TEXT PRIMARY KEY,
    device_type TEXT NOT NULL,
    version     TEXT NOT NULL,
    groups      TEXT NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_by_type ON devices (device_type, device_id);
-- One device's attempt at one release: where the state machine lives.
CREATE TABLE IF NOT EXISTS attempts (
    device_id   TEXT NOT NULL,
    firmware_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    failures    INTEGER NOT NULL,
    PRIMARY KEY (device_id, firmware_id)
);
CREATE TABLE IF NOT EXISTS ota_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    event_id    TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    firmware_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    doc         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS log_by_device ON ota_log (device_id, seq);
CREATE INDEX IF NOT EXISTS log_by_firmware ON ota_log (firmware_id, seq);
-- Event ids are idempotency keys of one device: two devices may well number events alike.
CREATE UNIQUE INDEX IF NOT EXISTS log_by_event ON ota_log (device_id, event_id);
"#;

/// Version 1 made `event_id` unique across all devices. SQLite cannot drop a column
/// constraint, so the log is rebuilt: set aside here, recreated by `SCHEMA`, then copied back.
const SET_ASIDE_V1_LOG: &str = r#"
ALTER TABLE ota_log RENAME TO ota_log_v1;
DROP INDEX IF EXISTS log_by_device;
DROP INDEX IF EXISTS log_by_firmware;
"#;

const RESTORE_V1_LOG: &str = r#"
INSERT INTO ota_log (seq, id, event_id, device_id, firmware_id, status, created_at, doc)
    SELECT seq, id, event_id, device_id, firmware_id, status, created_at, doc FROM ota_log_v1;
DROP TABLE ota_log_v1;
"#;

pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets readers run beside the writer; NORMAL sync keeps every committed transaction
    // across a process crash (a power cut may lose the last few, see docs/storage.md).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        let tx = conn.unchecked_transaction()?;
        if version == 1 {
            tx.execute_batch(SET_ASIDE_V1_LOG)?;
        }
        tx.execute_batch(SCHEMA)?;
        if version == 1 {
            tx.execute_batch(RESTORE_V1_LOG)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_1_log_is_kept_and_event_ids_become_per_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite3");
        {
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .replace("event_id    TEXT NOT NULL,", "event_id    TEXT NOT NULL UNIQUE,")
                .replace(
                    "CREATE UNIQUE INDEX IF NOT EXISTS log_by_event ON ota_log (device_id, event_id);",
                    "",
                );
            conn.execute_batch(&v1).unwrap();
            conn.execute(
                "INSERT INTO ota_log (id, event_id, device_id, firmware_id, status, created_at, doc)
                 VALUES ('l1', 'e1', 'd1', 'f1', 'pending', 1, '{}')",
                [],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let conn = open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let kept: (i64, String) = conn
            .query_row(
                "SELECT seq, id FROM ota_log WHERE event_id = 'e1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (1, "l1".to_owned()));
        let insert = |id: &str, device: &str| {
            conn.execute(
                "INSERT INTO ota_log (id, event_id, device_id, firmware_id, status, created_at, doc)
                 VALUES (?1, 'e1', ?2, 'f1', 'pending', 2, '{}')",
                [id, device],
            )
        };
        insert("l2", "d2").unwrap();
        assert!(insert("l3", "d1").is_err(), "still unique per device");
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'log_by_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 3);
        // The next sequence number continues after the copied rows.
        let seq: i64 = conn
            .query_row("SELECT seq FROM ota_log WHERE id = 'l2'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seq, 2);
    }
}
