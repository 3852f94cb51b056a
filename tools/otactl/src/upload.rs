//! The two-step publish of docs/api.md: create (metadata, bound to size and SHA-256) -> PUT the
//! bytes to the upload URL -> finalize. Re-running after any failure either finishes or says what
//! state the release is in (see [`resume`]).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use futures_util::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ota_core::ids::{DeviceType, Version};
use ota_core::release::{Release, ReleaseState};
use reqwest::header::CONTENT_LENGTH;
use reqwest::{Body, Method};
use serde::Serialize;
use serde_json::Value;
use tokio_util::io::ReaderStream;

use crate::cli::UploadArgs;
use crate::client::{Client, json_or_problem, problem_from, seg, typed, unreachable_server};
use crate::error::{Error, Result};
use crate::image::{self, CHUNK, LocalImage};
use crate::pending::{self, Pending, UploadTarget};

/// Tries of the PUT: a dropped connection or a 5xx mid-upload is worth another go, since the
/// URL stays valid and the server only commits bytes that match the declared hash.
const PUT_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created, uploaded and finalized by this run.
    Published,
    /// Created by an earlier run; this run finished it.
    Resumed,
    /// Already `ready` with these very bytes: nothing to do.
    AlreadyPublished,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Resumed => "resumed",
            Outcome::AlreadyPublished => "already_published",
        }
    }
}

/// What `otactl publish` did: the server's record of the release, and how it got there.
pub struct Published {
    /// The server's record, as it sent it.
    pub release: Value,
    pub outcome: Outcome,
}

#[derive(Serialize)]
struct CreateRequest<'a> {
    device_type: &'a DeviceType,
    version: &'a Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_number: Option<u64>,
    file_size: u64,
    file_hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_current_version: Option<&'a Version>,
    #[serde(skip_serializing_if = "Option::is_none")]
    release_notes: Option<&'a str>,
}

/// What the command line asks for, checked before anything is sent.
struct Plan {
    device_type: DeviceType,
    version: Version,
    min_current_version: Option<Version>,
}

/// The arguments that can be wrong whatever the file holds: checked before reading it, so a
/// typo is a usage error (2) rather than a file error.
fn check_args(args: &UploadArgs) -> Result<(DeviceType, Option<Version>, Option<Version>)> {
    let device_type = DeviceType::parse(args.device_type.trim())
        .map_err(|e| Error::usage(format!("--device-type: {}", e.0)))?;
    let parse = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|v| Version::parse(v.trim()))
            .transpose()
            .map_err(|e| Error::usage(format!("{flag}: {}", e.0)))
    };
    let version = parse("--version", &args.version)?;
    let min_current_version = parse("--min-current-version", &args.min_current_version)?;
    Ok((device_type, version, min_current_version))
}

fn plan(args: &UploadArgs, local: &LocalImage) -> Result<Plan> {
    let (device_type, given, min_current_version) = check_args(args)?;
    // The image is valid here (checked by the caller), so its description was read.
    let image_version = local
        .verdict
        .as_ref()
        .map(|info| info.app.version.clone())
        .unwrap_or_default();
    let version = match given {
        Some(given) => {
            // The server refuses a mismatch at finalize (version_mismatch); saying so now
            // spares a release stuck in `rejected` under that version.
            match Version::parse(&image_version) {
                Ok(from_image) if from_image == given => given,
                _ => {
                    return Err(Error::failed(format!(
                        "--version {given} differs from the version in the image ('{image_version}'); the server would reject the release"
                    )));
                }
            }
        }
        None => Version::parse(&image_version).map_err(|e| {
            Error::failed(format!(
                "the image's version '{image_version}' is not SemVer ({}); the server would reject it",
                e.0
            ))
        })?,
    };
    Ok(Plan {
        device_type,
        version,
        min_current_version,
    })
}

pub async fn publish(client: &Client, args: &UploadArgs) -> Result<Published> {
    check_args(args)?;
    let local = image::read(&args.file).await?;
    if let Some(refusal) = local.refusal(&args.file) {
        return Err(refusal);
    }
    let plan = plan(args, &local)?;
    eprintln!(
        "{}: valid image, {} bytes, sha256 {}",
        args.file.display(),
        local.size,
        local.sha256
    );
    let body = CreateRequest {
        device_type: &plan.device_type,
        version: &plan.version,
        build_number: args.build_number,
        file_size: local.size,
        file_hash: &local.sha256,
        channel: args.channel.as_deref(),
        description: args.description.as_deref(),
        min_current_version: plan.min_current_version.as_ref(),
        release_notes: args.notes.as_deref(),
    };
    let created = match client.post("/api/ota/admin/firmware", &body).await {
        Ok(v) => v,
        Err(Error::Refused(p)) if p.status == 409 => {
            // Keep the server's words in front of whatever the resume concludes.
            return resume(client, &args.file, &plan, &local)
                .await
                .map_err(|e| match e {
                    Error::Failed(m) => Error::failed(format!("server refused: {p}; {m}")),
                    other => other,
                });
        }
        Err(e) => return Err(e),
    };
    let record: Release = typed(&created, "created release")?;
    let upload: UploadTarget = created
        .get("upload")
        .map(|u| typed(u, "upload instructions"))
        .transpose()?
        .ok_or_else(|| Error::failed("the server created the release but sent no upload URL"))?;
    pending::save(&Pending {
        firmware_id: record.id.clone(),
        file_hash: local.sha256.clone(),
        upload: upload.clone(),
    });
    eprintln!(
        "created {} {} as {} (pending_upload)",
        plan.device_type, plan.version, record.id
    );
    upload_and_finalize(client, &args.file, &record.id, &upload, local.size)
        .await
        .map(|release| Published {
            release,
            outcome: Outcome::Published,
        })
}

async fn upload_and_finalize(
    client: &Client,
    file: &Path,
    id: &str,
    upload: &UploadTarget,
    size: u64,
) -> Result<Value> {
    put(client, file, upload, size).await.map_err(|e| {
        Error::failed(format!(
            "{e}; release {id} stays pending_upload: re-run the same command before {} to resume",
            crate::views::ts(&upload.expires_at)
        ))
    })?;
    finalize(client, id).await
}

async fn finalize(client: &Client, id: &str) -> Result<Value> {
    let result = client
        .post(
            &format!("/api/ota/admin/firmware/{}/finalize", seg(id)),
            &serde_json::json!({}),
        )
        .await;
    // Once finalize has an outcome (ready, or rejected for good) the URL is of no more use.
    if !matches!(&result, Err(e) if e.status() == Some(409) || e.status().is_none()) {
        pending::forget(id);
    }
    result
}

/// A previous run created this version. Same bytes: finish what is left. Other bytes or a
/// final state: say so, since a version's bytes never change.
async fn resume(
    client: &Client,
    file: &Path,
    plan: &Plan,
    local: &LocalImage,
) -> Result<Published> {
    let (dt, v) = (&plan.device_type, &plan.version);
    let existing = find_release(client, dt, v).await?.ok_or_else(|| {
        Error::failed(format!(
            "the server says version {v} of {dt} exists (409) but does not list it"
        ))
    })?;
    let fw: Release = typed(&existing, "release")?;
    let state = fw.state.as_str();
    if fw.file_hash != local.sha256 || fw.file_size != local.size {
        return Err(Error::failed(format!(
            "version {v} of {dt} already exists ({}, {state}) with other bytes (sha256 {}, {} bytes; this file: {}, {} bytes); a version's bytes never change: publish under a new version",
            fw.id, fw.file_hash, fw.file_size, local.sha256, local.size
        )));
    }
    match fw.state {
        ReleaseState::Ready => {
            eprintln!(
                "version {v} of {dt} is already published with these bytes ({})",
                fw.id
            );
            Ok(Published {
                release: existing,
                outcome: Outcome::AlreadyPublished,
            })
        }
        ReleaseState::Rejected => {
            let reasons: Vec<String> = fw
                .rejection_reasons
                .iter()
                .map(|r| format!("{}: {}", r.code, r.message))
                .collect();
            Err(Error::failed(format!(
                "version {v} of {dt} ({}) is rejected: {}; fix the image and publish under a new version",
                fw.id,
                reasons.join("; ")
            )))
        }
        ReleaseState::PendingUpload => {
            eprintln!(
                "version {v} of {dt} exists as {} (pending_upload): resuming",
                fw.id
            );
            match finalize(client, &fw.id).await {
                Ok(done) => {
                    return Ok(Published {
                        release: done,
                        outcome: Outcome::Resumed,
                    });
                }
                // 409: no bytes stored yet.
                Err(e) if e.status() == Some(409) => {}
                Err(e) => return Err(e),
            }
            let now = time::OffsetDateTime::now_utc();
            let Some(p) = pending::load(&fw.id, &local.sha256, now) else {
                return Err(Error::failed(format!(
                    "version {v} of {dt} ({}) is pending_upload: it was created but its bytes never arrived, and this machine holds no unexpired upload URL for it (the API hands one out only at create). Publish the image under a new version; `otactl firmware deactivate {}` hides the stuck one from lists of active releases",
                    fw.id, fw.id
                )));
            };
            upload_and_finalize(client, file, &fw.id, &p.upload, local.size)
                .await
                .map(|release| Published {
                    release,
                    outcome: Outcome::Resumed,
                })
        }
    }
}

/// The release (device type, version), read from the list: the API has no lookup by version.
async fn find_release(client: &Client, dt: &DeviceType, v: &Version) -> Result<Option<Value>> {
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("device_type", dt.to_string()), ("limit", "500".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = client.get("/api/ota/admin/firmware", &query).await?;
        let items = page
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in items {
            let fw: Release = typed(&item, "release")?;
            if &fw.version == v {
                return Ok(Some(item));
            }
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(None),
        }
    }
}

fn progress_bar(size: u64) -> ProgressBar {
    // Hidden when stderr is not a terminal: CI logs get the summary lines, not redraws.
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(size);
    if let Ok(style) = ProgressStyle::with_template(
        "uploading [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn redacted(url: &str) -> String {
    url.split('?').next().unwrap_or_default().to_owned()
}

/// Streams the file to the upload URL: memory stays at a few chunks whatever the file size.
async fn put(client: &Client, file: &Path, upload: &UploadTarget, size: u64) -> Result<()> {
    let method = Method::from_bytes(upload.method.as_bytes()).map_err(|_| {
        Error::failed(format!(
            "the server asks for an odd method '{}'",
            upload.method
        ))
    })?;
    let bar = progress_bar(size);
    let mut attempt = 1;
    loop {
        bar.set_position(0);
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::failed(format!("cannot open {}: {e}", file.display())))?;
        let counter = bar.clone();
        let stream = ReaderStream::with_capacity(f, CHUNK).inspect_ok(move |chunk| {
            counter.inc(chunk.len() as u64);
        });
        // No bearer token here: the URL is the credential, and S3 refuses a second one.
        let mut req = client
            .http()
            .request(method.clone(), &upload.url)
            .body(Body::wrap_stream(stream));
        for (k, v) in &upload.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if !upload
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-length"))
        {
            // A stream has no length of its own; S3 refuses chunked uploads.
            req = req.header(CONTENT_LENGTH, size);
        }
        let retry = match req.send().await {
            Ok(resp) if resp.status().is_success() => {
                bar.finish_and_clear();
                eprintln!("uploaded {size} bytes");
                return Ok(());
            }
            Ok(resp) if resp.status().is_server_error() && attempt < PUT_ATTEMPTS => {
                format!("the upload URL answered {}", resp.status())
            }
            Ok(resp) => {
                bar.abandon();
                let status = resp.status();
                let err = json_or_problem(resp).await.err().unwrap_or_else(|| {
                    Error::Refused(problem_from(status, "the upload was not accepted"))
                });
                return Err(err);
            }
            // The URL's query is a credential: it stays out of messages and logs.
            Err(e) if attempt < PUT_ATTEMPTS => e.without_url().to_string(),
            Err(e) => {
                bar.abandon();
                return Err(unreachable_server(&redacted(&upload.url), &e.without_url()));
            }
        };
        eprintln!("upload attempt {attempt} failed ({retry}); retrying");
        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        attempt += 1;
    }
}
