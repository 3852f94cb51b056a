//! The admin API over HTTP: a base URL, a bearer token, and problem+json turned into
//! [`Error::Refused`].

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Problem, Result, one_line};

/// JSON calls are small; a server that takes longer than this is not going to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Client {
    base: String,
    /// None for the routes that need no credential.
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &str, token: &str) -> Result<Self> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::usage("the token is empty (--token or OTA_TOKEN)"));
        }
        Self::build(server, Some(token.to_owned()))
    }

    /// A client that sends no credential, for the routes that need none (`GET /api/ota/keys`).
    pub fn anonymous(server: &str) -> Result<Self> {
        Self::build(server, None)
    }

    fn build(server: &str, token: Option<String>) -> Result<Self> {
        let base = server.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base)
            .map_err(|e| Error::usage(format!("--server '{server}' is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::usage(format!(
                "--server '{server}' must be an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("otactl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::failed(format!("cannot set up HTTP: {e}")))?;
        Ok(Self { base, token, http })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT);
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.request(Method::GET, path).query(query))
            .await
    }

    pub async fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    pub async fn patch<B: Serialize>(&self, path: &str, body: &B) -> Result<Value> {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }

    async fn send(&self, req: RequestBuilder) -> Result<Value> {
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable_server(&self.base, &e))?;
        json_or_problem(resp).await
    }
}

pub fn unreachable_server(base: &str, e: &reqwest::Error) -> Error {
    // reqwest's Display stops at the outermost layer ("error sending request"); the cause
    // (connection refused, DNS, TLS) is what a person can act on.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    Error::failed(format!("cannot reach {base}: {}", one_line(&msg)))
}

/// A 2xx body as JSON, or the problem the server sent (or one made up from a non-JSON error,
/// as a proxy or S3 would send).
pub async fn json_or_problem(resp: Response) -> Result<Value> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| Error::failed(format!("reading the answer: {e}")))?;
    if status.is_success() {
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(&text).map_err(|e| {
            Error::failed(format!(
                "the server answered {status} with a body that is not JSON: {e}"
            ))
        });
    }
    Err(Error::Refused(problem_from(status, &text)))
}

pub fn problem_from(status: StatusCode, body: &str) -> Problem {
    match serde_json::from_str::<Problem>(body) {
        Ok(mut p) if !p.title.is_empty() || !p.detail.is_empty() => {
            p.status = status.as_u16();
            p
        }
        _ => {
            let excerpt: String = one_line(body).chars().take(200).collect();
            Problem {
                title: status.canonical_reason().unwrap_or("error").to_owned(),
                status: status.as_u16(),
                detail: excerpt,
                errors: Vec::new(),
            }
        }
    }
}

/// Reads a typed view of a JSON answer. The raw value is what `--output json` prints, so a
/// field this build does not know still reaches scripts.
pub fn typed<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T> {
    T::deserialize(v).map_err(|e| {
        Error::failed(format!(
            "the server's {what} is not in the expected shape: {e}"
        ))
    })
}

/// Path segments come from the command line; escaping keeps `a/b` from becoming two segments.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_json_error_becomes_a_problem_with_its_status() {
        let p = problem_from(StatusCode::BAD_GATEWAY, "<html>\nbad gateway</html>");
        assert_eq!(p.status, 502);
        assert_eq!(p.title, "Bad Gateway");
        assert_eq!(p.detail, "<html> bad gateway</html>");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(seg("dev-1:a.b"), "dev-1:a.b");
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn a_server_that_is_not_a_url_is_a_usage_error() {
        let err = Client::new("localhost:8080", "t").err().unwrap();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        let err = Client::new("http://x", "  ").err().unwrap();
        assert!(matches!(err, Error::Usage(_)), "{err}");
    }
}
