//! The upload's judge (PROTOCOL §4): given one item and what the load phase found about
//! it, decide what happens to it. Pure: no database, no clock; [`super::apply`] loads
//! before and writes after. The rules of a single field and of the stamp live in
//! `domain::rules`; this module combines them per row.

use std::collections::{HashMap, HashSet};

use super::code::ErrorCode;
use super::codec::{Delete, FieldChange, Record, Was};
use crate::db::integrity::Presence;
use crate::db::repo::conflicts::{ConflictField, ConflictKind};
use crate::db::repo::rows::{Row, Tombstone};
use crate::domain::rules::{Verdict, judge_field, missing_required};
use crate::domain::{Micros, TABLES, Table, TableId, Values, value};

/// What the load phase found for one batch of one table, by canonical id.
#[derive(Debug, Default)]
pub struct Known {
    /// Live rows.
    pub rows: HashMap<String, Row>,
    pub tombstones: HashMap<String, Tombstone>,
    /// Client ids of this table joined onto other rows: client id → canonical id.
    pub aliases: HashMap<String, String>,
    /// The same for the parent table, to follow a child's parent to its canonical row.
    pub parent_aliases: HashMap<String, String>,
    /// Natural key → the row holding it (on the server, or created earlier in this batch).
    pub key_owners: HashMap<String, Row>,
    /// Where the parents that creates name stand (canonical ids).
    pub parents: HashMap<String, Presence>,
}

/// What the upload decided so far, across batches and tables.
#[derive(Debug, Default)]
pub struct Upload {
    /// Rows this upload deletes (or had deleted when first sent), and creates skipped
    /// because they sit under such a row: what is below them means nothing any more.
    pub gone: HashSet<(TableId, String)>,
    /// Creates held in a conflict because a parent was deleted on the server: their
    /// children are held too.
    pub held: HashSet<(TableId, String)>,
}

/// A conflict to record, as the judge sees it; the writer adds who, when and the ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub kind: ConflictKind,
    pub fields: Vec<ConflictField>,
    pub base: Option<Micros>,
    /// The server version judged against, and who made it (before this upload).
    pub server_updated: Option<Micros>,
    pub server_by: Option<String>,
    /// The client's own id, when the row was joined onto another (§4.5).
    pub client_id: Option<String>,
    /// The stale delete's row and what is below it go to the device again.
    pub resend: bool,
}

/// What happens to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new row.
    Insert(Values),
    /// Fields written to an existing row last stamped `previous`; with a conflict on others.
    Update {
        changes: Vec<(usize, Option<String>)>,
        previous: Micros,
        conflict: Option<Draft>,
    },
    Unchanged,
    /// Nothing written; the difference recorded.
    Conflict(Draft),
    /// A create of something the server already has under `canonical` (§4.5): the client id
    /// maps onto it for good (`new` when the mapping is made now).
    Join {
        canonical: String,
        new: bool,
        conflict: Option<Draft>,
    },
    /// The row is deleted, with everything below it.
    Delete,
}

/// How an item counts in the `<result>` (§4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Unchanged,
    Conflict,
}

impl Decision {
    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Insert(_) | Decision::Delete => Outcome::Applied,
            Decision::Update { conflict: None, .. } => Outcome::Applied,
            Decision::Unchanged | Decision::Join { conflict: None, .. } => Outcome::Unchanged,
            Decision::Update { .. } | Decision::Conflict(_) | Decision::Join { .. } => {
                Outcome::Conflict
            }
        }
    }
}

/// Why an upload is refused (422): a rule the client could have checked by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub field: Option<&'static str>,
    pub message: String,
}

fn reject(code: ErrorCode, field: Option<&'static str>, message: String) -> Rejection {
    Rejection {
        code,
        field,
        message,
    }
}

/// The id a client's id stands for now.
pub fn canonical<'a>(aliases: &'a HashMap<String, String>, id: &'a str) -> &'a str {
    aliases.get(id).map_or(id, String::as_str)
}

/// Judges a `<record>`: a create (no base) or an edit. `r.id` is the client's id.
pub fn judge_record(
    table: TableId,
    r: &Record,
    known: &mut Known,
    upload: &Upload,
) -> Result<Decision, Rejection> {
    let def = &TABLES[table];
    let id = canonical(&known.aliases, &r.id).to_owned();
    if upload.gone.contains(&(table, id.clone())) {
        return Ok(Decision::Unchanged); // deleted by this same upload
    }
    match r.base {
        None => judge_create(def, r, &id, known, upload),
        Some(base) => {
            check_edit(def, r)?;
            if let Some(row) = known.rows.get(&id) {
                Ok(judge_edit(def, row, r, base == row.last_updated))
            } else if let Some(t) = known.tombstones.get(&id) {
                Ok(if under_gone(def, t, upload) {
                    Decision::Unchanged
                } else {
                    Decision::Conflict(edit_of_deleted(def, t, r))
                })
            } else if upload.held.contains(&(table, id.clone())) {
                Ok(Decision::Unchanged)
            } else {
                Err(reject(
                    ErrorCode::UnknownRow,
                    None,
                    format!("an edit of {} {id} that never existed", def.noun),
                ))
            }
        }
    }
}

fn judge_create(
    def: &'static Table,
    r: &Record,
    id: &str,
    known: &mut Known,
    upload: &Upload,
) -> Result<Decision, Rejection> {
    if !def.offline_create {
        return Err(reject(
            ErrorCode::CreateNotAllowed,
            None,
            format!("offline clients may not create {}", def.name),
        ));
    }
    let mut values = vec![None; def.fields.len()];
    for f in &r.fields {
        values[f.index] = f.value.clone();
    }
    if let Some(f) = missing_required(def, &values) {
        return Err(reject(
            ErrorCode::MissingField,
            Some(f.name),
            format!("a new {} needs {}", def.noun, f.name),
        ));
    }
    if let Some((fk, _)) = def.parent()
        && let Some(p) = &values[fk]
    {
        values[fk] = Some(canonical(&known.parent_aliases, p).to_owned());
    }
    let joined = id != r.id;
    if let Some(row) = known.rows.get(id) {
        // A retry after a lost answer (judged like an edit without `was`), or a create of a
        // client id already joined onto `row` (judged as the join was).
        return Ok(if joined {
            join(def, row, &r.id, false, &values)
        } else {
            judge_edit(def, row, &as_edit_without_was(r), false)
        });
    }
    if let Some(t) = known.tombstones.get(id) {
        return Ok(if under_gone(def, t, upload) {
            Decision::Unchanged
        } else {
            Decision::Conflict(edit_of_deleted(def, t, r))
        });
    }
    if let Some((fk, parent_table)) = def.parent() {
        let p = values[fk].clone().unwrap_or_default();
        if upload.gone.contains(&(parent_table, p.clone())) {
            return Ok(Decision::Unchanged); // under a row this upload deletes
        }
        let presence = known.parents.get(&p).copied().unwrap_or(Presence::Never);
        let held = upload.held.contains(&(parent_table, p.clone()));
        match presence {
            Presence::Live => {}
            Presence::Deleted => return Ok(Decision::Conflict(parent_deleted(def, &values))),
            Presence::Never if held => {
                return Ok(Decision::Conflict(parent_deleted(def, &values)));
            }
            Presence::Never => {
                let field = def.fields[fk].name;
                return Err(reject(
                    ErrorCode::MissingParent,
                    Some(field),
                    format!(
                        "{} {id} names {field} {p}, which is neither on the server nor in this upload",
                        def.noun
                    ),
                ));
            }
        }
    }
    if let Some(k) = def.natural_key_index()
        && let Some(key) = &values[k]
        && let Some(owner) = known.key_owners.get(key)
    {
        return Ok(join(def, owner, &r.id, true, &values));
    }
    if let Some(k) = def.natural_key_index()
        && let Some(key) = values[k].clone()
    {
        // A second create of this key later in the batch joins this one.
        known.key_owners.insert(
            key,
            Row {
                id: id.to_owned(),
                last_updated: 0,
                values: values.clone(),
                changed_by: None,
            },
        );
    }
    Ok(Decision::Insert(values))
}

/// Whether a deleted row went with a parent this very upload deletes (its retry after a
/// lost answer finds the row gone with it): nothing to judge.
fn under_gone(def: &Table, t: &Tombstone, upload: &Upload) -> bool {
    let Some((fk, parent)) = def.parent() else {
        return false;
    };
    t.values
        .as_ref()
        .and_then(|v| v[fk].clone())
        .is_some_and(|p| upload.gone.contains(&(parent, p)))
}

/// A create sent again is an edit whose every field has an unknown `was` (§4.4).
fn as_edit_without_was(r: &Record) -> Record {
    Record {
        fields: r
            .fields
            .iter()
            .map(|f| FieldChange {
                was: Was::Unknown,
                ..f.clone()
            })
            .collect(),
        ..r.clone()
    }
}

/// Judges an edit of a live row, field by field (§4.3).
fn judge_edit(def: &Table, row: &Row, r: &Record, base_current: bool) -> Decision {
    let mut changes = Vec::new();
    let mut disputed = Vec::new();
    for f in &r.fields {
        let ty = def.fields[f.index].ty;
        let server = row.values[f.index].as_deref();
        let was = match &f.was {
            Was::Known(w) => Some(w.as_deref()),
            Was::Unknown => None,
        };
        match judge_field(ty, server, f.value.as_deref(), was, base_current) {
            Verdict::Same => {}
            Verdict::Apply => changes.push((f.index, f.value.clone())),
            Verdict::Conflict => disputed.push(conflict_field(def, f, server.map(str::to_owned))),
        }
    }
    let conflict = (!disputed.is_empty()).then(|| Draft {
        kind: ConflictKind::Fields,
        fields: disputed,
        base: r.base,
        server_updated: Some(row.last_updated),
        server_by: row.changed_by.clone(),
        client_id: None,
        resend: false,
    });
    match (changes.is_empty(), conflict) {
        (true, None) => Decision::Unchanged,
        (true, Some(c)) => Decision::Conflict(c),
        (false, conflict) => Decision::Update {
            changes,
            previous: row.last_updated,
            conflict,
        },
    }
}

fn conflict_field(def: &Table, f: &FieldChange, server: Option<String>) -> ConflictField {
    let (base_known, base_value) = match &f.was {
        Was::Known(v) => (true, v.clone()),
        Was::Unknown => (false, None),
    };
    ConflictField {
        field: def.fields[f.index].name.to_owned(),
        base_known,
        base_value,
        server_value: server,
        offline_value: f.value.clone(),
        choice: None,
        chosen_value: None,
    }
}

/// An edit (or a retried create) of a row the server has deleted.
fn edit_of_deleted(def: &Table, t: &Tombstone, r: &Record) -> Draft {
    let fields = r
        .fields
        .iter()
        .map(|f| {
            let mut cf = conflict_field(def, f, None);
            if !cf.base_known {
                // What the row held when it was deleted is the best base we know.
                cf.base_value = t.values.as_ref().and_then(|v| v[f.index].clone());
            }
            cf
        })
        .collect();
    Draft {
        kind: ConflictKind::EditDeleted,
        fields,
        base: r.base,
        server_updated: Some(t.last_updated),
        server_by: t.changed_by.clone(),
        client_id: None,
        resend: false,
    }
}

/// A create under a parent the server deleted: the row waits in the conflict, every field
/// with its offline value, until someone restores the parent or leaves the row out.
fn parent_deleted(def: &Table, values: &Values) -> Draft {
    let fields = def
        .fields
        .iter()
        .zip(values)
        .map(|(f, v)| ConflictField {
            field: f.name.to_owned(),
            base_known: false,
            base_value: None,
            server_value: None,
            offline_value: v.clone(),
            choice: None,
            chosen_value: None,
        })
        .collect();
    Draft {
        kind: ConflictKind::ParentDeleted,
        fields,
        base: None,
        server_updated: None,
        server_by: None,
        client_id: None,
        resend: false,
    }
}

/// A create whose natural key `existing` already holds: joined onto it (§4.5).
fn join(def: &Table, existing: &Row, client_id: &str, new: bool, values: &Values) -> Decision {
    let differing: Vec<ConflictField> = def
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| !value::same(f.ty, values[*i].as_deref(), existing.values[*i].as_deref()))
        .map(|(i, f)| ConflictField {
            field: f.name.to_owned(),
            base_known: false,
            base_value: None,
            server_value: existing.values[i].clone(),
            offline_value: values[i].clone(),
            choice: None,
            chosen_value: None,
        })
        .collect();
    let conflict = (!differing.is_empty()).then(|| Draft {
        kind: ConflictKind::Duplicate,
        fields: differing,
        base: None,
        server_updated: Some(existing.last_updated).filter(|t| *t > 0),
        server_by: existing.changed_by.clone(),
        client_id: Some(client_id.to_owned()),
        resend: false,
    });
    Decision::Join {
        canonical: existing.id.clone(),
        new,
        conflict,
    }
}

/// Judges a `<delete>` against the server as it was before this upload.
pub fn judge_delete(table: TableId, d: &Delete, known: &Known) -> Result<Decision, Rejection> {
    let def = &TABLES[table];
    if !def.offline_delete {
        return Err(reject(
            ErrorCode::DeleteNotAllowed,
            None,
            format!("offline clients may not delete {}", def.name),
        ));
    }
    let Some(base) = d.base else {
        return Err(reject(
            ErrorCode::MissingBase,
            None,
            format!(
                "a delete of {} {} must say which version it deletes (base)",
                def.noun, d.id
            ),
        ));
    };
    let id = canonical(&known.aliases, &d.id);
    if let Some(row) = known.rows.get(id) {
        if base == row.last_updated {
            return Ok(Decision::Delete);
        }
        // The server's version now, field by field, beside the laptop's at its base where
        // it sent that: the page marks what changed since.
        let fields = def
            .fields
            .iter()
            .enumerate()
            .zip(&row.values)
            .map(|((i, f), v)| ConflictField {
                field: f.name.to_owned(),
                base_known: d.was.iter().any(|(j, _)| *j == i),
                base_value: d
                    .was
                    .iter()
                    .find(|(j, _)| *j == i)
                    .and_then(|(_, w)| w.clone()),
                server_value: v.clone(),
                offline_value: None,
                choice: None,
                chosen_value: None,
            })
            .collect();
        return Ok(Decision::Conflict(Draft {
            kind: ConflictKind::Delete,
            fields,
            base: Some(base),
            server_updated: Some(row.last_updated),
            server_by: row.changed_by.clone(),
            client_id: None,
            resend: true,
        }));
    }
    if known.tombstones.contains_key(id) {
        return Ok(Decision::Unchanged);
    }
    Err(reject(
        ErrorCode::UnknownRow,
        None,
        format!("a delete of {} {id} that never existed", def.noun),
    ))
}

fn check_edit(def: &Table, r: &Record) -> Result<(), Rejection> {
    if r.fields.is_empty() {
        return Err(reject(
            ErrorCode::EmptyEdit,
            None,
            "an edit must carry at least one field".into(),
        ));
    }
    if let Some(f) = r.fields.iter().find(|f| !def.fields[f.index].offline_edit) {
        let name = def.fields[f.index].name;
        return Err(reject(
            ErrorCode::FieldNotEditable,
            Some(name),
            format!("offline clients may not change {}.{name}", def.name),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
