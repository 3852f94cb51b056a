//! The audit log table.

use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::ports::{Page, PageRequest, StoreResult};
use rusqlite::{Transaction, params};

use crate::cursor;
use crate::sql::{db_err, from_doc, micros, paginate, to_doc};

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
    let mut stmt = tx
        .prepare_cached(
            "SELECT seq, doc FROM audit
             WHERE (?1 IS NULL OR action = ?1) AND (?2 IS NULL OR target_id = ?2)
               AND (?3 IS NULL OR at >= ?3) AND (?4 IS NULL OR seq < ?4)
             ORDER BY seq DESC LIMIT ?5",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(
            params![
                filter.action,
                filter.target_id,
                filter.since.map(micros),
                before,
                i64::from(page.limit) + 1
            ],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .map_err(db_err)?;
    let mut items = Vec::new();
    for row in rows {
        let (seq, doc) = row.map_err(db_err)?;
        items.push((seq, from_doc::<AuditEvent>(&doc)?));
    }
    let page = paginate(items, page.limit, |(seq, _)| *seq);
    Ok(Page {
        items: page.items.into_iter().map(|(_, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}
