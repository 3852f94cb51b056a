//! The seven functions of the AWS deployment: the six behind the HTTP API with the route groups
//! each one serves, and the scheduled `rollout-tick`.

use axum::Router;
use ota_http::AppState;
use ota_http::router::{
    admin_routes, check_routes, download_routes, meta_routes, observe_routes, status_routes,
    upload_routes,
};

/// One Lambda function per endpoint group, and one that EventBridge invokes every minute to
/// evaluate the rollouts ([`crate::rollout_tick`]). Each HTTP function also answers `/health`,
/// the OpenAPI document and the manifest keys (so that each can be probed on its own); API
/// Gateway sends those three paths to `admin-metrics`.
/// No function serves the embedded server's `/api/ota/blob/` routes: devices and CI get
/// presigned S3 URLs instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Check,
    Download,
    Status,
    AdminUpload,
    AdminRollout,
    AdminMetrics,
    RolloutTick,
}

impl Function {
    pub const ALL: [Function; 7] = [
        Function::Check,
        Function::Download,
        Function::Status,
        Function::AdminUpload,
        Function::AdminRollout,
        Function::AdminMetrics,
        Function::RolloutTick,
    ];

    /// The binary's name: `cargo lambda build` writes `target/lambda/<name>/bootstrap`, and the
    /// `cargo lambda watch` router of the workspace `Cargo.toml` names functions by it.
    pub fn name(self) -> &'static str {
        match self {
            Function::Check => "check",
            Function::Download => "download",
            Function::Status => "status",
            Function::AdminUpload => "admin-upload",
            Function::AdminRollout => "admin-rollout",
            Function::AdminMetrics => "admin-metrics",
            Function::RolloutTick => "rollout-tick",
        }
    }

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The routes this function serves, before the common layers (`ota_http::router::finish`);
    /// None for `rollout-tick`, which serves no request.
    pub fn routes(self) -> Option<Router<AppState>> {
        let own = match self {
            Function::Check => check_routes(),
            Function::Download => download_routes(),
            Function::Status => status_routes(),
            Function::AdminUpload => upload_routes(),
            Function::AdminRollout => admin_routes(),
            Function::AdminMetrics => observe_routes(),
            Function::RolloutTick => return None,
        };
        Some(own.merge(meta_routes()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use ota_core::ports::SystemClock;
    use ota_core::service::Service;
    use ota_http::auth::AuthConfig;
    use ota_http::throttle::DeviceThrottle;
    use ota_http::{AppShared, Settings};
    use tower::ServiceExt;
    use utoipa::OpenApi;

    use super::*;

    /// Status of the sentinel fallbacks: the function has no route for the request.
    const UNROUTED: StatusCode = StatusCode::IM_A_TEAPOT;

    fn workspace_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// `[workspace.metadata.lambda.watch.router]`: path -> function.
    fn watch_router() -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let router = doc["workspace"]["metadata"]["lambda"]["watch"]["router"]
            .as_table()
            .expect("the workspace Cargo.toml has a watch router table");
        router
            .iter()
            .map(|(path, f)| {
                let f = f.as_str().unwrap_or_else(|| {
                    panic!("{path}: route to one function by name (all methods)")
                });
                (path.clone(), f.to_owned())
            })
            .collect()
    }

    /// Every (method, path template) of the published contract.
    fn operations() -> Vec<(Method, String)> {
        let doc = ota_http::openapi::ApiDoc::openapi();
        let mut ops = Vec::new();
        for (path, item) in &doc.paths.paths {
            let methods = [
                (Method::GET, item.get.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::HEAD, item.head.is_some()),
                (Method::OPTIONS, item.options.is_some()),
                (Method::TRACE, item.trace.is_some()),
            ];
            for (m, present) in methods {
                if present {
                    ops.push((m, path.clone()));
                }
            }
        }
        assert!(ops.len() > 25, "the contract lists its operations");
        ops
    }

    /// `{param}` segments filled in, as a client would send them.
    fn concrete(template: &str) -> String {
        template
            .split('/')
            .map(|s| if s.starts_with('{') { "p-1" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// State whose stores are never reached by these requests (none carries a credential); the
    /// SDK clients point at a closed port, without retries, should one be.
    async fn state() -> AppState {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .no_credentials()
            .load()
            .await;
        AppState::new(AppShared {
            ota: Service {
                meta: Arc::new(ota_store_aws::DynamoMeta::new(
                    &sdk,
                    "t",
                    ota_store_aws::DynamoOptions::default(),
                )),
                blobs: Arc::new(ota_store_aws::S3Blobs::new(&sdk, "b")),
                clock: Arc::new(SystemClock),
                settings: Arc::new(Settings::default()),
                evaluations: Arc::default(),
            },
            auth: Arc::new(AuthConfig::new(b"test-secret", None, true)),
            capability: None,
            manifest_keys: Arc::new(
                ota_core::manifest_keys::ManifestKeys::parse(
                    &ota_core::manifest_keys::ManifestKeys::generate_line(),
                )
                .unwrap(),
            ),
            throttle: Arc::new(DeviceThrottle::new(0)),
        })
    }

    /// The routes of an HTTP function with the common layers, as `ota_lambda::run` serves them.
    fn served(function: Function, state: AppState) -> Router {
        let routes = function.routes().expect("an HTTP function has routes");
        ota_http::router::finish(routes, state)
    }

    async fn serves(function: Function, state: &AppState, method: &Method, path: &str) -> bool {
        // `rollout-tick` serves no request.
        let Some(routes) = function.routes() else {
            return false;
        };
        let app = routes
            .fallback(|| async { UNROUTED })
            .method_not_allowed_fallback(|| async { UNROUTED })
            .with_state(state.clone());
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        app.oneshot(req).await.unwrap().status() != UNROUTED
    }

    #[tokio::test]
    async fn every_operation_of_the_contract_goes_to_a_function_that_serves_it() {
        let mut router = matchit::Router::new();
        for (path, function) in watch_router() {
            router.insert(path, function).unwrap();
        }
        let state = state().await;
        for (method, template) in operations() {
            let path = concrete(&template);
            let matched = router
                .at(&path)
                .unwrap_or_else(|_| panic!("{method} {template}: no route in the watch router"));
            let function = Function::from_name(matched.value)
                .unwrap_or_else(|| panic!("{template}: unknown function {}", matched.value));
            assert!(
                serves(function, &state, &method, &path).await,
                "{method} {template} is routed to {} which does not serve it",
                function.name()
            );
            // And no other group claims it (the route groups partition the contract; meta
            // routes are in every function).
            if !["/health", "/api/ota/openapi.json", "/api/ota/keys"].contains(&template.as_str()) {
                for other in Function::ALL.into_iter().filter(|f| *f != function) {
                    assert!(
                        !serves(other, &state, &method, &path).await,
                        "{method} {template} is also served by {}",
                        other.name()
                    );
                }
            }
        }
    }

    #[test]
    fn the_watch_router_has_only_paths_of_the_contract() {
        let paths: std::collections::BTreeSet<String> =
            operations().into_iter().map(|(_, p)| p).collect();
        for (path, function) in watch_router() {
            assert!(
                paths.contains(&path) || CATCH_ALL.contains(&path.as_str()),
                "{path} is not in the OpenAPI document"
            );
            assert!(Function::from_name(&function).is_some(), "{function}");
        }
    }

    /// The router's catch-all entries (matchit syntax; every other entry wins over them), as API
    /// Gateway's `$default` route: every path outside the contract.
    const CATCH_ALL: [&str; 2] = ["/", "/{*path}"];

    /// An unknown path reaches `admin-metrics` through the catch-all, and its router's fallback
    /// (`ota_http::router::finish`) answers the contract's problem+json 404; a method a path
    /// lacks gets the routed function's problem+json 405 (API Gateway's routes are `ANY`).
    #[tokio::test]
    async fn unknown_paths_and_methods_get_problem_answers_from_the_functions() {
        let entries = watch_router();
        for path in CATCH_ALL {
            assert_eq!(
                entries.get(path).map(String::as_str),
                Some("admin-metrics"),
                "the watch router's catch-all entry {path}"
            );
        }
        let mut router = matchit::Router::new();
        for (path, function) in entries {
            router.insert(path, function).unwrap();
        }
        let state = state().await;
        let is_problem = |resp: &axum::response::Response| {
            resp.headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
        };

        for path in [
            "/",
            "/nope",
            "/api",
            "/api/ota",
            "/api/ota/admin/firmware/p-1/finalize/more",
            "/api/ota/blob/p-1",
            "/health/more",
        ] {
            let matched = router.at(path).unwrap();
            assert_eq!(*matched.value, "admin-metrics", "{path}");
            let function = Function::from_name(matched.value).unwrap();
            for method in [Method::GET, Method::POST, Method::DELETE] {
                let req = Request::builder()
                    .method(&method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap();
                let resp = served(function, state.clone()).oneshot(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method} {path}");
                assert!(is_problem(&resp), "{method} {path}: problem+json");
            }
        }

        let ops = operations();
        let candidates = [
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ];
        let templates: std::collections::BTreeSet<&String> = ops.iter().map(|(_, t)| t).collect();
        let mut tried = 0;
        for template in templates {
            let path = concrete(template);
            let matched = router.at(&path).unwrap();
            assert!(!CATCH_ALL.contains(&matched.value.as_str()));
            let function = Function::from_name(matched.value).unwrap();
            for method in &candidates {
                if ops.iter().any(|(m, t)| m == method && t == template) {
                    continue;
                }
                let req = Request::builder()
                    .method(method)
                    .uri(&path)
                    .body(Body::empty())
                    .unwrap();
                let resp = served(function, state.clone()).oneshot(req).await.unwrap();
                assert_eq!(
                    resp.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} ({})",
                    function.name()
                );
                assert!(is_problem(&resp), "{method} {template}: problem+json");
                tried += 1;
            }
        }
        assert!(tried > 50, "wrong methods tried: {tried}");
    }

    /// `cargo lambda` finds a function by its binary name.
    #[test]
    fn each_function_is_the_binary_of_its_package() {
        for f in Function::ALL {
            let manifest = workspace_root().join(format!("functions/{}/Cargo.toml", f.name()));
            let text = std::fs::read_to_string(&manifest).unwrap();
            let doc: toml::Table = text.parse().unwrap();
            assert_eq!(
                doc["package"]["name"].as_str(),
                Some(format!("ota-fn-{}", f.name()).as_str())
            );
            let bins = doc["bin"].as_array().unwrap();
            assert_eq!(bins.len(), 1);
            assert_eq!(bins[0]["name"].as_str(), Some(f.name()));
        }
    }

    /// An API Gateway HTTP API event (payload 2.0, `$default` stage, as the watch emulator sends
    /// and as the deployment uses) reaches the router with the path of docs/api.md, neither
    /// stripped nor prefixed with a stage.
    #[tokio::test]
    async fn lambda_http_keeps_the_path_of_a_default_stage_event() {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/api/ota/admin/firmware/p-1/finalize",
            "rawQueryString": "a=1",
            "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc",
                "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                "domainPrefix": "abc",
                "http": {
                    "method": "POST",
                    "path": "/api/ota/admin/firmware/p-1/finalize",
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "curl"
                },
                "requestId": "id",
                "routeKey": "$default",
                "stage": "$default",
                "time": "12/Mar/2020:19:03:58 +0000",
                "timeEpoch": 1583348638390u64
            },
            "isBase64Encoded": false
        });
        let req = lambda_http::request::from_str(&event.to_string()).unwrap();
        assert_eq!(req.uri().path(), "/api/ota/admin/firmware/p-1/finalize");
        assert_eq!(req.uri().query(), Some("a=1"));
        let app = served(Function::AdminUpload, state().await);
        let resp = app.oneshot(req).await.unwrap();
        // Routed (the missing credential), not the problem+json 404 of an unknown path.
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
