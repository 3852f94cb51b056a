//! Publishing: one-shot multipart upload, the two-step create/PUT/finalize flow, release
//! listing and edits, and device-type policies.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use ota_core::device_type::DeviceTypePolicy;
use ota_core::error::OpError;
use ota_core::esp_image::Chip;
use ota_core::firmware::{Firmware, FirmwareFilter, FirmwareState, blob_key};
use ota_core::ids::{DeviceType, Version, new_id};
use ota_core::ports::{Page, StoreError};
use ota_core::publish;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::audit_trail;
use crate::auth::{Admin, Role};
use crate::extract::{ApiJson, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;
use crate::validate;

const MAX_TEXT_CHARS: usize = 4096;
/// Multipart text fields are tiny; anything longer is refused before it is buffered.
const MAX_FIELD_BYTES: usize = 16 * 1024;

/// Metadata of a new release, as JSON (two-step flow) or as multipart fields (one-shot).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFirmwareRequest {
    pub device_type: DeviceType,
    pub version: Version,
    pub build_number: Option<u64>,
    pub file_size: u64,
    /// SHA-256 of the whole file, hex.
    pub file_hash: String,
    pub channel: Option<String>,
    pub description: Option<String>,
    pub min_current_version: Option<Version>,
    pub release_notes: Option<String>,
}

struct NewRelease {
    device_type: DeviceType,
    version: Version,
    build_number: Option<u64>,
    channel: Option<String>,
    description: Option<String>,
    min_current_version: Option<Version>,
    release_notes: Option<String>,
}

fn new_record(
    id: String,
    r: NewRelease,
    size: u64,
    hash: String,
    now: OffsetDateTime,
) -> ApiResult<Firmware> {
    Ok(Firmware {
        id,
        device_type: r.device_type,
        version: r.version,
        build_number: r.build_number.unwrap_or(0),
        channel: validate::channel("channel", r.channel)?,
        file_size: size,
        file_hash: hash,
        secure_version: 0,
        chip: None,
        project_name: None,
        idf_version: None,
        min_current_version: r.min_current_version,
        description: validate::text("description", r.description, MAX_TEXT_CHARS)?,
        release_notes: validate::text("release_notes", r.release_notes, MAX_TEXT_CHARS)?,
        state: FirmwareState::PendingUpload,
        is_active: true,
        rejection_reasons: Vec::new(),
        created_at: now,
        updated_at: now,
        released_at: None,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadInstructions {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedFirmware {
    #[serde(flatten)]
    pub firmware: Firmware,
    pub upload: UploadInstructions,
}

async fn refuse_duplicate(state: &AppState, dt: &DeviceType, v: &Version) -> ApiResult<()> {
    if state.meta.find_firmware(dt, v).await?.is_some() {
        return Err(Problem::conflict(format!(
            "version {v} of device type {dt} already exists"
        )));
    }
    Ok(())
}

/// Step one of the two-step flow: register metadata, get an upload URL bound to size and hash.
#[utoipa::path(post, path = "/api/ota/admin/firmware", tag = "firmware", request_body = CreateFirmwareRequest,
    responses((status = 201, body = CreatedFirmware), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
              (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateFirmwareRequest>,
) -> ApiResult<(StatusCode, Json<CreatedFirmware>)> {
    admin.require(Role::Publisher)?;
    let hash = validate::sha256_hex("file_hash", &req.file_hash)?;
    if req.file_size > state.settings.max_upload_bytes {
        return Err(OpError::TooLarge(state.settings.max_upload_bytes).into());
    }
    if req.file_size == 0 {
        return Err(Problem::bad_request("file_size", "must be greater than 0"));
    }
    if let Some(policy) = state.meta.get_device_type(&req.device_type).await?
        && let Some(max) = policy.max_image_size
        && req.file_size > max
    {
        return Err(OpError::Unprocessable(format!(
            "file_size {} is over device type {}'s max_image_size of {max}",
            req.file_size, req.device_type
        ))
        .into());
    }
    let now = state.clock.now();
    let size = req.file_size;
    let fw = new_record(
        new_id(),
        NewRelease {
            device_type: req.device_type,
            version: req.version,
            build_number: req.build_number,
            channel: req.channel,
            description: req.description,
            min_current_version: req.min_current_version,
            release_notes: req.release_notes,
        },
        size,
        hash.clone(),
        now,
    )?;
    refuse_duplicate(&state, &fw.device_type, &fw.version).await?;
    state.meta.insert_firmware(&fw).await?;
    audit_trail::record(
        &state,
        &admin,
        "firmware.create",
        "firmware",
        &fw.id,
        release_summary(&fw),
    )
    .await?;
    let target = state
        .blobs
        .upload_url(&fw.blob_key(), size, &hash, state.settings.url_ttl)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedFirmware {
            firmware: fw,
            upload: UploadInstructions {
                url: target.url,
                method: target.method.to_owned(),
                headers: target.headers.into_iter().collect(),
                expires_at: target.expires_at,
            },
        }),
    ))
}

/// Step three: check the uploaded object and validate the image.
#[utoipa::path(post, path = "/api/ota/admin/firmware/{id}/finalize", tag = "firmware",
    params(("id" = String, Path)),
    responses((status = 200, body = Firmware), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "no bytes uploaded yet"),
              (status = 422, body = Problem, description = "image rejected: every reason in `errors`")),
    security(("admin_token" = [])))]
pub async fn finalize(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Firmware>> {
    admin.require(Role::Publisher)?;
    let now = state.clock.now();
    let outcome = publish::finalize(state.meta.as_ref(), state.blobs.as_ref(), &id, now).await;
    let details = match &outcome {
        Ok(fw) => Some(release_summary(fw)),
        Err(OpError::ImageRejected(problems)) => Some(serde_json::json!({
            "state": "rejected",
            "reasons": problems.iter().map(|p| p.code.as_str()).collect::<Vec<_>>(),
        })),
        Err(_) => None,
    };
    if let Some(details) = details {
        audit_trail::record(
            &state,
            &admin,
            "firmware.finalize",
            "firmware",
            &id,
            details,
        )
        .await?;
    }
    outcome.map(Json).map_err(Problem::from)
}

/// What the audit log keeps of a release.
fn release_summary(fw: &Firmware) -> serde_json::Value {
    serde_json::json!({
        "device_type": fw.device_type,
        "version": fw.version,
        "build_number": fw.build_number,
        "channel": fw.channel,
        "file_size": fw.file_size,
        "file_hash": fw.file_hash,
        "state": fw.state,
    })
}

/// Multipart form of the one-shot upload, for the OpenAPI document only: the handler streams the
/// fields instead of building this.
#[derive(ToSchema)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub device_type: String,
    pub version: String,
    pub build_number: Option<u64>,
    pub channel: Option<String>,
    pub description: Option<String>,
    pub release_notes: Option<String>,
    pub min_current_version: Option<String>,
}

async fn text_field(field: Field<'_>) -> ApiResult<String> {
    let name = field.name().unwrap_or("").to_owned();
    let mut buf = Vec::new();
    let mut stream = field;
    while let Some(chunk) = stream
        .chunk()
        .await
        .map_err(|e| Problem::bad_request(&name, format!("malformed multipart body: {e}")))?
    {
        buf.extend_from_slice(&chunk);
        if buf.len() > MAX_FIELD_BYTES {
            return Err(Problem::bad_request(&name, "field too long"));
        }
    }
    String::from_utf8(buf).map_err(|_| Problem::bad_request(&name, "must be UTF-8 text"))
}

fn parse_field<T>(
    name: &str,
    v: Option<String>,
    f: impl Fn(&str) -> Result<T, String>,
) -> ApiResult<Option<T>> {
    v.map(|s| f(s.trim()).map_err(|m| Problem::bad_request(name, m)))
        .transpose()
}

/// Store, validate and register in one call. The file streams to storage; nothing is
/// registered unless the image passes.
#[utoipa::path(post, path = "/api/ota/admin/upload", tag = "firmware",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Firmware), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    admin: Admin,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Firmware>)> {
    admin.require(Role::Publisher)?;
    let mut multipart = multipart.map_err(|_| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "the body must be multipart/form-data",
        )
    })?;
    let id = new_id();
    let key = blob_key(&id);
    let result = receive_upload(&state, &mut multipart, &id, &key).await;
    if let Ok(fw) = &result {
        audit_trail::record(
            &state,
            &admin,
            "firmware.upload",
            "firmware",
            &fw.id,
            release_summary(fw),
        )
        .await?;
    }
    if result.is_err() {
        // Nothing half-registered: the bytes of a refused upload do not stay.
        let _ = state.blobs.delete(&key).await;
    }
    result.map(|fw| (StatusCode::CREATED, Json(fw)))
}

async fn receive_upload(
    state: &AppState,
    multipart: &mut Multipart,
    id: &str,
    key: &str,
) -> ApiResult<Firmware> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut stored = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| Problem::bad_request("body", format!("malformed multipart body: {e}")))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "file" => {
                if stored.is_some() {
                    return Err(Problem::bad_request("file", "only one file per upload"));
                }
                let stream = field.map_err(std::io::Error::other);
                stored = Some(
                    state
                        .blobs
                        .put(key, Box::pin(stream), state.settings.max_upload_bytes)
                        .await
                        .map_err(|e| match e {
                            ota_core::ports::StoreError::Conflict(m) => {
                                Problem::bad_request("file", m)
                            }
                            other => other.into(),
                        })?,
                );
            }
            "device_type"
            | "version"
            | "build_number"
            | "channel"
            | "description"
            | "release_notes"
            | "min_current_version" => {
                let value = text_field(field).await?;
                fields.insert(name, value);
            }
            other => {
                return Err(Problem::bad_request(
                    other,
                    format!("unknown field '{other}'"),
                ));
            }
        }
    }
    let meta = stored.ok_or_else(|| Problem::bad_request("file", "the file field is required"))?;
    let device_type = parse_field("device_type", fields.remove("device_type"), |s| {
        DeviceType::parse(s).map_err(|e| e.0)
    })?
    .ok_or_else(|| Problem::bad_request("device_type", "device_type is required"))?;
    let version = parse_field("version", fields.remove("version"), |s| {
        Version::parse(s).map_err(|e| e.0)
    })?
    .ok_or_else(|| Problem::bad_request("version", "version is required"))?;
    let build_number = parse_field("build_number", fields.remove("build_number"), |s| {
        s.parse::<u64>()
            .map_err(|_| "must be a non-negative integer".to_owned())
    })?;
    let min_current_version = parse_field(
        "min_current_version",
        fields.remove("min_current_version"),
        |s| Version::parse(s).map_err(|e| e.0),
    )?;
    let now = state.clock.now();
    let fw = new_record(
        id.to_owned(),
        NewRelease {
            device_type,
            version,
            build_number,
            channel: fields.remove("channel"),
            description: fields.remove("description"),
            min_current_version,
            release_notes: fields.remove("release_notes"),
        },
        meta.size,
        hex::encode(meta.sha256),
        now,
    )?;
    refuse_duplicate(state, &fw.device_type, &fw.version).await?;
    let ready = publish::validate_release(state.meta.as_ref(), state.blobs.as_ref(), &fw, now)
        .await?
        .map_err(|p| Problem::image_rejected(&p))?;
    state.meta.insert_firmware(&ready).await?;
    Ok(ready)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FirmwareListQuery {
    pub device_type: Option<DeviceType>,
    pub channel: Option<String>,
    pub state: Option<FirmwareState>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Releases, newest version first.
#[utoipa::path(get, path = "/api/ota/admin/firmware", tag = "firmware", params(FirmwareListQuery),
    responses((status = 200, body = ListResponse<Firmware>), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<FirmwareListQuery>,
) -> ApiResult<Json<ListResponse<Firmware>>> {
    admin.require(Role::Viewer)?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = FirmwareFilter {
        device_type: q.device_type,
        channel: q.channel,
        state: q.state,
    };
    let page: Page<Firmware> = state.meta.list_firmware(&filter, &page).await?;
    Ok(Json(page.into()))
}

async fn load(state: &AppState, id: &str) -> ApiResult<Firmware> {
    state
        .meta
        .get_firmware(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("firmware {id} does not exist")))
}

#[utoipa::path(get, path = "/api/ota/admin/firmware/{id}", tag = "firmware", params(("id" = String, Path)),
    responses((status = 200, body = Firmware), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Firmware>> {
    admin.require(Role::Viewer)?;
    load(&state, &id).await.map(Json)
}

/// `Some(None)` when the field is present as null (clear it), `None` when absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchFirmwareRequest {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub release_notes: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub min_current_version: Option<Option<Version>>,
}

/// Edit what may change after release; the bytes and version never do.
#[utoipa::path(patch, path = "/api/ota/admin/firmware/{id}", tag = "firmware", params(("id" = String, Path)),
    request_body = PatchFirmwareRequest,
    responses((status = 200, body = Firmware), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("admin_token" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchFirmwareRequest>,
) -> ApiResult<Json<Firmware>> {
    admin.require(Role::Admin)?;
    let changes = serde_json::to_value(&req).unwrap_or_default();
    let description = req
        .description
        .map(|d| validate::text("description", d, MAX_TEXT_CHARS))
        .transpose()?;
    let release_notes = req
        .release_notes
        .map(|n| validate::text("release_notes", n, MAX_TEXT_CHARS))
        .transpose()?;
    let channel = req
        .channel
        .map(|c| validate::channel("channel", Some(c)))
        .transpose()?;
    let updated = edit(&state, &id, |fw| {
        if let Some(d) = &description {
            fw.description = d.clone();
        }
        if let Some(n) = &release_notes {
            fw.release_notes = n.clone();
        }
        if let Some(c) = &channel {
            fw.channel = c.clone();
        }
        if let Some(a) = req.is_active {
            fw.is_active = a;
        }
        if let Some(m) = &req.min_current_version {
            fw.min_current_version = m.clone();
        }
    })
    .await?;
    audit_trail::record(&state, &admin, "firmware.update", "firmware", &id, changes).await?;
    Ok(Json(updated))
}

/// Deactivate: never deletes bytes or history.
#[utoipa::path(delete, path = "/api/ota/admin/firmware/{id}", tag = "firmware", params(("id" = String, Path)),
    responses((status = 200, body = Firmware), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn deactivate(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Firmware>> {
    admin.require(Role::Admin)?;
    let fw = edit(&state, &id, |fw| fw.is_active = false).await?;
    audit_trail::record(
        &state,
        &admin,
        "firmware.deactivate",
        "firmware",
        &id,
        serde_json::json!({}),
    )
    .await?;
    Ok(Json(fw))
}

/// Tries of an edit that keeps meeting concurrent writers, and the most one waits before
/// trying again (a random part of it, so racing writers spread out: on DynamoDB they do not
/// queue behind a lock as they do on SQLite).
const EDIT_ATTEMPTS: u32 = 16;
const EDIT_BACKOFF_MS: u64 = 50;

/// Applies `change` to the stored release and writes it only if nobody else wrote it meanwhile,
/// reloading and reapplying otherwise: a PATCH and a DELETE never undo each other.
async fn edit(state: &AppState, id: &str, change: impl Fn(&mut Firmware)) -> ApiResult<Firmware> {
    for _ in 0..EDIT_ATTEMPTS {
        let current = load(state, id).await?;
        let mut next = current.clone();
        change(&mut next);
        next.touch(state.clock.now());
        match state.meta.update_firmware(&next, &current).await {
            Ok(()) => return Ok(next),
            Err(StoreError::Conflict(_)) => {
                let jitter = u64::from(uuid::Uuid::new_v4().as_u128() as u16) % EDIT_BACKOFF_MS;
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Problem::conflict(format!(
        "firmware {id} is being changed by others; retry"
    )))
}

#[utoipa::path(get, path = "/api/ota/admin/device-types", tag = "device types", params(PageQuery),
    responses((status = 200, body = ListResponse<DeviceTypePolicy>)), security(("admin_token" = [])))]
pub async fn list_device_types(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListResponse<DeviceTypePolicy>>> {
    admin.require(Role::Viewer)?;
    let page = state.meta.list_device_types(&q.into_request()?).await?;
    Ok(Json(page.into()))
}

fn parse_type(name: &str) -> ApiResult<DeviceType> {
    DeviceType::parse(name).map_err(|e| Problem::bad_request("name", e.0))
}

#[utoipa::path(get, path = "/api/ota/admin/device-types/{name}", tag = "device types", params(("name" = String, Path)),
    responses((status = 200, body = DeviceTypePolicy), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get_device_type(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> ApiResult<Json<DeviceTypePolicy>> {
    admin.require(Role::Viewer)?;
    let name = parse_type(&name)?;
    state
        .meta
        .get_device_type(&name)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("device type {name} does not exist")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDeviceTypeRequest {
    /// Chip name as in ESP-IMAGE.md (`esp32`, `esp32c3`, ...).
    pub chip: String,
    pub max_image_size: Option<u64>,
    #[serde(default)]
    pub require_signature: bool,
    #[serde(default)]
    pub signing_key_digests: Vec<String>,
}

/// Create or replace a device type's policy. Its chip is fixed once it exists.
#[utoipa::path(put, path = "/api/ota/admin/device-types/{name}", tag = "device types", params(("name" = String, Path)),
    request_body = PutDeviceTypeRequest,
    responses((status = 200, body = DeviceTypePolicy), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("admin_token" = [])))]
pub async fn put_device_type(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PutDeviceTypeRequest>,
) -> ApiResult<Json<DeviceTypePolicy>> {
    admin.require(Role::Admin)?;
    let name = parse_type(&name)?;
    let chip = Chip::from_name(&req.chip)
        .ok_or_else(|| Problem::bad_request("chip", format!("unknown chip '{}'", req.chip)))?;
    let digests = req
        .signing_key_digests
        .iter()
        .map(|d| validate::sha256_hex("signing_key_digests", d))
        .collect::<ApiResult<Vec<_>>>()?;
    if req.require_signature && digests.is_empty() {
        return Err(Problem::bad_request(
            "signing_key_digests",
            "require_signature needs at least one trusted key digest",
        ));
    }
    let now = state.clock.now();
    let existing = state.meta.get_device_type(&name).await?;
    if let Some(e) = &existing
        && e.chip != chip.name()
    {
        return Err(Problem::conflict(format!(
            "device type {name} runs {}; its chip cannot change",
            e.chip
        )));
    }
    let policy = DeviceTypePolicy {
        name,
        chip: chip.name().to_owned(),
        max_image_size: req.max_image_size,
        require_signature: req.require_signature,
        signing_key_digests: digests,
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
    };
    state.meta.put_device_type(&policy).await?;
    audit_trail::record(
        &state,
        &admin,
        "device_type.put",
        "device_type",
        policy.name.as_str(),
        serde_json::to_value(&policy).unwrap_or_default(),
    )
    .await?;
    Ok(Json(policy))
}
