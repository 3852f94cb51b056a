//! The `admin-metrics` Lambda: OTA log, fleet metrics, audit log, health and the OpenAPI document.

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::AdminMetrics).await
}
