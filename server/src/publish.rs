//! Publishing: `POST /publish` with `{"type"?: string, "data": any}` or an array of
//! those. WebSocket clients publish with the same rules through [`validate`].

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::Value;

use crate::app::AppState;
use crate::config::{Config, PUBLISH_BATCH_MAX};
use crate::error::ApiError;
use crate::log::NewMessage;

/// Types the server uses for its own notices; a message may not pretend to be one.
const RESERVED_TYPES: [&str; 6] = ["gap", "reset", "error", "pong", "published", "shutdown"];
const MAX_TYPE_LEN: usize = 64;

/// `POST /publish` → `201 {"id": N}`, or for a batch `201 {"ids": [...]}`.
pub async fn publish(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if !authorized(&app.config, bearer_token(&headers)) {
        return Err(ApiError::unauthorized());
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(format!(
            "the request body is over {} bytes; a single message may carry {} bytes of data",
            max_body_bytes(&app.config),
            app.config.max_message_bytes
        )),
        _ => ApiError::bad_request("invalid_body", rejection.body_text()),
    })?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("empty_batch", "a batch must hold at least one message"));
            }
            if items.len() > PUBLISH_BATCH_MAX {
                return Err(ApiError::too_large(format!(
                    "a batch holds at most {PUBLISH_BATCH_MAX} messages, got {}",
                    items.len()
                )));
            }
            // Validate the whole batch before appending any of it: all or nothing.
            let messages = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    validate(item, &app.config).map_err(|mut e| {
                        e.message = format!("message {i} of the batch: {}", e.message);
                        e
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ids = app.append(messages);
            Ok((StatusCode::CREATED, Json(serde_json::json!({ "ids": ids })).into_response()).into_response())
        }
        item => {
            let message = validate(item, &app.config)?;
            let ids = app.append(vec![message]);
            Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": ids[0] }))).into_response())
        }
    }
}

/// Checks one `{"type"?: string, "data": any}` and turns it into a message to append.
pub fn validate(item: Value, config: &Config) -> Result<NewMessage, ApiError> {
    let Value::Object(mut fields) = item else {
        return Err(ApiError::bad_request(
            "invalid_message",
            "a message is a JSON object {\"type\"?: string, \"data\": any}",
        ));
    };
    let data = fields
        .remove("data")
        .ok_or_else(|| ApiError::bad_request("missing_data", "a message needs a `data` field (any JSON)"))?;
    let kind = match fields.remove("type") {
        None => "update".to_string(),
        Some(Value::String(kind)) => {
            check_type(&kind)?;
            kind
        }
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_type",
                format!("`type` must be a string, got {other}"),
            ))
        }
    };
    // The encoded size is what every subscriber receives, so that is what is limited.
    let size = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > config.max_message_bytes {
        return Err(ApiError::too_large(format!(
            "`data` is {size} bytes encoded; the limit is {} (--max-message-bytes)",
            config.max_message_bytes
        )));
    }
    Ok(NewMessage { kind, data })
}

/// A type ends up in an SSE `event:` line, so it must be one short token.
fn check_type(kind: &str) -> Result<(), ApiError> {
    let valid_chars = kind.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if kind.is_empty() || kind.len() > MAX_TYPE_LEN || !valid_chars {
        return Err(ApiError::bad_request(
            "invalid_type",
            format!("`type` must be 1 to {MAX_TYPE_LEN} characters of A-Z a-z 0-9 _ - . :, got {kind:?}"),
        ));
    }
    if RESERVED_TYPES.contains(&kind) {
        return Err(ApiError::bad_request(
            "invalid_type",
            format!("`type` {kind:?} is reserved for the server's own notices"),
        ));
    }
    Ok(())
}

/// Largest `POST /publish` body: room for a batch of messages near the size limit.
pub fn max_body_bytes(config: &Config) -> usize {
    config.max_message_bytes.saturating_mul(16).max(1024 * 1024)
}

/// Whether a request may publish: always when no token is configured.
pub fn authorized(config: &Config, presented: Option<&str>) -> bool {
    match &config.publish_token {
        None => true,
        Some(expected) => presented == Some(expected.as_str()),
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(item: Value) -> &'static str {
        validate(item, &Config::default()).unwrap_err().code
    }

    #[test]
    fn a_message_needs_data_and_defaults_its_type() {
        let message = validate(json!({"data": {"x": 1}}), &Config::default()).unwrap();
        assert_eq!(message.kind, "update");
        assert_eq!(code(json!({"type": "chat"})), "missing_data");
        assert_eq!(code(json!([1])), "invalid_message");
    }

    #[test]
    fn types_that_would_break_sse_framing_are_refused() {
        assert_eq!(code(json!({"type": "a\nb", "data": 1})), "invalid_type");
        assert_eq!(code(json!({"type": "", "data": 1})), "invalid_type");
        assert_eq!(code(json!({"type": 7, "data": 1})), "invalid_type");
        assert_eq!(code(json!({"type": "gap", "data": 1})), "invalid_type");
        assert!(validate(json!({"type": "chat.message", "data": 1}), &Config::default()).is_ok());
    }

    #[test]
    fn data_over_the_limit_is_too_large() {
        let config = Config { max_message_bytes: 10, ..Config::default() };
        let err = validate(json!({"data": "0123456789"}), &config).unwrap_err(); // 12 bytes encoded
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
