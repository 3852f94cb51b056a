//! `otactl token mint`: an admin/CI token signed offline with the service's HS256 secret, by the
//! server's own code (`ota_http::auth`), so the claims are exactly what the server checks.

use ota_http::auth::{AuthConfig, Role};
use serde_json::json;

use crate::cli::{Output, RoleArg, TokenCmd};
use crate::error::{Error, Result};
use crate::output;

const MAX_TTL_S: i64 = 10 * 366 * 24 * 3600;

pub fn run(cmd: &TokenCmd, out: Output) -> Result<()> {
    let TokenCmd::Mint {
        role,
        secret_file,
        sub,
        ttl,
        issuer,
    } = cmd;
    // The upper bound keeps `exp` a real date (and the arithmetic from overflowing).
    if !(1..=MAX_TTL_S).contains(ttl) {
        return Err(Error::usage(format!(
            "--ttl must be between 1 and {MAX_TTL_S} seconds (10 years)"
        )));
    }
    if sub.trim().is_empty() {
        return Err(Error::usage("--sub must not be empty"));
    }
    let text = std::fs::read_to_string(secret_file).map_err(|e| {
        Error::failed(format!(
            "cannot read the secret from {}: {e}",
            secret_file.display()
        ))
    })?;
    // Trimmed as the server trims its `jwt-secret` file.
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::failed(format!(
            "{} holds no secret",
            secret_file.display()
        )));
    }
    let role = match role {
        RoleArg::Viewer => Role::Viewer,
        RoleArg::Publisher => Role::Publisher,
        RoleArg::Admin => Role::Admin,
    };
    let auth = AuthConfig::new(secret.as_bytes(), issuer.clone(), true);
    let token = auth
        .mint_admin(sub.trim(), role, *ttl)
        .map_err(|p| Error::failed(format!("signing failed: {}", p.detail)))?;
    let expires = time::OffsetDateTime::now_utc() + time::Duration::seconds(*ttl);
    let v = json!({
        "token": token,
        "sub": sub.trim(),
        "role": role,
        "expires_at": crate::views::ts(&expires),
    });
    // The bare token in table mode, so `OTA_TOKEN=$(otactl token mint ...)` works.
    output::emit(out, &v, || format!("{token}\n"));
    Ok(())
}
