//! Publishing releases (docs/api.md §Publishing): the one-shot multipart upload, the two-step
//! create / PUT / finalize flow, listing and edits. The API's paths and fields call a release
//! `firmware`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use http_body_util::Limited;
use ota_core::access::Admin;
use ota_core::cmd::NewRelease;
use ota_core::cmd::create_release::CreateRelease;
use ota_core::cmd::edit_release::ReleaseChanges;
use ota_core::cmd::upload_release::{UploadForm as Form, UploadPart, form_limit};
use ota_core::error::OpError;
use ota_core::ids::{DeviceType, Version};
use ota_core::release::{Release, ReleaseDetail, ReleaseFilter, ReleaseState};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::schema::{Channel, Count, FileSize, Sha256Hex, Text};
use crate::state::AppState;

/// Metadata of a new release (two-step flow).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateReleaseRequest {
    pub device_type: DeviceType,
    pub version: Version,
    #[schema(value_type = Option<Count>)]
    pub build_number: Option<u64>,
    #[schema(value_type = FileSize)]
    pub file_size: u64,
    /// SHA-256 of the whole file, hex.
    #[schema(value_type = Sha256Hex)]
    pub file_hash: String,
    #[schema(value_type = Option<Channel>)]
    pub channel: Option<String>,
    #[schema(value_type = Option<Text<4096>>)]
    pub description: Option<String>,
    pub min_current_version: Option<Version>,
    #[schema(value_type = Option<Text<4096>>)]
    pub release_notes: Option<String>,
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
pub struct CreatedRelease {
    #[serde(flatten)]
    pub release: Release,
    pub upload: UploadInstructions,
}

/// Step one of the two-step flow: register metadata, get an upload URL bound to size and hash.
#[utoipa::path(post, path = "/api/ota/admin/firmware", tag = "firmware", operation_id = "create_release", request_body = CreateReleaseRequest,
    responses((status = 201, body = CreatedRelease), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
              (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateReleaseRequest>,
) -> ApiResult<(StatusCode, Json<CreatedRelease>)> {
    let input = CreateRelease {
        release: NewRelease {
            device_type: req.device_type,
            version: req.version,
            build_number: req.build_number,
            channel: req.channel,
            description: req.description,
            min_current_version: req.min_current_version,
            release_notes: req.release_notes,
        },
        file_size: req.file_size,
        file_hash: req.file_hash,
    };
    let (release, target) = state.ota.create_release(&admin, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedRelease {
            release,
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
#[utoipa::path(post, path = "/api/ota/admin/firmware/{id}/finalize", tag = "firmware", operation_id = "finalize_release",
    params(("id" = String, Path)),
    responses((status = 200, body = Release), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "no bytes uploaded yet"),
              (status = 422, body = Problem, description = "image rejected: every reason in `errors`")),
    security(("admin_token" = [])))]
pub async fn finalize(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Release>> {
    Ok(Json(state.ota.finalize_release(&admin, &id).await?))
}

/// Multipart form of the one-shot upload, for the OpenAPI document only: the handler streams the
/// fields instead of building this. Optional parts are absent, never null (a form has no null).
#[derive(ToSchema)]
pub struct UploadForm {
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    pub device_type: DeviceType,
    pub version: Version,
    #[schema(value_type = Count, required = false)]
    pub build_number: Option<u64>,
    #[schema(value_type = Channel, required = false)]
    pub channel: Option<String>,
    #[schema(value_type = Text<4096>, required = false)]
    pub description: Option<String>,
    #[schema(value_type = Text<4096>, required = false)]
    pub release_notes: Option<String>,
    #[schema(value_type = Version, required = false)]
    pub min_current_version: Option<Version>,
}

/// The multipart body as the command reads it: every part streamed, the command bounding each.
struct MultipartForm {
    form: Multipart,
    /// The bound of the whole body (`form_limit`), for the answer when it is what was exceeded.
    limit: u64,
}

#[async_trait]
impl Form for MultipartForm {
    async fn next_part(&mut self) -> Result<Option<UploadPart<'_>>, OpError> {
        let limit = self.limit;
        let field = self.form.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OpError::TooLarge(limit)
            } else {
                OpError::invalid("body", format!("malformed multipart body: {e}"))
            }
        })?;
        let Some(field) = field else { return Ok(None) };
        let name = field.name().unwrap_or("").to_owned();
        let bytes = Box::pin(field.map_err(std::io::Error::other));
        Ok(Some(if name == "file" {
            UploadPart::File(bytes)
        } else {
            UploadPart::Text { name, value: bytes }
        }))
    }
}

/// Store, validate and register in one call. The file streams to storage; nothing is
/// registered unless the image passes.
#[utoipa::path(post, path = "/api/ota/admin/upload", tag = "firmware", operation_id = "upload_release",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Release), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    admin: Admin,
    request: Request,
) -> ApiResult<(StatusCode, Json<Release>)> {
    // Every byte of the body counts, whatever part (or no part) it is in.
    let limit = form_limit(state.ota.settings.max_upload_bytes);
    let request = request.map(|body| {
        Body::new(Limited::new(
            body,
            usize::try_from(limit).unwrap_or(usize::MAX),
        ))
    });
    let form = Multipart::from_request(request, &state)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be multipart/form-data",
            )
        })?;
    let release = state
        .ota
        .upload_release(&admin, &mut MultipartForm { form, limit })
        .await?;
    Ok((StatusCode::CREATED, Json(release)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReleaseListQuery {
    pub device_type: Option<DeviceType>,
    #[param(value_type = Option<Channel>)]
    pub channel: Option<String>,
    pub state: Option<ReleaseState>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Releases, newest version first.
#[utoipa::path(get, path = "/api/ota/admin/firmware", tag = "firmware", operation_id = "list_releases", params(ReleaseListQuery),
    responses((status = 200, body = ListResponse<Release>), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<ReleaseListQuery>,
) -> ApiResult<Json<ListResponse<Release>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = ReleaseFilter {
        device_type: q.device_type,
        channel: q.channel,
        state: q.state,
    };
    Ok(Json(
        state
            .ota
            .list_releases(&admin, &filter, &page)
            .await?
            .into(),
    ))
}

/// One release.
#[utoipa::path(get, path = "/api/ota/admin/firmware/{id}", tag = "firmware", operation_id = "get_release", params(("id" = String, Path)),
    responses((status = 200, body = ReleaseDetail), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ReleaseDetail>> {
    Ok(Json(state.ota.get_release(&admin, &id).await?))
}

/// `Some(None)` when the field is present as null (clear it), `None` when absent.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchReleaseRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Text<4096>>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Text<4096>>)]
    pub release_notes: Option<Option<String>>,
    #[schema(value_type = Option<Channel>)]
    pub channel: Option<String>,
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Version>)]
    pub min_current_version: Option<Option<Version>>,
}

/// Edit what may change after release; the bytes and version never do.
#[utoipa::path(patch, path = "/api/ota/admin/firmware/{id}", tag = "firmware", operation_id = "patch_release", params(("id" = String, Path)),
    request_body = PatchReleaseRequest,
    responses((status = 200, body = Release), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("admin_token" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PatchReleaseRequest>,
) -> ApiResult<Json<Release>> {
    let changes = ReleaseChanges {
        description: req.description,
        release_notes: req.release_notes,
        channel: req.channel,
        is_active: req.is_active,
        min_current_version: req.min_current_version,
    };
    Ok(Json(state.ota.edit_release(&admin, &id, changes).await?))
}

/// Deactivate: never deletes bytes or history.
#[utoipa::path(delete, path = "/api/ota/admin/firmware/{id}", tag = "firmware", operation_id = "deactivate_release", params(("id" = String, Path)),
    responses((status = 200, body = Release), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn deactivate(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Release>> {
    Ok(Json(state.ota.deactivate_release(&admin, &id).await?))
}
