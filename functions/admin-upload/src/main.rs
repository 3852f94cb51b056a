//! The `admin-upload` Lambda: publishing releases (two-step presigned upload, finalize, multipart).

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    ota_lambda::run(ota_lambda::Function::AdminUpload).await
}
