//! `cargo xtask local-aws --check` (and the start of `cargo xtask test`): one real round trip to
//! each server, so that a stack that starts but cannot serve fails here, loudly, and not in the
//! middle of the test suite.
//!
//! DynamoDB is spoken as raw JSON over HTTP (DynamoDB Local does not check signatures, only that
//! an `Authorization` header names an access key id). S3 goes through `curl --aws-sigv4`, since
//! s3s-fs does check signatures.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};

use super::http::{self, Response, truncate};
use super::{ACCESS_KEY, LocalAws, REGION};

/// One DynamoDB JSON call (`X-Amz-Target: DynamoDB_20120810.<operation>`) with a dummy SigV4
/// header: DynamoDB Local wants one naming an access key id, and checks nothing else of it.
pub fn dynamodb(addr: SocketAddr, operation: &str, body: &str) -> anyhow::Result<Response> {
    let target = format!("DynamoDB_20120810.{operation}");
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/dynamodb/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0"
    );
    http::request(
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.0"),
            ("X-Amz-Target", &target),
            ("X-Amz-Date", "20260101T000000Z"),
            ("Authorization", &auth),
        ],
        body.as_bytes(),
    )
}

fn dynamodb_ok(aws: &LocalAws, operation: &str, body: &str) -> anyhow::Result<String> {
    let response = dynamodb(aws.dynamodb_addr, operation, body)
        .with_context(|| format!("DynamoDB {operation} on {}", aws.dynamodb_endpoint))?;
    ensure!(
        response.status == 200,
        "DynamoDB {operation} answered {}: {}",
        response.status,
        truncate(&response.body, 500)
    );
    Ok(response.body)
}

const BODY: &[u8] = b"hello from cargo xtask local-aws --check\n";
/// base64(sha256(BODY)).
const BODY_SHA256: &str = "vJHQUKw04f7+FxP/dkgf8Uj94IYk+8jaEqMsA49GwPg=";
/// base64 of 32 zero bytes: a well-formed SHA-256 that is not BODY's.
const WRONG_SHA256: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Creates, uses and deletes a throwaway table and a throwaway bucket.
pub fn smoke_check(aws: &LocalAws) -> anyhow::Result<()> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("xtask-check-{}-{nanos}", std::process::id());

    // DynamoDB: a table, a conditional put (twice: the second must be refused), a read, gone.
    let table = format!(r#""TableName":"{name}""#);
    dynamodb_ok(
        aws,
        "CreateTable",
        &format!(
            r#"{{{table},"BillingMode":"PAY_PER_REQUEST",
                "AttributeDefinitions":[{{"AttributeName":"pk","AttributeType":"S"}}],
                "KeySchema":[{{"AttributeName":"pk","KeyType":"HASH"}}]}}"#
        ),
    )?;
    let put = format!(
        r#"{{{table},"Item":{{"pk":{{"S":"k"}},"v":{{"S":"xtask"}}}},
            "ConditionExpression":"attribute_not_exists(pk)"}}"#
    );
    dynamodb_ok(aws, "PutItem", &put)?;
    let again = dynamodb(aws.dynamodb_addr, "PutItem", &put)?;
    ensure!(
        again.status == 400 && again.body.contains("ConditionalCheckFailedException"),
        "a second conditional PutItem should fail with ConditionalCheckFailedException, got {}: {}",
        again.status,
        truncate(&again.body, 500)
    );
    let got = dynamodb_ok(
        aws,
        "GetItem",
        &format!(r#"{{{table},"Key":{{"pk":{{"S":"k"}}}},"ConsistentRead":true}}"#),
    )?;
    ensure!(
        got.contains(r#""S":"xtask""#),
        "GetItem did not return the item just put: {}",
        truncate(&got, 500)
    );
    dynamodb_ok(aws, "DeleteTable", &format!("{{{table}}}"))?;
    eprintln!(
        "xtask: DynamoDB Local at {} ok (CreateTable, conditional PutItem, GetItem, DeleteTable)",
        aws.dynamodb_endpoint
    );

    // S3: a bucket, a SigV4-signed PUT with its SHA-256 (and one with a wrong one, refused), a
    // GET that returns the bytes, an unsigned and a wrongly signed GET refused, gone.
    let scratch = aws.run_dir().join(format!("{name}.body"));
    std::fs::write(&scratch, BODY)?;
    let bucket = format!("{}/{name}", aws.s3_endpoint);
    let object = format!("{bucket}/check.txt");
    // s3s-fs wants `x-amz-content-sha256`, which curl sends (and signs) only when given.
    let signed = |secret: &str| -> Vec<String> {
        vec![
            "--aws-sigv4".to_owned(),
            format!("aws:amz:{REGION}:s3"),
            "--user".to_owned(),
            format!("{}:{secret}", aws.access_key),
            "--header".to_owned(),
            "x-amz-content-sha256: UNSIGNED-PAYLOAD".to_owned(),
        ]
    };
    let ok = signed(&aws.secret_key);
    s3_expect(&ok, &["-X", "PUT", &bucket], 200, "CreateBucket")?;
    s3_expect_upload(&ok, &scratch, &object, BODY_SHA256, 200, "PutObject")?;
    s3_expect_upload(
        &ok,
        &scratch,
        &object,
        WRONG_SHA256,
        400,
        "PutObject with a wrong x-amz-checksum-sha256",
    )?;
    let body = s3_expect(&ok, &[&object], 200, "GetObject")?;
    ensure!(
        body.as_bytes() == BODY,
        "GetObject returned {:?}, not the bytes put",
        truncate(&body, 200)
    );
    s3_expect(&[], &[&object], 403, "an unsigned GetObject")?;
    s3_expect(
        &signed("not-the-secret"),
        &[&object],
        403,
        "a GetObject signed with a wrong secret",
    )?;
    s3_expect(&ok, &["-X", "DELETE", &object], 204, "DeleteObject")?;
    s3_expect(&ok, &["-X", "DELETE", &bucket], 204, "DeleteBucket")?;
    let _ = std::fs::remove_file(&scratch);
    eprintln!(
        "xtask: s3s-fs at {} ok (SigV4 enforced; CreateBucket, PutObject with \
         x-amz-checksum-sha256 and a wrong one refused, GetObject, DeleteObject, DeleteBucket)",
        aws.s3_endpoint
    );
    Ok(())
}

fn s3_expect_upload(
    auth: &[String],
    file: &Path,
    url: &str,
    sha256: &str,
    status: u16,
    what: &str,
) -> anyhow::Result<String> {
    let header = format!("x-amz-checksum-sha256: {sha256}");
    let file = file.to_string_lossy();
    s3_expect(auth, &["-H", &header, "-T", &file, url], status, what)
}

/// Runs curl and checks the HTTP status; returns the body.
fn s3_expect(auth: &[String], args: &[&str], status: u16, what: &str) -> anyhow::Result<String> {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30"])
        .args(["--write-out", "\n%{http_code}"])
        .args(auth)
        .args(args);
    let out = cmd
        .output()
        .with_context(|| format!("running curl for {what} (is curl >= 7.75 installed?)"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "curl for {what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    let code: u16 = code.trim().parse().unwrap_or(0);
    ensure!(
        code == status,
        "S3 {what}: expected HTTP {status}, got {code}: {}",
        truncate(body, 500)
    );
    Ok(body.to_owned())
}
