//! Publishing: `POST /publish` with `{"type"?: string, "data": any}` or an array of
//! those. WebSocket clients publish with the same rules through [`validate_fields`].
//!
//! The order of checks is the cheap-first order an attacker cannot exploit: the token
//! (before a byte of the body is read), the content type, then the body, read within
//! `--body-timeout` and `--max-message-bytes` × 16.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{Config, PUBLISH_BATCH_MAX};
use crate::error::ApiError;
use crate::message::{compact_json, NewMessage};
use crate::state::AppState;
use pushlab_protocol::notice::RESERVED_TYPES;
use pushlab_protocol::ws::Field;

const MAX_TYPE_LEN: usize = 64;

/// `POST /publish` → `201 {"id": N}`, or for a batch `201 {"ids": [...]}`.
pub async fn publish(
    State(app): State<Arc<AppState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !authorized(&app.config, &bearer_tokens(&headers)) {
        return Err(ApiError::unauthorized());
    }
    if app.config.publish_token.is_none() && is_cross_site(&headers, &uri) {
        return Err(ApiError {
            status: StatusCode::FORBIDDEN,
            code: "cross_origin_publish",
            message: "a page of another origin may publish only to a server started with --publish-token"
                .into(),
        });
    }
    // Requiring JSON makes a cross-site publish need a CORS preflight: a page can send
    // `text/plain` to any origin without asking, `application/json` it cannot.
    if !is_json(&headers) {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "a publish body must be sent with `Content-Type: application/json`".into(),
        });
    }
    let limit = max_body_bytes(&app.config);
    let too_large = || {
        ApiError::too_large(format!(
            "the request body is over {limit} bytes; a single message may carry {} bytes of data",
            app.config.max_message_bytes
        ))
    };
    // A declared length over the limit is refused before waiting for any of it.
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let read = http_body_util::Limited::new(body, limit).collect();
    let body = match tokio::time::timeout(app.config.body_timeout, read).await {
        Err(_) => {
            return Err(ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                code: "body_timeout",
                message: format!(
                    "the request body did not arrive within {:?} (--body-timeout)",
                    app.config.body_timeout
                ),
            })
        }
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(error)) => {
            return Err(ApiError::bad_request("invalid_body", format!("reading the body: {error}")))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let value: &RawValue = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))?;
    if value.get().starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(value.get())
            .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))?;
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
        return Ok((StatusCode::CREATED, Json(serde_json::json!({ "ids": ids }))).into_response());
    }
    let message = validate(value, &app.config)?;
    let ids = app.append(vec![message]);
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": ids[0] }))).into_response())
}

/// Whether a browser sent this request from a page of another origin: its `Origin`
/// names another host than the request's `Host`. Without a token, any page the user
/// opens could otherwise publish to a lab server on their machine.
pub fn is_cross_site(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    // HTTP/2 names the host in `:authority` (the URI's), not in a `Host` header.
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        .unwrap_or("");
    // Every `Origin` must be this server's: a browser sends one, so a request with a
    // second one is not a browser's to trust.
    headers.get_all(header::ORIGIN).iter().any(|origin| {
        let authority = origin.to_str().ok().and_then(|o| o.split_once("://")).map_or("", |(_, rest)| rest);
        !authority.eq_ignore_ascii_case(host)
    })
}

/// `Content-Type: application/json`, with or without parameters such as `charset`.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Checks one `{"type"?: string, "data": any}` and turns it into a message to append.
pub fn validate(item: &RawValue, config: &Config) -> Result<NewMessage, ApiError> {
    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(borrow, default, rename = "type")]
        kind: Field<'a>,
        #[serde(borrow, default)]
        data: Field<'a>,
    }
    let not_an_object = || {
        ApiError::bad_request(
            "invalid_message",
            "a message is a JSON object {\"type\"?: string, \"data\": any}",
        )
    };
    if !item.get().starts_with('{') {
        return Err(not_an_object());
    }
    let item: Item = serde_json::from_str(item.get()).map_err(|_| not_an_object())?;
    validate_fields(item.kind.0, item.data.0, config)
}

/// The checks of [`validate`] on a message's two fields, as found in a publish body or
/// a WebSocket publish frame.
pub fn validate_fields(
    kind: Option<&RawValue>,
    data: Option<&RawValue>,
    config: &Config,
) -> Result<NewMessage, ApiError> {
    let data = data
        .ok_or_else(|| ApiError::bad_request("missing_data", "a message needs a `data` field (any JSON)"))?;
    let kind = match kind {
        None => "update".to_string(),
        Some(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(kind) => {
                check_type(&kind)?;
                kind
            }
            Err(_) => {
                return Err(ApiError::bad_request(
                    "invalid_type",
                    format!("`type` must be a string, got {}", raw.get()),
                ))
            }
        },
    };
    // What every subscriber receives is the compacted text, so that is what is limited.
    let data = compact_json(data);
    let size = data.get().len();
    if size > config.max_message_bytes {
        return Err(ApiError::too_large(format!(
            "`data` is {size} bytes; the limit is {} (--max-message-bytes)",
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

/// Whether a request may publish: always when no token is configured; otherwise when
/// any token it presents is the right one (a wrong `?token=` does not cancel a right
/// `Authorization` header). Compared in constant time, so the time of a refusal says
/// nothing of how much of a guess was right.
pub fn authorized(config: &Config, presented: &[Option<&str>]) -> bool {
    match &config.publish_token {
        None => true,
        Some(expected) => {
            presented.iter().flatten().any(|token| constant_time_eq(token.as_bytes(), expected.as_bytes()))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length of the token is not secret; its bytes are.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The tokens of every `Authorization: Bearer <token>` header (a request may repeat the
/// header; any right token wins); the scheme is case-insensitive (RFC 9110 §11.1).
pub fn bearer_tokens(headers: &HeaderMap) -> Vec<Option<&str>> {
    headers.get_all(header::AUTHORIZATION).iter().map(bearer_token).collect()
}

/// The token of one `Authorization: Bearer <token>` value.
fn bearer_token(value: &axum::http::HeaderValue) -> Option<&str> {
    let value = value.to_str().ok()?.trim_start();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn raw(item: Value) -> Box<RawValue> {
        RawValue::from_string(item.to_string()).unwrap()
    }

    fn code(item: Value) -> &'static str {
        validate(&raw(item), &Config::default()).unwrap_err().code
    }

    #[test]
    fn a_message_needs_data_and_defaults_its_type() {
        let message = validate(&raw(json!({"data": {"x": 1}})), &Config::default()).unwrap();
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
        assert!(validate(&raw(json!({"type": "chat.message", "data": 1})), &Config::default()).is_ok());
    }

    #[test]
    fn data_over_the_limit_is_too_large() {
        let config = Config { max_message_bytes: 10, ..Config::default() };
        let err = validate(&raw(json!({"data": "0123456789"})), &config).unwrap_err(); // 12 bytes encoded
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn null_data_is_data_and_numbers_are_kept_as_written() {
        let message = validate(&raw(json!({"data": null})), &Config::default()).unwrap();
        assert_eq!(message.data.get(), "null");
        let item = RawValue::from_string(r#"{"data": [18446744073709551616, 1e2]}"#.into()).unwrap();
        assert_eq!(validate(&item, &Config::default()).unwrap().data.get(), "[18446744073709551616,1e2]");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_a_right_token_wins() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "bEaReR s3cret".parse().unwrap());
        assert_eq!(bearer_tokens(&headers), [Some("s3cret")]);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_tokens(&headers), [None]);
        headers.append(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer_tokens(&headers), [None, Some("s3cret")]);
        let config = Config { publish_token: Some("s3cret".into()), ..Config::default() };
        assert!(authorized(&config, &[Some("wrong"), Some("s3cret")]));
        assert!(!authorized(&config, &[Some("wrong"), None]));
        assert!(!authorized(&config, &[Some("s3cre")]));
        assert!(authorized(&Config::default(), &[None]));
    }
}
