//! Callbacks from SQLite into this process whenever a table changes, for the in-memory caches.
//!
//! The server is the only process writing its database, so its caches can be exact rather
//! than merely fresh: TEMP triggers run a Rust function after every insert, update and delete
//! of a watched table, inside the writing statement, whichever code path wrote. TEMP triggers
//! exist only on the connection that made them and never reach the file, so a `sqlite3` shell
//! on the same file neither needs nor sees the callbacks.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

/// Calls `changed(key)` after each row of `table` is inserted, updated or deleted, with the
/// row's `key_column` (old and new value for an update), or with NULL for every table listed
/// when `key_column` is None.
pub(crate) fn on_change<F>(
    conn: &Connection,
    name: &str,
    tables: &[&str],
    key_column: Option<&str>,
    changed: F,
) -> rusqlite::Result<()>
where
    F: Fn(Option<String>) + Send + 'static,
{
    conn.create_scalar_function(name, 1, FunctionFlags::SQLITE_UTF8, move |ctx| {
        changed(ctx.get::<Option<String>>(0)?);
        Ok(0_i64)
    })?;
    let key = |row: &str| key_column.map_or("NULL".to_owned(), |c| format!("{row}.{c}"));
    let mut sql = String::new();
    for table in tables {
        for (event, body) in [
            ("insert", format!("SELECT {name}({});", key("NEW"))),
            (
                "update",
                format!(
                    "SELECT {name}({}); SELECT {name}({});",
                    key("OLD"),
                    key("NEW")
                ),
            ),
            ("delete", format!("SELECT {name}({});", key("OLD"))),
        ] {
            sql.push_str(&format!(
                "CREATE TEMP TRIGGER IF NOT EXISTS {name}_{table}_{event} AFTER {event} ON main.{table}
                 BEGIN {body} END;\n"
            ));
        }
    }
    conn.execute_batch(&sql)
}
