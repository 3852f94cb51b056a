//! The audit log table.

use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::ports::{Page, PageRequest, StoreResult};
use rusqlite::{Transaction, params};

use crate::sql::{db_err, micros, newest_first, to_doc};
use ota_core::cursor;

pub fn insert(tx: &Transaction<'_>, e: &AuditEvent) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO audit (id, at, action, target_id, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![e.id, micros(e.at), e.action, e.target_id, to_doc(e)?],
    )
    .map_err(db_err)?;
    Ok(())
}

pub fn list(
    tx: &Transaction<'_>,
    filter: &AuditFilter,
    page: &PageRequest,
) -> StoreResult<Page<AuditEvent>> {
    let before: Option<i64> = cursor::decode(page.cursor.as_deref())?;
    let since = filter.since.map(micros);
    let fetch = i64::from(page.limit) + 1;
    newest_first(
        tx,
        "SELECT seq, doc FROM audit
         WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR target_id = ?2)
           AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR seq < ?4)
         ORDER BY seq DESC LIMIT ?5",
        &[&filter.action, &filter.target_id, &since, &before, &fetch],
        page.limit,
    )
}
