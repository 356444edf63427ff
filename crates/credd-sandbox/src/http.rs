//! Small HTTP plumbing shared by the services: the parsed request every
//! handler receives, and response builders for JSON, XML and redirects.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::Full;

/// The response type every handler produces.
pub type Response = http::Response<Full<Bytes>>;

/// A request with its body read and its query string decoded, so handlers
/// stay synchronous and easy to test.
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// The first query parameter called `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

pub fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml"),
    );
    response
}

pub fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A 302 to `location`; an invalid location (it was built from client
/// input) becomes a 400 instead of a panic.
pub fn redirect(location: &str) -> Response {
    match http::HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = http::Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::FOUND;
            response.headers_mut().insert(http::header::LOCATION, value);
            response
        }
        Err(_) => json_response(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "message": "invalid redirect_uri" }),
        ),
    }
}

/// Escapes text for XML element content.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
