//! The conflict pages' work (PROTOCOL.md §5): the list with its filters, one conflict side
//! by side, resolving one or many, and the resolution history. Each call takes a
//! connection and returns what its page shows; a resolution goes through
//! [`crate::sync::resolve`], which owns its transaction.

use std::collections::HashMap;

use super::present::{field_label, row_label, timestamp};
use crate::db::repo::accounts::User;
use crate::db::repo::accounts::{self, device_labels};
use crate::db::repo::conflicts::{
    self, Conflict, ConflictField, ConflictKind, ConflictStatus, Scope,
};
use crate::db::repo::{rows, sessions};
use crate::db::{DbConn, DbError};
use crate::domain::{TABLES, Values, table_by_name};
use crate::sync::resolve::{self, Choice, Outcome, Resolution, ResolveError};

pub const PER_PAGE: i64 = 50;

fn describe_kind(k: ConflictKind) -> &'static str {
    match k {
        ConflictKind::Delete => "deleted offline, changed on the server",
        ConflictKind::EditDeleted => "changed offline, deleted on the server",
        ConflictKind::Duplicate => "created on a laptop, already on the server",
        ConflictKind::ParentDeleted => "created offline under a record deleted on the server",
        ConflictKind::Fields => "changed on both sides",
    }
}

/// (table, row id) → (the row's name, its parent's name).
type RecordNames = HashMap<(String, String), (String, String)>;

/// How a conflict's row is named, with its parent for context: ("asset P-001", "site NPS").
/// Deleted rows are named from their tombstone. A few queries for a whole page.
fn record_names(conn: &mut DbConn, items: &[Conflict]) -> Result<RecordNames, DbError> {
    let mut by_table: HashMap<usize, Vec<String>> = HashMap::new();
    for c in items {
        if let Some(t) = table_by_name(&c.table_name) {
            by_table.entry(t).or_default().push(c.row_id.clone());
        }
    }
    let mut out = HashMap::new();
    for (t, ids) in by_table {
        let def = &TABLES[t];
        let mut values: HashMap<String, Values> = rows::by_ids(conn, t, &ids, false)?
            .into_iter()
            .map(|(id, r)| (id, r.values))
            .collect();
        let gone: Vec<String> = ids
            .iter()
            .filter(|i| !values.contains_key(*i))
            .cloned()
            .collect();
        for (id, tomb) in rows::tombstones(conn, t, &gone)? {
            if let Some(v) = tomb.values {
                values.insert(id, v);
            }
        }
        // A create held in its conflict is on the server nowhere: named by what it holds.
        let held: Vec<&Conflict> = items
            .iter()
            .filter(|c| c.table_name == def.name && !values.contains_key(&c.row_id))
            .collect();
        let ids: Vec<String> = held.iter().map(|c| c.id.clone()).collect();
        let mut held_fields = conflicts::fields_of(conn, &ids)?;
        for c in held {
            let mut v: Values = vec![None; def.fields.len()];
            for f in held_fields.remove(&c.id).unwrap_or_default() {
                if let Some(i) = def.field_index(&f.field) {
                    v[i] = f.offline_value;
                }
            }
            values.insert(c.row_id.clone(), v);
        }
        let parents: HashMap<String, String> = match def.parent() {
            Some((fk, pt)) => {
                let pids: Vec<String> = values.values().filter_map(|v| v[fk].clone()).collect();
                parent_names(conn, pt, &pids)?
            }
            None => HashMap::new(),
        };
        for (id, v) in values {
            let context = def
                .parent()
                .and_then(|(fk, _)| v[fk].as_ref())
                .and_then(|p| parents.get(p).cloned())
                .unwrap_or_default();
            out.insert(
                (def.name.to_owned(), id),
                (format!("{} {}", def.noun, row_label(t, &v)), context),
            );
        }
    }
    Ok(out)
}

/// Rows of `table` by id, named for a person ("inspection 2026-11-21 · Jo"), deleted ones
/// too ("… (deleted)").
fn parent_names(
    conn: &mut DbConn,
    table: usize,
    ids: &[String],
) -> Result<HashMap<String, String>, DbError> {
    let noun = TABLES[table].noun;
    let mut out: HashMap<String, String> = rows::by_ids(conn, table, ids, false)?
        .into_iter()
        .map(|(id, r)| (id, format!("{noun} {}", row_label(table, &r.values))))
        .collect();
    let gone: Vec<String> = ids
        .iter()
        .filter(|i| !out.contains_key(*i))
        .cloned()
        .collect();
    for (id, t) in rows::tombstones(conn, table, &gone)? {
        if let Some(v) = t.values {
            out.insert(id, format!("{noun} {} (deleted)", row_label(table, &v)));
        }
    }
    Ok(out)
}

fn name_of(names: &RecordNames, c: &Conflict) -> (String, String) {
    names
        .get(&(c.table_name.clone(), c.row_id.clone()))
        .cloned()
        .unwrap_or_else(|| (format!("{} {}", c.table_name, c.row_id), String::new()))
}

/// One line of the list.
/// One field side by side.
pub struct FieldView {
    pub name: String,
    /// The field as a person reads it ("Inspection", "Access notes").
    pub label: String,
    pub base: String,
    pub base_known: bool,
    /// The server's value now differs from the base (what changed since the laptop saw it).
    pub changed: bool,
    pub server: String,
    pub offline: String,
    pub chosen: String,
}

pub struct ConflictView {
    pub id: String,
    pub table: String,
    pub noun: String,
    pub key_name: String,
    pub row_id: String,
    pub title: String,
    pub context: String,
    pub what: String,
    pub kind: String,
    pub device: String,
    pub owner: String,
    pub row_choice: bool,
    /// What happened to the record since the conflict was recorded, when that matters.
    pub state_note: String,
    /// Where the server's side stands, in one line ("Last changed by … at …").
    pub server_line: String,
    /// Whether any field has a base to show (a create has none).
    pub show_base: bool,
    pub row_server: String,
    pub row_offline: String,
    pub base: String,
    pub offline_updated: String,
    pub offline_corrected: String,
    pub client_id: String,
    pub version: String,
    pub record_href: String,
    pub fields: Vec<FieldView>,
    pub message: Option<String>,
    pub resolved: bool,
    pub resolution: String,
}

fn or_empty(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(empty)".into())
}

/// One conflict side by side, with `message` above it (why the form is shown again).
pub fn conflict_view(
    conn: &mut DbConn,
    c: Conflict,
    message: Option<String>,
) -> Result<ConflictView, DbError> {
    let fields = conflicts::fields(conn, &c.id)?;
    let now = resolve::now_of(conn, &c, false)?;
    let version = now.version();
    let (title, context) = name_of(&record_names(conn, std::slice::from_ref(&c))?, &c);
    let device = device_labels(conn, std::slice::from_ref(&c.device_id))?
        .remove(&c.device_id)
        .unwrap_or_default();
    let owner = accounts::user_by_id(conn, &c.user_id)?
        .map(|u| u.name)
        .unwrap_or_default();
    // Who made the server's side: as the row stood before the upload touched it (kept with
    // the conflict), else whoever wrote it last.
    let server_by = c
        .server_by
        .clone()
        .or_else(|| now.changed_by().map(str::to_owned));
    // The laptop's clock may be wrong; the session kept how far off it was.
    let offset = match &c.session_id {
        Some(s) => sessions::clock_offset(conn, s)?,
        None => None,
    };
    let offline_corrected = match (c.offline_updated, offset) {
        (Some(t), Some(o)) if o.abs() >= 1_000_000 => {
            format!("{} by the server's clock", timestamp(t - o))
        }
        _ => String::new(),
    };
    let form = resolve::form_of(c.conflict_kind(), &now);
    let (row_choice, row_server, row_offline) = match form {
        resolve::Form::Row { server, offline } => (true, server, offline),
        resolve::Form::Fields => (false, "", ""),
    };
    let def = table_by_name(&c.table_name).map(|t| &TABLES[t]);
    // The record as the server has it now, field by field (what a stale delete would
    // throw away, what a field conflict is decided against).
    let current = match &now {
        resolve::Now::Live(r) => Some(&r.values),
        _ => None,
    };
    let now_text = |name: &str| match (&now, def.and_then(|d| d.field_index(name))) {
        (resolve::Now::Live(_), Some(i)) => or_empty(&current.and_then(|v| v[i].clone())),
        (resolve::Now::Deleted(_), _) => "(deleted)".into(),
        (resolve::Now::Absent, _) => "(not on the server)".into(),
        _ => "(unknown)".into(),
    };
    let state_note = match (&now, c.is_open()) {
        (_, false) => String::new(),
        (resolve::Now::Deleted(t), true) if c.conflict_kind() != ConflictKind::EditDeleted => {
            format!(
                "Since this conflict was recorded, the record was deleted by {} at {}.",
                t.changed_by.as_deref().unwrap_or("someone"),
                timestamp(t.last_updated)
            )
        }
        (resolve::Now::Live(r), true) if c.conflict_kind() == ConflictKind::EditDeleted => format!(
            "Since this conflict was recorded, the record was restored by {} at {}.",
            r.changed_by.as_deref().unwrap_or("someone"),
            timestamp(r.last_updated)
        ),
        (resolve::Now::Absent, true) => {
            "The laptop created this record under one that had been deleted on the server, \
             so it is not on the server yet."
                .to_owned()
        }
        _ => String::new(),
    };
    // A parent is shown by name, not by id.
    let parent_field = def
        .and_then(|d| d.parent())
        .and_then(|(fk, pt)| def.map(|d| (d.fields[fk].name, pt)));
    let parent_ids: Vec<String> = fields
        .iter()
        .filter(|f| parent_field.is_some_and(|(name, _)| f.field == name))
        .flat_map(|f| {
            [
                f.offline_value.clone(),
                f.server_value.clone(),
                f.base_value.clone(),
            ]
        })
        .flatten()
        .collect();
    let named_parents = match parent_field {
        Some((_, pt)) => parent_names(conn, pt, &parent_ids)?,
        None => HashMap::new(),
    };
    let shown = |v: &Option<String>| match v {
        Some(id) if named_parents.contains_key(id) => named_parents[id].clone(),
        other => or_empty(other),
    };
    let view = |f: &ConflictField| FieldView {
        name: f.field.clone(),
        label: field_label(&f.field),
        base: if f.base_known {
            shown(&f.base_value)
        } else {
            "unknown".into()
        },
        base_known: f.base_known,
        changed: f.base_known
            && match (&now, def.and_then(|d| d.field_index(&f.field))) {
                (resolve::Now::Live(r), Some(i)) => !crate::domain::value::same(
                    def.map_or(crate::domain::FieldType::Text, |d| d.fields[i].ty),
                    r.values[i].as_deref(),
                    f.base_value.as_deref(),
                ),
                _ => false,
            },
        server: match (&now, parent_field) {
            (resolve::Now::Live(r), Some((name, _))) if f.field == name => shown(
                &def.and_then(|d| d.field_index(name))
                    .and_then(|i| r.values[i].clone()),
            ),
            _ => now_text(&f.field),
        },
        offline: if c.conflict_kind() == ConflictKind::Delete {
            "(deleted)".into()
        } else {
            shown(&f.offline_value)
        },
        chosen: f.choice.clone().unwrap_or_default(),
    };
    let record_href = match now {
        resolve::Now::Live(_) => format!("/{}/{}", c.table_name, c.row_id),
        _ => String::new(),
    };
    Ok(ConflictView {
        noun: def.map_or("record", |d| d.noun).to_owned(),
        key_name: def.and_then(|d| d.natural_key).unwrap_or("key").to_owned(),
        title,
        context,
        what: describe_kind(c.conflict_kind()).to_owned(),
        kind: c.kind.clone(),
        device,
        owner,
        row_choice,
        state_note,
        server_line: match (&now, server_by.as_deref(), c.server_updated) {
            (resolve::Now::Absent, _, _) => "Not on the server".into(),
            (_, Some(by), Some(at)) => format!("Last changed by {by} at {}", timestamp(at)),
            (_, Some(by), None) => format!("Last changed by {by}"),
            (_, None, Some(at)) => format!("Last changed at {}", timestamp(at)),
            (_, None, None) => "Unknown".into(),
        },
        show_base: fields.iter().any(|f| f.base_known),
        row_server: row_server.into(),
        row_offline: row_offline.into(),
        base: c.base.map_or_else(|| "unknown".into(), timestamp),
        offline_updated: c
            .offline_updated
            .map_or_else(|| "unknown".into(), timestamp),
        offline_corrected,
        client_id: c.client_id.clone().unwrap_or_default(),
        version: version.map(|v| v.to_string()).unwrap_or_default(),
        record_href,
        fields: fields.iter().map(view).collect(),
        resolved: !c.is_open(),
        resolution: c.resolution.clone().unwrap_or_default(),
        id: c.id,
        table: c.table_name,
        row_id: c.row_id,
        message,
    })
}

/// Sets every field (and the row) to one side: the "keep all" shortcuts and bulk resolution.
fn keep_all(
    conn: &mut DbConn,
    c: &Conflict,
    side: Choice,
    res: &mut Resolution,
) -> Result<(), DbError> {
    for f in conflicts::fields(conn, &c.id)? {
        res.fields.insert(f.field, side.clone());
    }
    res.row = Some(side);
    Ok(())
}

/// "server" or "offline": a side to keep everything from.
pub fn side(word: &str) -> Option<Choice> {
    match word {
        "server" => Some(Choice::Server),
        "offline" => Some(Choice::Offline),
        _ => None,
    }
}

pub struct HistoryItem {
    pub id: String,
    pub record: String,
    pub context: String,
    pub what: String,
    pub resolution: String,
    pub by: String,
    pub when: String,
    pub owner: String,
}

pub struct HistoryView {
    pub items: Vec<HistoryItem>,
    pub show_owner: bool,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
}

/// Reads the posted choices: `choice.FIELD` = server | offline | edited (with
/// `edited.FIELD`), `choice.row`, and the version the form was made from.
pub fn resolution_of(pairs: &[(String, String)]) -> Resolution {
    let mut res = Resolution::default();
    let mut edited = HashMap::new();
    for (k, v) in pairs {
        if k == "version" {
            res.version = v.parse().ok();
        } else if let Some(f) = k.strip_prefix("edited.") {
            edited.insert(f.to_owned(), v.clone());
        } else if let Some(f) = k.strip_prefix("choice.") {
            let choice = match v.as_str() {
                "server" => Choice::Server,
                "offline" => Choice::Offline,
                "edited" => Choice::Edited(String::new()),
                _ => continue,
            };
            if f == "row" {
                res.row = Some(choice);
            } else {
                res.fields.insert(f.to_owned(), choice);
            }
        }
    }
    for (f, c) in res.fields.iter_mut() {
        if let Choice::Edited(text) = c {
            *text = edited.remove(f).unwrap_or_default();
        }
    }
    res
}

/// One line of the list.
pub struct ListItem {
    pub id: String,
    pub record: String,
    pub context: String,
    pub what: String,
    pub fields: String,
    pub device: String,
    pub when: String,
}

/// A page of open conflicts with the filters' choices.
pub struct ListView {
    pub items: Vec<ListItem>,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub tables: Vec<String>,
    pub devices: Vec<(String, String)>,
    pub table: String,
    pub device: String,
    /// The filters as a query string, for the pager's links.
    pub query: String,
    pub notice: Option<String>,
}

/// What the list is asked for: whose conflicts (`None`: everyone's, for administrators),
/// of which table and device, which page.
pub struct ListAsk {
    pub user: Option<String>,
    pub table: Option<String>,
    pub device: Option<String>,
    pub page: i64,
    pub notice: Option<String>,
}

pub fn list(conn: &mut DbConn, ask: ListAsk) -> Result<ListView, DbError> {
    let table = ask
        .table
        .filter(|t| table_by_name(t).is_some())
        .unwrap_or_default();
    let device = ask.device.unwrap_or_default();
    let user = ask.user.as_deref();
    let within = Scope {
        user_id: user,
        table: Some(table.as_str()).filter(|t| !t.is_empty()),
        device_id: Some(device.as_str()).filter(|d| !d.is_empty()),
    };
    let total = conflicts::count_in(conn, &within, ConflictStatus::Open)?;
    let list = conflicts::list(
        conn,
        &within,
        ConflictStatus::Open,
        PER_PAGE,
        (ask.page - 1) * PER_PAGE,
    )?;
    let names = record_names(conn, &list)?;
    let ids: Vec<String> = list.iter().map(|c| c.id.clone()).collect();
    let mut fields = conflicts::field_names_of(conn, &ids)?;
    let device_ids: Vec<String> = list.iter().map(|c| c.device_id.clone()).collect();
    let device_names = device_labels(conn, &device_ids)?;
    let devices = accounts::list_devices(conn, user)?
        .into_iter()
        .map(|d| {
            let label = match user {
                Some(_) => d.label,
                None => format!("{} ({})", d.label, d.owner),
            };
            (d.id, label)
        })
        .collect();
    let items = list
        .into_iter()
        .map(|c| {
            let (record, context) = name_of(&names, &c);
            ListItem {
                fields: fields.remove(&c.id).unwrap_or_default().join(", "),
                what: describe_kind(c.conflict_kind()).to_owned(),
                device: device_names.get(&c.device_id).cloned().unwrap_or_default(),
                when: timestamp(c.updated_at),
                id: c.id,
                record,
                context,
            }
        })
        .collect();
    let mut query = String::new();
    if !table.is_empty() {
        query.push_str(&format!("&table={table}"));
    }
    if !device.is_empty() {
        query.push_str(&format!(
            "&device={}",
            device.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
        ));
    }
    Ok(ListView {
        items,
        page: ask.page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
        tables: TABLES.iter().map(|t| t.name.to_owned()).collect(),
        devices,
        table,
        device,
        query,
        notice: ask.notice,
    })
}

/// Conflict `id` as `viewer` may see it (404 for anyone else's).
pub fn show(conn: &mut DbConn, viewer: &User, id: &str) -> Result<ConflictView, ResolveError> {
    let c = resolve::visible(conn, viewer, id)?;
    Ok(conflict_view(conn, c, None)?)
}

/// What a resolution did.
pub enum Resolved {
    Done,
    /// Not resolved: the form again, with why. `stale`: the server's side changed while
    /// the person was deciding; else the choice does not fit.
    Again {
        stale: bool,
        view: Box<ConflictView>,
    },
}

/// Resolves conflict `id` as `res` says, or every field to one side when `all` is given.
pub fn resolve_one(
    conn: &mut DbConn,
    viewer: &User,
    id: &str,
    all: Option<Choice>,
    mut res: Resolution,
) -> Result<Resolved, ResolveError> {
    if let Some(all) = all {
        let c = resolve::visible(conn, viewer, id)?;
        keep_all(conn, &c, all, &mut res)?;
    }
    let (stale, message) = match resolve::resolve(conn, viewer, id, &res) {
        Ok(Outcome::Resolved) => return Ok(Resolved::Done),
        Ok(Outcome::Stale) => (
            true,
            "The server's version changed while you were deciding. The new server values are \
             shown below; please choose again."
                .to_owned(),
        ),
        Err(ResolveError::Invalid(m)) | Err(ResolveError::Impossible(m)) => (false, m),
        Err(e) => return Err(e),
    };
    let c = resolve::visible(conn, viewer, id)?;
    let view = conflict_view(conn, c, Some(message))?;
    Ok(Resolved::Again {
        stale,
        view: Box::new(view),
    })
}

/// Resolves each of `ids` (at most 500) to one side; how many were resolved and how many
/// could not be this way (they stay open).
pub fn resolve_bulk(
    conn: &mut DbConn,
    viewer: &User,
    ids: &[String],
    all: Choice,
) -> Result<(u32, u32), ResolveError> {
    let (mut resolved, mut skipped) = (0u32, 0u32);
    for id in ids.iter().take(500) {
        let c = resolve::visible(conn, viewer, id)?;
        if !c.is_open() {
            continue;
        }
        let mut res = Resolution {
            version: resolve::server_version(conn, &c)?,
            ..Resolution::default()
        };
        keep_all(conn, &c, all.clone(), &mut res)?;
        match resolve::resolve(conn, viewer, id, &res) {
            Ok(Outcome::Resolved) => resolved += 1,
            Ok(Outcome::Stale) | Err(ResolveError::Invalid(_) | ResolveError::Impossible(_)) => {
                skipped += 1
            }
            Err(e) => return Err(e),
        }
    }
    Ok((resolved, skipped))
}

/// A page of resolved conflicts: who chose what, and when; `user` as for [`list`].
pub fn history(conn: &mut DbConn, user: Option<&str>, page: i64) -> Result<HistoryView, DbError> {
    let within = Scope {
        user_id: user,
        ..Scope::default()
    };
    let total = conflicts::count_in(conn, &within, ConflictStatus::Resolved)?;
    let list = conflicts::list(
        conn,
        &within,
        ConflictStatus::Resolved,
        PER_PAGE,
        (page - 1) * PER_PAGE,
    )?;
    let names = record_names(conn, &list)?;
    let mut people = HashMap::new();
    for c in &list {
        for u in [Some(&c.user_id), c.resolved_by.as_ref()]
            .into_iter()
            .flatten()
        {
            if !people.contains_key(u) {
                let name = accounts::user_by_id(conn, u)?
                    .map(|x| x.name)
                    .unwrap_or_default();
                people.insert(u.clone(), name);
            }
        }
    }
    let items = list
        .into_iter()
        .map(|c| {
            let (record, context) = name_of(&names, &c);
            HistoryItem {
                what: describe_kind(c.conflict_kind()).to_owned(),
                resolution: c.resolution.clone().unwrap_or_default(),
                by: c
                    .resolved_by
                    .as_ref()
                    .and_then(|u| people.get(u).cloned())
                    .unwrap_or_default(),
                owner: people.get(&c.user_id).cloned().unwrap_or_default(),
                when: c.resolved_at.map(timestamp).unwrap_or_default(),
                id: c.id,
                record,
                context,
            }
        })
        .collect();
    Ok(HistoryView {
        items,
        show_owner: user.is_none(),
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
    })
}
