//! Request extractors that refuse bad input with problem+json instead of axum's plain-text
//! rejections: JSON bodies (415 without a JSON content type, 400 for syntax, types and unknown
//! fields, naming the field), query strings and path parameters.

use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};
use axum::http::StatusCode;

pub struct ApiJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The field a decoding error is about: its path, or for a missing field (which serde reports
/// on the object holding it) the field's own name.
fn field_of(path: String, message: &str, whole: &str) -> String {
    if path != "." {
        return path;
    }
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map_or_else(|| whole.to_owned(), str::to_owned)
}

/// Decodes JSON naming the failing field path in the problem. A number written with a zero
/// fraction (`3.0`) is the integer it equals, as JSON Schema says; serde reads those only as
/// floats, so a body that fails is decoded once more with such numbers made integers (the
/// common body never pays for it).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // Every body is an object: serde would also read a struct from an array of its fields.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let message = "the body must be a JSON object";
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-json",
            format!("invalid JSON body: {message}"),
        )
        .with_errors(vec![FieldError {
            field: "body".to_owned(),
            message: message.to_owned(),
        }]));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let mut e = match serde_path_to_error::deserialize(de) {
        Ok(decoded) => return Ok(decoded),
        Err(e) => e,
    };
    if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && integral_floats_to_integers(&mut value)
    {
        // The second reading's error, if any, is the one that is not about `3.0`.
        match serde_path_to_error::deserialize(value) {
            Ok(decoded) => return Ok(decoded),
            Err(again) => e = again,
        }
    }
    let path = e.path().to_string();
    let message = e.into_inner().to_string();
    let field = field_of(path, &message, "body");
    Err(Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid-json",
        format!("invalid JSON body: {message}"),
    )
    .with_errors(vec![FieldError { field, message }]))
}

/// Turns every float with a zero fraction that an `i64` or `u64` holds into that integer;
/// says whether it changed anything.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    let mut changed = false;
    match value {
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            // Printed without a fraction, an integral float is its integer, exactly; one that
            // no 64-bit integer holds stays a float (and fails as it did).
            let digits = format!("{:.0}", n.as_f64().unwrap_or_default());
            let integer = digits
                .parse::<u64>()
                .map(Value::from)
                .or_else(|_| digits.parse::<i64>().map(Value::from));
            if let Ok(integer) = integer {
                *value = integer;
                changed = true;
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= integral_floats_to_integers(item);
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                changed |= integral_floats_to_integers(item);
            }
        }
        _ => {}
    }
    changed
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(ct) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "the body is too large",
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-request",
                    "the body could not be read",
                )
            }
        })?;
        decode_json(&bytes).map(ApiJson)
    }
}

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                let field = field_of(path, &message, "query");
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-query",
                    format!("invalid query: {message}"),
                )
                .with_errors(vec![FieldError { field, message }])
            })
    }
}

/// Path parameters, refused as problem+json (400 naming the parameter), e.g. invalid UTF-8 in
/// a percent-encoded segment.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    Problem::bad_request(&key, format!("{key} must be valid UTF-8"))
                }
                ErrorKind::ParseErrorAtKey { key, .. }
                | ErrorKind::DeserializeError { key, .. } => {
                    Problem::bad_request(&key, format!("{key} is not valid"))
                }
                _ => Problem::bad_request("path", "the path is not valid"),
            }),
            Err(other) => {
                // A route without the parameters its handler reads: a server bug, not input.
                tracing::error!(error = %other, "path parameters missing");
                Err(Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                ))
            }
        }
    }
}
