//! The SQLite schema. Each record is kept whole as JSON in `doc`; the other columns exist only
//! to be filtered, sorted or made unique on.

use rusqlite::Connection;

/// The schema as first released (version 1).
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
CREATE INDEX IF NOT EXISTS rollouts_by_state ON rollouts (state);
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
    -- The rollout whose progress this attempt counts toward (the one that offered it).
    rollout_id  TEXT,
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
CREATE INDEX IF NOT EXISTS log_by_time ON ota_log (created_at);

-- Counters kept on write, so that metrics never read the fleet.
CREATE TABLE IF NOT EXISTS rollout_progress (
    rollout_id TEXT PRIMARY KEY,
    doc        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_versions (
    device_type TEXT NOT NULL,
    version     TEXT NOT NULL,
    devices     INTEGER NOT NULL,
    PRIMARY KEY (device_type, version)
);
CREATE TABLE IF NOT EXISTS outcome_hours (
    hour   INTEGER NOT NULL,
    status TEXT NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (hour, status)
);

CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    at        INTEGER NOT NULL,
    action    TEXT NOT NULL,
    target_id TEXT NOT NULL,
    doc       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_time ON audit (at);
CREATE INDEX IF NOT EXISTS audit_by_target ON audit (target_id, seq);
"#;

/// Version 2: what devices report of the image they run and their boots (`device_health.rs`).
const DEVICE_HEALTH: &str = r#"
-- The release a device runs, found by (type, validation hash) when its hash changes. On the
-- doc itself: releases stored before they had `image_sha256` need no rewrite (they have none).
CREATE INDEX IF NOT EXISTS firmware_by_image
    ON firmware (device_type, json_extract(doc, '$.image_sha256'));
-- Counters kept on write by the checks of devices running each release.
CREATE TABLE IF NOT EXISTS release_resets (
    firmware_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (firmware_id, reason)
);
CREATE TABLE IF NOT EXISTS release_crashes (
    firmware_id TEXT PRIMARY KEY,
    count       INTEGER NOT NULL
);
"#;

/// Version 3: the devices a `specific` rollout names, a row each, so that no record grows with
/// them and a check reads a device's memberships by its key (docs/api.md §5.4). Rollouts
/// stored before move their lists here.
const NAMED_DEVICES: &str = r#"
CREATE TABLE IF NOT EXISTS rollout_targets (
    device_id  TEXT NOT NULL,
    rollout_id TEXT NOT NULL,
    PRIMARY KEY (device_id, rollout_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollout_targets_by_rollout ON rollout_targets (rollout_id, device_id);
INSERT OR IGNORE INTO rollout_targets (device_id, rollout_id)
    SELECT j.value, r.id FROM rollouts r, json_each(r.doc, '$.target_filter.device_ids') j;
UPDATE rollouts
    SET doc = json_set(json_remove(doc, '$.target_filter.device_ids'), '$.named_devices',
                       (SELECT count(*) FROM rollout_targets t WHERE t.rollout_id = rollouts.id))
    WHERE json_extract(doc, '$.target_type') = 'specific';
"#;

/// Version 4: the refresh of `last_seen` (and of `last_boot`) that a poll changing nothing else
/// waits to write (`last_seen.rs`), a narrow row a device beside its document: the batch
/// rewrites ~60 bytes a device, not the whole document with its triggers. Readers see a device
/// through `device_docs`, the document with the newer of the two times (and that time's boot)
/// applied. Nothing is moved: a document's own `last_seen` stands until a refresh passes it.
const DEVICE_SEEN: &str = r#"
CREATE TABLE IF NOT EXISTS device_seen (
    device_id TEXT PRIMARY KEY,
    last_seen TEXT NOT NULL,
    last_boot TEXT
) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS device_docs AS
    SELECT d.device_id, d.device_type, d.version, d.groups,
           CASE WHEN s.last_seen IS NULL
                  OR julianday(s.last_seen) <= julianday(json_extract(d.doc, '$.last_seen'))
                THEN d.doc
                WHEN s.last_boot IS NULL THEN json_set(d.doc, '$.last_seen', s.last_seen)
                ELSE json_set(d.doc, '$.last_seen', s.last_seen, '$.last_boot', json(s.last_boot))
           END AS doc
    FROM devices d LEFT JOIN device_seen s ON s.device_id = d.device_id;
"#;

/// Version 5: per release, the devices that checked in running it and those that crashed on it
/// (`device_health::counted_on_release`), which a rollout's health gate reads.
const RELEASE_DEVICES: &str = r#"
CREATE TABLE IF NOT EXISTS release_devices (
    firmware_id TEXT PRIMARY KEY,
    devices     INTEGER NOT NULL,
    crashed     INTEGER NOT NULL
);
"#;

/// Version 6: when each attempt's last report was made, and an index of the open ones by
/// rollout and that time (`MetaStore::silent_attempts`, for install timeouts); each rollout's
/// offer budget (`offer_budget`). Attempts stored before have no time: never timed out.
const TIMEOUTS_AND_BUDGETS: &str = r#"
ALTER TABLE attempts ADD COLUMN last_report_at INTEGER;
CREATE INDEX IF NOT EXISTS open_attempts ON attempts (rollout_id, last_report_at)
    WHERE status IN ('downloading', 'installing');
CREATE TABLE IF NOT EXISTS offer_budgets (
    rollout_id TEXT PRIMARY KEY,
    doc        TEXT NOT NULL
);
"#;

/// Each step takes a database from the version before it to its own (its index plus one, kept
/// in `user_version`), so that a file of any earlier version is brought up to date at open.
const MIGRATIONS: [&str; 6] = [
    SCHEMA,
    DEVICE_HEALTH,
    NAMED_DEVICES,
    DEVICE_SEEN,
    RELEASE_DEVICES,
    TIMEOUTS_AND_BUDGETS,
];

pub fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets readers run beside the writer; NORMAL sync keeps every committed transaction
    // across a process crash (a power cut may lose the last few, see docs/storage.md).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 32 MiB of pages (SQLite's default is 2 MiB): the batched `last_seen` writes touch the
    // pages of every device that polled in the last five seconds, which a fleet of hundreds of
    // thousands spreads over more than the default holds, and each page missed is a read from
    // the OS.
    conn.pragma_update(None, "cache_size", -32_768)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (to, step) in (1_i64..).zip(MIGRATIONS) {
        if version < to {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", to)?;
            tx.commit()?;
        }
    }
    Ok(conn)
}
