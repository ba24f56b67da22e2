//! Applying an upload (PROTOCOL.md §4) inside one transaction, in three phases per batch:
//! load what the batch's items refer to (rows, tombstones, aliases, natural keys, parents:
//! a handful of queries), judge each item in memory ([`super::judge`], pure), and write the
//! decisions (many rows per statement). The upload is judged as one whole: its deletes are
//! judged first, against the server as the client last saw it; its records next, parents
//! first; the deletes are written last, children first, with what is below them. Any
//! rejection returns an error, and the caller's transaction rolls everything back.

use std::collections::HashSet;

use super::SyncError;
use super::code::ErrorCode;
use super::codec::{Item, Record};
use super::judge::{self, Decision, Draft, Known, Outcome, Upload};
use super::spool::{Part, Source};
use crate::db::DbConn;
use crate::db::integrity;
use crate::db::repo::conflicts::{self, Conflict, ConflictField, ConflictKind, ConflictStatus};
use crate::db::repo::rows;
use crate::db::repo::sessions::Counts;
use crate::db::repo::{accounts, aliases, resends};
use crate::domain::rules::next_stamp;
use crate::domain::{Micros, TABLES, TableId, Values};

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

struct Ctx<'a> {
    who: &'a Uploader<'a>,
    now: Micros,
    counts: Counts,
    upload: Upload,
    /// The deletes judged good, by table: written after every record. Memory grows with
    /// the number of deletes only (an id each).
    deletes: Vec<Vec<String>>,
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
}

/// What one batch writes, gathered while its items are judged.
#[derive(Default)]
struct Writes {
    inserts: Vec<(String, Values, Micros)>,
    updates: Vec<rows::RowUpdate>,
    conflicts: Vec<(String, Draft, Option<Micros>)>,
    resends: Vec<String>,
}

/// Applies every spooled item; call inside a write transaction stamped `now`.
pub fn apply_upload(
    conn: &mut DbConn,
    batches: &mut dyn Source,
    who: &Uploader<'_>,
    now: Micros,
) -> Result<Counts, SyncError> {
    let mut ctx = Ctx {
        who,
        now,
        counts: Counts::default(),
        upload: Upload::default(),
        deletes: vec![Vec::new(); TABLES.len()],
        aliased: (0..TABLES.len())
            .map(|table| aliases::exist(conn, table))
            .collect::<Result<_, _>>()?,
    };
    while let Some((part, table, items)) = batches.next_batch()? {
        match part {
            Part::Deletes => judge_deletes(conn, &mut ctx, table, items)?,
            Part::Records => judge_records(conn, &mut ctx, table, items)?,
        }
    }
    for table in (0..TABLES.len()).rev() {
        for chunk in ctx.deletes[table].chunks(BATCH) {
            rows::delete_cascade(conn, table, chunk, now, who.actor)?;
        }
    }
    if ctx.counts.conflicts > 0 {
        accounts::set_conflict_flag(conn, who.user_id, true)?;
    }
    Ok(ctx.counts)
}

fn rejected(table: TableId, id: &str, r: judge::Rejection) -> SyncError {
    SyncError::rejected(r.code, TABLES[table].name, id, r.field, r.message)
}

/// Every item's client id once per batch; an alias is the server's to make.
fn check_items(table: TableId, items: &[Item]) -> Result<Vec<String>, SyncError> {
    let def = &TABLES[table];
    let mut seen = HashSet::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = item.id().to_owned();
        if let Item::Alias(_) = item {
            return Err(SyncError::rejected(
                ErrorCode::UnexpectedAlias,
                def.name,
                &id,
                None,
                "an upload may not carry <alias>; only the server makes them",
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(SyncError::rejected(
                ErrorCode::DuplicateRow,
                def.name,
                &id,
                None,
                format!("{} {id} appears twice in one upload", def.noun),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The load phase of a batch (uploads and imports): the rows (locked) and tombstones of
/// `ids`, following the table's aliases where `aliased` says it has any; and, for `named`
/// (the records whose parent and natural key matter), where their parents stand and who
/// owns their keys.
pub(crate) fn load(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
    named: &[&Record],
    aliased: &[bool],
) -> Result<Known, SyncError> {
    let def = &TABLES[table];
    let mut known = Known::default();
    if aliased[table] {
        known.aliases = aliases::canonical_ids(conn, table, ids)?;
    }
    let canonical: Vec<String> = ids
        .iter()
        .map(|id| judge::canonical(&known.aliases, id).to_owned())
        .collect();
    known.rows = rows::by_ids(conn, table, &canonical, true)?;
    let missing: Vec<String> = canonical
        .into_iter()
        .filter(|id| !known.rows.contains_key(id))
        .collect();
    known.tombstones = rows::tombstones(conn, table, &missing)?;
    let values_of = |index: usize| -> Vec<String> {
        named
            .iter()
            .filter_map(|r| r.fields.iter().find(|f| f.index == index))
            .filter_map(|f| f.value.clone())
            .collect()
    };
    if let Some((fk, parent)) = def.parent() {
        let refs = values_of(fk);
        if aliased[parent] {
            known.parent_aliases = aliases::canonical_ids(conn, parent, &refs)?;
        }
        let refs: Vec<String> = refs
            .iter()
            .map(|p| judge::canonical(&known.parent_aliases, p).to_owned())
            .collect();
        known.parents = integrity::presence(conn, parent, &refs)?;
    }
    if let Some(k) = def.natural_key_index() {
        known.key_owners = integrity::key_owners(conn, table, &values_of(k))?;
    }
    Ok(known)
}

fn judge_deletes(
    conn: &mut DbConn,
    ctx: &mut Ctx<'_>,
    table: TableId,
    items: Vec<Item>,
) -> Result<(), SyncError> {
    let ids = check_items(table, &items)?;
    let known = load(conn, table, &ids, &[], &ctx.aliased)?;
    let mut writes = Writes::default();
    for item in items {
        let Item::Delete(d) = item else { continue };
        let decision =
            judge::judge_delete(table, &d, &known).map_err(|r| rejected(table, &d.id, r))?;
        let id = judge::canonical(&known.aliases, &d.id).to_owned();
        ctx.count(decision.outcome());
        match decision {
            Decision::Delete => {
                ctx.upload.gone.insert((table, id.clone()));
                ctx.deletes[table].push(id);
            }
            Decision::Unchanged => {
                ctx.upload.gone.insert((table, id));
            }
            Decision::Conflict(draft) => writes.conflicts.push((id, draft, d.updated)),
            _ => {}
        }
    }
    write(conn, ctx, table, writes)
}

fn judge_records(
    conn: &mut DbConn,
    ctx: &mut Ctx<'_>,
    table: TableId,
    items: Vec<Item>,
) -> Result<(), SyncError> {
    let ids = check_items(table, &items)?;
    let records: Vec<Record> = items
        .into_iter()
        .filter_map(|i| match i {
            Item::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    // Only creates name a parent and a natural key (offline may edit neither).
    let creates: Vec<&Record> = records.iter().filter(|r| r.base.is_none()).collect();
    let mut known = load(conn, table, &ids, &creates, &ctx.aliased)?;

    let mut writes = Writes::default();
    for r in &records {
        let decision = judge::judge_record(table, r, &mut known, &ctx.upload)
            .map_err(|e| rejected(table, &r.id, e))?;
        ctx.count(decision.outcome());
        let id = judge::canonical(&known.aliases, &r.id).to_owned();
        match decision {
            Decision::Insert(values) => {
                writes.inserts.push((id, values, next_stamp(ctx.now, 0)));
            }
            Decision::Update {
                changes,
                previous,
                conflict,
            } => {
                writes
                    .updates
                    .push((id.clone(), changes, next_stamp(ctx.now, previous)));
                if let Some(draft) = conflict {
                    writes.conflicts.push((id, draft, r.updated));
                }
            }
            Decision::Conflict(draft) => {
                if draft.kind == ConflictKind::ParentDeleted {
                    ctx.upload.held.insert((table, id.clone()));
                }
                writes.conflicts.push((id, draft, r.updated));
            }
            Decision::Join {
                canonical,
                new,
                conflict,
            } => {
                if new {
                    aliases::insert(conn, table, &r.id, &canonical, ctx.who.device_id, ctx.now)?;
                    ctx.aliased[table] = true;
                }
                if let Some(draft) = conflict {
                    writes.conflicts.push((canonical, draft, r.updated));
                }
            }
            Decision::Unchanged | Decision::Delete => {}
        }
    }
    write(conn, ctx, table, writes)
}

/// The rows part of a batch's write phase (uploads and imports): inserts and updates, many
/// per statement.
pub(crate) fn write_rows(
    conn: &mut DbConn,
    table: TableId,
    inserts: &[(String, Values, Micros)],
    updates: &[rows::RowUpdate],
    actor: &str,
) -> Result<(), SyncError> {
    rows::insert(conn, table, inserts, actor)?;
    rows::update_many(conn, table, updates, actor)?;
    Ok(())
}

/// The write phase of one batch.
fn write(
    conn: &mut DbConn,
    ctx: &mut Ctx<'_>,
    table: TableId,
    writes: Writes,
) -> Result<(), SyncError> {
    write_rows(conn, table, &writes.inserts, &writes.updates, ctx.who.actor)?;
    let mut resend = writes.resends;
    let mut drafts: Vec<(Conflict, Vec<ConflictField>)> = Vec::new();
    for (row_id, draft, offline_updated) in writes.conflicts {
        if draft.resend {
            resend.push(row_id.clone());
        }
        // One row twice in a batch (two laptop rows joined onto one): one conflict.
        if let Some((_, fields)) = drafts.iter_mut().find(|(c, _)| c.row_id == row_id) {
            for f in draft.fields {
                fields.retain(|e| e.field != f.field);
                fields.push(f);
            }
            continue;
        }
        drafts.push((
            conflict_of(ctx, table, row_id, &draft, offline_updated),
            draft.fields,
        ));
    }
    // A row with an open conflict of the user has that one updated.
    conflicts::record_open(conn, &drafts)?;
    resends::add(conn, ctx.who.device_id, table, &resend, ctx.now)?;
    Ok(())
}

fn conflict_of(
    ctx: &Ctx<'_>,
    table: TableId,
    row_id: String,
    d: &Draft,
    offline_updated: Option<Micros>,
) -> Conflict {
    Conflict {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: ctx.who.user_id.to_owned(),
        device_id: ctx.who.device_id.to_owned(),
        session_id: Some(ctx.who.session_id.to_owned()),
        table_name: TABLES[table].name.to_owned(),
        row_id,
        kind: d.kind.as_str().to_owned(),
        client_id: d.client_id.clone(),
        base: d.base,
        server_updated: d.server_updated,
        offline_updated,
        status: ConflictStatus::Open.as_str().into(),
        created_at: ctx.now,
        updated_at: ctx.now,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
        server_by: d.server_by.clone(),
    }
}
