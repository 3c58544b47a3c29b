//! The behaviour every storage adapter must show, as `pub async fn`s that
//! take a fresh, empty repository. Adapters run all of them, unchanged, with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! userstate::conformance_tests!(my_adapter::Repo::open_temporary().unwrap());
//! ```
//!
//! That expands to one `#[test]` per function below plus the model-based
//! property test ([`model_test`]). The functions panic on failure, like any
//! test. They test what depends on storage: the one write and its
//! conflicts, snapshot = replay, histories, paging and indexes, literal
//! ids, races, tenant isolation, lockout atomicity, the caller check and
//! addressing by id, and the model test. The
//! transition table, login rules and argument checks are the core's own,
//! tested once in the core.

mod callers;
pub mod corruption;
pub mod damage;
pub mod feed;
mod fixture;
pub mod group;
mod isolation;
pub mod kill;
mod lockout;
mod model;
pub mod processes;
mod race;
mod reads;
mod replay;
mod update;
pub mod upgrade;

pub use callers::{
    caller_state_check_switched_off, caller_state_expired_lock_does_not_count,
    caller_state_locking_oneself_takes_effect_at_once, caller_state_of_someone_else_does_not_count,
    caller_state_that_cannot_log_in_is_refused, users_are_addressed_by_id_alone,
};
pub use feed::{
    feed_equals_the_union_of_all_histories, feed_followed_during_concurrent_writes_misses_nothing,
    feed_through_the_service_is_scoped_filtered_and_followed,
};
pub use fixture::{at, details, org, policy, user, Fixture, T0};
pub use futures::executor::block_on;
pub use isolation::tenant_isolation_matrix;
pub use lockout::{
    admin_unlock_resets_escalation_and_expiry_does_not, concurrent_failures_are_counted_exactly,
    lockout_failure_and_lock_are_one_commit, policy_is_stored_and_in_force_for_every_service,
    policy_organisations_lists_every_stored_policy, policy_survives_reopening,
};
pub use model::{model_check_bytes, model_test, model_test_cases};
pub use race::{concurrent_commands_keep_history_exact, concurrent_locks_one_wins};
pub use reads::{
    history_of_removed_user_stays_readable, history_pages_by_cursor_and_streams_walk_every_page,
    history_records_every_event, list_pages_and_filters,
    literal_ids_are_stored_and_listed_literally, removed_and_foreign_ids_stay_taken,
    removed_users_are_listed_for_operators, state_filters_mean_the_state_in_force_now,
};
pub use replay::{
    checked_through_the_trait_a_sound_database_has_no_findings, snapshot_equals_replay,
};
pub use update::{
    concurrent_checked_appends_one_wins, concurrent_updates_store_every_decision_once,
    stale_commits_are_conflicts_and_write_nothing,
    update_decides_on_the_stored_user_and_checks_the_commit,
    update_many_keeps_order_and_answers_each,
};

/// Expands to one `#[test]` per conformance function, each on a fresh
/// repository from `$factory` (an expression evaluated once per test, giving
/// `Arc<dyn UserRepository>` or anything that converts into it), plus
/// `model_based_property_test`.
///
/// With `if $available`, each test first evaluates `$available` (a `bool`)
/// and returns at once when it is false: for backends a machine may lack
/// (a database server), whose harness says once why the tests skip.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!($factory, if true);
    };
    ($factory:expr, if $available:expr) => {
        $crate::conformance_tests!(@each $factory, $available;
            update_decides_on_the_stored_user_and_checks_the_commit,
            stale_commits_are_conflicts_and_write_nothing,
            concurrent_updates_store_every_decision_once,
            concurrent_checked_appends_one_wins,
            update_many_keeps_order_and_answers_each,
            snapshot_equals_replay,
            checked_through_the_trait_a_sound_database_has_no_findings,
            history_records_every_event,
            history_of_removed_user_stays_readable,
            list_pages_and_filters,
            removed_users_are_listed_for_operators,
            state_filters_mean_the_state_in_force_now,
            history_pages_by_cursor_and_streams_walk_every_page,
            removed_and_foreign_ids_stay_taken,
            literal_ids_are_stored_and_listed_literally,
            tenant_isolation_matrix,
            concurrent_locks_one_wins,
            concurrent_commands_keep_history_exact,
            lockout_failure_and_lock_are_one_commit,
            concurrent_failures_are_counted_exactly,
            admin_unlock_resets_escalation_and_expiry_does_not,
            policy_is_stored_and_in_force_for_every_service,
            policy_organisations_lists_every_stored_policy,
            caller_state_that_cannot_log_in_is_refused,
            caller_state_expired_lock_does_not_count,
            caller_state_of_someone_else_does_not_count,
            caller_state_check_switched_off,
            caller_state_locking_oneself_takes_effect_at_once,
            users_are_addressed_by_id_alone,
            feed_equals_the_union_of_all_histories,
            feed_followed_during_concurrent_writes_misses_nothing,
            feed_through_the_service_is_scoped_filtered_and_followed,
        );

        #[test]
        fn model_based_property_test() {
            if !$available {
                return;
            }
            $crate::conformance::model_test(
                || ::std::convert::Into::into($factory),
                $crate::conformance::model_test_cases(),
            );
        }
    };
    (@each $factory:expr, $available:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                if !$available {
                    return;
                }
                let repo: ::std::sync::Arc<dyn $crate::UserRepository> =
                    ::std::convert::Into::into($factory);
                $crate::conformance::block_on($crate::conformance::$name(repo));
            }
        )*
    };
}
