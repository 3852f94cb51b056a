//! Errors of the use cases, one variant per answer a client can act on. The HTTP edge maps each
//! to a problem+json status (docs/api.md §Conventions); nothing here knows about HTTP.

use crate::image_policy::ImageProblem;
use crate::ports::StoreError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    /// A field of the input breaks a rule of the contract (400).
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// The caller's credential does not reach what it asked for (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the image was rejected")]
    ImageRejected(Vec<ImageProblem>),
    /// The release a rollout names exists but may not be rolled out (422).
    #[error("{0}")]
    ReleaseNotReady(String),
    /// The release a rollout names does not exist (422: the body, not the path, is wrong).
    #[error("{0}")]
    UnknownRelease(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the upload is larger than {0} bytes")]
    TooLarge(u64),
    /// One part of a multipart form over its own limit (413).
    #[error("{field} is larger than {limit} bytes")]
    PartTooLarge { field: String, limit: u64 },
    #[error(transparent)]
    Store(StoreError),
}

impl OpError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => OpError::NotFound("not found".into()),
            StoreError::Conflict(m) => OpError::Conflict(m),
            StoreError::TooLarge { limit } => OpError::TooLarge(limit),
            StoreError::ItemTooLarge(m) => OpError::Unprocessable(m),
            other => OpError::Store(other),
        }
    }
}
