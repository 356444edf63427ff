//! The HTTP server: the accept loop and per-connection tasks (all spawned on
//! the handle's `TaskTracker` and stopped by its `CancellationToken`), and
//! the dispatcher that routes each request to a service after counting it
//! and applying injected faults and latency.

use crate::error::{ApiError, OidcError};
use crate::fault::FaultKind;
use crate::http::{Req, Response};
use crate::state::{random_upper, Shared};
use crate::{control, federation, oidc, portal, signin, sts};
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

/// The largest request body read; real requests are a few kilobytes.
const MAX_BODY: usize = 1 << 20;

pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let span = tracing::debug_span!("sandbox_connection", %peer);
                tracker.spawn(
                    serve_connection(stream, shared.clone(), cancel.clone()).instrument(span),
                );
            }
            Err(error) => {
                // Running out of file descriptors is the usual cause; pause
                // instead of spinning.
                tracing::warn!(%error, "sandbox accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let service_cancel = cancel.clone();
    let service = service_fn(move |req| handle(shared.clone(), service_cancel.clone(), req));
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "sandbox connection ended with an error");
                }
                break;
            }
            () = cancel.cancelled(), if !shutting_down => {
                // Let the request in flight finish, then close.
                conn.as_mut().graceful_shutdown();
                shutting_down = true;
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    cancel: CancellationToken,
    request: http::Request<Incoming>,
) -> Result<Response, Infallible> {
    let request_id = format!(
        "{}-{}-{}",
        random_upper(8).to_lowercase(),
        random_upper(4).to_lowercase(),
        random_upper(12).to_lowercase()
    );
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query,
        headers: parts.headers,
        body,
    };
    let mut response = match dispatch(&shared, &cancel, &req, &request_id).await {
        Ok(response) => response,
        Err(error) => {
            // The error names shapes and codes only, never a token.
            tracing::debug!(%error, path = %req.path, "sandbox answered with an error");
            error.into_response(&request_id)
        }
    };
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    tracing::debug!(method = %req.method, path = %req.path, status = response.status().as_u16(), "sandbox request");
    Ok(response)
}

/// Which service a request belongs to, for the format of injected errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Oidc,
    Portal,
    Signin,
    /// The browser-facing pages (console federation): plain JSON errors.
    Page,
    Sts,
}

impl Service {
    fn error(self, status: u16, code: &str, message: &str) -> ApiError {
        match self {
            Service::Oidc => ApiError::oidc_custom(status, code, message),
            Service::Portal => ApiError::portal(status, code, message),
            Service::Signin => ApiError::signin_custom(status, code, message),
            Service::Page => ApiError::plain(status, format!("{code}: {message}")),
            Service::Sts => ApiError::sts(status, code, message),
        }
    }

    fn throttle(self) -> ApiError {
        match self {
            Service::Oidc => ApiError::oidc(OidcError::SlowDown, "Rate exceeded"),
            Service::Portal => ApiError::portal(429, "TooManyRequestsException", "Rate exceeded"),
            Service::Signin => ApiError::Signin {
                status: 429,
                shape: "TooManyRequestsError".to_owned(),
                error: "rate_exceeded".to_owned(),
                message: "Rate exceeded".to_owned(),
            },
            Service::Page => ApiError::plain(429, "Rate exceeded"),
            Service::Sts => ApiError::sts(400, "Throttling", "Rate exceeded"),
        }
    }
}

async fn dispatch(
    shared: &Shared,
    cancel: &CancellationToken,
    req: &Req,
    request_id: &str,
) -> Result<Response, ApiError> {
    if req.path.starts_with("/_sandbox/") {
        return control::handle(shared, req);
    }
    let sts_params = (req.path == "/").then(|| sts::params(req));
    let sts_action = sts_params.as_ref().and_then(|p| {
        p.iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
    });
    let (service, operation): (Service, String) = match (&req.method, req.path.as_str()) {
        (&Method::POST, "/client/register") => (Service::Oidc, "RegisterClient".into()),
        (&Method::POST, "/device_authorization") => {
            (Service::Oidc, "StartDeviceAuthorization".into())
        }
        (&Method::POST, "/token") => (Service::Oidc, "CreateToken".into()),
        (&Method::GET, "/authorize") => (Service::Oidc, "Authorize".into()),
        (&Method::GET, "/device") => (Service::Oidc, "VerifyDevice".into()),
        (&Method::GET, "/federation/credentials") => (Service::Portal, "GetRoleCredentials".into()),
        (&Method::GET, "/assignment/accounts") => (Service::Portal, "ListAccounts".into()),
        (&Method::GET, "/assignment/roles") => (Service::Portal, "ListAccountRoles".into()),
        (&Method::POST, "/logout") => (Service::Portal, "Logout".into()),
        (&Method::GET, "/v1/authorize") => (Service::Page, "SignInAuthorize".into()),
        (&Method::GET, "/v1/sessions/confirmation") => (Service::Page, "SignInConfirmation".into()),
        (&Method::POST, "/v1/token") => (Service::Signin, "CreateOAuth2Token".into()),
        (&Method::GET, "/federation") => match req.query_param("Action") {
            Some("getSigninToken") => (Service::Page, "GetSigninToken".into()),
            Some("login") => (Service::Page, "FederationLogin".into()),
            _ => {
                return Err(ApiError::plain(
                    400,
                    "Action must be getSigninToken or login",
                ))
            }
        },
        (&Method::POST | &Method::GET, "/") => match sts_action {
            Some(action) => (Service::Sts, action),
            None => return Err(ApiError::sts(400, "MissingAction", "Missing Action")),
        },
        _ => {
            return Err(ApiError::plain(
                404,
                format!("the sandbox has no {} {}", req.method, req.path),
            ))
        }
    };
    let detail = match operation.as_str() {
        "CreateToken" => oidc::grant_label(req),
        "CreateOAuth2Token" => signin::grant_label(req),
        _ => None,
    };

    let (fault, latency) = {
        let mut state = shared.lock();
        state.count(&operation);
        if let Some(detail) = detail {
            state.count(detail);
        }
        (state.take_fault(&operation, detail), state.config.latency)
    };
    sleep_unless_cancelled(latency, cancel).await;
    match fault {
        None => {}
        Some(FaultKind::Latency(delay)) => sleep_unless_cancelled(delay, cancel).await,
        Some(FaultKind::Throttle) => return Err(service.throttle()),
        Some(FaultKind::Error {
            status,
            code,
            message,
        }) => return Err(service.error(status, &code, &message)),
    }

    match operation.as_str() {
        "RegisterClient" => oidc::register_client(shared, req),
        "StartDeviceAuthorization" => oidc::start_device_authorization(shared, req),
        "CreateToken" => oidc::create_token(shared, req),
        "Authorize" => oidc::authorize(shared, req, cancel).await,
        "VerifyDevice" => oidc::device_page(shared, req),
        "GetRoleCredentials" => portal::get_role_credentials(shared, req),
        "ListAccounts" => portal::list_accounts(shared, req),
        "ListAccountRoles" => portal::list_account_roles(shared, req),
        "Logout" => portal::logout(shared, req),
        "SignInAuthorize" => signin::authorize(shared, req, cancel).await,
        "SignInConfirmation" => signin::confirmation(req),
        "CreateOAuth2Token" => signin::create_token(shared, req),
        "GetSigninToken" => federation::get_signin_token(shared, req),
        "FederationLogin" => federation::login(shared, req),
        action => sts::handle(shared, req, action, request_id),
    }
}

async fn sleep_unless_cancelled(delay: Duration, cancel: &CancellationToken) {
    if delay.is_zero() {
        return;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = cancel.cancelled() => {}
    }
}
