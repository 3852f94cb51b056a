//! The secrets of `ota-server`, each from its variable or else generated on first start and kept
//! in the data directory, readable by its owner only: the JWT secret, and the keys that sign
//! update manifests.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use ota_core::manifest_keys::ManifestKeys;
use ota_http::config::manifest_keys;
use rand::RngCore;

pub const SECRET_FILE: &str = "jwt-secret";
/// The manifest key ring's default file in the data directory.
pub const MANIFEST_KEYS_FILE: &str = "manifest-keys";

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

/// The manifest key ring, by precedence: `OTA_MANIFEST_KEYS` (already read by the shared
/// settings); `OTA_MANIFEST_KEYS_FILE`, which must exist (a typo must not sign with a new key);
/// `<data dir>/manifest-keys`, generated with one key when missing. With it, the file this start
/// generated, if it did.
pub fn manifest_keys_or_create(
    data_dir: &Path,
    from_env: Option<&ManifestKeys>,
    file: Option<&Path>,
) -> anyhow::Result<(ManifestKeys, Option<std::path::PathBuf>)> {
    if let Some(keys) = from_env {
        return Ok((keys.clone(), None));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "OTA_MANIFEST_KEYS_FILE: reading the manifest keys from {}",
                path.display()
            )
        })?;
        let source = format!("OTA_MANIFEST_KEYS_FILE ({})", path.display());
        return Ok((manifest_keys(&source, &text)?, None));
    }
    let path = data_dir.join(MANIFEST_KEYS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let source = path.display().to_string();
            return Ok((manifest_keys(&source, &text)?, None));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let text = format!(
        "# Keys that sign update manifests (docs/api.md §3.1), one P-256 private key a line.\n\
         # The first signs; every line is published at /api/ota/keys.\n{}\n",
        ManifestKeys::generate_line()
    );
    write_private(&path, text.as_bytes())?;
    let source = path.display().to_string();
    Ok((manifest_keys(&source, &text)?, Some(path)))
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn manifest_keys_are_generated_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (first, generated) = manifest_keys_or_create(dir.path(), None, None).unwrap();
        let path = dir.path().join(MANIFEST_KEYS_FILE);
        assert_eq!(generated.as_deref(), Some(path.as_path()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, generated) = manifest_keys_or_create(dir.path(), None, None).unwrap();
        assert_eq!(generated, None);
        assert_eq!(again.signing_kid(), first.signing_kid());
    }

    #[test]
    fn the_variable_wins_and_a_named_file_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ManifestKeys::parse(&ManifestKeys::generate_line()).unwrap();
        let (used, generated) = manifest_keys_or_create(dir.path(), Some(&keys), None).unwrap();
        assert_eq!((used.signing_kid(), generated), (keys.signing_kid(), None));
        assert!(!dir.path().join(MANIFEST_KEYS_FILE).exists());

        let missing = dir.path().join("nope");
        let e = manifest_keys_or_create(dir.path(), None, Some(&missing)).unwrap_err();
        assert!(format!("{e:#}").contains("OTA_MANIFEST_KEYS_FILE"), "{e:#}");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "not a key\n").unwrap();
        let e = manifest_keys_or_create(dir.path(), None, Some(&bad)).unwrap_err();
        assert!(format!("{e:#}").contains("OTA_MANIFEST_KEYS_FILE"), "{e:#}");
        assert!(!dir.path().join(MANIFEST_KEYS_FILE).exists());
    }
}
