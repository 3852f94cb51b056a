//! The `check` Lambda: the device poll.

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::Check).await
}
