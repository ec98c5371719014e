//! Reading the few fields Tollgate needs from providers' JSON payloads, shared by the providers'
//! event parsers: absent, empty or mistyped fields read as `None`, never a panic.

use crate::domain::EventError;
use serde_json::Value;

/// The body as a JSON object.
///
/// # Errors
/// [`EventError::NotJson`] if it is not JSON or not an object.
pub(crate) fn object(body: &[u8]) -> Result<Value, EventError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(EventError::NotJson),
    }
}

/// The non-empty string at `pointer`, or the `id` of an expanded object there.
pub(crate) fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer) {
        Some(Value::String(x)) if !x.is_empty() => Some(x.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

/// The integer at `pointer`.
pub(crate) fn int(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// The RFC 3339 time at `pointer`, as Unix seconds.
pub(crate) fn time(v: &Value, pointer: &str) -> Option<i64> {
    crate::domain::time::unix_of_rfc3339(v.pointer(pointer)?.as_str()?)
}
