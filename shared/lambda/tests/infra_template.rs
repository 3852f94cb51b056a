//! `infra/template.yaml` says what the code says, in three places that must agree:
//!
//! - the functions: every `functions/<name>` package `ota-fn-<name>` (binary `<name>`) is one
//!   `AWS::Serverless::Function` built from that binary, and the template has no other;
//! - the routes: the HTTP API routes (the functions' `HttpApi` events) are one `ANY` route per
//!   path of the `cargo lambda watch` router of the root `Cargo.toml`, to the function it names,
//!   and the router's catch-all entries (`/`, `/{*path}`) are the `$default` route, to theirs;
//!   the paths are exactly those of the OpenAPI document (methods are the functions' business:
//!   a method a path lacks gets the function's problem+json 405, an unknown path the `$default`
//!   function's problem+json 404);
//! - the table: keys, attribute definitions, indexes, projection, billing mode and TTL are those
//!   of `ota_store_aws::table_definition` (what `create_table` creates);
//! - the schedule: the one function without routes in code (`rollout-tick`) is the one the
//!   template runs on a schedule, every minute, not retried, with a role that may do what a
//!   tick does on the table and nothing else, an alarm on its errors, and its log counted for
//!   the auto-pause alarm as `check`'s and `status`'s;
//! - the downloads: with `CloudFront=enabled` (the default) a distribution reads the private
//!   bucket through origin access control, trusts the key group of the signing key, and the bucket
//!   policy lets only that distribution read `firmware/*`; the signing key's secret is readable by
//!   the two functions that mint download URLs (`check`, `download`) and no other, and they alone
//!   get the `OTA_CLOUDFRONT_*` variables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ota_lambda::Function;
use serde_yaml::Value;
use utoipa::OpenApi;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> Value {
    let path = root().join("infra/template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).expect("infra/template.yaml is YAML")
}

/// The resources of the template of a given type, by logical id.
fn resources<'a>(t: &'a Value, kind: &str) -> BTreeMap<&'a str, &'a Value> {
    t["Resources"]
        .as_mapping()
        .expect("the template has Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("a logical id is a string"), r))
        .collect()
}

fn string<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: a plain string, got {v:?}"))
}

/// `[workspace.metadata.lambda.watch.router]`: path -> function (binary) name.
fn router() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    doc["workspace"]["metadata"]["lambda"]["watch"]["router"]
        .as_table()
        .expect("the root Cargo.toml has the watch router")
        .iter()
        .map(|(path, f)| (path.clone(), f.as_str().unwrap().to_owned()))
        .collect()
}

/// The Lambda functions on disk: `functions/<dir>` packages named `ota-fn-*`, by binary name.
fn functions_on_disk() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let doc: toml::Table = text.parse().unwrap();
        let package = doc["package"]["name"].as_str().unwrap();
        if !package.starts_with("ota-fn-") {
            continue; // functions/server: the single-process server, not a Lambda
        }
        let bins = doc
            .get("bin")
            .and_then(|b| b.as_array())
            .unwrap_or_else(|| panic!("{}: one [[bin]]", manifest.display()));
        assert_eq!(bins.len(), 1, "{}: one binary", manifest.display());
        found.insert(bins[0]["name"].as_str().unwrap().to_owned());
    }
    found
}

/// The paths of the OpenAPI document.
fn contract_paths() -> BTreeSet<String> {
    ota_http::openapi::ApiDoc::openapi()
        .paths
        .paths
        .into_keys()
        .collect()
}

/// The router's catch-all entries (matchit syntax): every path no other entry matches. They are
/// the HTTP API's `$default` route, whose function answers the contract's problem+json 404.
const CATCH_ALL: [&str; 2] = ["/", "/{*path}"];

/// The HTTP API's `$default` route, as the test names it: SAM makes it of an `HttpApi` event
/// without `Path` and `Method`.
const DEFAULT_ROUTE: &str = "$default";

/// Whether `v` is `!Ref <target>` (or `{Ref: <target>}`).
fn is_ref(v: &Value, target: &str) -> bool {
    match v {
        Value::Tagged(t) => t.tag == "Ref" && t.value.as_str() == Some(target),
        Value::Mapping(m) => m.len() == 1 && m.get("Ref").and_then(Value::as_str) == Some(target),
        _ => false,
    }
}

struct TemplateFunction {
    logical_id: String,
    /// Route paths: `ANY` routes, and [`DEFAULT_ROUTE`].
    routes: BTreeSet<String>,
    /// The expressions of its `Schedule` events (EventBridge rules).
    schedules: Vec<String>,
}

/// The template's functions by binary name, with their HTTP API routes and schedules. Every
/// route is `ANY` (the function answers 405 itself, with the contract's problem+json) or the
/// `$default` route; every other event is a `Schedule`.
fn template_functions(t: &Value) -> BTreeMap<String, TemplateFunction> {
    let mut out = BTreeMap::new();
    for (id, f) in resources(t, "AWS::Serverless::Function") {
        assert_eq!(
            f["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id}: built by cargo-lambda"
        );
        let binary = string(
            &f["Metadata"]["BuildProperties"]["Binary"],
            &format!("{id}: Metadata.BuildProperties.Binary"),
        );
        let mut routes = BTreeSet::new();
        let mut schedules = Vec::new();
        if let Some(events) = f["Properties"]["Events"].as_mapping() {
            for (name, event) in events {
                let name = format!("{id}.{}", name.as_str().unwrap());
                let p = &event["Properties"];
                match event["Type"].as_str() {
                    Some("HttpApi") => {}
                    Some("Schedule") => {
                        assert!(
                            p.get("Enabled").is_none() && p.get("State").is_none(),
                            "{name}: a schedule that runs"
                        );
                        schedules.push(string(&p["Schedule"], &name).to_owned());
                        continue;
                    }
                    other => panic!("{name}: an HttpApi or a Schedule event, not {other:?}"),
                }
                assert!(is_ref(&p["ApiId"], "HttpApi"), "{name}: on the one HttpApi");
                let path = match (p.get("Method"), p.get("Path")) {
                    (None, None) => DEFAULT_ROUTE.to_owned(),
                    (Some(method), Some(path)) => {
                        let method = string(method, &name);
                        assert!(
                            method.eq_ignore_ascii_case("ANY"),
                            "{name}: Method {method}, not ANY: another method would miss every \
                             route and get API Gateway's own 404 instead of the function's \
                             problem+json 405"
                        );
                        string(path, &name).to_owned()
                    }
                    _ => panic!("{name}: Method and Path, or neither (the $default route)"),
                };
                assert!(routes.insert(path.clone()), "{name}: {path} twice");
            }
        }
        let previous = out.insert(
            binary.to_owned(),
            TemplateFunction {
                logical_id: id.to_owned(),
                routes,
                schedules,
            },
        );
        assert!(previous.is_none(), "two template functions build {binary}");
    }
    out
}

#[test]
fn the_template_has_exactly_the_lambda_functions_of_the_workspace() {
    let on_disk = functions_on_disk();
    let in_code: BTreeSet<String> = Function::ALL.iter().map(|f| f.name().to_owned()).collect();
    assert_eq!(
        on_disk, in_code,
        "functions/ and ota_lambda::Function::ALL differ"
    );
    let t = template();
    let in_template: BTreeSet<String> = template_functions(&t).into_keys().collect();
    let missing: Vec<_> = on_disk.difference(&in_template).collect();
    assert!(
        missing.is_empty(),
        "functions {missing:?} (functions/<name>) have no AWS::Serverless::Function in infra/template.yaml"
    );
    let extra: Vec<_> = in_template.difference(&on_disk).collect();
    assert!(
        extra.is_empty(),
        "infra/template.yaml builds binaries {extra:?}, which no functions/ package has"
    );
    // What every function runs on (set once, in Globals).
    let g = &t["Globals"]["Function"];
    assert_eq!(g["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(g["Handler"].as_str(), Some("bootstrap"));
    assert_eq!(g["CodeUri"].as_str(), Some(".."), "the workspace root");
    assert_eq!(
        g["Architectures"].as_sequence().map(Vec::as_slice),
        Some(&[Value::from("arm64")][..])
    );
}

#[test]
fn the_template_routes_are_the_router_and_the_contract() {
    let router = router();
    let t = template();
    let functions = template_functions(&t);

    // The router's catch-all entries are the `$default` route: both there, to one function.
    let catch_all: BTreeSet<&str> = CATCH_ALL
        .iter()
        .map(|path| {
            router
                .get(*path)
                .unwrap_or_else(|| panic!("the router lacks its catch-all entry {path:?}"))
                .as_str()
        })
        .collect();
    assert_eq!(
        catch_all.len(),
        1,
        "the router's catch-all entries {CATCH_ALL:?} go to different functions: {catch_all:?}"
    );
    let catch_all = *catch_all.first().unwrap();
    // What the router sends each template route to.
    let expected: BTreeMap<&str, &str> = router
        .iter()
        .filter(|(path, _)| !CATCH_ALL.contains(&path.as_str()))
        .map(|(path, f)| (path.as_str(), f.as_str()))
        .chain([(DEFAULT_ROUTE, catch_all)])
        .collect();

    let mut routed = BTreeMap::new();
    for (binary, f) in &functions {
        for path in &f.routes {
            let Some(&expected) = expected.get(path.as_str()) else {
                panic!(
                    "{}: ANY {path} is not a path of the Cargo.toml router",
                    f.logical_id
                );
            };
            assert_eq!(
                expected, binary,
                "{path}: the router sends it to {expected}, the template to {binary} ({})",
                f.logical_id
            );
            assert!(
                routed.insert(path.as_str(), binary.as_str()).is_none(),
                "{path}: routed by two functions of infra/template.yaml"
            );
        }
    }
    for path in expected.keys() {
        let what = if *path == DEFAULT_ROUTE {
            "catch-all (the $default route: an HttpApi event without Path and Method)"
        } else {
            path
        };
        assert!(
            routed.contains_key(path),
            "the router's {what} has no route in infra/template.yaml"
        );
    }

    // The paths themselves are the contract's (the method check is the function's, through the
    // router: src/function.rs).
    let contract = contract_paths();
    for path in routed.keys().filter(|p| **p != DEFAULT_ROUTE) {
        assert!(
            contract.contains(*path),
            "infra/template.yaml routes {path}, which the OpenAPI document lacks"
        );
    }
    let unrouted: Vec<_> = contract
        .iter()
        .filter(|p| !routed.contains_key(p.as_str()))
        .collect();
    assert!(
        unrouted.is_empty(),
        "paths of the OpenAPI document without a route in infra/template.yaml: {unrouted:?}"
    );
}

#[test]
fn the_template_table_is_the_store_table() {
    let def = ota_store_aws::table_definition();
    let t = template();
    let tables = resources(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table");
    let p = &tables.values().next().unwrap()["Properties"];

    assert_eq!(p["BillingMode"].as_str(), Some(def.billing_mode.as_str()));

    let key_schema = |v: &Value, what: &str| -> Vec<(String, String)> {
        v.as_sequence()
            .unwrap_or_else(|| panic!("{what}: a KeySchema list"))
            .iter()
            .map(|k| {
                (
                    string(&k["AttributeName"], what).to_owned(),
                    string(&k["KeyType"], what).to_owned(),
                )
            })
            .collect()
    };
    let expect_keys = |k: &ota_store_aws::KeyPair| {
        vec![
            (k.partition.clone(), "HASH".to_owned()),
            (k.sort.clone(), "RANGE".to_owned()),
        ]
    };
    assert_eq!(
        key_schema(&p["KeySchema"], "table"),
        expect_keys(&def.key),
        "the table's keys"
    );

    let attributes: BTreeSet<(String, String)> = p["AttributeDefinitions"]
        .as_sequence()
        .expect("AttributeDefinitions")
        .iter()
        .map(|a| {
            (
                string(&a["AttributeName"], "attribute").to_owned(),
                string(&a["AttributeType"], "attribute").to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = def
        .key_attributes()
        .into_iter()
        .map(|name| (name.to_owned(), "S".to_owned()))
        .collect();
    assert_eq!(attributes, expected, "the attribute definitions");

    let indexes: BTreeMap<String, (Vec<(String, String)>, String)> = p["GlobalSecondaryIndexes"]
        .as_sequence()
        .expect("GlobalSecondaryIndexes")
        .iter()
        .map(|i| {
            let name = string(&i["IndexName"], "IndexName").to_owned();
            let keys = key_schema(&i["KeySchema"], &name);
            let projection = string(&i["Projection"]["ProjectionType"], &name).to_owned();
            (name, (keys, projection))
        })
        .collect();
    let expected: BTreeMap<String, (Vec<(String, String)>, String)> = def
        .indexes
        .iter()
        .map(|(name, k)| {
            (
                name.clone(),
                (expect_keys(k), def.projection.as_str().to_owned()),
            )
        })
        .collect();
    assert_eq!(indexes, expected, "the global secondary indexes");

    let ttl = &p["TimeToLiveSpecification"];
    assert_eq!(ttl["AttributeName"].as_str(), Some(def.ttl_attribute));
    assert_eq!(ttl["Enabled"].as_bool(), Some(true), "TTL enabled");
}

/// `!<tag> <value>` (or `{Fn::<tag>: <value>}`, `{Ref: <value>}`): the value.
fn intrinsic<'a>(v: &'a Value, tag: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        Value::Mapping(m) if m.len() == 1 => {
            let long = if tag == "Ref" {
                tag.to_owned()
            } else {
                format!("Fn::{tag}")
            };
            m.get(long.as_str())
        }
        _ => None,
    }
}

/// `!If [<condition>, <then>, <else>]`: the three parts.
/// The `<resource>.<attribute>` of a `!GetAtt`.
fn getatt(v: &Value) -> Option<&str> {
    intrinsic(v, "GetAtt").and_then(Value::as_str)
}

fn if_parts(v: &Value) -> Option<(&str, &Value, &Value)> {
    let parts = intrinsic(v, "If")?.as_sequence()?;
    match parts.as_slice() {
        [condition, then, otherwise] => Some((condition.as_str()?, then, otherwise)),
        _ => None,
    }
}

/// The only resource of `kind`, by logical id, and that it exists only with `condition`.
fn only<'a>(t: &'a Value, kind: &str, condition: &str) -> (&'a str, &'a Value) {
    let found = resources(t, kind);
    assert_eq!(found.len(), 1, "one {kind}: {:?}", found.keys());
    let (id, r) = found.into_iter().next().unwrap();
    assert_eq!(
        r["Condition"].as_str(),
        Some(condition),
        "{id}: only with {condition}"
    );
    (id, r)
}

/// The statements of every inline policy of `role`, each `!If` branch as a statement of its own
/// (`AWS::NoValue` left out).
fn role_statements(role: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for policy in role["Properties"]["Policies"].as_sequence().unwrap() {
        for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            match if_parts(statement) {
                Some((_, then, otherwise)) => out.extend(
                    [then, otherwise]
                        .into_iter()
                        .filter(|s| !is_ref(s, "AWS::NoValue")),
                ),
                None => out.push(statement),
            }
        }
    }
    out
}

/// The CloudFront managed cache policy `CachingOptimized`.
const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";

#[test]
fn downloads_go_through_cloudfront_by_default_and_the_bucket_stays_private() {
    let t = template();
    let p = &t["Parameters"]["CloudFront"];
    assert_eq!(p["Default"].as_str(), Some("enabled"), "on by default");
    assert_eq!(
        p["AllowedValues"].as_sequence().unwrap(),
        &[Value::from("enabled"), Value::from("disabled")]
    );
    let use_cloudfront = intrinsic(&t["Conditions"]["UseCloudFront"], "And")
        .and_then(Value::as_sequence)
        .expect("UseCloudFront: !And");
    let equals = intrinsic(&use_cloudfront[0], "Equals")
        .and_then(Value::as_sequence)
        .expect("UseCloudFront: CloudFront = enabled first");
    assert!(is_ref(&equals[0], "CloudFront") && equals[1].as_str() == Some("enabled"));

    // The bucket: public access blocked as before.
    let (bucket, b) = resources(&t, "AWS::S3::Bucket").into_iter().next().unwrap();
    let block = &b["Properties"]["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting].as_bool(), Some(true), "{bucket}: {setting}");
    }

    // The origin access control, used by the distribution's one origin, the bucket.
    let (oac, o) = only(&t, "AWS::CloudFront::OriginAccessControl", "UseCloudFront");
    let oc = &o["Properties"]["OriginAccessControlConfig"];
    assert_eq!(oc["OriginAccessControlOriginType"].as_str(), Some("s3"));
    assert_eq!(oc["SigningProtocol"].as_str(), Some("sigv4"));
    assert_eq!(oc["SigningBehavior"].as_str(), Some("always"));
    let (distribution, d) = only(&t, "AWS::CloudFront::Distribution", "UseCloudFront");
    let dc = &d["Properties"]["DistributionConfig"];
    let origins = dc["Origins"].as_sequence().unwrap();
    assert_eq!(origins.len(), 1, "one origin");
    assert_eq!(
        getatt(&origins[0]["OriginAccessControlId"]),
        Some(format!("{oac}.Id").as_str()),
        "the origin signs its requests with the origin access control"
    );
    assert_eq!(
        getatt(&origins[0]["DomainName"]),
        Some(format!("{bucket}.RegionalDomainName").as_str())
    );
    let behavior = &dc["DefaultCacheBehavior"];
    assert_eq!(
        behavior["ViewerProtocolPolicy"].as_str(),
        Some("https-only")
    );
    assert_eq!(behavior["CachePolicyId"].as_str(), Some(CACHING_OPTIMIZED));
    assert_eq!(
        behavior["TargetOriginId"].as_str(),
        origins[0]["Id"].as_str()
    );

    // The key group is trusted, and holds the template's public keys.
    let (group, g) = only(&t, "AWS::CloudFront::KeyGroup", "UseCloudFront");
    let trusted = behavior["TrustedKeyGroups"].as_sequence().unwrap();
    assert!(
        trusted.len() == 1 && is_ref(&trusted[0], group),
        "the distribution trusts {group}: {trusted:?}"
    );
    let keys = resources(&t, "AWS::CloudFront::PublicKey");
    let items = g["Properties"]["KeyGroupConfig"]["Items"]
        .as_sequence()
        .unwrap();
    assert_eq!(items.len(), keys.len());
    for (item, (id, key)) in items.iter().zip(&keys) {
        let (condition, then, otherwise) = if_parts(item).expect("a key group item: !If");
        assert_eq!(key["Condition"].as_str(), Some(condition), "{id}");
        assert!(
            is_ref(then, id) && is_ref(otherwise, "AWS::NoValue"),
            "{id}"
        );
        let encoded = &key["Properties"]["PublicKeyConfig"]["EncodedKey"];
        let parameter = intrinsic(encoded, "Ref").and_then(Value::as_str).unwrap();
        assert!(
            parameter.starts_with("CloudFrontPublicKeyPem"),
            "{id}: the key of a template parameter, got {parameter}"
        );
    }

    // The bucket policy: every earlier statement kept, plus the distribution's read of
    // firmware/*, conditioned on its ARN; nothing else is allowed to anyone.
    let policies = resources(&t, "AWS::S3::BucketPolicy");
    let statements = policies.values().next().unwrap()["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert!(
        statements
            .iter()
            .any(|s| s["Sid"].as_str() == Some("DenyInsecureTransport")),
        "the TLS-only statement stays"
    );
    let allows: Vec<&Value> = statements
        .iter()
        .filter_map(if_parts)
        .map(|(condition, then, otherwise)| {
            assert_eq!(condition, "UseCloudFront");
            assert!(is_ref(otherwise, "AWS::NoValue"));
            then
        })
        .collect();
    assert_eq!(allows.len(), 1, "one statement for the distribution");
    let allow = allows[0];
    assert_eq!(allow["Effect"].as_str(), Some("Allow"));
    assert_eq!(
        allow["Principal"]["Service"].as_str(),
        Some("cloudfront.amazonaws.com")
    );
    assert_eq!(allow["Action"].as_str(), Some("s3:GetObject"));
    assert_eq!(
        intrinsic(&allow["Resource"], "Sub").and_then(Value::as_str),
        Some(format!("${{{bucket}.Arn}}/firmware/*").as_str())
    );
    let source = intrinsic(&allow["Condition"]["StringEquals"]["AWS:SourceArn"], "Sub")
        .and_then(Value::as_str)
        .expect("AWS:SourceArn: a !Sub");
    assert!(
        source.starts_with("arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/")
            && source.ends_with(&format!("/${{{distribution}}}")),
        "the distribution's ARN: {source}"
    );
    for s in statements.iter().filter(|s| if_parts(s).is_none()) {
        assert_eq!(s["Effect"].as_str(), Some("Deny"), "{s:?}");
    }

    // The signing key's secret: read by the roles of check and download, no other, and the
    // variables only there.
    let role_of: BTreeMap<String, String> = template_functions(&t)
        .into_iter()
        .map(|(binary, f)| {
            let role = getatt(&t["Resources"][f.logical_id.as_str()]["Properties"]["Role"])
                .expect("Role: !GetAtt <role>.Arn");
            (role.trim_end_matches(".Arn").to_owned(), binary)
        })
        .collect();
    let mut readers = BTreeSet::new();
    for (id, role) in resources(&t, "AWS::IAM::Role") {
        for statement in role_statements(role) {
            if is_ref(&statement["Resource"], "CloudFrontKeySecretArn") {
                assert_eq!(
                    statement["Action"].as_str(),
                    Some("secretsmanager:GetSecretValue"),
                    "{id}"
                );
                readers.insert(role_of[id].as_str());
            }
        }
    }
    assert_eq!(readers, BTreeSet::from(["check", "download"]));
    assert!(
        t["Globals"]["Function"]["Environment"]["Variables"]
            .get("OTA_CLOUDFRONT_KEY_ARN")
            .is_none()
    );
    let mut configured = BTreeSet::new();
    for (binary, f) in template_functions(&t) {
        let vars = &t["Resources"][f.logical_id.as_str()]["Properties"]["Environment"]["Variables"];
        let names = [
            "OTA_CLOUDFRONT_DOMAIN",
            "OTA_CLOUDFRONT_KEY_PAIR_ID",
            "OTA_CLOUDFRONT_KEY_ARN",
        ];
        let set: Vec<bool> = names.iter().map(|n| vars.get(*n).is_some()).collect();
        assert!(
            set.iter().all(|s| *s == set[0]),
            "{binary}: all of {names:?} or none"
        );
        if set[0] {
            for name in names {
                let (condition, _, otherwise) = if_parts(&vars[name]).expect("!If");
                assert_eq!(condition, "UseCloudFront", "{binary}: {name}");
                assert!(is_ref(otherwise, "AWS::NoValue"), "{binary}: {name}");
            }
            configured.insert(binary);
        }
    }
    assert_eq!(
        configured,
        BTreeSet::from(["check".to_owned(), "download".to_owned()])
    );
    assert_eq!(
        t["Outputs"]["CloudFrontDomain"]["Condition"].as_str(),
        Some("UseCloudFront")
    );
}

#[test]
fn logs_are_json_sampled_and_lambdas_own_lines_left_out_by_default() {
    let t = template();
    let g = &t["Globals"]["Function"];
    let logging = &g["LoggingConfig"];
    assert_eq!(logging["LogFormat"].as_str(), Some("JSON"));
    assert!(is_ref(&logging["SystemLogLevel"], "LambdaSystemLogLevel"));
    let level = &t["Parameters"]["LambdaSystemLogLevel"];
    assert_eq!(
        level["Default"].as_str(),
        Some("WARN"),
        "no START/END/REPORT lines"
    );
    assert!(is_ref(
        &g["Environment"]["Variables"]["OTA_ACCESS_LOG_SAMPLE"],
        "AccessLogSample"
    ));
    assert_eq!(
        t["Parameters"]["AccessLogSample"]["Default"].as_u64(),
        Some(ota_lambda::access_log::DEFAULT_SAMPLE)
    );
    // Each function names its own log group; Globals gives the rest of the map.
    for (binary, f) in template_functions(&t) {
        let own = &t["Resources"][f.logical_id.as_str()]["Properties"]["LoggingConfig"];
        let keys: Vec<&str> = own
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, ["LogGroup"], "{binary}");
    }
    // API Gateway's own access log (a line per request) only when asked for.
    assert_eq!(
        t["Parameters"]["ApiAccessLog"]["Default"].as_str(),
        Some("disabled")
    );
    let (condition, enabled, disabled) =
        if_parts(&t["Resources"]["HttpApi"]["Properties"]["AccessLogSettings"]).unwrap();
    assert_eq!(condition, "HasApiAccessLog");
    assert!(enabled.get("DestinationArn").is_some());
    assert!(is_ref(disabled, "AWS::NoValue"));
    assert_eq!(
        t["Resources"]["ApiAccessLogs"]["Condition"].as_str(),
        Some("HasApiAccessLog")
    );
}

/// The DynamoDB calls each function's use cases make on the table itself (docs/aws-keys.md
/// §Access patterns). Each needs the IAM action of its name (`TransactWriteItems` is authorised
/// item by item, as `PutItem` and `UpdateItem`): a call the role lacks is `AccessDenied` in AWS,
/// which DynamoDB Local, with no IAM, never shows.
const TABLE_CALLS: [(&str, &[&str]); 7] = [
    // The device Query, its write; the completion report's reads and its rule 4 (the
    // progress shards together).
    (
        "check",
        &["Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"],
    ),
    ("download", &["GetItem"]),
    (
        "status",
        &["Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"],
    ),
    ("admin-upload", &["GetItem", "PutItem"]),
    // Rollout reads with their progress; a specific rollout's named devices written first.
    (
        "admin-rollout",
        &["GetItem", "BatchGetItem", "PutItem", "BatchWriteItem"],
    ),
    // Metrics: the counter shards, each active rollout's progress shards.
    ("admin-metrics", &["Query", "GetItem", "BatchGetItem"]),
    // Each active rollout's progress shards and release health; a decision's transaction; a
    // silent device's timed_out, stored as a status report.
    (
        "rollout-tick",
        &["Query", "GetItem", "BatchGetItem", "PutItem", "UpdateItem"],
    ),
];

/// The indexes each function's use cases Query (docs/aws-keys.md §Access patterns), which its
/// role must allow on `<table>/index/<name>`: as for the table's calls, DynamoDB Local never
/// refuses one.
const INDEX_QUERIES: [(&str, &[&str]); 7] = [
    // The release of a running image (IMG#), a rollout's open attempts (OPEN#).
    ("check", &["GSI3"]),
    ("download", &[]),
    ("status", &[]),
    // Releases by type (GSI2) or all (GSI1).
    ("admin-upload", &["GSI1", "GSI2"]),
    // Listings of device types, rollouts, devices and a device's log.
    ("admin-rollout", &["GSI1", "GSI2"]),
    // Logs, the audit log, the active rollouts and the releases' health.
    ("admin-metrics", &["GSI1", "GSI2", "GSI3"]),
    // The rollouts (RO), a rollout's open attempts (OPEN#).
    ("rollout-tick", &["GSI1", "GSI3"]),
];

#[test]
fn each_role_may_query_the_indexes_of_its_function() {
    let t = template();
    let functions = template_functions(&t);
    assert_eq!(
        functions
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        INDEX_QUERIES.iter().map(|(f, _)| *f).collect(),
        "INDEX_QUERIES names every function"
    );
    for (binary, indexes) in INDEX_QUERIES {
        let mut allowed = BTreeSet::new();
        for s in role_statements(role_of(&t, &functions[binary])) {
            if s["Effect"].as_str() == Some("Allow") && actions(s).contains(&"dynamodb:Query") {
                allowed.extend(statement_resources(s));
            }
        }
        for index in indexes {
            let resource = format!("${{Table.Arn}}/index/{index}");
            assert!(
                allowed.contains(&resource),
                "{binary}: its role does not allow dynamodb:Query on {resource} ({allowed:?})"
            );
        }
    }
}

#[test]
fn each_role_may_make_the_table_calls_of_its_function() {
    let t = template();
    let functions = template_functions(&t);
    assert_eq!(
        functions
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        TABLE_CALLS.iter().map(|(f, _)| *f).collect(),
        "TABLE_CALLS names every function"
    );
    for (binary, calls) in TABLE_CALLS {
        let role = role_of(&t, &functions[binary]);
        let allowed: BTreeSet<&str> = role_statements(role)
            .into_iter()
            .filter(|s| s["Effect"].as_str() == Some("Allow"))
            .filter(|s| getatt(&s["Resource"]) == Some("Table.Arn"))
            .flat_map(actions)
            .collect();
        for call in calls {
            assert!(
                allowed.contains(format!("dynamodb:{call}").as_str()),
                "{binary}: its role does not allow dynamodb:{call} on the table ({allowed:?})"
            );
        }
    }
}

/// The role of a template function (`Role: !GetAtt <role>.Arn`).
fn role_of<'a>(t: &'a Value, f: &TemplateFunction) -> &'a Value {
    let role = getatt(&t["Resources"][f.logical_id.as_str()]["Properties"]["Role"])
        .expect("Role: !GetAtt <role>.Arn");
    &t["Resources"][role.trim_end_matches(".Arn")]
}

/// A statement's actions (one, or a list).
fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::Sequence(actions) => actions.iter().filter_map(Value::as_str).collect(),
        action => action.as_str().into_iter().collect(),
    }
}

/// A statement's resources (one, or a list), each as the test names it: `<id>.Arn` for a
/// `!GetAtt`, the text of a `!Sub`, the target of a `!Ref`.
fn statement_resources(statement: &Value) -> Vec<String> {
    let named = |v: &Value| {
        getatt(v)
            .or_else(|| intrinsic(v, "Sub").and_then(Value::as_str))
            .or_else(|| intrinsic(v, "Ref").and_then(Value::as_str))
            .or_else(|| v.as_str())
            .unwrap_or_else(|| panic!("a resource the test cannot name: {v:?}"))
            .to_owned()
    };
    match &statement["Resource"] {
        Value::Sequence(resources) => resources.iter().map(named).collect(),
        resource => vec![named(resource)],
    }
}

/// What the tick's role may do, all of it: write its log group, and on the table what
/// `Service::evaluate_rollouts` does (the rollouts listed from GSI1, then for each active one
/// its reads, on a decision one transaction, and its silent devices from GSI3, each timed out
/// by a status report). No secret, no S3, no other index.
const TICK_ALLOWED: [(&str, &str); 9] = [
    ("logs:CreateLogStream", "RolloutTickLogs.Arn"),
    ("logs:PutLogEvents", "RolloutTickLogs.Arn"),
    ("dynamodb:GetItem", "Table.Arn"),
    ("dynamodb:BatchGetItem", "Table.Arn"),
    ("dynamodb:Query", "Table.Arn"),
    ("dynamodb:PutItem", "Table.Arn"),
    ("dynamodb:UpdateItem", "Table.Arn"),
    ("dynamodb:Query", "${Table.Arn}/index/GSI1"),
    ("dynamodb:Query", "${Table.Arn}/index/GSI3"),
];

#[test]
fn the_rollout_tick_runs_every_minute_with_only_what_a_tick_needs() {
    let t = template();
    let functions = template_functions(&t);
    // A function has a schedule in the template exactly when it has no routes in the code.
    for (binary, f) in &functions {
        let function = Function::from_name(binary).expect("a function of the code");
        let scheduled = function.routes().is_none();
        assert_eq!(
            !f.schedules.is_empty(),
            scheduled,
            "{binary}: scheduled in infra/template.yaml exactly when it serves no route"
        );
        assert!(
            !scheduled || f.routes.is_empty(),
            "{binary}: HTTP API routes to a function that serves none"
        );
    }

    let tick = &functions[Function::RolloutTick.name()];
    assert_eq!(tick.schedules, ["rate(1 minute)"], "one tick a minute");
    let f = &t["Resources"][tick.logical_id.as_str()];
    let invoke = &f["Properties"]["EventInvokeConfig"];
    assert_eq!(
        invoke["MaximumRetryAttempts"].as_u64(),
        Some(0),
        "a failed tick is not retried: the next one is a minute away"
    );
    assert_eq!(invoke["MaximumEventAgeInSeconds"].as_u64(), Some(60));

    let role = role_of(&t, tick);
    let mut allowed = BTreeSet::new();
    for statement in role_statements(role) {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{statement:?}");
        for action in actions(statement) {
            for resource in statement_resources(statement) {
                allowed.insert((action.to_owned(), resource));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = TICK_ALLOWED
        .iter()
        .map(|(a, r)| ((*a).to_owned(), (*r).to_owned()))
        .collect();
    assert_eq!(allowed, expected, "the tick's role");

    // Its failures reach the alarm topic.
    let alarmed = resources(&t, "AWS::CloudWatch::Alarm")
        .into_values()
        .any(|a| {
            let p = &a["Properties"];
            let dimensions = p["Dimensions"].as_sequence().map_or(&[][..], Vec::as_slice);
            p["Namespace"].as_str() == Some("AWS/Lambda")
                && p["MetricName"].as_str() == Some("Errors")
                && matches!(dimensions, [d] if d["Name"].as_str() == Some("FunctionName")
                && is_ref(&d["Value"], &tick.logical_id))
                && p["AlarmActions"]
                    .as_sequence()
                    .is_some_and(|a| a.iter().any(|t| is_ref(t, "AlarmTopic")))
        });
    assert!(alarmed, "an alarm on the Errors of {}", tick.logical_id);
}

/// Rollouts pause by themselves in `check` and `status` (rule 4, and the health gate on a check
/// or a report) and in `rollout-tick` (the health gate): the log group of each feeds the metric
/// of the auto-pause alarm, and no other.
#[test]
fn every_function_that_pauses_rollouts_feeds_the_auto_pause_alarm() {
    let t = template();
    let metric = "RolloutAutoPauses";
    let counted: BTreeSet<String> = resources(&t, "AWS::Logs::MetricFilter")
        .into_values()
        .filter(|m| {
            let p = &m["Properties"];
            p["FilterPattern"]
                .as_str()
                .is_some_and(|f| f.contains(r#"$.action = "rollout.auto_pause""#))
                && p["MetricTransformations"]
                    .as_sequence()
                    .is_some_and(|m| m.iter().any(|m| m["MetricName"].as_str() == Some(metric)))
        })
        .map(|m| {
            intrinsic(&m["Properties"]["LogGroupName"], "Ref")
                .and_then(Value::as_str)
                .expect("LogGroupName: !Ref <log group>")
                .to_owned()
        })
        .collect();
    let feeding: BTreeSet<&str> = template_functions(&t)
        .into_iter()
        .filter_map(|(binary, f)| {
            let group =
                &t["Resources"][f.logical_id.as_str()]["Properties"]["LoggingConfig"]["LogGroup"];
            let group = intrinsic(group, "Ref").and_then(Value::as_str)?;
            counted
                .contains(group)
                .then(|| Function::from_name(&binary).unwrap().name())
        })
        .collect();
    assert_eq!(
        feeding,
        BTreeSet::from(["check", "status", "rollout-tick"]),
        "the functions whose log the {metric} metric filters count"
    );
    let alarms = resources(&t, "AWS::CloudWatch::Alarm");
    assert!(
        alarms
            .values()
            .any(|a| a["Properties"]["MetricName"].as_str() == Some(metric)),
        "an alarm on {metric}"
    );
}
