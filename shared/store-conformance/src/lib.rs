//! The storage ports' contract, as executable checks: one `pub async fn` per case, each given a
//! fresh, empty store and panicking (failing its test) when the backend breaks the contract.
//! A backend's test file turns every case into a test of its own with [`meta_store_tests!`],
//! [`blob_store_tests!`], so that a failing case names itself and one case can be run alone
//! (`cargo test -p <backend> meta_store::status_state_machine`).

pub mod blobs;
pub mod fixtures;
pub mod fleet;
pub mod meta;

/// One test per `MetaStore` case (modules `meta_store` and `fleet_counters`), each on a store
/// from `$fresh`: an `async fn() -> (Arc<dyn MetaStore>, K)` of the calling file, where `K` is
/// whatever must live as long as the store (a temporary directory). Needs `tokio` with its
/// macros in the calling crate.
#[macro_export]
macro_rules! meta_store_tests {
    ($fresh:ident) => {
        $crate::conformance_tests!(
            meta_store,
            $fresh,
            meta,
            [
                device_types_create_if_absent,
                releases_unique_per_version,
                releases_newest_first_with_pages,
                release_update_checks_state,
                racing_release_updates_record_one_event,
                rollout_revisions,
                racing_decisions_write_once,
                release_view_holds_active_rollouts,
                specific_rollouts_name_devices_apart,
                check_registers_and_refreshes,
                check_finds_the_release_a_device_runs,
                status_state_machine,
                status_idempotent_by_event_id,
                status_concurrent_reports,
                failures_counted_per_release,
                rollout_of_report_is_last_offer,
                logs_filtered_and_paged,
                devices_filtered_and_paged,
                bad_cursor_refused,
            ]
        );
        $crate::conformance_tests!(
            fleet_counters,
            $fresh,
            fleet,
            [
                progress_follows_attempts,
                pause_fires_on_the_crossing_report,
                concurrent_reports_pause_once,
                concurrent_failures_pause_within_the_reports_in_flight,
                metrics_agree_with_logs_and_devices,
                release_health_counts_new_boots_and_crashes,
                audit_listed_newest_first_and_purged,
                silent_attempts_are_the_open_ones_by_last_report,
                racing_offers_keep_to_the_budget,
            ]
        );
    };
}

/// One test per `BlobStore` case (module `blob_store`), each on a store from `$fresh`: an
/// `async fn() -> (Arc<dyn BlobStore>, K)` of the calling file, as for [`meta_store_tests!`].
#[macro_export]
macro_rules! blob_store_tests {
    ($fresh:ident) => {
        $crate::conformance_tests!(
            blob_store,
            $fresh,
            blobs,
            [
                put_get_ranges,
                limit_leaves_nothing,
                broken_stream_leaves_nothing,
                put_exact_commits_only_the_expected_bytes,
                urls_expire_later,
            ]
        );
    };
}

/// A module `$module` with one test per case of `$crate::$cases`.
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $fresh:ident, $cases:ident, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, _keep) = super::$fresh().await;
                    $crate::$cases::$case(store).await;
                }
            )*
        }
    };
}
