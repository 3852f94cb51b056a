//! The `rollout-tick` function: EventBridge invokes it once a minute (infra/template.yaml) and
//! each invocation evaluates every active rollout that decides by itself once
//! (`Service::evaluate_rollouts`, docs/api.md §9.5, §9.7), as `ota-server` does every
//! `OTA_ROLLOUT_TICK_S`. Checks and reports evaluate the rollouts they touch; the tick is what
//! moves a stage whose soak ends, or times out a silent device, while no device checks in or
//! reports.
//!
//! The event is not read: a scheduled event and a hand-made `{}` (`aws lambda invoke`,
//! `cargo lambda invoke`) both make one tick.

use lambda_http::lambda_runtime::{self, Diagnostic, LambdaEvent, service_fn};
use ota_core::service::Service;
use serde_json::{Value, json};

use crate::{Error, Function};

/// Serves the instance's invocations until the runtime stops it. The use cases are built once,
/// at init, without the secrets the HTTP functions read (a tick signs and verifies nothing).
pub(crate) async fn run(function: Function) -> Result<(), Error> {
    let service = crate::ready(function, crate::service_from_env().await)?;
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| tick(&service))).await
}

/// One invocation: evaluates the rollouts, logs what it did in one line and answers it as
/// `{"evaluated": n, "decided": m, "timed_out": t}` (read by whoever invokes it by hand;
/// EventBridge drops it). Each decision and each timeout has its own line, from `ota_core`.
///
/// A failure fails the invocation, so that Lambda's `Errors` metric counts it, after an `ERROR`
/// line with its cause in the function's JSON log. Nothing is retried here: a decision is
/// written over the revision it was made on, so the next tick, a minute later, decides again
/// from what is then stored.
pub async fn tick(service: &Service) -> Result<Value, Diagnostic> {
    match service.evaluate_rollouts().await {
        Ok(t) => {
            tracing::info!(
                evaluated = t.evaluated,
                decided = t.decided,
                timed_out = t.timed_out,
                "rollouts evaluated"
            );
            Ok(json!({"evaluated": t.evaluated, "decided": t.decided, "timed_out": t.timed_out}))
        }
        Err(e) => {
            tracing::error!(error = %e, "evaluating the rollouts failed");
            Err(Diagnostic {
                error_type: "EvaluateRolloutsFailed".to_owned(),
                error_message: e.to_string(),
            })
        }
    }
}
