//! Every admin command checks the caller's role first: a caller below it is refused before
//! anything is looked up or validated, so it learns nothing of what exists.

mod support;

use ota_core::access::Role;
use ota_core::cmd::NewRelease;
use ota_core::cmd::create_release::CreateRelease;
use ota_core::cmd::create_rollout::{CreateRollout, RolloutOf};
use ota_core::cmd::edit_release::ReleaseChanges;
use ota_core::cmd::mint_device_token::MintToken;
use ota_core::cmd::put_device_type::PutDeviceType;
use ota_core::cmd::update_rollout::RolloutEdit;
use ota_core::error::OpError;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::ports::{DeviceCredentials, StoreResult};
use ota_core::rollout::{TargetFilter, TargetType};
use support::{Parts, World, caller};

struct NoCredentials;

impl DeviceCredentials for NoCredentials {
    fn mint(
        &self,
        _: &DeviceId,
        _: &DeviceType,
        _: Option<time::OffsetDateTime>,
    ) -> StoreResult<String> {
        unreachable!("a refused caller gets no token")
    }
}

#[track_caller]
fn forbidden<T: std::fmt::Debug>(r: Result<T, OpError>, role: Role) {
    match r {
        Err(OpError::Forbidden(m)) => {
            assert_eq!(
                m,
                format!("this action needs the role '{}' or above", role.as_str())
            );
        }
        other => panic!("expected the role {role:?} to be required, got {other:?}"),
    }
}

#[tokio::test]
async fn a_caller_below_the_commands_role_is_refused_before_anything_else() {
    let w = World::new();
    let (viewer, publisher) = (caller(Role::Viewer), caller(Role::Publisher));
    let demo = DeviceType::parse("demo").unwrap();
    let nobody = DeviceId::parse("nobody").unwrap();
    // Each input names nothing that exists, or breaks a field rule: the role decides first.
    let create = CreateRelease {
        release: NewRelease {
            device_type: demo.clone(),
            version: Version::parse("1.0.0").unwrap(),
            build_number: None,
            channel: Some("not a channel".into()),
            description: None,
            min_current_version: None,
            release_notes: None,
        },
        file_size: 0,
        file_hash: "not a hash".into(),
    };
    let rollout = CreateRollout {
        name: String::new(),
        release: RolloutOf::Id("nope".into()),
        target_type: TargetType::Specific,
        rollout_percentage: Some(500.0),
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
    };
    let policy = PutDeviceType {
        name: demo,
        chip: "not a chip".into(),
        max_image_size: None,
        require_signature: true,
        signing_key_digests: Vec::new(),
    };
    let ota = &w.ota;
    for admin in [&viewer] {
        forbidden(
            ota.create_release(admin, create.clone()).await,
            Role::Publisher,
        );
        forbidden(
            ota.upload_release(admin, &mut Parts(Vec::new())).await,
            Role::Publisher,
        );
        forbidden(ota.finalize_release(admin, "nope").await, Role::Publisher);
    }
    for admin in [&viewer, &publisher] {
        let changes = ReleaseChanges {
            channel: Some("not a channel".into()),
            ..ReleaseChanges::default()
        };
        forbidden(ota.edit_release(admin, "nope", changes).await, Role::Admin);
        forbidden(ota.deactivate_release(admin, "nope").await, Role::Admin);
        forbidden(
            ota.put_device_type(admin, policy.clone()).await,
            Role::Admin,
        );
        forbidden(
            ota.create_rollout(admin, rollout.clone()).await,
            Role::Admin,
        );
        let edit = RolloutEdit {
            rollout_percentage: Some(-1.0),
            ..RolloutEdit::default()
        };
        forbidden(ota.update_rollout(admin, "nope", edit).await, Role::Admin);
        let groups = vec!["not a group".into()];
        forbidden(
            ota.set_device_groups(admin, &nobody, groups).await,
            Role::Admin,
        );
        let mint = MintToken {
            device_type: None,
            ttl_s: Some(0),
        };
        forbidden(
            ota.mint_device_token(admin, &NoCredentials, &nobody, mint)
                .await,
            Role::Admin,
        );
    }
    // Nothing was recorded for the refused calls.
    assert!(w.audit_actions().await.is_empty());
}
