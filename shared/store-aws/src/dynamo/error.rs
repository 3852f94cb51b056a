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

/// What a client is told when a write would exceed DynamoDB's item size (400 KB). The records
/// that grow with a request are a rollout (its groups; the devices it names are stored apart,
/// a membership item per device) and the device type's release view, which holds every
/// active rollout of the type.
const ITEM_TOO_LARGE: &str = "the change would store a record larger than DynamoDB's 400 KB item \
     limit: a rollout's target_filter groups are stored whole, and a device type's active \
     rollouts together; target fewer groups, or complete or abort other rollouts of the type";

/// Whether DynamoDB refused the whole request for load (a batch whose every item was
/// throttled comes back so rather than as unprocessed items): worth sending again after a pause.
pub fn throttled<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    err.code().is_some_and(|c| {
        matches!(
            c,
            "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
        )
    })
}

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
        _ if code == "ValidationException"
            && err
                .message()
                .is_some_and(|m| m.contains("exceeded the maximum allowed size")) =>
        {
            StoreError::ItemTooLarge(ITEM_TOO_LARGE.to_owned())
        }
        _ => StoreError::Internal(text),
    }
}
