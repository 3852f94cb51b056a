//! The JWT secret of the embedded default: from `OTA_JWT_SECRET`, or generated on first start
//! and kept in the data directory, readable by its owner only.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use rand::RngCore;

pub const SECRET_FILE: &str = "jwt-secret";

/// The secret, and whether this start generated it.
pub fn load_or_create(data_dir: &Path, from_env: Option<&str>) -> anyhow::Result<(Vec<u8>, bool)> {
    if let Some(s) = from_env {
        return Ok((s.as_bytes().to_vec(), false));
    }
    let path = data_dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok((s.trim().as_bytes().to_vec(), false)),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to generate a new secret",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, secret.as_bytes())?;
    Ok((secret.into_bytes(), true))
}

/// Writes a file with mode 0600 from the start (never briefly world-readable).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
