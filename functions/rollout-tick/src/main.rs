//! The `rollout-tick` Lambda: invoked every minute by its EventBridge schedule, evaluates the
//! active rollouts once (stages that passed advance, gates over a limit pause).

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::RolloutTick).await
}
