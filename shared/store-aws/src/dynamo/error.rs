//! DynamoDB errors as the ports see them: throttling and unreachable endpoints are worth a retry
//! (503 with `Retry-After` at the HTTP edge), a lost condition is a conflict, the rest is a bug.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use ota_core::ports::StoreError;

/// The SDK's own rendering of an error: codes and messages, never credentials.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + 'static,
{
    DisplayErrorContext(err).to_string()
}

/// Error codes DynamoDB answers when it sheds load.
const THROTTLED: [&str; 5] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "InternalServerError",
];

pub fn store_error<E>(op: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default().to_owned();
    let text = format!("DynamoDB {op}: {}", describe(err));
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StoreError::Unavailable(text),
        _ if THROTTLED.contains(&code.as_str()) || status.is_some_and(|s| s >= 500) => {
            StoreError::Unavailable(text)
        }
        _ if code == "ConditionalCheckFailedException" => StoreError::Conflict(text),
        _ => StoreError::Internal(text),
    }
}
