//! Whether a structurally valid image may become a release of a device type: the parts of
//! validation that depend on what the admin declared and on the device type's policy.

use esp_image::{ImageInfo, Rejection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::device_type::DeviceTypePolicy;
use crate::ids::Version;

/// One reason an image was refused, with a stable code for scripts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageProblem {
    pub code: String,
    pub message: String,
}

impl ImageProblem {
    fn new(code: &str, message: String) -> Self {
        Self {
            code: code.to_owned(),
            message,
        }
    }
}

/// The stored object compared with what the release declared.
pub fn check_declared_bytes(
    declared_size: u64,
    declared_sha256: &str,
    actual_size: u64,
    actual_sha256: &str,
) -> Vec<ImageProblem> {
    let mut problems = Vec::new();
    if declared_size != actual_size {
        problems.push(ImageProblem::new(
            "size_mismatch",
            format!(
                "declared file_size {declared_size} but the stored object has {actual_size} bytes"
            ),
        ));
    }
    if !declared_sha256.eq_ignore_ascii_case(actual_sha256) {
        problems.push(ImageProblem::new(
            "file_hash_mismatch",
            format!("declared file_hash {declared_sha256} but the stored object hashes to {actual_sha256}"),
        ));
    }
    problems
}

/// Every reason the parser found, as problems.
pub fn rejection_problems(rejection: &Rejection) -> Vec<ImageProblem> {
    rejection
        .reasons
        .iter()
        .map(|r| ImageProblem::new(r.code, r.message.clone()))
        .collect()
}

/// Checks a parsed image against the declared version and the device type's policy (None when
/// the device type does not exist yet and this image will create it).
pub fn check_policy(
    info: &ImageInfo,
    declared_version: &Version,
    policy: Option<&DeviceTypePolicy>,
) -> Vec<ImageProblem> {
    let mut problems = Vec::new();
    match Version::parse(&info.app.version) {
        Ok(v) if &v == declared_version => {}
        Ok(v) => problems.push(ImageProblem::new(
            "version_mismatch",
            format!("declared version {declared_version} but the image says {v}"),
        )),
        Err(_) => problems.push(ImageProblem::new(
            "image_version_not_semver",
            format!(
                "the image's version string '{}' is not SemVer 2.0",
                info.app.version
            ),
        )),
    }
    let Some(policy) = policy else {
        return problems;
    };
    if policy.chip != info.chip.name() {
        problems.push(ImageProblem::new(
            "chip_mismatch",
            format!(
                "device type {} runs {} but the image is for {}",
                policy.name,
                policy.chip,
                info.chip.name()
            ),
        ));
    }
    if let Some(max) = policy.max_image_size
        && info.file_len > max
    {
        problems.push(ImageProblem::new(
            "image_too_large",
            format!(
                "the image has {} bytes, over the device type's max_image_size of {max}",
                info.file_len
            ),
        ));
    }
    if policy.require_signature {
        problems.extend(check_signature(info, policy));
    }
    problems
}

fn check_signature(info: &ImageInfo, policy: &DeviceTypePolicy) -> Option<ImageProblem> {
    let Some(sig) = &info.signature else {
        return Some(ImageProblem::new(
            "signature_missing",
            format!(
                "device type {} requires a Secure Boot V2 signature",
                policy.name
            ),
        ));
    };
    let trusted = sig.blocks.iter().any(|b| {
        b.image_digest_matches
            && b.signature_valid
            && policy
                .signing_key_digests
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&b.key_digest))
    });
    (!trusted).then(|| {
        ImageProblem::new(
            "signature_untrusted",
            "no signature block is valid and made by a key pinned in the device type's signing_key_digests"
                .to_owned(),
        )
    })
}
