//! What a signed update manifest says (docs/api.md §3.1, Manifest): the check's answer, bound to
//! the device that asked and, when it sent one, to its nonce, so that a device can trust an
//! offer (and a "nothing for you" it asked to be proven) without trusting the transport. The
//! manifest is signed by [`ManifestKeys`](crate::manifest_keys::ManifestKeys).

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::cmd::check::{CheckAnswer, CheckInput};

/// The manifest's `iss`: this service, whatever its deployment.
pub const ISSUER: &str = "esp32-ota";

/// The claims of one manifest, in the order they are serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestClaims {
    pub iss: &'static str,
    /// The device the answer is for.
    pub aud: String,
    pub device_type: String,
    /// Unix seconds.
    pub iat: i64,
    /// Unix seconds: the download URL's expiry with an offer, else `iat + OTA_URL_TTL_S`.
    pub exp: i64,
    /// The device's nonce, echoed, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub update_available: bool,
    #[serde(flatten)]
    pub offer: Option<OfferedImage>,
}

/// What the manifest says of the offered image: enough for the device to check the bytes it
/// downloads (`file_size`, `sha256`) and to refuse an image it must not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferedImage {
    pub firmware_id: String,
    pub version: String,
    pub build_number: u64,
    pub file_size: u64,
    /// The image's SHA-256, hex: the answer's `file_hash`.
    pub sha256: String,
    pub secure_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    pub rollout_id: String,
}

/// The manifest of `answer` to `asked`, issued at `issued_at`: every offer has one, and so does
/// every answer to a check that carried a nonce (the device asked for proof); an answer without
/// either has none (nothing to trust, and no signing cost on the hot path of idle polls).
pub fn claims(
    asked: &CheckInput,
    answer: &CheckAnswer,
    issued_at: OffsetDateTime,
    url_ttl: Duration,
) -> Option<ManifestClaims> {
    let iat = issued_at.unix_timestamp();
    let (exp, offer) = match answer {
        CheckAnswer::UpToDate | CheckAnswer::Deferred { .. } if asked.nonce.is_none() => {
            return None;
        }
        CheckAnswer::UpToDate | CheckAnswer::Deferred { .. } => {
            let ttl = i64::try_from(url_ttl.as_secs()).unwrap_or(i64::MAX);
            (iat.saturating_add(ttl), None)
        }
        CheckAnswer::Update { option, url } => {
            let r = &option.release;
            let offer = OfferedImage {
                firmware_id: r.id.clone(),
                version: r.version.to_string(),
                build_number: r.build_number,
                file_size: r.file_size,
                sha256: r.file_hash.clone(),
                secure_version: r.secure_version,
                chip: r.chip.clone(),
                rollout_id: option.rollout.id.clone(),
            };
            (url.expires_at.unix_timestamp(), Some(offer))
        }
    };
    Some(ManifestClaims {
        iss: ISSUER,
        aud: asked.device_id.to_string(),
        device_type: asked.device_type.to_string(),
        iat,
        exp,
        nonce: asked.nonce.clone(),
        update_available: offer.is_some(),
        offer,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ids::{DeviceId, DeviceType, Version};
    use crate::ports::{ReleaseOption, SignedUrl};
    use crate::release::{Release, ReleaseState};
    use crate::rollout::{Rollout, RolloutState, Staging, TargetFilter, TargetType};

    const AT: i64 = 1_800_000_000;

    fn asked(nonce: Option<&str>) -> CheckInput {
        CheckInput {
            device_id: DeviceId::parse("dev-1").unwrap(),
            device_type: DeviceType::parse("demo").unwrap(),
            current_version: Version::parse("1.0.0").unwrap(),
            current_build: None,
            secure_version: None,
            channel: None,
            nonce: nonce.map(str::to_owned),
            running_image_sha256: None,
            boot: None,
        }
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn offer() -> CheckAnswer {
        let release = Release {
            id: "fw-1".to_owned(),
            device_type: DeviceType::parse("demo").unwrap(),
            version: Version::parse("1.2.0").unwrap(),
            build_number: 7,
            channel: "stable".to_owned(),
            file_size: 1024,
            file_hash: "ab".repeat(32),
            secure_version: 3,
            chip: Some("esp32c3".to_owned()),
            project_name: None,
            idf_version: None,
            image_sha256: None,
            min_current_version: None,
            description: None,
            release_notes: None,
            state: ReleaseState::Ready,
            is_active: true,
            rejection_reasons: Vec::new(),
            created_at: at(AT),
            updated_at: at(AT),
            released_at: None,
        };
        let rollout = Rollout {
            id: "ro-1".to_owned(),
            name: "all".to_owned(),
            firmware_id: release.id.clone(),
            device_type: release.device_type.clone(),
            target_type: TargetType::All,
            rollout_percentage: 100.0,
            target_filter: TargetFilter::default(),
            named_devices: 0,
            failure_threshold_percent: None,
            min_reports: 10,
            allow_downgrade: false,
            state: RolloutState::Active,
            staging: Staging::default(),
            revision: 1,
            created_at: at(AT),
            updated_at: at(AT),
        };
        CheckAnswer::Update {
            option: Arc::new(ReleaseOption { rollout, release }),
            url: SignedUrl {
                url: "https://blobs.example/firmware/x.bin".to_owned(),
                expires_at: at(AT + 600),
            },
        }
    }

    /// The claims of an answer without an offer to a check with a nonce.
    pub(crate) fn up_to_date_claims() -> ManifestClaims {
        claims(
            &asked(Some("00112233445566778899aabbccddeeff")),
            &CheckAnswer::UpToDate,
            at(AT),
            Duration::from_secs(900),
        )
        .unwrap()
    }

    #[test]
    fn an_offer_is_signed_with_what_the_device_checks() {
        let answer = offer();
        let c = claims(&asked(None), &answer, at(AT), Duration::from_secs(900)).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({
                "iss": "esp32-ota", "aud": "dev-1", "device_type": "demo",
                "iat": AT, "exp": AT + 600, "update_available": true,
                "firmware_id": "fw-1", "version": "1.2.0", "build_number": 7,
                "file_size": 1024, "sha256": "ab".repeat(32), "secure_version": 3,
                "chip": "esp32c3", "rollout_id": "ro-1",
            })
        );
    }

    #[test]
    fn a_nonce_is_echoed_and_an_unknown_chip_left_out() {
        let mut answer = offer();
        if let CheckAnswer::Update { option, .. } = &mut answer {
            Arc::make_mut(option).release.chip = None;
        }
        let c = claims(
            &asked(Some("abcdef0123456789")),
            &answer,
            at(AT),
            Duration::from_secs(900),
        )
        .unwrap();
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["nonce"], "abcdef0123456789");
        assert!(json.get("chip").is_none());
    }

    #[test]
    fn no_offer_is_signed_only_when_the_device_asked_for_proof() {
        let up_to_date = CheckAnswer::UpToDate;
        let ttl = Duration::from_secs(900);
        assert_eq!(claims(&asked(None), &up_to_date, at(AT), ttl), None);
        let c = up_to_date_claims();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({
                "iss": "esp32-ota", "aud": "dev-1", "device_type": "demo",
                "iat": AT, "exp": AT + 900, "nonce": "00112233445566778899aabbccddeeff",
                "update_available": false,
            })
        );
    }
}
