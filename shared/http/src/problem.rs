//! RFC 9457 problem details: the only shape an error ever leaves the service in.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ota_core::error::OpError;
use ota_core::image_policy::ImageProblem;
use ota_core::ports::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a client should wait before retrying when a dependency is down.
const RETRY_AFTER_S: &str = "5";

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem (`/problems/<slug>`).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Seconds for `Retry-After` (429 and 503).
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after_s: None,
        }
    }

    pub fn throttled(retry_after_s: u64) -> Self {
        let mut p = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            format!("this device is over its request budget; retry in {retry_after_s} s"),
        );
        p.retry_after_s = Some(retry_after_s);
        p
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", message.clone()).with_errors(vec![
            FieldError {
                field: field.to_owned(),
                message,
            },
        ])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn image_rejected(problems: &[ImageProblem]) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "image-rejected",
            format!("the image was rejected for {} reason(s)", problems.len()),
        )
        .with_errors(
            problems
                .iter()
                .map(|p| FieldError {
                    field: format!("file:{}", p.code),
                    message: p.message.clone(),
                })
                .collect(),
        )
    }

    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut resp = (status, Json(&self)).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
            let value = self
                .retry_after_s
                .map_or(HeaderValue::from_static(RETRY_AFTER_S), HeaderValue::from);
            headers.insert(header::RETRY_AFTER, value);
        }
        resp
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        OpError::from(e).into()
    }
}

impl From<OpError> for Problem {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid { field, message } => Problem::bad_request(&field, message),
            OpError::Forbidden(m) => Problem::forbidden(m),
            OpError::NotFound(m) => Problem::not_found(m),
            OpError::Conflict(m) => Problem::conflict(m),
            OpError::ImageRejected(p) => Problem::image_rejected(&p),
            OpError::ReleaseNotReady(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "firmware-not-ready", m)
            }
            OpError::UnknownRelease(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown-firmware", m)
            }
            OpError::Unprocessable(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", m)
            }
            OpError::TooLarge(limit) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the upload is larger than the limit of {limit} bytes"),
            ),
            OpError::PartTooLarge { field, limit } => {
                let message = format!("{field} is larger than the limit of {limit} bytes");
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", message.clone())
                    .with_errors(vec![FieldError { field, message }])
            }
            OpError::Store(StoreError::BadCursor) => {
                Problem::bad_request("cursor", "the pagination cursor is not valid")
            }
            OpError::Store(StoreError::Unavailable(m)) => {
                tracing::warn!(error = %m, "dependency unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "a storage dependency is unavailable; retry later",
                )
            }
            OpError::Store(other) => {
                // The detail may hold paths or SQL: log it, never send it.
                tracing::error!(error = %other, "internal storage failure");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred",
                )
            }
        }
    }
}

pub type ApiResult<T> = Result<T, Problem>;
