//! Rollouts and the device registry on the in-memory stores.

mod support;

use ota_core::access::Role;
use ota_core::cmd::check::{CheckAnswer, CheckInput};
use ota_core::cmd::create_rollout::{CreateRollout, RolloutOf};
use ota_core::cmd::mint_device_token::{MAX_TTL_S, MintToken};
use ota_core::cmd::update_rollout::RolloutEdit;
use ota_core::error::OpError;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::ports::{DeviceCredentials, PageRequest, StoreResult};
use ota_core::release::Release;
use ota_core::rollout::{MAX_NAMED_DEVICES, RolloutState, TargetFilter, TargetType};
use support::{World, admin, caller, invalid};
use time::OffsetDateTime;

fn all(release: &Release) -> CreateRollout {
    CreateRollout {
        name: "everyone".into(),
        release: RolloutOf::Id(release.id.clone()),
        target_type: TargetType::All,
        rollout_percentage: None,
        target_filter: TargetFilter::default(),
        failure_threshold_percent: None,
        min_reports: None,
        allow_downgrade: false,
        paused: false,
        stages: Vec::new(),
        health_gate: None,
        schedule: None,
        install_timeout_s: None,
        max_offers_per_hour: None,
    }
}

#[tokio::test]
async fn a_rollout_needs_a_ready_release_a_name_and_a_target() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let created = w.ota.create_rollout(&admin(), all(&fw)).await.unwrap();
    assert_eq!(created.rollout.state, RolloutState::Active);
    assert_eq!(created.rollout.min_reports, 10);
    assert_eq!(created.rollout.rollout_percentage, 100.0);
    assert_eq!(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    release: RolloutOf::Id("nope".into()),
                    ..all(&fw)
                }
            )
            .await
            .map(|r| r.rollout.id),
        Err(OpError::UnknownRelease(
            "firmware nope does not exist".into()
        ))
    );
    assert_eq!(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    release: RolloutOf::Version {
                        device_type: DeviceType::parse("demo").unwrap(),
                        version: Version::parse("9.9.9").unwrap(),
                    },
                    ..all(&fw)
                }
            )
            .await
            .map(|r| r.rollout.id),
        Err(OpError::UnknownRelease(
            "no firmware 9.9.9 for device model demo".into()
        ))
    );
    invalid(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    name: "  ".into(),
                    ..all(&fw)
                },
            )
            .await,
        "name",
    );
    invalid(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    target_type: TargetType::Specific,
                    ..all(&fw)
                },
            )
            .await,
        "target_filter.device_ids",
    );
    invalid(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    target_type: TargetType::Group,
                    ..all(&fw)
                },
            )
            .await,
        "target_filter.groups",
    );
    invalid(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    rollout_percentage: Some(101.0),
                    ..all(&fw)
                },
            )
            .await,
        "rollout_percentage",
    );
    invalid(
        w.ota
            .create_rollout(
                &admin(),
                CreateRollout {
                    failure_threshold_percent: Some(-1.0),
                    ..all(&fw)
                },
            )
            .await,
        "failure_threshold_percent",
    );
    w.ota.deactivate_release(&admin(), &fw.id).await.unwrap();
    assert!(matches!(
        w.ota.create_rollout(&admin(), all(&fw)).await,
        Err(OpError::ReleaseNotReady(m)) if m.ends_with("is ready and inactive: only a ready, active release can be rolled out")
    ));
    assert!(matches!(
        w.ota
            .create_rollout(&caller(Role::Publisher), all(&fw))
            .await,
        Err(OpError::Forbidden(_))
    ));
}

/// A rollout's target holds only what its type uses, and group names a device can have (the
/// rule of a device's groups): nothing an admin sends is silently ignored.
#[tokio::test]
async fn a_target_filter_holds_only_what_its_type_uses() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let filter = |device_ids: &[&str], groups: &[&str]| TargetFilter {
        device_ids: device_ids
            .iter()
            .map(|d| DeviceId::parse(d).unwrap())
            .collect(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    let refused = [
        (
            TargetType::All,
            filter(&["d1"], &[]),
            "target_filter.device_ids",
        ),
        (
            TargetType::All,
            filter(&[], &["lab"]),
            "target_filter.groups",
        ),
        (
            TargetType::Canary,
            filter(&["d1"], &[]),
            "target_filter.device_ids",
        ),
        (
            TargetType::Canary,
            filter(&[], &["lab"]),
            "target_filter.groups",
        ),
        (
            TargetType::Specific,
            filter(&["d1"], &["lab"]),
            "target_filter.groups",
        ),
        (
            TargetType::Group,
            filter(&["d1"], &["lab"]),
            "target_filter.device_ids",
        ),
        (
            TargetType::Group,
            filter(&[], &["lab", "has space"]),
            "target_filter.groups[1]",
        ),
        (
            TargetType::Group,
            filter(&[], &[""]),
            "target_filter.groups[0]",
        ),
        (
            TargetType::Group,
            filter(&[], &[&"g".repeat(65)]),
            "target_filter.groups[0]",
        ),
    ];
    for (target_type, target_filter, field) in refused {
        let input = CreateRollout {
            target_type,
            target_filter,
            ..all(&fw)
        };
        invalid(w.ota.create_rollout(&admin(), input).await, field);
    }
    let accepted = [
        (TargetType::All, filter(&[], &[])),
        (TargetType::Canary, filter(&[], &[])),
        (TargetType::Specific, filter(&["d1"], &[])),
        (TargetType::Group, filter(&[], &["site:eu-1.lab_2"])),
    ];
    for (target_type, target_filter) in accepted {
        let input = CreateRollout {
            target_type,
            target_filter: target_filter.clone(),
            ..all(&fw)
        };
        let created = w.ota.create_rollout(&admin(), input).await.unwrap();
        // The named devices are kept apart from the record (and counted in it).
        let kept = TargetFilter {
            device_ids: Vec::new(),
            ..target_filter.clone()
        };
        assert_eq!(created.rollout.target_filter, kept);
        assert_eq!(
            created.rollout.named_devices as usize,
            target_filter.device_ids.len()
        );
    }
}

/// A `specific` rollout names each device once, at most `MAX_NAMED_DEVICES`, and offers to
/// those only, whether they checked in before it was created or not.
#[tokio::test]
async fn a_specific_rollout_names_each_device_once_up_to_the_limit() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    w.ota.check(check("d1")).await.unwrap();
    let named = |ids: Vec<String>| CreateRollout {
        target_type: TargetType::Specific,
        target_filter: TargetFilter {
            device_ids: ids.iter().map(|d| DeviceId::parse(d).unwrap()).collect(),
            groups: Vec::new(),
        },
        ..all(&fw)
    };
    let over = (0..=MAX_NAMED_DEVICES).map(|i| format!("d{i}")).collect();
    invalid(
        w.ota.create_rollout(&admin(), named(over)).await,
        "target_filter.device_ids",
    );
    let created = w
        .ota
        .create_rollout(&admin(), named(vec!["d3".into(), "d1".into(), "d3".into()]))
        .await
        .unwrap();
    assert_eq!(created.rollout.named_devices, 2);
    let listed = w
        .ota
        .list_named_devices(&admin(), &created.rollout.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        listed.items,
        ["d1", "d3"].map(|d| DeviceId::parse(d).unwrap())
    );
    for (device, offered) in [("d1", true), ("d2", false), ("d3", true)] {
        let answer = w.ota.check(check(device)).await.unwrap();
        assert_eq!(
            matches!(answer, CheckAnswer::Update { .. }),
            offered,
            "{device}"
        );
    }
    assert!(matches!(
        w.ota
            .list_named_devices(&admin(), "no such rollout", &PageRequest::default())
            .await,
        Err(OpError::NotFound(_))
    ));
}

#[tokio::test]
async fn edits_follow_the_lifecycle_and_the_revision() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let id = w
        .ota
        .create_rollout(&admin(), all(&fw))
        .await
        .unwrap()
        .rollout
        .id;
    let edit = |state: Option<RolloutState>, pct: Option<f64>, revision: Option<u64>| RolloutEdit {
        rollout_percentage: pct,
        state,
        revision,
        promote: false,
    };
    let paused = w
        .ota
        .update_rollout(
            &admin(),
            &id,
            edit(Some(RolloutState::Paused), Some(5.0), Some(1)),
        )
        .await
        .unwrap();
    assert_eq!(paused.rollout.revision, 2);
    assert_eq!(paused.rollout.rollout_percentage, 5.0);
    assert_eq!(
        w.ota
            .update_rollout(
                &admin(),
                &id,
                edit(Some(RolloutState::Active), None, Some(1))
            )
            .await,
        Err(OpError::Conflict(format!(
            "rollout {id} is at revision 2, not 1: reload and retry"
        )))
    );
    w.ota
        .update_rollout(
            &admin(),
            &id,
            edit(Some(RolloutState::Completed), None, None),
        )
        .await
        .unwrap();
    assert_eq!(
        w.ota
            .update_rollout(&admin(), &id, edit(Some(RolloutState::Active), None, None))
            .await,
        Err(OpError::Conflict(
            "a rollout cannot move from completed to active".into()
        ))
    );
    assert_eq!(
        w.ota
            .update_rollout(&admin(), &id, edit(None, Some(50.0), None))
            .await,
        Err(OpError::Conflict(format!(
            "rollout {id} is completed: it can no longer change"
        )))
    );
    invalid(
        w.ota
            .update_rollout(&admin(), &id, edit(None, Some(f64::INFINITY), None))
            .await,
        "rollout_percentage",
    );
    assert_eq!(
        w.ota
            .update_rollout(&admin(), "nope", RolloutEdit::default())
            .await,
        Err(OpError::NotFound("rollout nope does not exist".into()))
    );
    let audit = w.meta_audit_details("rollout.update").await;
    assert_eq!(
        audit[0],
        serde_json::json!({
            "before": {"state": "active", "rollout_percentage": 100.0, "revision": 1},
            "after": {"state": "paused", "rollout_percentage": 5.0, "revision": 2},
        })
    );
}

fn check(id: &str) -> CheckInput {
    CheckInput {
        device_id: DeviceId::parse(id).unwrap(),
        device_type: DeviceType::parse("demo").unwrap(),
        current_version: Version::parse("1.0.0").unwrap(),
        current_build: None,
        secure_version: None,
        channel: None,
        nonce: None,
        running_image_sha256: None,
        boot: None,
    }
}

#[tokio::test]
async fn groups_are_checked_sorted_and_audited() {
    let w = World::new();
    let d1 = DeviceId::parse("d1").unwrap();
    assert_eq!(
        w.ota
            .set_device_groups(&admin(), &d1, vec!["lab".into()])
            .await,
        Err(OpError::NotFound("device d1 has never checked in".into()))
    );
    w.ota.check(check("d1")).await.unwrap();
    let d = w
        .ota
        .set_device_groups(&admin(), &d1, vec!["lab".into(), "eu".into(), "lab".into()])
        .await
        .unwrap();
    assert_eq!(d.groups, ["eu", "lab"]);
    invalid(
        w.ota
            .set_device_groups(&admin(), &d1, vec!["a b".into()])
            .await,
        "groups",
    );
    let detail = w
        .ota
        .device_detail(&caller(Role::Viewer), &d1)
        .await
        .unwrap();
    assert_eq!(detail.device.groups, ["eu", "lab"]);
    assert_eq!(w.audit_actions().await, ["device.groups"]);
}

/// Credentials as the edge would sign them, recorded instead.
struct Recorded;

impl DeviceCredentials for Recorded {
    fn mint(
        &self,
        device_id: &DeviceId,
        device_type: &DeviceType,
        expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<String> {
        Ok(format!(
            "{device_id}/{device_type}/{:?}",
            expires_at.map(OffsetDateTime::unix_timestamp)
        ))
    }
}

#[tokio::test]
async fn device_tokens_take_the_registered_type_and_a_positive_lifetime() {
    let w = World::new();
    let d1 = DeviceId::parse("d1").unwrap();
    // Well formed, but the registry does not know the device: 422, not 400.
    assert!(matches!(
        w.ota
            .mint_device_token(&admin(), &Recorded, &d1, MintToken::default())
            .await,
        Err(OpError::Unprocessable(_))
    ));
    w.ota.check(check("d1")).await.unwrap();
    let minted = w
        .ota
        .mint_device_token(
            &admin(),
            &Recorded,
            &d1,
            MintToken {
                ttl_s: Some(60),
                ..MintToken::default()
            },
        )
        .await
        .unwrap();
    let expires = w.ota.now().unix_timestamp() + 60;
    assert_eq!(minted.token, format!("d1/demo/Some({expires})"));
    for ttl_s in [0, MAX_TTL_S + 1, u64::MAX] {
        let input = MintToken {
            ttl_s: Some(ttl_s),
            ..MintToken::default()
        };
        invalid(
            w.ota
                .mint_device_token(&admin(), &Recorded, &d1, input)
                .await,
            "ttl_s",
        );
    }
    // The audit event names the device and the expiry, never the token.
    let details = w.meta_audit_details("device.token_mint").await;
    assert_eq!(
        details[0],
        serde_json::json!({"device_type": "demo", "expires_at": expires})
    );
}
