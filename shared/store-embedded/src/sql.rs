//! Small helpers over rusqlite shared by the store's modules: error mapping, JSON docs,
//! keyset pagination.

use ota_core::ports::{Page, PageRequest, StoreError, StoreResult};
use rusqlite::Connection;
use serde::{Serialize, de::DeserializeOwned};

use ota_core::cursor::paginate;

pub fn db_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(ref f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(e.to_string())
        }
        rusqlite::Error::SqliteFailure(ref f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(e.to_string())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

pub fn to_doc<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}

pub fn from_doc<T: DeserializeOwned>(doc: &str) -> StoreResult<T> {
    serde_json::from_str(doc).map_err(|e| StoreError::Internal(format!("corrupt record: {e}")))
}

/// Runs a query whose first column is a JSON doc and decodes every row.
pub fn docs<T: DeserializeOwned>(
    tx: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<Vec<T>> {
    let mut stmt = tx.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    rows.map(|r| r.map_err(db_err).and_then(|d| from_doc(&d)))
        .collect()
}

pub fn one_doc<T: DeserializeOwned>(
    tx: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> StoreResult<Option<T>> {
    Ok(docs(tx, sql, params)?.into_iter().next())
}

/// Cuts a result fetched with `limit + 1` rows into a page.
pub fn fetch_limit(page: &PageRequest) -> i64 {
    i64::from(page.limit) + 1
}

/// A `u64` column value as the `INTEGER` (an i64) SQLite stores: the same 64 bits. Revisions
/// never come near 2^63; a build number from 2^63 up is stored negative, and so sorts after the
/// smaller ones in `list_releases` (the doc keeps the true value).
pub fn sql_int(n: u64) -> i64 {
    n.cast_signed()
}

pub fn micros(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// The time [`micros`] stored (None for a value out of range, which it never writes).
pub fn from_micros(us: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
}

/// A newest-first listing over an append-only table: `sql` selects `(seq, doc)` ordered by
/// `seq DESC`; the page's cursor is the last `seq` returned.
pub fn newest_first<T: DeserializeOwned>(
    tx: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
    limit: u32,
) -> StoreResult<Page<T>> {
    let mut stmt = tx.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(db_err)?;
    let mut items = Vec::new();
    for row in rows {
        let (seq, doc) = row.map_err(db_err)?;
        items.push((seq, from_doc::<T>(&doc)?));
    }
    let page = paginate(items, limit, |(seq, _)| *seq);
    Ok(Page {
        items: page.items.into_iter().map(|(_, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}
