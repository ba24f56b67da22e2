//! The web edge's errors: [`ApiError`] renders the device API's `<error>` bodies,
//! [`PageError`] an HTML error page. Both hide database details from the client and log
//! them instead.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use crate::db::DbError;
use crate::editing::EditError;
use crate::sync::SyncError;
use crate::sync::code::ErrorCode;
use crate::sync::resolve::ResolveError;

/// An answer of the device API other than success.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub table: Option<String>,
    pub id: Option<String>,
    pub field: Option<String>,
    pub message: String,
    /// For a 503: when to try again, in seconds (the `Retry-After` header).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            table: None,
            id: None,
            field: None,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 503: the server is busy or its database unavailable; come back in `seconds`.
    pub fn busy(message: impl Into<String>, seconds: u64) -> Self {
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                message,
            )
        }
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "a valid device token is required: Authorization: Bearer TOKEN",
        )
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %crate::logsafe::Escaped(&what.to_string()), "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "the server failed to handle the request; it has been logged",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        use quick_xml::escape::escape;
        let mut body = format!("<error code=\"{}\"", self.code);
        for (name, value) in [
            ("table", &self.table),
            ("id", &self.id),
            ("field", &self.field),
        ] {
            if let Some(v) = value {
                body.push_str(&format!(" {name}=\"{}\"", escape(v.as_str())));
            }
        }
        body.push_str(&format!(">{}</error>", escape(self.message.as_str())));
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()));
        }
        response.content_type(ContentType::xml()).body(body)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if let Some(fault) = e.fault() {
            tracing::warn!(error = %crate::logsafe::Escaped(&e.to_string()), "database fault");
            crate::telemetry::database_fault(&e);
            ApiError::busy(fault, e.retry_after_seconds())
        } else {
            ApiError::internal(e)
        }
    }
}

impl From<SyncError> for ApiError {
    fn from(e: SyncError) -> Self {
        let message = e.to_string();
        match e {
            SyncError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
            }
            SyncError::State { code, .. } => ApiError::new(StatusCode::CONFLICT, code, message),
            SyncError::Malformed { code, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, code, message)
            }
            SyncError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, message)
            }
            SyncError::Rejected {
                code,
                table,
                id,
                field,
                ..
            } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code,
                table,
                id,
                field,
                message,
                retry_after: None,
            },
            SyncError::Db(db) => db.into(),
            SyncError::Io(io) => ApiError::internal(io),
            SyncError::Unordered => ApiError::internal("an unsorted upload escaped its sorting"),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// An HTML page's failure.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
    /// Set for a redirect instead of a page (to the sign-in form).
    pub location: Option<&'static str>,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        PageError {
            status,
            message: message.into(),
            location: None,
        }
    }

    /// Not signed in: off to the sign-in page.
    pub fn sign_in() -> Self {
        PageError {
            status: StatusCode::SEE_OTHER,
            message: "Please sign in.".into(),
            location: Some("/login"),
        }
    }

    pub fn not_found() -> Self {
        PageError::new(StatusCode::NOT_FOUND, "There is nothing here.")
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %crate::logsafe::Escaped(&what.to_string()), "internal error");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on the server. It has been logged; please try again.",
        )
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(location) = self.location {
            return HttpResponse::build(self.status)
                .insert_header((actix_web::http::header::LOCATION, location))
                .finish();
        }
        let page = ErrorPage {
            status: self.status.as_u16(),
            title: self.status.canonical_reason().unwrap_or("Error"),
            message: &self.message,
        };
        let body = page
            .render()
            .unwrap_or_else(|_| "<!doctype html><title>Error</title>Error".to_owned());
        HttpResponse::build(self.status)
            .content_type(ContentType::html())
            .body(body)
    }
}

impl From<DbError> for PageError {
    fn from(e: DbError) -> Self {
        if let Some(fault) = e.fault() {
            tracing::warn!(error = %crate::logsafe::Escaped(&e.to_string()), "database fault");
            crate::telemetry::database_fault(&e);
            let mut message = fault.to_owned();
            message[..1].make_ascii_uppercase();
            PageError::new(StatusCode::SERVICE_UNAVAILABLE, format!("{message}."))
        } else {
            PageError::internal(e)
        }
    }
}

impl From<ResolveError> for PageError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound => PageError::not_found(),
            ResolveError::AlreadyResolved => PageError::new(StatusCode::CONFLICT, e.to_string()),
            ResolveError::Invalid(m) | ResolveError::Impossible(m) => {
                PageError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
            }
            ResolveError::Db(db) => db.into(),
        }
    }
}

impl From<EditError> for PageError {
    fn from(e: EditError) -> Self {
        match e {
            EditError::NotFound => PageError::not_found(),
            EditError::Forbidden(m) => PageError::new(StatusCode::FORBIDDEN, m),
            EditError::Db(db) => db.into(),
            other => PageError::internal(other),
        }
    }
}

impl From<actix_web::error::BlockingError> for PageError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        PageError::internal(e)
    }
}

impl From<askama::Error> for PageError {
    fn from(e: askama::Error) -> Self {
        PageError::internal(e)
    }
}
