//! The embedded server's capability endpoint: what a presigned S3 URL is in AWS mode. GET and
//! HEAD with Range (206, open ranges, ends past EOF), PUT bound to size and SHA-256.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::TryStreamExt;
use ota_core::capability::CapabilitySigner;
use ota_core::ports::{BlobMeta, ByteRange, StoreError};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::{ApiPath, ApiQuery};
use crate::problem::{ApiResult, Problem};
use crate::range::{RangeAnswer, parse_range};
use crate::state::AppState;

/// The capability a URL carries. Kept as text: a tampered, non-numeric expiry is a refused
/// capability (403), not a 400.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CapabilityQuery {
    /// Unix time after which the URL is refused.
    #[param(required = true)]
    exp: Option<String>,
    /// The server's signature over the method, object, expiry (and, for PUT, size and hash).
    #[param(required = true)]
    sig: Option<String>,
    /// PUT only: the exact size the upload must have.
    size: Option<String>,
    /// PUT only: the SHA-256 (hex) the upload must have.
    sha256: Option<String>,
}

fn signer(state: &AppState) -> ApiResult<&CapabilitySigner> {
    state
        .capability
        .as_ref()
        .ok_or_else(|| Problem::not_found("this deployment serves no capability URLs"))
}

fn refuse() -> Problem {
    Problem::forbidden("the URL is expired or its signature is not valid")
}

fn check_live(state: &AppState, exp: i64) -> ApiResult<()> {
    if state.ota.now().unix_timestamp() > exp {
        Err(refuse())
    } else {
        Ok(())
    }
}

/// Download a release's image through a capability URL (a check's `download_url`).
#[utoipa::path(get, path = "/api/ota/blob/firmware/{object}", tag = "capability urls (ota-server only)",
    security(()), params(("object" = String, Path, description = "`<firmware_id>.bin`"), CapabilityQuery,
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=1024-`")),
    responses((status = 200, description = "The image", content_type = "application/octet-stream"),
              (status = 206, description = "The requested range", content_type = "application/octet-stream"),
              (status = 403, description = "The URL is expired or its signature is not valid"),
              (status = 404, description = "No such object"),
              (status = 416, description = "The range starts past the end of the object")))]
pub async fn get_blob(
    State(state): State<AppState>,
    method: Method,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<CapabilityQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let signer = signer(&state)?;
    let (Some(exp), Some(sig)) = (q.exp.and_then(|e| e.parse::<i64>().ok()), q.sig.as_deref())
    else {
        return Err(refuse());
    };
    if !signer.verify("GET", &key, exp, &[], sig) {
        return Err(refuse());
    }
    check_live(&state, exp)?;
    let len = state
        .ota
        .blobs
        .size(&key)
        .await?
        .ok_or_else(|| Problem::not_found("no such object"))?;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let (status, byte_range) = match range {
        None | Some(RangeAnswer::Ignore) => (StatusCode::OK, None),
        Some(RangeAnswer::Unsatisfiable) => {
            // A problem like every other error, with the length a client needs to retry.
            let problem = Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                format!("the range starts past the end of the {len}-byte object"),
            );
            return Ok(
                ([(header::CONTENT_RANGE, format!("bytes */{len}"))], problem).into_response(),
            );
        }
        Some(RangeAnswer::Partial(r)) => (StatusCode::PARTIAL_CONTENT, Some(r)),
    };
    let body_len = byte_range.map_or(len, |r: ByteRange| r.end - r.start + 1);
    let mut resp = if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        let stream = state.ota.blobs.get(&key, byte_range).await?;
        Response::new(Body::from_stream(stream))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "application/octet-stream".parse().map_err(internal)?,
    );
    h.insert(header::ACCEPT_RANGES, "bytes".parse().map_err(internal)?);
    h.insert(header::CONTENT_LENGTH, body_len.into());
    if let Some(r) = byte_range {
        h.insert(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{len}", r.start, r.end)
                .parse()
                .map_err(internal)?,
        );
    }
    Ok(resp)
}

fn internal<E: std::fmt::Display>(e: E) -> Problem {
    tracing::error!(error = %e, "building a response header");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an internal error occurred",
    )
}

/// Size and `Accept-Ranges` of an image through a capability URL.
#[utoipa::path(head, path = "/api/ota/blob/firmware/{object}", tag = "capability urls (ota-server only)",
    security(()), params(("object" = String, Path, description = "`<firmware_id>.bin`"), CapabilityQuery),
    responses((status = 200, description = "Content-Length of the image"),
              (status = 403, description = "The URL is expired or its signature is not valid"),
              (status = 404, description = "No such object")))]
pub async fn head_blob(
    state: State<AppState>,
    key: ApiPath<String>,
    query: ApiQuery<CapabilityQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    get_blob(state, Method::HEAD, key, query, headers).await
}

/// Upload the bytes of a release created by `POST /api/ota/admin/firmware` (its `upload.url`).
#[utoipa::path(put, path = "/api/ota/blob/firmware/{object}", tag = "capability urls (ota-server only)",
    security(()), params(("object" = String, Path, description = "`<firmware_id>.bin`"), CapabilityQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "Exactly the size and SHA-256 the URL is bound to"),
    responses((status = 200, description = "Stored"),
              (status = 400, description = "The bytes differ from the size or SHA-256 the URL is bound to"),
              (status = 403, description = "The URL is expired or its signature is not valid")))]
pub async fn put_blob(
    State(state): State<AppState>,
    ApiPath(key): ApiPath<String>,
    ApiQuery(q): ApiQuery<CapabilityQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let signer = signer(&state)?;
    let (Some(exp), Some(sig), Some(size), Some(sha)) = (
        q.exp.and_then(|e| e.parse::<i64>().ok()),
        q.sig.as_deref(),
        q.size.and_then(|s| s.parse::<u64>().ok()),
        q.sha256.as_deref(),
    ) else {
        return Err(refuse());
    };
    if !signer.verify("PUT", &key, exp, &[&size.to_string(), sha], sig) {
        return Err(refuse());
    }
    check_live(&state, exp)?;
    let declared_len = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|n| n != size) {
        return Err(Problem::bad_request(
            "content-length",
            format!("this URL accepts exactly {size} bytes"),
        ));
    }
    let want = hex::decode(sha).map_err(|_| refuse())?;
    if let Some(given) = headers
        .get("x-amz-checksum-sha256")
        .and_then(|v| v.to_str().ok())
    {
        let given = base64::engine::general_purpose::STANDARD
            .decode(given)
            .map_err(|_| Problem::bad_request("x-amz-checksum-sha256", "not base64"))?;
        if given != want {
            return Err(Problem::bad_request(
                "x-amz-checksum-sha256",
                "the checksum header differs from the one this URL is bound to",
            ));
        }
    }
    let expect = BlobMeta {
        size,
        sha256: want.as_slice().try_into().map_err(|_| refuse())?,
    };
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    // Checked before anything is committed: wrong bytes never replace stored ones.
    let meta = match state
        .ota
        .blobs
        .put_exact(&key, Box::pin(stream), &expect)
        .await
    {
        Ok(m) => m,
        Err(StoreError::TooLarge { .. }) => {
            return Err(Problem::bad_request(
                "body",
                format!("this URL accepts exactly {size} bytes"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if meta != expect {
        return Err(Problem::bad_request(
            "body",
            "the uploaded bytes do not match the size and SHA-256 this URL is bound to",
        ));
    }
    Ok(StatusCode::OK.into_response())
}
