//! The response shapes every listener writes: the body type, a JSON answer
//! with exactly `Content-Type: application/json`, and a plain-text answer
//! (IMDS documents and refusals, the login callback's pages). Building
//! blocks only: which status and which words is [`crate::api_error`]'s and
//! the handlers' business.

use ::http::{header, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use http_body_util::Full;

/// Every answer is small and whole, so one buffer and no streaming.
pub type Body = Full<Bytes>;

/// A JSON response with exactly `Content-Type: application/json`.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, body, "application/json")
}

/// A `text/plain` response, as IMDS answers everything.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, body, "text/plain")
}

/// A `text/html; charset=utf-8` page, for a browser.
pub fn html(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    with_type(status, body, "text/html; charset=utf-8")
}

fn with_type(status: StatusCode, body: impl Into<Bytes>, ct: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}
