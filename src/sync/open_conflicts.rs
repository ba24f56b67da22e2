//! A device user's open conflicts as a document (docs/protocol.md §10), so that a laptop
//! can show them offline: what it sent, what the server has, and where to resolve each.

use std::fmt::Write as _;

use quick_xml::escape::escape;

use crate::db::DbConn;
use crate::db::DbError;
use crate::db::repo::conflicts::{self, ConflictStatus, Scope};
use crate::domain::time;

/// The most conflicts a document holds, the latest first: a bound on its size.
pub const MOST: i64 = 1000;

/// `<conflicts count="N">` with one `<conflict>` per open conflict of `user_id` (at most
/// [`MOST`]), each with its `<field>`s; an attribute that would be NULL is left out.
pub fn document(conn: &mut DbConn, user_id: &str) -> Result<String, DbError> {
    let within = Scope {
        user_id: Some(user_id),
        ..Scope::default()
    };
    let total = conflicts::count_in(conn, &within, ConflictStatus::Open)?;
    let list = conflicts::list(conn, &within, ConflictStatus::Open, MOST, 0)?;
    let ids: Vec<String> = list.iter().map(|c| c.id.clone()).collect();
    let mut fields = conflicts::fields_of(conn, &ids)?;
    let mut out = format!("<conflicts count=\"{total}\">");
    let attr = |out: &mut String, name: &str, value: Option<&str>| {
        if let Some(v) = value {
            let _ = write!(out, " {name}=\"{}\"", escape(v));
        }
    };
    for c in list {
        out.push_str("<conflict");
        attr(&mut out, "id", Some(&c.id));
        attr(&mut out, "table", Some(&c.table_name));
        attr(&mut out, "row", Some(&c.row_id));
        attr(&mut out, "kind", Some(&c.kind));
        attr(&mut out, "recorded", Some(&time::format(c.updated_at)));
        attr(&mut out, "serverBy", c.server_by.as_deref());
        let server_at = c.server_updated.map(time::format);
        attr(&mut out, "serverAt", server_at.as_deref());
        out.push('>');
        for f in fields.remove(&c.id).unwrap_or_default() {
            out.push_str("<field");
            attr(&mut out, "name", Some(&f.field));
            attr(&mut out, "server", f.server_value.as_deref());
            attr(&mut out, "offline", f.offline_value.as_deref());
            out.push_str("/>");
        }
        out.push_str("</conflict>");
    }
    out.push_str("</conflicts>");
    Ok(out)
}
