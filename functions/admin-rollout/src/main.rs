//! The `admin-rollout` Lambda: releases, device types, rollouts and devices.

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::AdminRollout).await
}
