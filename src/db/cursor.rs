//! The change cursor: which writes a download sends, in commit order, without a lock that
//! writers and session opens take turns on (docs/architecture.md, "No change is missed").
//!
//! Every write of a synced row or a tombstone records the id of the transaction that made
//! it in `change_id` ([`change_id_sql`]). A session keeps the [`Snapshot`] it was opened in:
//! which transactions had committed by then. A download sends the rows whose transaction is
//! visible in its session's snapshot and was not visible in the snapshot of the device's last
//! completed session (Skytools PgQ's batch rule). A transaction that commits late, after a
//! session opened, is not visible in that session's snapshot whatever its id, so its rows go
//! in the next session's download: none is missed however commits interleave.
//!
//! On PostgreSQL the id is the transaction's `pg_current_xact_id()` and the snapshot is
//! `pg_current_snapshot()`. On SQLite, which has one writer at a time, every write
//! transaction increments the `write_lock` counter first (which also takes the write lock),
//! so the counter is in commit order and a snapshot is "every id below the next one".

use super::{DbConn, DbError, Sql};
use crate::domain::Micros;

/// Which transactions had committed at one moment, as PostgreSQL's `pg_snapshot`: every id
/// below `xmin`, and those below `xmax` that are not in `xip` (in progress then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub xmin: i64,
    pub xmax: i64,
    pub xip: Vec<i64>,
}

impl Snapshot {
    /// Parses PostgreSQL's text form, `xmin:xmax:xip1,xip2,...`.
    pub fn parse(text: &str) -> Option<Snapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let xip = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<i64>>>()?,
        };
        (xmin <= xmax && xip.iter().all(|x| (xmin..xmax).contains(x))).then_some(Snapshot {
            xmin,
            xmax,
            xip,
        })
    }

    /// Whether the transaction `id` had committed when the snapshot was taken.
    pub fn visible(&self, id: i64) -> bool {
        id < self.xmin || (id < self.xmax && !self.xip.contains(&id))
    }
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:", self.xmin, self.xmax)?;
        for (i, x) in self.xip.iter().enumerate() {
            write!(f, "{}{x}", if i > 0 { "," } else { "" })?;
        }
        Ok(())
    }
}

/// What a session's download covers: the snapshot it was opened in and, once it has
/// uploaded, the upload's own transaction (so that the device gets back, in the same
/// sync, the rows as its upload left them). Written `xmin:xmax:xip` or `xmin:xmax:xip+id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub snapshot: Snapshot,
    pub upload: Option<i64>,
}

impl Seen {
    pub fn parse(text: &str) -> Option<Seen> {
        let (snapshot, upload) = match text.split_once('+') {
            Some((s, u)) => (s, Some(u.parse().ok()?)),
            None => (text, None),
        };
        Some(Seen {
            snapshot: Snapshot::parse(snapshot)?,
            upload,
        })
    }

    pub fn visible(&self, id: i64) -> bool {
        self.snapshot.visible(id) || self.upload == Some(id)
    }

    /// The condition "written by a transaction this covers" on `change_id`.
    fn push_visible(&self, sql: &mut Sql) {
        sql.push("((change_id < ").param(self.snapshot.xmax);
        // The transactions in progress as one parameter, so that a download's page query
        // has one text whatever their number (it is prepared once per connection). Only
        // PostgreSQL's snapshots have any: SQLite has one writer at a time.
        if !self.snapshot.xip.is_empty() {
            let xip: Vec<String> = self.snapshot.xip.iter().map(i64::to_string).collect();
            sql.push(" AND change_id <> ALL(CAST(string_to_array(")
                .param(xip.join(","))
                .push(", ',') AS BIGINT[]))");
        }
        sql.push(")");
        if let Some(u) = self.upload {
            sql.push(" OR change_id = ").param(u);
        }
        sql.push(")");
    }

    /// One past the highest id this covers.
    fn end(&self) -> i64 {
        self.upload.map_or(self.snapshot.xmax, |u| {
            u.saturating_add(1).max(self.snapshot.xmax)
        })
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.snapshot)?;
        if let Some(u) = self.upload {
            write!(f, "+{u}")?;
        }
        Ok(())
    }
}

/// The id of the current write transaction.
pub fn current_change_id(conn: &mut DbConn) -> Result<i64, DbError> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        id: i64,
    }
    Ok(Sql::new(format!("SELECT {} AS id", change_id_sql(conn)))
        .first::<Id>(conn)?
        .map_or(0, |r| r.id))
}

/// The SQL expression for the writing transaction's id, for `change_id` columns.
pub fn change_id_sql(conn: &DbConn) -> &'static str {
    match conn {
        DbConn::Sqlite(_) => "(SELECT n FROM write_lock WHERE id = 1)",
        DbConn::Pg(_) => "CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)",
    }
}

/// What an update of a synced row sets beside its fields: the writing transaction's id
/// and, on PostgreSQL, the row's place among that transaction's writes (`seq`, the
/// sequence's next value; an insert takes it by the column's default), which orders a
/// change id's rows in the cursor index. SQLite orders them by rowid.
pub fn cursor_sets(conn: &DbConn) -> &'static str {
    match conn {
        DbConn::Sqlite(_) => "change_id = (SELECT n FROM write_lock WHERE id = 1)",
        DbConn::Pg(_) => PG_CURSOR_SETS,
    }
}

/// [`cursor_sets`] on PostgreSQL.
pub const PG_CURSOR_SETS: &str = "change_id = CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT), \
                                  seq = nextval('row_seq')";

#[derive(diesel::QueryableByName)]
struct SnapshotText {
    #[diesel(sql_type = diesel::sql_types::Text)]
    snapshot: String,
}

/// The snapshot of the current moment. Inside a SQLite write transaction (which has
/// incremented the counter, so that its own id is the counter), every earlier id.
pub fn current(conn: &mut DbConn) -> Result<Snapshot, DbError> {
    let sql = match conn {
        DbConn::Sqlite(_) => Sql::new(
            "SELECT CAST(n AS TEXT) || ':' || CAST(n AS TEXT) || ':' AS snapshot \
             FROM write_lock WHERE id = 1",
        ),
        DbConn::Pg(_) => Sql::new("SELECT CAST(pg_current_snapshot() AS TEXT) AS snapshot"),
    };
    let text = sql
        .first::<SnapshotText>(conn)?
        .map(|s| s.snapshot)
        .unwrap_or_default();
    Snapshot::parse(&text)
        .ok_or_else(|| DbError::Corrupt(format!("the database gave the snapshot {text:?}")))
}

/// Where a download's changes start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    /// A device's first sync: everything.
    Everything,
    /// After what the device's last completed session covered.
    After(Seen),
    /// After the last completed session of a device that synced before the cursor existed:
    /// by the stamp, as then (its `started`; rows written since carry later stamps).
    Stamp(Micros),
}

/// The writes a download sends: after `from`, covered by `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: From,
    pub to: Seen,
}

impl Window {
    /// Every row as it stands (no session's bounds), stamped at or after `since` if given.
    pub fn all_since(since: Option<Micros>) -> Window {
        Window {
            from: since.map_or(From::Everything, From::Stamp),
            to: Seen {
                snapshot: Snapshot {
                    xmin: i64::MAX,
                    xmax: i64::MAX,
                    xip: Vec::new(),
                },
                upload: None,
            },
        }
    }

    /// Appends the condition on a table's `change_id` (and `last_updated` for a stamp).
    /// It starts with the range `[from.xmin, to's end)`, which the cursor index seeks; the
    /// rest filters within it. A page after the first gives `paging`: then its own start
    /// (`(change_id, id) > (…)`, on SQLite `change_id = … AND rowid > …` or `change_id > …`)
    /// is the start, and the window's would make both databases scan from the window's
    /// start for every page (quadratic downloads).
    pub fn push_condition(&self, sql: &mut Sql, paging: bool) {
        let start = match &self.from {
            From::After(s) => s.snapshot.xmin.min(s.upload.unwrap_or(i64::MAX)),
            _ => i64::MIN,
        };
        if !paging {
            sql.push("change_id >= ").param(start).push(" AND ");
        }
        sql.push("change_id < ").param(self.to.end());
        sql.push(" AND ");
        self.to.push_visible(sql);
        match &self.from {
            From::Everything => {}
            From::After(s) => {
                sql.push(" AND NOT ");
                s.push_visible(sql);
            }
            From::Stamp(since) => {
                sql.push(" AND last_updated >= ").param(*since);
            }
        }
    }

    /// Whether a write by transaction `id` (stamped `stamp`) is in the window: the rule
    /// [`Window::push_condition`] writes as SQL.
    pub fn contains(&self, id: i64, stamp: Micros) -> bool {
        self.to.visible(id)
            && match &self.from {
                From::Everything => true,
                From::After(s) => !s.visible(id),
                From::Stamp(since) => stamp >= *since,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(text: &str) -> Snapshot {
        Snapshot::parse(text).expect("a snapshot")
    }

    #[test]
    fn snapshots_read_and_write_postgresql_text() {
        assert_eq!(
            snap("10:15:11,13"),
            Snapshot {
                xmin: 10,
                xmax: 15,
                xip: vec![11, 13]
            }
        );
        assert_eq!(snap("10:15:11,13").to_string(), "10:15:11,13");
        assert_eq!(snap("7:7:").to_string(), "7:7:");
        for bad in ["", "1", "1:2", "5:4:", "1:5:7", "a:b:", "1:5:2,x"] {
            assert_eq!(Snapshot::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn visibility_is_committed_before_the_snapshot() {
        let s = snap("10:15:11,13");
        let seen: Vec<i64> = (5..18).filter(|x| s.visible(*x)).collect();
        assert_eq!(seen, vec![5, 6, 7, 8, 9, 10, 12, 14]);
    }

    /// A late commit: 11 was in progress when session 1 opened, so its rows are not in
    /// session 1's download but are in session 2's, however low its id.
    #[test]
    fn a_late_commit_is_in_the_next_window() {
        let first = snap("10:15:11,13");
        let second = snap("13:20:13,16");
        let seen = |s: &Snapshot, upload| Seen {
            snapshot: s.clone(),
            upload,
        };
        let w1 = Window {
            from: From::Everything,
            to: seen(&first, None),
        };
        // Session 2 uploaded in transaction 17: its download has that one's rows too.
        let w2 = Window {
            from: From::After(seen(&first, None)),
            to: seen(&second, Some(17)),
        };
        let w3 = Window {
            from: From::After(seen(&second, Some(17))),
            to: seen(&snap("25:25:"), None),
        };
        for id in 1..25 {
            let times = [&w1, &w2, &w3].iter().filter(|w| w.contains(id, 0)).count();
            assert_eq!(times, 1, "transaction {id} is sent exactly once");
        }
        assert!(w2.contains(11, 0) && !w1.contains(11, 0));
        assert!(w2.contains(17, 0) && !w3.contains(17, 0));
        assert!(w3.contains(13, 0) && w3.contains(16, 0));
    }

    #[test]
    fn what_a_session_covers_reads_and_writes_its_upload() {
        let s = Seen::parse("10:15:11,13+17").expect("a cursor");
        assert_eq!(s.upload, Some(17));
        assert_eq!(s.to_string(), "10:15:11,13+17");
        assert!(s.visible(17) && s.visible(12) && !s.visible(16) && !s.visible(13));
        assert_eq!(Seen::parse("10:15:+x"), None);
        assert_eq!(Seen::parse("7:7:").map(|s| s.upload), Some(None));
    }
}
