//! "Recently deleted" for administrators: the sites and assets deleted lately, each with
//! what went with it, and Restore (an administrator's undo, from the tombstone).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use askama::Template;

use super::auth::{Checked, Layout, Viewer};
use super::error::PageError;
use crate::services::present::{row_label, timestamp};
use super::{AppState, see_other};
use crate::db::DbError;
use crate::db::repo::rows;
use crate::domain::{TABLES, table_by_name};
use crate::editing::{self, EditError};
use crate::logsafe::Escaped;

/// How many deletions the page lists.
const SHOWN: usize = 200;

pub struct DeletedRow {
    pub table: &'static str,
    pub noun: &'static str,
    pub id: String,
    pub label: String,
    pub when: String,
    pub by: String,
    /// Rows deleted with it below it.
    pub with: usize,
    pub restorable: bool,
}

#[derive(Template)]
#[template(path = "deleted.html")]
struct DeletedPage {
    layout: Layout,
    rows: Vec<DeletedRow>,
    notice: Option<String>,
    error: Option<String>,
}

/// The tables whose deletes an administrator makes (and so undoes here).
fn tables() -> Vec<usize> {
    (0..TABLES.len())
        .filter(|t| !TABLES[*t].offline_delete)
        .collect()
}

async fn render(
    state: &AppState,
    v: Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let pool = state.pool.clone();
    let list = super::block(move || {
        let mut conn = pool.get()?;
        let mut out = Vec::new();
        // How many rows each delete took under each parent, read once per delete and
        // child table (one delete often shows several rows here).
        let mut under: HashMap<(usize, i64), HashMap<String, usize>> = HashMap::new();
        for d in rows::recently_deleted(&mut conn, &tables(), SHOWN)? {
            let def = &TABLES[d.table];
            let mut with = 0;
            for (child, fk) in def.children() {
                let counts = match under.entry((child, d.change_id)) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => {
                        let mut counts = HashMap::new();
                        for kid in rows::deleted_together(&mut conn, child, d.change_id)? {
                            if let Some(parent) = kid.parent(fk) {
                                *counts.entry(parent.to_owned()).or_insert(0) += 1;
                            }
                        }
                        e.insert(counts)
                    }
                };
                with += counts.get(&d.tombstone.id).copied().unwrap_or(0);
            }
            out.push(DeletedRow {
                table: def.name,
                noun: def.noun,
                label: d
                    .tombstone
                    .values
                    .as_ref()
                    .map_or_else(|| d.tombstone.id.clone(), |v| row_label(d.table, v)),
                restorable: d.tombstone.values.is_some(),
                id: d.tombstone.id,
                when: timestamp(d.tombstone.last_updated),
                by: d.tombstone.changed_by.unwrap_or_default(),
                with,
            });
        }
        Ok::<_, DbError>(out)
    })
    .await??;
    let page = DeletedPage {
        layout: v.layout,
        rows: list,
        notice,
        error,
    };
    Ok(super::page_with_status(status, page.render()?))
}

/// `GET /deleted`.
pub async fn list(state: Data<AppState>, v: Viewer) -> Result<HttpResponse, PageError> {
    let v = v.administrator("Recently deleted records are")?;
    render(&state, v, StatusCode::OK, None, None).await
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /deleted/{table}/{id}/restore`.
pub async fn restore(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
    Checked(_form): Checked<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let v = v.administrator("Recently deleted records are")?;
    let (name, id) = path.into_inner();
    let table = table_by_name(&name)
        .filter(|t| tables().contains(t))
        .ok_or_else(PageError::not_found)?;
    let pool = state.pool.clone();
    let actor = v.user.name.clone();
    let row_id = id.clone();
    let outcome = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        Ok::<_, DbError>(editing::restore(&mut conn, table, &row_id, &actor))
    })
    .await??;
    match outcome {
        Ok(n) => {
            tracing::info!(by = %Escaped(&v.user.name), table = name, id = %Escaped(&id), rows = n, "restored");
            Ok(see_other(&format!("/{}/{id}", TABLES[table].name)))
        }
        Err(EditError::NotFound) => Err(PageError::not_found()),
        Err(EditError::Forbidden(why)) => {
            render(&state, v, StatusCode::CONFLICT, None, Some(why)).await
        }
        Err(EditError::Db(e)) => Err(e.into()),
        Err(e) => Err(PageError::internal(e)),
    }
}

crate::csrf_field!(CsrfForm);
