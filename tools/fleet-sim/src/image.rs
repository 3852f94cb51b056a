//! The release the devices update to: generated, read from --image, or an existing one.

use anyhow::{Context, bail};
use firmware_samples::{ImageSpec, Target};
use sha2::{Digest, Sha256};

use crate::admin::{Admin, Release};
use crate::cli::Args;

/// How the release came to be, for the summary.
pub enum Source {
    Generated,
    File,
    Existing,
}

impl Source {
    pub fn key(&self) -> &'static str {
        match self {
            Source::Generated => "generated",
            Source::File => "file",
            Source::Existing => "existing",
        }
    }
}

/// Publishes (or looks up) the release and checks it can be rolled out to the simulated type.
pub async fn release(args: &Args, admin: &Admin) -> anyhow::Result<(Release, Source)> {
    let (fw, source) = if let Some(id) = &args.firmware_id {
        (admin.release(id).await?, Source::Existing)
    } else if let Some(path) = &args.image {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let info = esp_image::validate(&bytes).map_err(|r| {
            let reasons: Vec<String> = r.reasons.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "{} is not a valid app image: {}",
                path.display(),
                reasons.join("; ")
            )
        })?;
        let fw = publish(admin, &args.device_type, &info.app.version, &bytes).await?;
        (fw, Source::File)
    } else {
        // A fresh version per run, so that runs against one server never collide (a version's
        // bytes are immutable, a second create is 409) and the newest run's release is the
        // highest on offer.
        let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let version = format!("1.{millis}.0");
        let bytes = ImageSpec {
            project_name: "fleet-sim".to_owned(),
            size: args.image_size,
            ..ImageSpec::new(Target::Esp32c3, &version)
        }
        .build();
        let fw = publish(admin, &args.device_type, &version, &bytes).await?;
        (fw, Source::Generated)
    };
    if fw.state != "ready" || !fw.is_active {
        bail!(
            "release {} is {} (active: {}); only a ready, active release can be rolled out",
            fw.id,
            fw.state,
            fw.is_active
        );
    }
    if fw.device_type != args.device_type {
        bail!(
            "release {} is for device type {}, the devices are {} (pass --device-type {})",
            fw.id,
            fw.device_type,
            args.device_type,
            fw.device_type
        );
    }
    Ok((fw, source))
}

async fn publish(
    admin: &Admin,
    device_type: &str,
    version: &str,
    bytes: &[u8],
) -> anyhow::Result<Release> {
    let sha = hex::encode(Sha256::digest(bytes));
    admin
        .publish(device_type, version, bytes, &sha)
        .await
        .with_context(|| format!("publishing {device_type} {version}"))
}
