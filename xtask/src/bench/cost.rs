//! Cost per million checks and per million downloads on AWS, from the DynamoDB requests the
//! `check_budget` test counted. The prices are read from infra/README.md's "Prices assumed"
//! table, so that the document and this table cannot disagree; the usage assumptions below are
//! the ones that section states (function size, billed time, log volume, capacity units).

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// `FunctionMemoryMB` of the SAM template, in GB.
const FUNCTION_GB: f64 = 0.25;
/// Billed time of a check (two DynamoDB round trips and a presign) and of a download redirect.
const CHECK_BILLED_S: f64 = 0.025;
const DOWNLOAD_BILLED_S: f64 = 0.015;
/// Log bytes per request (docs/lambda.md, "Logs and metrics"): its share of a batched EMF line
/// (~11 B, and the 26 B that CloudWatch Logs counts per event, over 100 requests), and an access
/// line (~200-225 B, and those 26 B) for a check that offered (or any request that changed
/// state or failed), else for one request in `OTA_ACCESS_LOG_SAMPLE` (100). Lambda's own lines
/// (`LambdaSystemLogLevel=WARN`) and API Gateway's access log (`ApiAccessLog=disabled`) are left
/// out, as the template does by default; each would add ~350 B to every request.
const EMF_BYTES_PER_REQUEST: f64 = 11.26;
const ACCESS_LINE_BYTES: f64 = 250.0;
const ACCESS_LOG_SAMPLE: f64 = 100.0;
/// The `check_budget` cases whose answer is an offer (an access line each) say so in their name.
const OFFER_MARK: &str = "offered";
/// Capacity units per request: reads of items under 4 KB, strongly consistent; a `PutItem` or
/// `UpdateItem` of a device (table + GSI1 + GSI2, projection ALL); a put of a device's refresh
/// of `last_seen` (under 1 KB, in no index; `check_budget` names it `PutItem (refresh)`); a
/// check's transaction (device and fleet counters, each item counted twice).
const RRU_PER_READ: f64 = 1.0;
const WRU_PER_WRITE: f64 = 3.0;
const REFRESH_PUT: &str = "PutItem (refresh)";
const WRU_PER_REFRESH: f64 = 1.0;
const WRU_PER_TRANSACTION: f64 = 10.0;
/// The steady poll writes the device's refresh only once its `last_seen` is
/// `OTA_LAST_SEEN_PRECISION_S` (6 h) old: a device polling hourly pays that put on one poll in
/// six.
const STEADY_POLL_CASE: &str = "up to date again";
const REFRESH_SHARE: f64 = 1.0 / 6.0;
/// The image of the download rows, as in infra/README.md's example.
const IMAGE_MB: f64 = 1.5;
const MILLION: f64 = 1e6;

/// The prices of infra/README.md, USD.
#[derive(Debug)]
pub struct Prices {
    lambda_gb_s: f64,
    lambda_per_m_requests: f64,
    http_api_per_m: f64,
    wru_per_m: f64,
    rru_per_m: f64,
    s3_get_per_k: f64,
    transfer_per_gb: f64,
    logs_per_gb: f64,
    cloudfront_transfer_per_gb: f64,
    cloudfront_https_per_10k: f64,
}

impl Prices {
    pub fn from_readme(root: &Path) -> anyhow::Result<Prices> {
        let path = root.join("infra/README.md");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text)
    }

    /// The prices of the "Prices assumed" table in `text`: each row's `$` amounts, in order.
    fn parse(text: &str) -> anyhow::Result<Prices> {
        let row = |item: &str, n: usize| -> anyhow::Result<Vec<f64>> {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("| {item} |")))
                .with_context(|| format!("infra/README.md has no price row '{item}'"))?;
            let amounts: Vec<f64> = line
                .split('$')
                .skip(1)
                .filter_map(|s| {
                    let num: String = s
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    num.trim_end_matches('.').parse().ok()
                })
                .collect();
            if amounts.len() != n {
                bail!("price row '{item}': expected {n} amounts, found {amounts:?}");
            }
            Ok(amounts)
        };
        let lambda = row("Lambda, arm64", 2)?;
        let api = row("API Gateway HTTP API", 1)?;
        let dynamo = row("DynamoDB on-demand", 2)?;
        let s3 = row("S3", 2)?;
        let logs = row("CloudWatch Logs", 1)?;
        let cloudfront = row("CloudFront", 2)?;
        Ok(Prices {
            lambda_gb_s: lambda[0],
            lambda_per_m_requests: lambda[1],
            http_api_per_m: api[0],
            wru_per_m: dynamo[0],
            rru_per_m: dynamo[1],
            s3_get_per_k: s3[0],
            transfer_per_gb: s3[1],
            logs_per_gb: logs[0],
            cloudfront_transfer_per_gb: cloudfront[0],
            cloudfront_https_per_10k: cloudfront[1],
        })
    }
}

/// Read and write capacity units of one request, by DynamoDB operation.
fn units(operation: &str) -> (f64, f64) {
    match operation {
        "GetItem" | "Query" | "BatchGetItem" => (RRU_PER_READ, 0.0),
        REFRESH_PUT => (0.0, WRU_PER_REFRESH),
        "PutItem" | "UpdateItem" | "DeleteItem" => (0.0, WRU_PER_WRITE),
        // TransactWriteItems; unknown operations count as one too, so the table errs on the dear
        // side.
        _ => (0.0, WRU_PER_TRANSACTION),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The lines common to every request through API Gateway and a function; `logged`: the request
/// has its access line (else one in [`ACCESS_LOG_SAMPLE`] has).
fn request_lines(p: &Prices, billed_s: f64, logged: bool) -> Vec<(String, f64)> {
    let access_share = if logged { 1.0 } else { 1.0 / ACCESS_LOG_SAMPLE };
    let log_bytes = EMF_BYTES_PER_REQUEST + access_share * ACCESS_LINE_BYTES;
    vec![
        ("HTTP API".into(), p.http_api_per_m),
        (
            "Lambda".into(),
            p.lambda_per_m_requests + FUNCTION_GB * billed_s * MILLION * p.lambda_gb_s,
        ),
        (
            format!("CloudWatch Logs ({log_bytes:.1} B a request)"),
            log_bytes * MILLION / 1e9 * p.logs_per_gb,
        ),
    ]
}

fn dynamodb_line(p: &Prices, operations: &[String]) -> (String, f64) {
    let (rru, wru) = operations
        .iter()
        .map(|op| units(op))
        .fold((0.0, 0.0), |(r, w), (dr, dw)| (r + dr, w + dw));
    (
        format!(
            "DynamoDB ({}: {rru} RRU, {wru} WRU)",
            operations.join(" + ")
        ),
        rru * p.rru_per_m + wru * p.wru_per_m,
    )
}

fn table(lines: &[(String, f64)]) -> Value {
    let total: f64 = lines.iter().map(|(_, c)| c).sum();
    json!({
        "lines": lines.iter().map(|(what, usd)| json!({ "item": what, "usd": round2(*usd) })).collect::<Vec<_>>(),
        "total_usd": round2(total),
    })
}

/// Cost per million of each measured check case, of a download redirect with the image fetch,
/// and of the image fetch alone (the `download_url` of a check answer), the fetch from S3
/// (`CloudFront=disabled`) and through CloudFront (the template's default). Through CloudFront
/// the S3 GETs are origin fetches on cache misses only (free of transfer charges), left out: a
/// fleet fetches a few images many times.
pub fn per_million(p: &Prices, cases: &[Value]) -> Value {
    let ops = |c: &Value| -> Vec<String> {
        c["operations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut checks = Vec::new();
    let mut download_ops = vec!["GetItem".to_owned()];
    for case in cases {
        let name = case["case"].as_str().unwrap_or("?");
        if name == "download redirect" {
            download_ops = ops(case);
            continue;
        }
        let mut lines = request_lines(p, CHECK_BILLED_S, name.contains(OFFER_MARK));
        lines.push(dynamodb_line(p, &ops(case)));
        checks.push(json!({ "case": name, "cost": table(&lines) }));
        if name == STEADY_POLL_CASE {
            lines.push((
                "DynamoDB last_seen refresh (a 1-WRU put on one poll in 6)".to_owned(),
                REFRESH_SHARE * WRU_PER_REFRESH * p.wru_per_m,
            ));
            checks.push(json!({
                "case": format!("{name}, polling hourly (the 6-hour refresh included)"),
                "cost": table(&lines),
            }));
        }
    }
    let fetch = vec![
        ("S3 GET".to_owned(), p.s3_get_per_k * 1000.0),
        (
            format!("transfer out ({IMAGE_MB} MB image)"),
            IMAGE_MB * MILLION / 1000.0 * p.transfer_per_gb,
        ),
    ];
    let cloudfront_fetch = vec![
        (
            "CloudFront HTTPS requests".to_owned(),
            p.cloudfront_https_per_10k * MILLION / 10_000.0,
        ),
        (
            format!("CloudFront transfer out ({IMAGE_MB} MB image)"),
            IMAGE_MB * MILLION / 1000.0 * p.cloudfront_transfer_per_gb,
        ),
    ];
    let mut redirect = request_lines(p, DOWNLOAD_BILLED_S, false);
    redirect.push(dynamodb_line(p, &download_ops));
    let redirect_to = |fetch: &[(String, f64)]| {
        let mut lines = redirect.clone();
        lines.extend_from_slice(fetch);
        table(&lines)
    };
    json!({
        "checks": checks,
        "download_via_redirect": redirect_to(&fetch),
        "download_via_check_url": table(&fetch),
        "download_via_redirect_cloudfront": redirect_to(&cloudfront_fetch),
        "download_via_check_url_cloudfront": table(&cloudfront_fetch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme_prices() -> Prices {
        Prices::from_readme(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap()
    }

    #[test]
    fn the_readme_table_parses_with_cloudfront_beside_s3() {
        let p = readme_prices();
        assert!(p.s3_get_per_k > 0.0 && p.transfer_per_gb > 0.0);
        assert!(p.cloudfront_transfer_per_gb > 0.0 && p.cloudfront_https_per_10k > 0.0);
        // A row with another number of amounts is refused, naming the row.
        let text = "| CloudFront | $0.085 per GB |\n";
        let e = Prices::parse(text).unwrap_err().to_string();
        assert!(e.contains("'Lambda, arm64'"), "{e}");
    }

    /// The download lines, priced from a table of round numbers.
    #[test]
    fn the_steady_poll_is_also_priced_with_its_refresh_one_poll_in_six() {
        let cases = [json!({"case": STEADY_POLL_CASE, "operations": ["Query"]})];
        let costs = per_million(&readme_prices(), &cases);
        let total = |i: usize| costs["checks"][i]["cost"]["total_usd"].as_f64().unwrap();
        let p = readme_prices();
        let refresh = round2(WRU_PER_REFRESH * p.wru_per_m / 6.0);
        assert!((total(1) - total(0) - refresh).abs() < 0.011, "{costs}");
        assert!(
            costs["checks"][1]["case"]
                .as_str()
                .unwrap()
                .contains("hourly")
        );
    }

    #[test]
    fn a_put_of_a_refresh_is_one_write_unit_a_put_of_a_record_three() {
        assert_eq!(units(REFRESH_PUT), (0.0, 1.0));
        assert_eq!(units("PutItem"), (0.0, 3.0));
    }

    #[test]
    fn an_offer_pays_for_its_access_line_a_steady_poll_for_a_hundredth_of_one() {
        let cases = [
            json!({"case": STEADY_POLL_CASE, "operations": ["Query"]}),
            json!({"case": "new device, offered", "operations": ["Query"]}),
        ];
        let costs = per_million(&readme_prices(), &cases);
        let logs = |i: usize| -> (String, f64) {
            let line = costs["checks"][i]["cost"]["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["item"].as_str().unwrap().starts_with("CloudWatch Logs"))
                .unwrap();
            (
                line["item"].as_str().unwrap().to_owned(),
                line["usd"].as_f64().unwrap(),
            )
        };
        // $0.50 per GB: 13.8 B a steady poll, 261.3 B an offer.
        assert_eq!(
            logs(0),
            ("CloudWatch Logs (13.8 B a request)".to_owned(), 0.01)
        );
        assert_eq!(
            logs(2),
            ("CloudWatch Logs (261.3 B a request)".to_owned(), 0.13)
        );
    }

    #[test]
    fn downloads_through_cloudfront_replace_the_s3_fetch_only() {
        let table = "\
| Lambda, arm64 | $0.00001 per GB-second; $0.20 per million requests |
| API Gateway HTTP API | $1.00 per million requests |
| DynamoDB on-demand | $0.5 per million WRU; $0.1 per million RRU |
| S3 | $0.0004 per 1,000 GET requests; data transfer out $0.09 per GB |
| CloudWatch Logs | $0.50 per GB ingested |
| CloudFront | data transfer out $0.08 per GB; $0.01 per 10,000 HTTPS requests |
";
        let p = Prices::parse(table).unwrap();
        let cost = per_million(
            &p,
            &[json!({"case": "download redirect", "operations": ["GetItem"]})],
        );
        let total = |key: &str| cost[key]["total_usd"].as_f64().unwrap();
        // 1.5 TB at $0.08 per GB, and a million HTTPS requests at $0.01 per 10,000.
        assert_eq!(total("download_via_check_url_cloudfront"), 121.0);
        // S3: 1.5 TB at $0.09 per GB, and a million GETs at $0.0004 per 1,000.
        assert_eq!(total("download_via_check_url"), 135.4);
        // The redirect's own lines (API, Lambda, DynamoDB, logs) are the same either way.
        let redirect = total("download_via_redirect") - total("download_via_check_url");
        let redirect_cf =
            total("download_via_redirect_cloudfront") - total("download_via_check_url_cloudfront");
        assert!(
            (redirect - redirect_cf).abs() < 0.011,
            "{redirect} {redirect_cf}"
        );
        let items: Vec<&str> = cost["download_via_redirect_cloudfront"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["item"].as_str().unwrap())
            .collect();
        assert!(items.contains(&"CloudFront HTTPS requests"), "{items:?}");
        assert!(!items.contains(&"S3 GET"), "{items:?}");
    }
}
