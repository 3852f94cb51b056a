//! The upload URL of a release this machine created but has not finalized yet, kept on disk so
//! that re-running `otactl upload` after an interrupted PUT can finish: the admin API hands out
//! an upload URL only when the release is created, and a second create of the same version is
//! 409. Entries live in `$OTACTL_STATE_DIR` (else `$XDG_STATE_HOME/otactl`, else
//! `~/.local/state/otactl`), one file per release, mode 0600 because the URL is a credential
//! until it expires; they are removed once the release is finalized.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The `upload` object of `POST /api/ota/admin/firmware` (docs/api.md §Admin endpoints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadTarget {
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What is remembered of one release: where its bytes go and which bytes they are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub firmware_id: String,
    pub file_hash: String,
    pub upload: UploadTarget,
}

pub fn dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(d) = env("OTACTL_STATE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return Some(PathBuf::from(d).join("otactl"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".local/state/otactl"))
}

fn file(firmware_id: &str) -> Option<PathBuf> {
    // Ids are the server's; anything that could leave the directory is not remembered.
    let safe = !firmware_id.is_empty()
        && firmware_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    safe.then(|| dir().map(|d| d.join("uploads").join(format!("{firmware_id}.json"))))
        .flatten()
}

/// Best effort: a machine that cannot keep state still uploads, it just cannot resume.
pub fn save(p: &Pending) {
    let Some(path) = file(&p.firmware_id) else {
        return;
    };
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path)?;
        f.write_all(&serde_json::to_vec(p).unwrap_or_default())
    };
    if let Err(e) = write() {
        eprintln!(
            "note: cannot remember the upload URL in {} ({e}); an interrupted upload of this release will not be resumable",
            path.display()
        );
    }
}

/// The remembered upload of this release, if it is for these bytes and still valid.
pub fn load(firmware_id: &str, file_hash: &str, now: OffsetDateTime) -> Option<Pending> {
    let path = file(firmware_id)?;
    let text = std::fs::read_to_string(path).ok()?;
    let p: Pending = serde_json::from_str(&text).ok()?;
    (p.firmware_id == firmware_id && p.file_hash == file_hash && p.upload.expires_at > now)
        .then_some(p)
}

pub fn forget(firmware_id: &str) {
    if let Some(path) = file(firmware_id) {
        let _ = std::fs::remove_file(path);
    }
}
