//! The stylesheet and the script, compiled in: the pages need no files beside the binary.

use actix_web::HttpResponse;

const STYLESHEET: &str = include_str!("../../static/offsync.css");
const SCRIPT: &str = include_str!("../../static/offsync.js");

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(STYLESHEET)
}

pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(SCRIPT)
}
