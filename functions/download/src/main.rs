//! The `download` Lambda: redirects devices to presigned S3 URLs.

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::Download).await
}
