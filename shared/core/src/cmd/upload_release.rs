//! The one-shot upload (docs/api.md §Publishing): the image streams to blob storage as the form
//! arrives, is validated by reading it back once, and only then is the release registered,
//! directly `ready`. A refused upload deletes its bytes, so nothing is ever half-registered.
//! Every part counts: the file against `OTA_MAX_UPLOAD_BYTES`, each text part against
//! [`MAX_TEXT_PART_BYTES`], each field once, so that the whole form is bounded
//! ([`form_limit`]) and a form over a limit is refused as soon as it is, not once it has been
//! read.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures_util::StreamExt;

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::ids::{DeviceType, Version, new_id};
use crate::ports::{BlobMeta, BorrowedByteStream, StoreError};
use crate::release::{Release, blob_key};
use crate::service::Service;

use super::{NewRelease, release_summary};

/// The largest text part of the form (a description or release notes of 4096 characters is at
/// most 16 KiB of UTF-8).
pub const MAX_TEXT_PART_BYTES: u64 = 64 * 1024;

/// What a form may hold besides its file: its text parts (each field once, at most
/// [`MAX_TEXT_PART_BYTES`]), part headers and boundaries.
const FORM_ALLOWANCE: u64 = 1024 * 1024;

/// The most bytes a whole upload form may take, for the edge to bound the request body by, so
/// that even what no part holds (a preamble, part headers) counts.
pub fn form_limit(max_upload_bytes: u64) -> u64 {
    max_upload_bytes.saturating_add(FORM_ALLOWANCE)
}

/// One part of the upload form, as the edge reads it: its bytes streamed as they arrive.
pub enum UploadPart<'a> {
    /// The image.
    File(BorrowedByteStream<'a>),
    /// A text field, read here within [`MAX_TEXT_PART_BYTES`].
    Text {
        name: String,
        value: BorrowedByteStream<'a>,
    },
}

/// The upload form, part by part, in the order the client sent them.
#[async_trait]
pub trait UploadForm: Send {
    /// The next part, or None after the last.
    async fn next_part(&mut self) -> Result<Option<UploadPart<'_>>, OpError>;
}

/// The text fields the form may carry besides `file`.
const TEXT_FIELDS: [&str; 7] = [
    "device_type",
    "version",
    "build_number",
    "channel",
    "description",
    "release_notes",
    "min_current_version",
];

impl Service {
    pub async fn upload_release(
        &self,
        admin: &Admin,
        form: &mut dyn UploadForm,
    ) -> Result<Release, OpError> {
        admin.require(Role::Publisher)?;
        let id = new_id();
        let key = blob_key(&id);
        let result = self.receive_upload(form, &id, &key).await;
        match &result {
            Ok(release) => {
                self.audit(
                    admin,
                    "firmware.upload",
                    "firmware",
                    &release.id,
                    release_summary(release),
                )
                .await?;
            }
            // Nothing half-registered: the bytes of a refused upload do not stay.
            Err(_) => {
                let _ = self.blobs.delete(&key).await;
            }
        }
        result
    }

    async fn receive_upload(
        &self,
        form: &mut dyn UploadForm,
        id: &str,
        key: &str,
    ) -> Result<Release, OpError> {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut stored: Option<BlobMeta> = None;
        while let Some(part) = form.next_part().await? {
            match part {
                UploadPart::File(stream) => {
                    if stored.is_some() {
                        return Err(OpError::invalid("file", "only one file per upload"));
                    }
                    let limit = self.settings.max_upload_bytes;
                    stored = Some(self.blobs.put(key, stream, limit).await.map_err(
                        |e| match e {
                            StoreError::Conflict(m) => OpError::invalid("file", m),
                            other => other.into(),
                        },
                    )?);
                }
                UploadPart::Text { name, value } => {
                    if !TEXT_FIELDS.contains(&name.as_str()) {
                        return Err(OpError::invalid(&name, format!("unknown field '{name}'")));
                    }
                    if fields.contains_key(&name) {
                        return Err(OpError::invalid(&name, format!("{name} is given twice")));
                    }
                    let value = read_text(&name, value).await?;
                    fields.insert(name, value);
                }
            }
        }
        let meta = stored.ok_or_else(|| OpError::invalid("file", "the file field is required"))?;
        let mut take = |name: &str| fields.remove(name);
        let device_type = parse("device_type", take("device_type"), |s| {
            DeviceType::parse(s).map_err(|e| e.0)
        })?
        .ok_or_else(|| OpError::invalid("device_type", "device_type is required"))?;
        let version = parse("version", take("version"), |s| {
            Version::parse(s).map_err(|e| e.0)
        })?
        .ok_or_else(|| OpError::invalid("version", "version is required"))?;
        let build_number = parse("build_number", take("build_number"), |s| {
            s.parse::<u64>()
                .map_err(|_| "must be a non-negative integer".to_owned())
        })?;
        let min_current_version = parse("min_current_version", take("min_current_version"), |s| {
            Version::parse(s).map_err(|e| e.0)
        })?;
        let now = self.now();
        let release = NewRelease {
            device_type,
            version,
            build_number,
            channel: take("channel"),
            description: take("description"),
            min_current_version,
            release_notes: take("release_notes"),
        }
        .record(id.to_owned(), meta.size, hex::encode(meta.sha256), now)?;
        self.refuse_duplicate(&release).await?;
        let ready = self
            .validate_release(&release, now)
            .await?
            .map_err(OpError::ImageRejected)?;
        self.meta.insert_release(&ready).await?;
        Ok(ready)
    }
}

/// A text part, refused as soon as it outgrows [`MAX_TEXT_PART_BYTES`].
async fn read_text(name: &str, mut value: BorrowedByteStream<'_>) -> Result<String, OpError> {
    let mut buf = Vec::new();
    while let Some(chunk) = value.next().await {
        let chunk =
            chunk.map_err(|e| OpError::invalid(name, format!("malformed multipart body: {e}")))?;
        if (buf.len() + chunk.len()) as u64 > MAX_TEXT_PART_BYTES {
            return Err(OpError::PartTooLarge {
                field: name.to_owned(),
                limit: MAX_TEXT_PART_BYTES,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf).map_err(|_| OpError::invalid(name, "must be UTF-8 text"))
}

/// A form field parsed with `f` (surrounding whitespace ignored); the error names the field.
fn parse<T>(
    name: &str,
    value: Option<String>,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, OpError> {
    value
        .map(|s| f(s.trim()).map_err(|m| OpError::invalid(name, m)))
        .transpose()
}
