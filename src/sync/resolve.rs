//! Resolving a recorded conflict (PROTOCOL.md §5): the chosen version is saved on the
//! server with a new stamp, the conflict is closed with who chose what, and the user's
//! flag is cleared after their last open conflict.
//!
//! Every conflict can be closed: the choices offered follow where the row stands *now*
//! ([`Now`]), not only what it was when the conflict was recorded; a row deleted or
//! restored by someone else meanwhile changes the question, never ends it ([`form_of`]).

use std::collections::HashMap;

use crate::db::integrity::{self, Blocked, Presence};
use crate::db::repo::accounts::{self, User};
use crate::db::repo::conflicts::{self, Conflict, ConflictField, ConflictKind};
use crate::db::repo::rows::{self, Row, Tombstone};
use crate::db::{DbConn, DbError, write_txn};
use crate::domain::rules::next_stamp;
use crate::domain::{Micros, TABLES, TableId, Values, table_by_name, value};

/// The version picked for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Server,
    Offline,
    /// A value typed by the person resolving.
    Edited(String),
}

/// What the person picked on the conflict form.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// By field name, for field conflicts.
    pub fields: HashMap<String, Choice>,
    /// For delete conflicts: `Server` keeps the server's state, `Offline` the device's.
    pub row: Option<Choice>,
    /// The server row's stamp the form was made from; a later stamp means a stale form.
    pub version: Option<Micros>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no such conflict")]
    NotFound,
    #[error("this conflict was already resolved")]
    AlreadyResolved,
    /// The form does not say what to keep, or an edited value does not fit.
    #[error("{0}")]
    Invalid(String),
    /// The choice cannot be carried out; the conflict stays open.
    #[error("{0}")]
    Impossible(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ResolveError {
    fn from(e: diesel::result::Error) -> Self {
        ResolveError::Db(DbError::Query(e))
    }
}

/// What happened to a posted resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Resolved,
    /// The server row changed since the form was shown: the conflict now shows the new
    /// server values and nothing was written.
    Stale,
}

/// Loads a conflict that `viewer` may see: their own, or anyone's for an administrator.
pub fn visible(conn: &mut DbConn, viewer: &User, id: &str) -> Result<Conflict, ResolveError> {
    match conflicts::get(conn, id)? {
        Some(c) if c.user_id == viewer.id || viewer.is_admin => Ok(c),
        _ => Err(ResolveError::NotFound),
    }
}

/// Where a conflict's row stands now.
#[derive(Debug, Clone)]
pub enum Now {
    Live(Row),
    Deleted(Tombstone),
    /// Never on the server: a create held because its parent was deleted.
    Absent,
}

impl Now {
    /// The stamp of the server's current version (none when the row was never there).
    pub fn version(&self) -> Option<Micros> {
        match self {
            Now::Live(r) => Some(r.last_updated),
            Now::Deleted(t) => Some(t.last_updated),
            Now::Absent => None,
        }
    }

    /// Who made the server's current version.
    pub fn changed_by(&self) -> Option<&str> {
        match self {
            Now::Live(r) => r.changed_by.as_deref(),
            Now::Deleted(t) => t.changed_by.as_deref(),
            Now::Absent => None,
        }
    }
}

/// Where the conflict's row stands now (`lock`: for update, inside a resolution).
pub fn now_of(conn: &mut DbConn, c: &Conflict, lock: bool) -> Result<Now, DbError> {
    let Some(table) = table_by_name(&c.table_name) else {
        return Ok(Now::Absent);
    };
    let id = std::slice::from_ref(&c.row_id);
    if let Some(row) = rows::by_ids(conn, table, id, lock)?.remove(&c.row_id) {
        return Ok(Now::Live(row));
    }
    Ok(match rows::tombstones(conn, table, id)?.remove(&c.row_id) {
        Some(t) => Now::Deleted(t),
        None => Now::Absent,
    })
}

/// The stamp of the server's current version of the conflict's row (live or deleted).
pub fn server_version(conn: &mut DbConn, c: &Conflict) -> Result<Option<Micros>, ResolveError> {
    Ok(now_of(conn, c, false)?.version())
}

/// The question a conflict asks, given where its row is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A choice per field: the server's current value or the offline one.
    Fields,
    /// One choice for the whole row (`choice.row`), with what each side means.
    Row {
        server: &'static str,
        offline: &'static str,
    },
}

/// What the conflict's form asks (PROTOCOL §5), from its kind and where the row is now.
pub fn form_of(conflict_kind: ConflictKind, now: &Now) -> Form {
    match (conflict_kind, now) {
        (ConflictKind::Delete, Now::Live(_)) => Form::Row {
            server: "Keep the record (as the server has it)",
            offline: "Delete the record (as done offline)",
        },
        (_, Now::Live(_)) => Form::Fields,
        (ConflictKind::Delete, _) => Form::Row {
            server: "Restore the record as the server last had it",
            offline: "Keep it deleted (it has been deleted since)",
        },
        (_, Now::Deleted(_)) => Form::Row {
            server: "Keep it deleted (as the server has it)",
            offline: "Restore it with the offline changes",
        },
        (_, Now::Absent) => Form::Row {
            server: "Leave it out (it is removed from the laptop too)",
            offline: "Keep it, restoring the deleted records it belongs under",
        },
    }
}

/// What a resolution writes, decided before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Plan {
    /// Chosen values of the conflict's fields, written to the live row.
    Update(Vec<(usize, Option<String>)>),
    /// The row stays as it is (a new stamp: the decision is a write).
    Keep,
    Delete,
    /// Stays deleted (its tombstone gets a new stamp).
    StayDeleted,
    /// Back on the server with these values (its missing parents restored first).
    Restore(Values),
    /// A held create left out: a tombstone tells the laptop to drop it.
    LeaveOut(Values),
}

/// Decides what a resolution writes; pure.
fn plan(
    table: TableId,
    conflict_kind: ConflictKind,
    now: &Now,
    fields: &[ConflictField],
    res: &Resolution,
) -> Result<(Plan, Vec<String>), ResolveError> {
    let def = &TABLES[table];
    let offline_over = |mut values: Values| {
        for f in fields {
            if let Some(i) = def.field_index(&f.field) {
                values[i] = f.offline_value.clone();
            }
        }
        values
    };
    let row_choice = || {
        res.row
            .clone()
            .ok_or_else(|| ResolveError::Invalid("choose what should happen to this record".into()))
    };
    let word = |c: &Choice| match c {
        Choice::Server => "server",
        Choice::Offline => "offline",
        Choice::Edited(_) => "edited",
    };
    let mut summary = Vec::new();
    let plan = match (now, form_of(conflict_kind, now)) {
        (Now::Live(row), Form::Fields) => {
            let mut changes = Vec::new();
            for f in fields {
                let Some(i) = def.field_index(&f.field) else {
                    continue;
                };
                let choice = res.fields.get(&f.field).ok_or_else(|| {
                    ResolveError::Invalid(format!("choose a version of {}", f.field))
                })?;
                let chosen = match choice {
                    Choice::Server => row.values[i].clone(),
                    Choice::Offline => f.offline_value.clone(),
                    Choice::Edited(text) => value::parse(&def.fields[i], Some(text))
                        .map_err(|e| ResolveError::Invalid(format!("{} {e}", f.field)))?,
                };
                summary.push(format!("{}: {}", f.field, word(choice)));
                changes.push((i, chosen));
            }
            Plan::Update(changes)
        }
        (Now::Live(_), Form::Row { .. }) => match row_choice()? {
            Choice::Offline => {
                summary.push("row: offline (deleted)".into());
                Plan::Delete
            }
            _ => {
                summary.push("row: server (kept)".into());
                Plan::Keep
            }
        },
        (Now::Deleted(t), _) => {
            let restore = match row_choice()? {
                Choice::Server => conflict_kind == ConflictKind::Delete,
                _ => conflict_kind != ConflictKind::Delete,
            };
            if restore {
                let last = t.values.clone().ok_or_else(|| {
                    ResolveError::Impossible(
                        "the deleted row's values were not kept, so it cannot be restored".into(),
                    )
                })?;
                let (values, side) = if conflict_kind == ConflictKind::Delete {
                    (last, "server (restored)")
                } else {
                    (offline_over(last), "offline (restored)")
                };
                summary.push(format!("row: {side}"));
                Plan::Restore(values)
            } else {
                let side = if conflict_kind == ConflictKind::Delete {
                    "offline (stays deleted)"
                } else {
                    "server (stays deleted)"
                };
                summary.push(format!("row: {side}"));
                Plan::StayDeleted
            }
        }
        (Now::Absent, _) => {
            let values = offline_over(vec![None; def.fields.len()]);
            match row_choice()? {
                Choice::Offline => {
                    summary.push("row: offline (created)".into());
                    Plan::Restore(values)
                }
                _ => {
                    summary.push("row: server (left out)".into());
                    Plan::LeaveOut(values)
                }
            }
        }
    };
    Ok((plan, summary))
}

pub fn resolve(
    conn: &mut DbConn,
    viewer: &User,
    id: &str,
    res: &Resolution,
) -> Result<Outcome, ResolveError> {
    write_txn(conn, |c, now| {
        let conflict = visible(c, viewer, id)?;
        if !conflict.is_open() {
            return Err(ResolveError::AlreadyResolved);
        }
        let table = table_by_name(&conflict.table_name).ok_or_else(|| {
            ResolveError::Impossible("the conflict names an unknown table".into())
        })?;
        let def = &TABLES[table];
        let state = now_of(c, &conflict, true)?;
        if res.version != state.version() {
            let current = match &state {
                Now::Live(r) => Some(&r.values),
                _ => None,
            };
            let values: Vec<(String, Option<String>)> = def
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.to_owned(), current.and_then(|v| v[i].clone())))
                .collect();
            conflicts::refresh_server(c, id, state.version(), &values)?;
            return Ok(Outcome::Stale);
        }
        let fields = conflicts::fields(c, id)?;
        let (plan, summary) = plan(table, conflict.conflict_kind(), &state, &fields, res)?;
        if let Plan::Update(changes) = &plan {
            for (i, chosen) in changes {
                let field = def.fields[*i].name;
                let label = match res.fields.get(field) {
                    Some(Choice::Server) => "server",
                    Some(Choice::Offline) => "offline",
                    _ => "edited",
                };
                conflicts::record_choice(c, id, field, label, chosen.as_deref())?;
            }
        }
        let by = By {
            user_id: &viewer.id,
            actor: &format!("{} (resolving a conflict)", viewer.name),
            now,
        };
        carry_out(c, table, &conflict, &state, plan, &by)?;
        conflicts::close(c, id, &viewer.id, &summary.join("; "), now)?;
        clear_flag_if_done(c, &conflict.user_id)?;
        Ok(Outcome::Resolved)
    })
}

fn clear_flag_if_done(c: &mut DbConn, user_id: &str) -> Result<(), ResolveError> {
    if conflicts::count_open(c, Some(user_id))? == 0 {
        accounts::set_conflict_flag(c, user_id, false)?;
    }
    Ok(())
}

/// Who resolves, as written on rows and conflicts, and when.
struct By<'a> {
    user_id: &'a str,
    actor: &'a str,
    now: Micros,
}

/// Writes a plan.
fn carry_out(
    c: &mut DbConn,
    table: TableId,
    conflict: &Conflict,
    state: &Now,
    plan: Plan,
    by: &By<'_>,
) -> Result<(), ResolveError> {
    let id = conflict.row_id.as_str();
    let (actor, now) = (by.actor, by.now);
    match (plan, state) {
        (Plan::Update(changes), Now::Live(row)) => {
            let mut values = row.values.clone();
            for (i, v) in &changes {
                values[*i] = v.clone();
            }
            if values != row.values
                && let Some(why) = integrity::check_row(c, table, id, &values)?
            {
                return Err(ResolveError::Impossible(why.to_string()));
            }
            rows::update(
                c,
                table,
                id,
                &changes,
                next_stamp(now, row.last_updated),
                actor,
            )?;
        }
        (Plan::Keep, Now::Live(row)) => {
            rows::update(c, table, id, &[], next_stamp(now, row.last_updated), actor)?;
        }
        (Plan::Delete, Now::Live(_)) => {
            rows::delete_cascade(c, table, &[id.to_owned()], now, actor)?;
        }
        (Plan::StayDeleted, Now::Deleted(t)) => {
            rows::touch_tombstone(c, table, id, next_stamp(now, t.last_updated), actor)?;
        }
        (Plan::Restore(values), _) => {
            restore_parents(c, table, &values, conflict, by)?;
            if let Some(why) = integrity::check_row(c, table, id, &values)? {
                return Err(ResolveError::Impossible(why.to_string()));
            }
            let previous = state.version().unwrap_or(0);
            rows::remove_tombstone(c, table, id)?;
            rows::insert(
                c,
                table,
                &[(id.to_owned(), values, next_stamp(now, previous))],
                actor,
            )?;
        }
        (Plan::LeaveOut(values), _) => {
            rows::put_tombstone(c, table, id, &values, next_stamp(now, 0), actor)?;
            // What waits under it can never land either.
            for (child, held) in held_children(c, table, id, &conflict.user_id)? {
                let fields = conflicts::fields(c, &held.id)?;
                let def = &TABLES[child];
                let mut v = vec![None; def.fields.len()];
                for f in &fields {
                    if let Some(i) = def.field_index(&f.field) {
                        v[i] = f.offline_value.clone();
                    }
                }
                carry_out(c, child, &held, &Now::Absent, Plan::LeaveOut(v), by)?;
                let note = "row: server (left out with its parent)";
                conflicts::close(c, &held.id, by.user_id, note, now)?;
            }
        }
        _ => {
            return Err(ResolveError::Impossible(
                "the row changed while this was decided; open the conflict again".into(),
            ));
        }
    }
    Ok(())
}

/// The user's open conflicts of creates held under this row.
fn held_children(
    c: &mut DbConn,
    table: TableId,
    id: &str,
    user_id: &str,
) -> Result<Vec<(TableId, Conflict)>, DbError> {
    let mut out = Vec::new();
    for (child, fk) in TABLES[table].children() {
        let field = TABLES[child].fields[fk].name;
        for held in
            conflicts::open_of_kind(c, user_id, TABLES[child].name, ConflictKind::ParentDeleted)?
        {
            let under = conflicts::fields(c, &held.id)?
                .iter()
                .any(|f| f.field == field && f.offline_value.as_deref() == Some(id));
            if under {
                out.push((child, held));
            }
        }
    }
    Ok(out)
}

/// Before a row is restored: its parent, and the parent's parents, made live again where
/// they were deleted (from their tombstones) or held (from the user's own conflict of
/// that create, which is closed with it).
fn restore_parents(
    c: &mut DbConn,
    table: TableId,
    values: &Values,
    conflict: &Conflict,
    by: &By<'_>,
) -> Result<(), ResolveError> {
    let Some((fk, parent)) = TABLES[table].parent() else {
        return Ok(());
    };
    let Some(pid) = values[fk].clone() else {
        return Ok(());
    };
    let presence = integrity::presence(c, parent, std::slice::from_ref(&pid))?
        .remove(&pid)
        .unwrap_or(Presence::Never);
    let (parent_values, previous, held) = match presence {
        Presence::Live => return Ok(()),
        Presence::Deleted => {
            let t = rows::tombstones(c, parent, std::slice::from_ref(&pid))?
                .remove(&pid)
                .ok_or_else(|| ResolveError::Impossible("the parent is no longer known".into()))?;
            let v = t.values.ok_or_else(|| {
                ResolveError::Impossible(format!(
                    "the deleted {} it belongs to cannot be restored: its values were not kept",
                    TABLES[parent].noun
                ))
            })?;
            (v, t.last_updated, None)
        }
        Presence::Never => {
            let held = conflicts::open_for_rows(
                c,
                &conflict.user_id,
                TABLES[parent].name,
                std::slice::from_ref(&pid),
            )?
            .remove(&pid)
            .filter(|h| h.conflict_kind() == ConflictKind::ParentDeleted)
            .ok_or_else(|| {
                ResolveError::Impossible(format!(
                    "the {} it belongs to ({pid}) is not on the server",
                    TABLES[parent].noun
                ))
            })?;
            let def = &TABLES[parent];
            let mut v = vec![None; def.fields.len()];
            for f in conflicts::fields(c, &held.id)? {
                if let Some(i) = def.field_index(&f.field) {
                    v[i] = f.offline_value;
                }
            }
            (v, 0, Some(held))
        }
    };
    restore_parents(c, parent, &parent_values, conflict, by)?;
    if let Some(Blocked::KeyTaken { field, key, .. }) =
        integrity::check_row(c, parent, &pid, &parent_values)?
    {
        return Err(ResolveError::Impossible(format!(
            "the {} it belongs to cannot be restored: {field} {key:?} is now used by another",
            TABLES[parent].noun
        )));
    }
    rows::remove_tombstone(c, parent, &pid)?;
    rows::insert(
        c,
        parent,
        &[(pid.clone(), parent_values, next_stamp(by.now, previous))],
        by.actor,
    )?;
    if let Some(h) = held {
        let note = "row: offline (created with a child)";
        conflicts::close(c, &h.id, by.user_id, note, by.now)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::table_by_name;

    fn field(name: &str, offline: Option<&str>) -> ConflictField {
        ConflictField {
            field: name.into(),
            base_known: false,
            base_value: None,
            server_value: None,
            offline_value: offline.map(str::to_owned),
            choice: None,
            chosen_value: None,
        }
    }

    /// Every kind of conflict, in every state its row can be in now, with either choice:
    /// a plan, never a dead end.
    #[test]
    fn every_conflict_can_be_closed_whatever_its_row_became() {
        let t = table_by_name("inspections").unwrap();
        let values = vec![
            Some("a".into()),
            Some("2026-11-20T10:00:00.000000Z".into()),
            None,
            Some("pass".into()),
            Some("server".into()),
        ];
        let live = Now::Live(Row {
            id: "r".into(),
            last_updated: 5,
            values: values.clone(),
            changed_by: None,
        });
        let deleted = Now::Deleted(Tombstone {
            id: "r".into(),
            last_updated: 6,
            values: Some(values.clone()),
            changed_by: None,
        });
        let fields = [field("summary", Some("offline"))];
        let with = |c: Choice| Resolution {
            fields: [("summary".to_owned(), c.clone())].into(),
            row: Some(c),
            version: None,
        };
        use ConflictKind::{Duplicate, EditDeleted, Fields, ParentDeleted};
        use Plan::{Keep, LeaveOut, Restore, StayDeleted, Update};
        let restored = |summary: &str| {
            let mut v = values.clone();
            v[4] = Some(summary.into());
            Restore(v)
        };
        // (kind, now, choice, the plan)
        let cases: Vec<(ConflictKind, &Now, Choice, Plan)> = vec![
            (
                Fields,
                &live,
                Choice::Offline,
                Update(vec![(4, Some("offline".into()))]),
            ),
            (
                Fields,
                &live,
                Choice::Server,
                Update(vec![(4, Some("server".into()))]),
            ),
            (Fields, &deleted, Choice::Server, StayDeleted),
            (Fields, &deleted, Choice::Offline, restored("offline")),
            (EditDeleted, &deleted, Choice::Server, StayDeleted),
            (EditDeleted, &deleted, Choice::Offline, restored("offline")),
            (
                EditDeleted,
                &live,
                Choice::Offline,
                Update(vec![(4, Some("offline".into()))]),
            ),
            (ConflictKind::Delete, &live, Choice::Offline, Plan::Delete),
            (ConflictKind::Delete, &live, Choice::Server, Keep),
            (ConflictKind::Delete, &deleted, Choice::Offline, StayDeleted),
            (
                ConflictKind::Delete,
                &deleted,
                Choice::Server,
                Restore(values.clone()),
            ),
            (Duplicate, &deleted, Choice::Server, StayDeleted),
            (
                ParentDeleted,
                &Now::Absent,
                Choice::Server,
                LeaveOut(vec![None, None, None, None, Some("offline".into())]),
            ),
            (
                ParentDeleted,
                &Now::Absent,
                Choice::Offline,
                Restore(vec![None, None, None, None, Some("offline".into())]),
            ),
            (
                ParentDeleted,
                &live,
                Choice::Offline,
                Update(vec![(4, Some("offline".into()))]),
            ),
        ];
        for (kind, now, choice, want) in cases {
            let (got, summary) = plan(t, kind, now, &fields, &with(choice.clone()))
                .unwrap_or_else(|e| panic!("{kind:?} / {now:?} / {choice:?}: {e}"));
            assert_eq!(got, want, "{kind:?} / {choice:?}");
            assert!(!summary.is_empty(), "what was chosen is recorded");
        }
    }

    #[test]
    fn a_choice_is_asked_for_not_guessed() {
        let t = table_by_name("inspections").unwrap();
        let got = plan(
            t,
            ConflictKind::ParentDeleted,
            &Now::Absent,
            &[],
            &Resolution::default(),
        );
        assert!(matches!(got, Err(ResolveError::Invalid(_))));
    }
}
