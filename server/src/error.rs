//! Errors a client can cause, each a 4xx/5xx with a JSON body saying what was wrong:
//! `{"error": "<code>", "message": "<what was wrong>"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::config::RETRY_AFTER_SECONDS;

/// A request the server refuses. The `code` is stable (tests and clients match on it);
/// the message is for people.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, e.g. `invalid_since`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A 400 Bad Request.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code, message: message.into() }
    }

    /// A 401: publishing needs the token the server was started with.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "publishing requires `Authorization: Bearer <token>` (WebSocket: `?token=`)".into(),
        }
    }

    /// A 413: a message or a publish body is larger than allowed.
    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", message: message.into() }
    }

    /// A 503: the server is serving as many subscribers as it was told to.
    pub fn too_many_connections(limit: usize) -> Self {
        Self::unavailable(
            "too_many_connections",
            format!("the server is at its limit of {limit} subscribers (--max-connections); retry later"),
        )
    }

    /// A 503 with `code`; every 503 also carries `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code, message: message.into() }
    }

    /// A 404 for any path the server does not have.
    pub fn not_found(path: &str) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!(
                "no such path: {path} (try /poll, /long-poll, /sse, /ws, /publish, /status, /metrics)"
            ),
        }
    }

    /// A 405 for a known path with the wrong method.
    pub fn method_not_allowed(allowed: &str) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: format!("this path accepts {allowed} only"),
        }
    }

    /// The JSON body, also used for WebSocket error frames.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code, "message": self.message })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // RFC 9110 §10.2.3: tells a well-behaved client when to come back.
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}
