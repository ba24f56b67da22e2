//! Applying an upload (PROTOCOL.md §4) inside one transaction.
//!
//! Items arrive from the spool table by table, parents first, in batches: each batch is
//! looked up with a handful of queries (rows, tombstones, aliases, natural keys, parents),
//! judged item by item in memory, and written. Any rejection returns an error, and the
//! caller's transaction rolls everything back.

use std::collections::{HashMap, HashSet};

use super::SyncError;
use super::codec::{Delete, FieldChange, Item, Record, Was};
use super::spool::Spool;
use crate::db::DbConn;
use crate::db::repo::conflicts::{self, Conflict, ConflictField, kind};
use crate::db::repo::rows::{self, Row, Tombstone};
use crate::db::repo::sessions::Counts;
use crate::db::repo::{accounts, aliases};
use crate::domain::{Micros, TABLES, Table, TableId, Values, time, value};

/// Items judged per batch.
pub const BATCH: usize = 500;

/// Who is uploading, for conflicts and aliases.
pub struct Uploader<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub session_id: &'a str,
    /// Recorded as who changed the rows written, e.g. "laptop 7 (alice)".
    pub actor: &'a str,
}

/// The outcome of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Unchanged,
    Conflict,
}

struct Ctx<'a> {
    who: &'a Uploader<'a>,
    now: Micros,
    counts: Counts,
    /// The batch's edits, written together at its end.
    updates: Vec<rows::RowUpdate>,
    /// The batch's conflicts, recorded together at its end.
    conflicts: Vec<(Conflict, Vec<ConflictField>)>,
    /// Per table, whether any client id has been joined onto another row: most tables
    /// never have one, and then the alias lookups (5% of an upload) are skipped.
    aliased: Vec<bool>,
}

impl Ctx<'_> {
    fn count(&mut self, o: Outcome) {
        match o {
            Outcome::Applied => self.counts.applied += 1,
            Outcome::Unchanged => self.counts.unchanged += 1,
            Outcome::Conflict => self.counts.conflicts += 1,
        }
    }

    fn stamp(&self, previous: Micros) -> Micros {
        time::after(self.now.max(previous + 1))
    }
}

/// Applies every spooled item; call inside a write transaction stamped `now`.
pub fn apply_upload(
    conn: &mut DbConn,
    spool: Spool,
    who: &Uploader<'_>,
    now: Micros,
) -> Result<Counts, SyncError> {
    let mut ctx = Ctx {
        who,
        now,
        counts: Counts::default(),
        updates: Vec::new(),
        conflicts: Vec::new(),
        aliased: (0..TABLES.len())
            .map(|table| aliases::exist(conn, table))
            .collect::<Result<_, _>>()?,
    };
    let mut batches = spool.batches(BATCH)?;
    while let Some((table, items)) = batches.next_batch()? {
        apply_batch(conn, &mut ctx, table, items)?;
    }
    if ctx.counts.conflicts > 0 {
        accounts::set_conflict_flag(conn, who.user_id, true)?;
    }
    Ok(ctx.counts)
}

fn apply_batch(
    conn: &mut DbConn,
    ctx: &mut Ctx<'_>,
    table: TableId,
    mut items: Vec<Item>,
) -> Result<(), SyncError> {
    let def = &TABLES[table];
    // Client ids the server joined onto existing rows follow the join, for good.
    let ids: Vec<String> = items.iter().map(|i| i.id().to_owned()).collect();
    let mapped = if ctx.aliased[table] {
        aliases::canonical_ids(conn, table, &ids)?
    } else {
        HashMap::new()
    };
    let parent = def.parent();
    let parent_map = match parent {
        Some((fk, parent_table)) if ctx.aliased[parent_table] => {
            let refs: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Record(r) => field_value(r, fk).cloned(),
                    _ => None,
                })
                .collect();
            aliases::canonical_ids(conn, parent_table, &refs)?
        }
        _ => HashMap::new(),
    };
    let mut seen = HashSet::with_capacity(items.len());
    for item in &mut items {
        if let Item::Alias(a) = item {
            return Err(SyncError::rejected(
                "unexpected-alias",
                def.name,
                &a.id,
                None,
                "an upload may not carry <alias>; only the server makes them",
            ));
        }
        let client_id = item.id().to_owned();
        let id = mapped.get(&client_id).cloned().unwrap_or(client_id);
        if !seen.insert(id.clone()) {
            return Err(SyncError::rejected(
                "duplicate-row",
                def.name,
                &id,
                None,
                format!("{} {id} appears twice in one upload", def.noun),
            ));
        }
        match item {
            Item::Record(r) => {
                r.id = id;
                if let Some((fk, _)) = parent {
                    for f in &mut r.fields {
                        if f.index == fk
                            && let Some(v) = &f.value
                            && let Some(canonical) = parent_map.get(v)
                        {
                            f.value = Some(canonical.clone());
                        }
                    }
                }
            }
            Item::Delete(d) => d.id = id,
            Item::Alias(_) => {}
        }
    }

    let ids: Vec<String> = items.iter().map(|i| i.id().to_owned()).collect();
    let existing = rows::by_ids(conn, table, &ids, true)?;
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !existing.contains_key(*id))
        .cloned()
        .collect();
    let tombstones = rows::tombstones(conn, table, &missing)?;

    // Natural keys of new rows, and the parents they name.
    let nk = def.natural_key_index();
    let mut new_keys = Vec::new();
    let mut parent_refs = Vec::new();
    for item in &items {
        if let Item::Record(r) = item
            && r.base.is_none()
            && !existing.contains_key(&r.id)
            && !tombstones.contains_key(&r.id)
        {
            if let Some(k) = nk.and_then(|k| field_value(r, k)) {
                new_keys.push(k.clone());
            }
            if let Some(p) = parent.and_then(|(fk, _)| field_value(r, fk)) {
                parent_refs.push(p.clone());
            }
        }
    }
    let by_key = rows::by_natural_keys(conn, table, &new_keys)?;
    let parents_present = match parent {
        Some((_, pt)) => rows::existing(conn, pt, &parent_refs)?,
        None => HashSet::new(),
    };

    let mut inserts: Vec<(String, Values, Micros)> = Vec::new();
    let mut pending_keys: HashMap<String, usize> = HashMap::new();
    let mut deletes = Vec::new();
    for item in items {
        let outcome = match item {
            Item::Record(r) if r.base.is_none() => {
                check_create(def, &r)?;
                if let Some(row) = existing.get(&r.id) {
                    // A create retried after a lost answer: judged like an edit without `was`.
                    judge_stale_edit(ctx, table, row, &r)?
                } else if let Some(t) = tombstones.get(&r.id) {
                    edit_of_deleted(ctx, table, t, &r)?
                } else {
                    let values = full_values(def, &r);
                    if let Some((fk, _)) = parent {
                        let p = values[fk].as_deref().unwrap_or_default();
                        if !parents_present.contains(p) {
                            return Err(missing_parent(def, &r.id, fk, p));
                        }
                    }
                    let key = nk.and_then(|k| values[k].clone());
                    if let Some(other) = key.as_ref().and_then(|k| by_key.get(k)) {
                        duplicate(conn, ctx, table, other, &r, &values)?
                    } else if let Some(&at) = key.as_ref().and_then(|k| pending_keys.get(k)) {
                        let (first_id, first_values, stamp) = inserts[at].clone();
                        let other = Row {
                            id: first_id,
                            last_updated: stamp,
                            values: first_values,
                            changed_by: Some(ctx.who.actor.to_owned()),
                        };
                        duplicate(conn, ctx, table, &other, &r, &values)?
                    } else {
                        if let Some(k) = key {
                            pending_keys.insert(k, inserts.len());
                        }
                        inserts.push((r.id.clone(), values, ctx.stamp(0)));
                        Outcome::Applied
                    }
                }
            }
            Item::Record(r) => {
                check_edit(def, &r)?;
                if let Some(row) = existing.get(&r.id) {
                    edit(ctx, table, row, &r)?
                } else if let Some(t) = tombstones.get(&r.id) {
                    edit_of_deleted(ctx, table, t, &r)?
                } else {
                    return Err(SyncError::rejected(
                        "unknown-row",
                        def.name,
                        &r.id,
                        None,
                        format!("an edit of {} {} that never existed", def.noun, r.id),
                    ));
                }
            }
            Item::Delete(d) => {
                if !def.offline_delete {
                    return Err(SyncError::rejected(
                        "delete-not-allowed",
                        def.name,
                        &d.id,
                        None,
                        format!("offline clients may not delete {}", def.name),
                    ));
                }
                if let Some(row) = existing.get(&d.id) {
                    if d.base.is_none_or(|b| b == row.last_updated) {
                        deletes.push(d.id.clone());
                        Outcome::Applied
                    } else {
                        stale_delete(ctx, table, row, &d)?
                    }
                } else if tombstones.contains_key(&d.id) {
                    Outcome::Unchanged
                } else {
                    return Err(SyncError::rejected(
                        "unknown-row",
                        def.name,
                        &d.id,
                        None,
                        format!("a delete of {} {} that never existed", def.noun, d.id),
                    ));
                }
            }
            Item::Alias(_) => Outcome::Unchanged,
        };
        ctx.count(outcome);
    }
    let actor = ctx.who.actor;
    rows::insert(conn, table, &inserts, actor)?;
    rows::update_many(conn, table, &ctx.updates, actor)?;
    ctx.updates.clear();
    flush_conflicts(conn, ctx, table)?;
    rows::delete_cascade(conn, table, &deletes, ctx.now, actor)?;
    Ok(())
}

fn field_value(r: &Record, index: usize) -> Option<&String> {
    r.fields
        .iter()
        .find(|f| f.index == index)
        .and_then(|f| f.value.as_ref())
}

fn missing_parent(def: &Table, id: &str, fk: usize, parent_id: &str) -> SyncError {
    let field = def.fields[fk].name;
    SyncError::rejected(
        "missing-parent",
        def.name,
        id,
        Some(field),
        format!(
            "{} {id} names {field} {parent_id}, which is neither on the server nor in this upload",
            def.noun
        ),
    )
}

fn check_create(def: &Table, r: &Record) -> Result<(), SyncError> {
    if !def.offline_create {
        return Err(SyncError::rejected(
            "create-not-allowed",
            def.name,
            &r.id,
            None,
            format!("offline clients may not create {}", def.name),
        ));
    }
    for (i, f) in def.fields.iter().enumerate() {
        if !f.nullable && field_value(r, i).is_none() {
            return Err(SyncError::rejected(
                "missing-field",
                def.name,
                &r.id,
                Some(f.name),
                format!("a new {} needs {}", def.noun, f.name),
            ));
        }
    }
    Ok(())
}

fn check_edit(def: &Table, r: &Record) -> Result<(), SyncError> {
    if r.fields.is_empty() {
        return Err(SyncError::rejected(
            "empty-edit",
            def.name,
            &r.id,
            None,
            "an edit must carry at least one field",
        ));
    }
    if let Some(f) = r.fields.iter().find(|f| !def.fields[f.index].offline_edit) {
        let name = def.fields[f.index].name;
        return Err(SyncError::rejected(
            "field-not-editable",
            def.name,
            &r.id,
            Some(name),
            format!("offline clients may not change {}.{name}", def.name),
        ));
    }
    Ok(())
}

fn full_values(def: &Table, r: &Record) -> Values {
    let mut values = vec![None; def.fields.len()];
    for f in &r.fields {
        values[f.index] = f.value.clone();
    }
    values
}

/// An edit of an existing row.
fn edit(ctx: &mut Ctx<'_>, table: TableId, row: &Row, r: &Record) -> Result<Outcome, SyncError> {
    if r.base == Some(row.last_updated) {
        let def = &TABLES[table];
        let changes: Vec<(usize, Option<String>)> = r
            .fields
            .iter()
            .filter(|f| {
                let ty = def.fields[f.index].ty;
                !value::same(ty, f.value.as_deref(), row.values[f.index].as_deref())
            })
            .map(|f| (f.index, f.value.clone()))
            .collect();
        if changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let stamp = ctx.stamp(row.last_updated);
        ctx.updates.push((row.id.clone(), changes, stamp));
        return Ok(Outcome::Applied);
    }
    judge_stale_edit(ctx, table, row, r)
}

/// The row changed on the server since the client saw it: each field is judged alone.
fn judge_stale_edit(
    ctx: &mut Ctx<'_>,
    table: TableId,
    row: &Row,
    r: &Record,
) -> Result<Outcome, SyncError> {
    let def = &TABLES[table];
    let mut apply = Vec::new();
    let mut disputed = Vec::new();
    for f in &r.fields {
        let ty = def.fields[f.index].ty;
        let server = row.values[f.index].as_deref();
        if value::same(ty, f.value.as_deref(), server) {
            continue;
        }
        match &f.was {
            Was::Known(was) if value::same(ty, was.as_deref(), server) => {
                apply.push((f.index, f.value.clone()));
            }
            _ => disputed.push(conflict_field(def, f, row.values[f.index].clone())),
        }
    }
    let applied_any = !apply.is_empty();
    if applied_any {
        let stamp = ctx.stamp(row.last_updated);
        ctx.updates.push((row.id.clone(), apply, stamp));
    }
    if disputed.is_empty() {
        return Ok(if !applied_any {
            Outcome::Unchanged
        } else {
            Outcome::Applied
        });
    }
    record_conflict(
        ctx,
        table,
        &row.id,
        kind::FIELDS,
        None,
        r.base,
        Some(row.last_updated),
        r.updated,
        disputed,
    )?;
    Ok(Outcome::Conflict)
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
fn edit_of_deleted(
    ctx: &mut Ctx<'_>,
    table: TableId,
    t: &Tombstone,
    r: &Record,
) -> Result<Outcome, SyncError> {
    let def = &TABLES[table];
    let fields = r
        .fields
        .iter()
        .map(|f| {
            let last = t.values.as_ref().and_then(|v| v[f.index].clone());
            let mut cf = conflict_field(def, f, None);
            if !cf.base_known {
                // What the row held when it was deleted is the best base we know.
                cf.base_value = last;
            }
            cf
        })
        .collect();
    record_conflict(
        ctx,
        table,
        &r.id,
        kind::EDIT_DELETED,
        None,
        r.base,
        Some(t.last_updated),
        r.updated,
        fields,
    )?;
    Ok(Outcome::Conflict)
}

/// A delete whose base is stale: the server changed the row since.
fn stale_delete(
    ctx: &mut Ctx<'_>,
    table: TableId,
    row: &Row,
    d: &Delete,
) -> Result<Outcome, SyncError> {
    record_conflict(
        ctx,
        table,
        &row.id,
        kind::DELETE,
        None,
        d.base,
        Some(row.last_updated),
        d.updated,
        Vec::new(),
    )?;
    Ok(Outcome::Conflict)
}

/// A new row whose natural key the server already has under another id.
fn duplicate(
    conn: &mut DbConn,
    ctx: &mut Ctx<'_>,
    table: TableId,
    existing: &Row,
    r: &Record,
    values: &Values,
) -> Result<Outcome, SyncError> {
    let def = &TABLES[table];
    aliases::insert(conn, table, &r.id, &existing.id, ctx.who.device_id, ctx.now)?;
    ctx.aliased[table] = true;
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
    if differing.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    record_conflict(
        ctx,
        table,
        &existing.id,
        kind::DUPLICATE,
        Some(&r.id),
        None,
        Some(existing.last_updated),
        r.updated,
        differing,
    )?;
    Ok(Outcome::Conflict)
}

/// Notes a conflict for the uploader; [`flush_conflicts`] records the batch's together.
#[expect(
    clippy::too_many_arguments,
    reason = "one call per conflict kind, all named"
)]
fn record_conflict(
    ctx: &mut Ctx<'_>,
    table: TableId,
    row_id: &str,
    conflict_kind: &str,
    client_id: Option<&str>,
    base: Option<Micros>,
    server_updated: Option<Micros>,
    offline_updated: Option<Micros>,
    fields: Vec<ConflictField>,
) -> Result<(), SyncError> {
    let c = Conflict {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: ctx.who.user_id.to_owned(),
        device_id: ctx.who.device_id.to_owned(),
        session_id: Some(ctx.who.session_id.to_owned()),
        table_name: TABLES[table].name.to_owned(),
        row_id: row_id.to_owned(),
        kind: conflict_kind.to_owned(),
        client_id: client_id.map(str::to_owned),
        base,
        server_updated,
        offline_updated,
        status: "open".into(),
        created_at: ctx.now,
        updated_at: ctx.now,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
    };
    // One row twice in a batch (two laptop rows joined onto one): one conflict, fields merged.
    if let Some((_, existing)) = ctx.conflicts.iter_mut().find(|(o, _)| o.row_id == row_id) {
        for f in fields {
            existing.retain(|e| e.field != f.field);
            existing.push(f);
        }
        return Ok(());
    }
    ctx.conflicts.push((c, fields));
    Ok(())
}

/// Records the batch's conflicts: new ones many per statement; a row with an open conflict
/// of the user's already has that one updated (one open conflict per user and row).
fn flush_conflicts(conn: &mut DbConn, ctx: &mut Ctx<'_>, table: TableId) -> Result<(), SyncError> {
    if ctx.conflicts.is_empty() {
        return Ok(());
    }
    let drafts = std::mem::take(&mut ctx.conflicts);
    let ids: Vec<String> = drafts.iter().map(|(c, _)| c.row_id.clone()).collect();
    let open = conflicts::open_for_rows(conn, ctx.who.user_id, TABLES[table].name, &ids)?;
    let mut new = Vec::with_capacity(drafts.len());
    for (mut c, fields) in drafts {
        match open.get(&c.row_id) {
            Some(existing) => {
                c.id = existing.id.clone();
                c.created_at = existing.created_at;
                if c.client_id.is_none() {
                    c.client_id = existing.client_id.clone();
                }
                conflicts::update_open(conn, &c)?;
                for f in &fields {
                    conflicts::put_field(conn, &c.id, f)?;
                }
            }
            None => new.push((c, fields)),
        }
    }
    conflicts::insert_many(conn, &new)?;
    Ok(())
}
