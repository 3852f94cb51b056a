//! The contract as OpenAPI 3.1, generated from the handlers and types themselves. The error
//! responses every operation can give (credentials, bodies, throttling, storage) are added here,
//! from what the operation declares, by [`ErrorResponses`]: one rule, not a list per handler
//! that drifts.

use axum::Json;
use axum::extract::State;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, Ref, RefOr, Response as ApiResponse, Type,
};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    blob, device_protocol, device_registry, device_types, health, keys, logs, observe, paku,
    releases, rollouts,
};
use crate::state::AppState;

/// The media type of every error (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let jwt = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_token",
            jwt("An admin, publisher or viewer token (docs/api.md §2.1)."),
        );
        components.add_security_scheme(
            "device_token",
            jwt("A device token (docs/api.md §2.2); also accepted in `X-OTA-Device-Token`."),
        );
        // Relative: the document describes the deployment that serves it, wherever that is.
        api.servers = Some(vec![Server::new("/")]);
    }
}

/// What can go wrong on every operation of a kind, whatever its handler says: a credential
/// (401, and 403 for a role or device it does not cover), a body or a parameter (400, and
/// 408/413/415 for bodies), a device over its budget (429), the storage (503). Every error is a
/// problem document.
struct ErrorResponses;

impl ErrorResponses {
    fn apply(op: &mut Operation) {
        let security = serde_json::to_value(&op.security).unwrap_or_default();
        let secured = |scheme: &str| {
            security
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.get(scheme).is_some()))
        };
        let device = secured("device_token");
        let mut add = |status: u16, description: &str| {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::T(ApiResponse::new(description)));
        };
        if device || secured("admin_token") {
            add(401, "No credential, or one that is not valid");
            add(
                403,
                "The credential does not cover this operation or device",
            );
            add(503, "A storage dependency is unavailable; retry later");
        }
        if device {
            add(429, "This device is over its request budget");
        }
        if op.request_body.is_some() {
            add(400, "The body is not valid (the field is named)");
            add(
                408,
                "The body stalled (ota-server: no byte for OTA_BODY_TIMEOUT_S)",
            );
            add(413, "The body is too large");
            add(415, "The body has the wrong content type");
        }
        if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            add(400, "A parameter is not valid (the field is named)");
        }
        for (status, response) in &mut op.responses.responses {
            if let (Some(code), RefOr::T(response)) = (status.parse::<u16>().ok(), response)
                && code >= 400
            {
                *response = problem_response(response, code);
            }
        }
    }
}

/// `response` as a problem document, with `Retry-After` where the status promises one.
fn problem_response(response: &ApiResponse, status: u16) -> ApiResponse {
    let mut builder = ResponseBuilder::new()
        .description(response.description.clone())
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        );
    for (name, header) in &response.headers {
        builder = builder.header(name, header.clone());
    }
    if status == 429 || status == 503 {
        builder = builder.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    builder.build()
}

impl Modify for ErrorResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        operations(api).for_each(Self::apply);
    }
}

/// The rules between fields of one body, which the derived schemas cannot say: JSON Schema's
/// `if`/`then` and `anyOf`, added to the components they constrain.
struct CrossFieldRules;

impl CrossFieldRules {
    /// What a rollout's `target_type` asks of its `target_filter` (docs/api.md §9.3).
    fn rollout_targets() -> serde_json::Value {
        let lists = |device_ids: serde_json::Value, groups: serde_json::Value| {
            serde_json::json!({"properties": {"target_filter": {
                "properties": {"device_ids": device_ids, "groups": groups}}}})
        };
        let none = serde_json::json!({"maxItems": 0});
        serde_json::json!([
            {"if": {"properties": {"target_type": {"enum": ["all", "canary"]}}},
             "then": lists(none.clone(), none)},
            {"if": {"properties": {"target_type": {"const": "specific"}}},
             "then": {"required": ["target_filter"], "properties": {"target_filter": {
                 "required": ["device_ids"], "properties": {
                     "device_ids": {"minItems": 1}, "groups": {"maxItems": 0}}}}}},
            {"if": {"properties": {"target_type": {"const": "group"}}},
             "then": {"required": ["target_filter"], "properties": {"target_filter": {
                 "required": ["groups"], "properties": {
                     "groups": {"minItems": 1}, "device_ids": {"maxItems": 0}}}}}},
        ])
    }

    fn add(
        api: &mut utoipa::openapi::OpenApi,
        component: &str,
        key: &str,
        rule: serde_json::Value,
    ) {
        let schema = api
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut(component));
        if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(object))) = schema {
            object
                .extensions
                .get_or_insert_with(Default::default)
                .insert(key.to_owned(), rule);
        }
    }
}

impl Modify for CrossFieldRules {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        Self::add(
            api,
            "CreateRolloutRequest",
            "allOf",
            Self::rollout_targets(),
        );
        let mut legacy = Self::rollout_targets();
        if let Some(rules) = legacy.as_array_mut() {
            // The paku dialect names the release by id, or by version and device model.
            rules.push(serde_json::json!({"anyOf": [
                {"required": ["firmware_id"], "properties": {"firmware_id": {"type": "string"}}},
                {"required": ["firmware_version", "device_model"], "properties": {
                    "firmware_version": {"type": "string"}, "device_model": {"type": "string"}}},
            ]}));
        }
        Self::add(api, "LegacyCreateRolloutRequest", "allOf", legacy);
        // A rollout's groups are named by the rule of a device's groups.
        if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(filter))) = api
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("TargetFilter"))
        {
            filter.properties.insert(
                "groups".to_owned(),
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(Ref::from_schema_name("GroupName"))
                    .into(),
            );
        }
        // A form's parts are the fields the command knows; any other is refused.
        if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(form))) = api
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("UploadForm"))
        {
            form.additional_properties = Some(Box::new(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        }
        Self::add(
            api,
            "PutDeviceTypeRequest",
            "allOf",
            serde_json::json!([{
                "if": {"required": ["require_signature"],
                       "properties": {"require_signature": {"const": true}}},
                "then": {"required": ["signing_key_digests"],
                         "properties": {"signing_key_digests": {"minItems": 1}}},
            }]),
        );
    }
}

/// Where an answer leads: the id a create returns to the operations on that resource, and each
/// list page's `next_cursor` to the next page. Clients and the stateful tester follow them.
struct Links;

impl Links {
    /// (operation, status, link, target operation, target parameter, runtime expression); a
    /// link of several parameters takes a row each.
    const TABLE: [(&str, &str, &str, &str, &str, &str); 26] = [
        (
            "create_release",
            "201",
            "get",
            "get_release",
            "id",
            "$response.body#/id",
        ),
        (
            "create_release",
            "201",
            "finalize",
            "finalize_release",
            "id",
            "$response.body#/id",
        ),
        (
            "create_release",
            "201",
            "patch",
            "patch_release",
            "id",
            "$response.body#/id",
        ),
        (
            "create_release",
            "201",
            "deactivate",
            "deactivate_release",
            "id",
            "$response.body#/id",
        ),
        (
            "upload_release",
            "201",
            "get",
            "get_release",
            "id",
            "$response.body#/id",
        ),
        (
            "upload_release",
            "201",
            "patch",
            "patch_release",
            "id",
            "$response.body#/id",
        ),
        (
            "upload_release",
            "201",
            "deactivate",
            "deactivate_release",
            "id",
            "$response.body#/id",
        ),
        (
            "create_rollout",
            "201",
            "get",
            "get_rollout",
            "id",
            "$response.body#/id",
        ),
        (
            "create_rollout",
            "201",
            "patch",
            "patch_rollout",
            "id",
            "$response.body#/id",
        ),
        (
            "legacy_create",
            "201",
            "get",
            "get_rollout",
            "id",
            "$response.body#/id",
        ),
        (
            "legacy_create",
            "201",
            "patch",
            "patch_rollout",
            "id",
            "$response.body#/id",
        ),
        (
            "put_device_type",
            "200",
            "get",
            "get_device_type",
            "name",
            "$request.path.name",
        ),
        (
            "patch_device",
            "200",
            "get",
            "get_device",
            "id",
            "$response.body#/device_id",
        ),
        (
            "mint_device_token",
            "200",
            "get_device",
            "get_device",
            "id",
            "$request.path.id",
        ),
        (
            "list_releases",
            "200",
            "next_page",
            "list_releases",
            "cursor",
            NEXT,
        ),
        (
            "list_rollouts",
            "200",
            "next_page",
            "list_rollouts",
            "cursor",
            NEXT,
        ),
        (
            "list_devices",
            "200",
            "next_page",
            "list_devices",
            "cursor",
            NEXT,
        ),
        (
            "list_device_types",
            "200",
            "next_page",
            "list_device_types",
            "cursor",
            NEXT,
        ),
        ("list_logs", "200", "next_page", "list_logs", "cursor", NEXT),
        ("audit", "200", "next_page", "audit", "cursor", NEXT),
        (
            "get_release",
            "200",
            "patch",
            "patch_release",
            "id",
            "$response.body#/id",
        ),
        (
            "get_rollout",
            "200",
            "patch",
            "patch_rollout",
            "id",
            "$response.body#/id",
        ),
        (
            "get_rollout",
            "200",
            "devices",
            "list_rollout_devices",
            "id",
            "$response.body#/id",
        ),
        (
            "create_rollout",
            "201",
            "devices",
            "list_rollout_devices",
            "id",
            "$response.body#/id",
        ),
        (
            "list_rollout_devices",
            "200",
            "next_page",
            "list_rollout_devices",
            "cursor",
            NEXT,
        ),
        (
            "list_rollout_devices",
            "200",
            "next_page",
            "list_rollout_devices",
            "id",
            "$request.path.id",
        ),
    ];
}

/// Each list answer's items by reference to their own schema (utoipa copies a generic's
/// argument inline), so that a generated client has one class per record, not one per list.
struct ListItemRefs;

impl Modify for ListItemRefs {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let Some(components) = api.components.as_mut() else {
            return;
        };
        let known: Vec<String> = components.schemas.keys().cloned().collect();
        for (name, schema) in &mut components.schemas {
            let item = name.strip_prefix("ListResponse_");
            if let (Some(item), RefOr::T(utoipa::openapi::schema::Schema::Object(list))) =
                (item, schema)
                && known.iter().any(|k| k == item)
            {
                list.properties.insert(
                    "items".to_owned(),
                    utoipa::openapi::schema::ArrayBuilder::new()
                        .items(Ref::from_schema_name(item))
                        .into(),
                );
            }
        }
    }
}

/// A list page's cursor to the next one.
const NEXT: &str = "$response.body#/next_cursor";

impl Modify for Links {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        for (from, status, name, to, parameter, expression) in Self::TABLE {
            let response = operations(api)
                .find(|op| op.operation_id.as_deref() == Some(from))
                .and_then(|op| op.responses.responses.get_mut(status));
            // As an extension holding the `links` object: utoipa's own `Link` serializes its
            // operation id in snake case, which no tool reads.
            if let Some(RefOr::T(response)) = response {
                let links = response
                    .extensions
                    .get_or_insert_with(Default::default)
                    .entry("links".to_owned())
                    .or_insert_with(|| serde_json::json!({}));
                links[name]["operationId"] = to.into();
                links[name]["parameters"][parameter] = expression.into();
            }
        }
    }
}

/// Every operation of the document.
fn operations(api: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
        ]
        .into_iter()
        .flatten()
    })
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ESP32 OTA service",
        description = "Over-the-air firmware updates for ESP32 fleets. Errors are RFC 9457 problem \
details (application/problem+json). Unknown JSON fields are refused with 400. Lists take \
`limit` (1-500, default 50) and an opaque `cursor`. Device endpoints also accept the device \
token in `X-OTA-Device-Token`. Capability URLs (`download_url`, upload URLs) need no credential."
    ),
    modifiers(&Security, &ErrorResponses, &CrossFieldRules, &Links, &ListItemRefs),
    paths(
        device_protocol::check, device_protocol::download, device_protocol::download_head,
        device_protocol::status, keys::keys,
        paku::check, paku::download, paku::download_head, paku::status,
        releases::upload, releases::create, releases::finalize, releases::list, releases::get,
        releases::patch, releases::deactivate,
        device_types::list, device_types::get, device_types::put,
        rollouts::create, paku::create_rollout, rollouts::list, rollouts::get, rollouts::patch,
        rollouts::named_devices,
        device_registry::list, device_registry::get, device_registry::patch,
        device_registry::mint_token,
        logs::list, observe::metrics, observe::audit, health::health, serve,
    )
)]
pub struct ApiDoc;

/// The routes only the embedded server has: its capability URLs, which S3's presigned URLs
/// replace in AWS mode.
#[derive(OpenApi)]
#[openapi(
    modifiers(&ErrorResponses),
    paths(blob::get_blob, blob::head_blob, blob::put_blob)
)]
pub struct CapabilityDoc;

/// The document of a deployment: with the capability routes when it serves them, and its
/// upload limit as the largest `file_size`.
pub fn document(capability_routes: bool, max_upload_bytes: u64) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if capability_routes {
        doc.merge(CapabilityDoc::openapi());
    }
    let file_size = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("FileSize"));
    if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(object))) = file_size {
        object.maximum = Some(max_upload_bytes.into());
    }
    doc
}

/// This document, as the deployment serving it has it.
#[utoipa::path(get, path = "/api/ota/openapi.json", tag = "health", security(()),
    responses((status = 200, description = "The contract as OpenAPI 3.1", content_type = "application/json")))]
pub async fn serve(State(state): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    // Built per request (it is fetched rarely): it follows this process's settings.
    Json(document(
        state.capability.is_some(),
        state.ota.settings.max_upload_bytes,
    ))
}
