//! The laptop copy answers only itself. It has no sign-in of its own (the laptop's owner is
//! the person at it), so what keeps another web page from reading or driving it is here:
//! a request must name the copy's own loopback address in `Host` (a page that rebinds its
//! own host name to 127.0.0.1 still sends its own name: 421), and a state-changing request
//! must come from one of the copy's own pages (`Origin`, else `Referer`: 403). Bound to
//! another address than loopback, every request needs the copy's password (HTTP Basic).

use std::net::SocketAddr;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpResponse, http::header::ContentType};
use base64::Engine;
use futures_util::future::LocalBoxFuture;

use crate::logsafe::Escaped;

/// Who may talk to the laptop copy.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The `Host` values that are the copy itself ("127.0.0.1:8081", "localhost:8081").
    hosts: Vec<String>,
    /// Needed by every request when the copy listens beyond loopback.
    password: Option<String>,
}

impl Guard {
    /// The guard for a copy listening on `address`.
    pub fn for_address(address: SocketAddr, password: Option<String>) -> Guard {
        let port = address.port();
        let mut hosts = vec![match address {
            SocketAddr::V4(a) => format!("{}:{port}", a.ip()),
            SocketAddr::V6(a) => format!("[{}]:{port}", a.ip()),
        }];
        if address.ip().is_loopback() {
            hosts.push(format!("localhost:{port}"));
        }
        Guard { hosts, password }
    }

    /// Whether an address may be listened on without a password: loopback only.
    pub fn needs_password(address: SocketAddr) -> bool {
        !address.ip().is_loopback()
    }

    /// Why this request is refused, if it is.
    fn refusal(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        let headers = req.headers();
        if let Some(password) = &self.password {
            // Any Host: the password is what stands between the copy and the network, and
            // a browser sends it to no other origin.
            if !basic_password_matches(headers.get(header::AUTHORIZATION), password) {
                return Some(
                    HttpResponse::Unauthorized()
                        .insert_header((
                            header::WWW_AUTHENTICATE,
                            "Basic realm=\"offsync laptop copy\", charset=\"UTF-8\"",
                        ))
                        .content_type(ContentType::plaintext())
                        .body("This laptop copy of offsync needs its password.\n"),
                );
            }
        } else {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            if !host.is_some_and(|h| self.hosts.iter().any(|own| own.eq_ignore_ascii_case(h))) {
                return Some(
                    HttpResponse::build(StatusCode::MISDIRECTED_REQUEST)
                        .content_type(ContentType::plaintext())
                        .body(format!(
                            "This is the laptop copy of offsync; it answers only at http://{}/\n",
                            self.hosts[0]
                        )),
                );
            }
        }
        let safe = matches!(
            *req.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if !safe && !self.came_from_own_page(req) {
            return Some(
                HttpResponse::Forbidden()
                    .content_type(ContentType::plaintext())
                    .body("This request did not come from the laptop copy's own pages.\n"),
            );
        }
        None
    }

    /// A state-changing request names one of the copy's own origins: in `Origin`, which
    /// browsers send with every form post, else at the start of `Referer`.
    fn came_from_own_page(&self, req: &ServiceRequest) -> bool {
        let headers = req.headers();
        let own = |origin: &str| {
            let Some(host) = origin.strip_prefix("http://") else {
                return false;
            };
            match &self.password {
                // Beyond loopback the copy's own origin is whatever Host the request used.
                Some(_) => headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .is_some_and(|h| h.eq_ignore_ascii_case(host)),
                None => self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)),
            }
        };
        if let Some(origin) = headers.get(header::ORIGIN) {
            return origin.to_str().is_ok_and(own);
        }
        headers
            .get(header::REFERER)
            .and_then(|r| r.to_str().ok())
            .and_then(|r| {
                let rest = r.strip_prefix("http://")?;
                let end = rest.find('/').unwrap_or(rest.len());
                Some(format!("http://{}", &rest[..end]))
            })
            .is_some_and(|origin| own(&origin))
    }
}

fn basic_password_matches(value: Option<&header::HeaderValue>, password: &str) -> bool {
    let Some(encoded) = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    // "user:password"; the user name is not asked for.
    let given = decoded
        .iter()
        .position(|b| *b == b':')
        .map_or(&decoded[..], |i| &decoded[i + 1..]);
    super::auth::constant_time_eq(given, password.as_bytes())
}

/// Middleware: refuses what the laptop copy's [`Guard`] refuses, before any handler runs
/// (the main site has none).
pub fn guard<S, B>(
    guard: Option<&Guard>,
    req: ServiceRequest,
    service: &S,
) -> LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: 'static,
{
    use futures_util::FutureExt;
    if let Some(refused) = guard.and_then(|g| g.refusal(&req)) {
        tracing::warn!(
            target: "offsync::http",
            method = %req.method(),
            path = %Escaped(req.path()),
            host = %Escaped(
                req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("")
            ),
            status = refused.status().as_u16(),
            "refused by the laptop copy's guard"
        );
        let response = req.into_response(refused).map_into_right_body();
        return std::future::ready(Ok(response)).boxed_local();
    }
    let call = service.call(req);
    async move { call.await.map(ServiceResponse::map_into_left_body) }.boxed_local()
}
