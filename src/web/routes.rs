//! Every route of the main site and of the laptop copy, in one place: what each address
//! answers, and which of the two serves it. The checks every request meets on its way in
//! (the laptop's guard, the page rules, the request id) are the middlewares in
//! [`super::serve`]; a handler's own way in is its extractors (the signed-in
//! [`super::auth::Viewer`], the device's `BearerToken`).

use actix_web::http::StatusCode;
use actix_web::web;

use super::error::ApiError;
use super::{
    api, assets, auth, conflicts, connect, deleted, devices, fleet, healthz, offline, records,
    users,
};
use crate::domain::TABLES;
use crate::sync::code::ErrorCode;

/// The main site: the device API, sign-in, the pages, and the administrators' pages.
pub fn main_site(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Malformed,
                    format!("a bad query string: {e}"),
                )
                .into()
            }))
            .route("/sync/sessions", web::post().to(api::open_session))
            .route("/sync/sessions/{id}/upload", web::post().to(api::upload))
            .route(
                "/sync/sessions/{id}/changes",
                web::get().to(api::download_changes),
            )
            .route(
                "/sync/sessions/{id}/complete",
                web::post().to(api::complete_session),
            )
            .app_data(
                web::FormConfig::default()
                    .limit(16 * 1024)
                    .error_handler(|e, _| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            ErrorCode::Malformed,
                            format!("a bad form: {e}"),
                        )
                        .into()
                    }),
            )
            .route("/sync/state", web::get().to(api::sync_state))
            .route("/sync/conflicts", web::get().to(api::open_conflicts))
            .route("/devices", web::post().to(api::enrol))
            .default_service(web::to(api::api_not_found)),
    )
    .route("/", web::get().to(auth::home))
    .route("/login", web::get().to(auth::login_form))
    .route("/login", web::post().to(auth::login))
    .route("/logout", web::post().to(auth::logout))
    .route(
        "/logout/everywhere",
        web::post().to(auth::logout_everywhere),
    )
    // Fixed paths before /conflicts/{id}, which would take them as ids.
    .route("/conflicts", web::get().to(conflicts::list))
    .route("/resolutions", web::get().to(conflicts::history))
    .route("/conflicts/bulk", web::post().to(conflicts::resolve_bulk))
    .route("/conflicts/{id}", web::get().to(conflicts::show_conflict))
    .route(
        "/conflicts/{id}",
        web::post().to(conflicts::resolve_conflict),
    )
    .route("/devices", web::get().to(devices::list))
    .route("/devices", web::post().to(devices::register))
    .route("/devices/{id}", web::get().to(devices::show))
    .route("/devices/{id}/rename", web::post().to(devices::rename))
    .route("/devices/{id}/revoke", web::post().to(devices::revoke))
    .route("/fleet", web::get().to(fleet::page))
    .route("/metrics", web::get().to(fleet::metrics))
    .route("/users", web::get().to(users::list))
    .route("/users/{id}/{action}", web::post().to(users::act))
    .route("/deleted", web::get().to(deleted::list))
    .route(
        "/deleted/{table}/{id}/restore",
        web::post().to(deleted::restore),
    );
    shared(cfg);
}

/// The laptop copy: the same record pages, no sign-in, no device API; "Sync now", its own
/// conflicts and the changes the server did not take.
pub fn laptop(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(offline::home))
        .route("/connect", web::get().to(connect::form))
        .route("/connect", web::post().to(connect::connect))
        .route("/disconnect", web::post().to(connect::disconnect))
        .route("/sync", web::post().to(offline::sync_now))
        .route("/sync/bar", web::get().to(offline::bar))
        .route("/changes/discard", web::post().to(offline::discard_change))
        .route("/conflicts", web::get().to(offline::conflicts));
    shared(cfg);
}

/// What both serve: static files, the health check and the record pages.
fn shared(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/offsync.css", web::get().to(assets::stylesheet))
        .route("/static/offsync.js", web::get().to(assets::script))
        .route("/healthz", web::get().to(healthz));
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    let table = format!("/{{table:{}}}", names.join("|"));
    cfg.route(&table, web::get().to(records::list))
        .route(&format!("{table}/new"), web::get().to(records::new_form))
        .route(&format!("{table}/new"), web::post().to(records::create))
        .route(&format!("{table}/{{id}}"), web::get().to(records::show))
        .route(
            &format!("{table}/{{id}}/edit"),
            web::get().to(records::edit_form),
        )
        .route(
            &format!("{table}/{{id}}/edit"),
            web::post().to(records::update),
        )
        .route(
            &format!("{table}/{{id}}/delete"),
            web::get().to(records::delete_form),
        )
        .route(
            &format!("{table}/{{id}}/delete"),
            web::post().to(records::delete),
        );
}
