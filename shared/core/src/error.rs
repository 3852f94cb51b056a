//! Errors of the use cases, one variant per answer a client can act on. The HTTP edge maps each
//! to a problem+json status; nothing here knows about HTTP.

use crate::image_policy::ImageProblem;
use crate::ports::StoreError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the image was rejected")]
    ImageRejected(Vec<ImageProblem>),
    #[error("{0}")]
    Unprocessable(String),
    #[error("the upload is larger than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => OpError::NotFound("not found".into()),
            StoreError::Conflict(m) => OpError::Conflict(m),
            StoreError::TooLarge { limit } => OpError::TooLarge(limit),
            other => OpError::Store(other),
        }
    }
}
