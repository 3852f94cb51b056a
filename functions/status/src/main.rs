//! The `status` Lambda: device progress reports.

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::Status).await
}
