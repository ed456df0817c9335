//! The query parameters of the subscribe endpoints, validated into numbers with errors
//! that say what was wrong (axum's own `Query` rejection is plain text).

use std::time::Duration;

use std::borrow::Cow;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::config::{LONG_POLL_DEFAULT, LONG_POLL_MAX, POLL_LIMIT_DEFAULT, POLL_LIMIT_MAX};
use crate::error::ApiError;
use crate::log::Cursor;

/// `?since=ID&limit=N&timeout=SECONDS&token=T&event_names=BOOL`, every one optional.
#[derive(Debug, Default, PartialEq)]
pub struct Params {
    /// The last position the client has; absent means "from now on".
    pub since: Option<Cursor>,
    /// Most messages in one poll response.
    pub limit: usize,
    /// Long-poll hold time.
    pub timeout: Duration,
    /// Publish token for WebSocket clients, which cannot set headers from a browser.
    pub token: Option<String>,
    /// SSE only: name each event by the message type (default) or send them unnamed.
    pub event_names: bool,
}

/// The parameters as they came, borrowed from the query string where no decoding was
/// needed (every poll parses one, so this path avoids allocating).
#[derive(Default)]
struct Raw<'a> {
    since: Option<Cow<'a, str>>,
    limit: Option<Cow<'a, str>>,
    timeout: Option<Cow<'a, str>>,
    token: Option<Cow<'a, str>>,
    event_names: Option<Cow<'a, str>>,
}

impl<'a> Raw<'a> {
    /// Splits `a=1&b=2` (percent-decoding as needed); unknown names are ignored, a name
    /// given twice is an error.
    fn from_query(query: &'a str) -> Result<Raw<'a>, ApiError> {
        let mut raw = Raw::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "since" => &mut raw.since,
                "limit" => &mut raw.limit,
                "timeout" => &mut raw.timeout,
                "token" => &mut raw.token,
                "event_names" => &mut raw.event_names,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{name}` is given more than once"),
                ));
            }
        }
        Ok(raw)
    }
}

impl Params {
    /// The parameters of a query string (`since=5&limit=10`, without the `?`).
    pub fn from_query(query: &str) -> Result<Params, ApiError> {
        Params::parse(Raw::from_query(query)?)
    }

    fn parse(raw: Raw<'_>) -> Result<Params, ApiError> {
        let since = raw.since.as_deref().map(parse_cursor).transpose()?;
        let limit = match raw.limit.as_deref() {
            None => POLL_LIMIT_DEFAULT,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (1..=POLL_LIMIT_MAX as u64).contains(&n) => n as usize,
                _ => {
                    return Err(ApiError::bad_request(
                        "invalid_limit",
                        format!("`limit` must be a whole number from 1 to {POLL_LIMIT_MAX}, got {s:?}"),
                    ))
                }
            },
        };
        let timeout = match raw.timeout.as_deref() {
            None => LONG_POLL_DEFAULT,
            Some(s) => {
                let seconds: f64 =
                    s.trim().parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_timeout",
                            format!("`timeout` must be a number of seconds, got {s:?}"),
                        )
                    })?;
                if seconds < 0.0 {
                    return Err(ApiError::bad_request(
                        "invalid_timeout",
                        format!("`timeout` cannot be negative, got {s}"),
                    ));
                }
                if seconds > LONG_POLL_MAX.as_secs_f64() {
                    return Err(ApiError::bad_request(
                        "timeout_too_large",
                        format!(
                            "`timeout` is {seconds} s; the longest hold is {} s",
                            LONG_POLL_MAX.as_secs()
                        ),
                    ));
                }
                Duration::from_secs_f64(seconds)
            }
        };
        let event_names = match raw.event_names.as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(ApiError::bad_request(
                    "invalid_event_names",
                    format!("`event_names` must be true or false, got {other:?}"),
                ))
            }
        };
        Ok(Params { since, limit, timeout, token: raw.token.map(Cow::into_owned), event_names })
    }
}

/// A `since` or `Last-Event-ID` value: the cursor a poll body, an SSE `id:` line or a
/// WebSocket notice gave the client.
pub fn parse_cursor(value: &str) -> Result<Cursor, ApiError> {
    Cursor::parse(value).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_since",
            format!(
                "`since` must be a cursor EPOCH-ID such as 3f9a1c07-42 (from a poll body's `epoch` \
                 and a message id, or an SSE `id:` line) or a whole number ≥ 0, got {value:?}"
            ),
        )
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Params::from_query(parts.uri.query().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        since: Option<&str>,
        limit: Option<&str>,
        timeout: Option<&str>,
    ) -> Result<Params, &'static str> {
        let raw = Raw {
            since: since.map(Into::into),
            limit: limit.map(Into::into),
            timeout: timeout.map(Into::into),
            token: None,
            event_names: None,
        };
        Params::parse(raw).map_err(|e| e.code)
    }

    #[test]
    fn defaults_apply_when_absent() {
        let p = parse(None, None, None).unwrap();
        assert_eq!((p.since, p.limit, p.timeout), (None, POLL_LIMIT_DEFAULT, LONG_POLL_DEFAULT));
    }

    #[test]
    fn valid_values_parse() {
        let p = parse(Some("42"), Some("10"), Some("0.5")).unwrap();
        assert_eq!(
            (p.since, p.limit, p.timeout),
            (Some(Cursor { epoch: None, id: 42 }), 10, Duration::from_millis(500))
        );
        let p = parse(Some("3f9a1c07-42"), None, None).unwrap();
        assert_eq!(p.since.unwrap().to_string(), "3f9a1c07-42");
    }

    #[test]
    fn bad_values_name_the_parameter() {
        assert_eq!(parse(Some("abc"), None, None).unwrap_err(), "invalid_since");
        assert_eq!(parse(Some("-1"), None, None).unwrap_err(), "invalid_since");
        assert_eq!(parse(None, Some("-5"), None).unwrap_err(), "invalid_limit");
        assert_eq!(parse(None, Some("0"), None).unwrap_err(), "invalid_limit");
        assert_eq!(parse(None, Some("10001"), None).unwrap_err(), "invalid_limit");
        assert_eq!(parse(None, None, Some("soon")).unwrap_err(), "invalid_timeout");
        assert_eq!(parse(None, None, Some("-1")).unwrap_err(), "invalid_timeout");
        assert_eq!(parse(None, None, Some("NaN")).unwrap_err(), "invalid_timeout");
        assert_eq!(parse(None, None, Some("121")).unwrap_err(), "timeout_too_large");
    }

    #[test]
    fn a_parameter_given_twice_is_refused_and_encoded_values_are_decoded() {
        assert_eq!(Raw::from_query("since=1&since=2").err().map(|e| e.code), Some("invalid_query"));
        let raw = Raw::from_query("token=a%20b&other=x").ok().unwrap();
        assert_eq!(raw.token.as_deref(), Some("a b"));
    }

    #[test]
    fn event_names_is_a_boolean() {
        let raw = |v: &'static str| Raw { event_names: Some(v.into()), ..Raw::default() };
        assert!(!Params::parse(raw("false")).unwrap().event_names);
        assert!(Params::parse(raw("true")).unwrap().event_names);
        assert_eq!(Params::parse(raw("no")).unwrap_err().code, "invalid_event_names");
    }
}
