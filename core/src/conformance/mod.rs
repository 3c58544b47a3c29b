//! The behaviour every storage adapter must show, as `pub async fn`s that take
//! a fresh, empty repository. Adapters run all of them, unchanged, with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! userstate::conformance_tests!(my_adapter::Repo::open_temporary());
//! ```
//!
//! That expands to one `#[test]` per function below plus the model-based
//! property test ([`model_test`]). The functions panic on failure, like any test.

pub mod corruption;
mod fixture;
mod isolation;
pub mod kill;
mod lockout;
mod model;
mod race;
mod suite;
mod update;

pub use fixture::{Fixture, T0};
pub use futures::executor::block_on;
pub use isolation::tenant_isolation_matrix;
pub use lockout::*;
pub use model::{model_check_bytes, model_test, model_test_cases};
pub use race::{
    concurrent_appends_with_same_expected_sequence_one_wins,
    concurrent_commands_keep_history_exact, concurrent_locks_one_wins,
};
pub use suite::*;
pub use update::{
    concurrent_updates_store_every_decision_once,
    update_decides_on_the_stored_user_and_checks_the_commit,
};

/// Expands to one `#[test]` per conformance function, each on a fresh
/// repository from `$factory` (an expression evaluated once per test, giving
/// `Arc<dyn UserRepository>` or anything that converts into it), plus
/// `model_based_property_test`.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@each $factory;
            every_transition_from_every_state,
            create_rules,
            unlock_returns_to_state_before_lock,
            lock_reason_and_expiry,
            login_allowed_by_state,
            sequence_and_details,
            history_records_every_event,
            history_of_removed_user_stays_readable,
            list_pages_and_filters,
            tenant_isolation_and_order_of_checks,
            tenant_isolation_matrix,
            hostile_input_is_refused_or_stored_literally,
            snapshot_equals_replay,
            stale_append_is_a_conflict_and_writes_nothing,
            malformed_commits_are_refused,
            update_decides_on_the_stored_user_and_checks_the_commit,
            concurrent_updates_store_every_decision_once,
            concurrent_appends_with_same_expected_sequence_one_wins,
            concurrent_locks_one_wins,
            concurrent_commands_keep_history_exact,
            lockout_after_max_failed_password_checks,
            otp_failures_are_counted_per_factor,
            successes_password_changes_and_unlocks_reset_counters,
            policies_per_organisation_and_zero_limits,
            temporary_lockouts_expire_grow_and_turn_permanent,
            concurrent_failures_are_counted_exactly,
        );

        #[test]
        fn model_based_property_test() {
            $crate::conformance::model_test(
                || ::std::convert::Into::into($factory),
                $crate::conformance::model_test_cases(),
            );
        }
    };
    (@each $factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let repo: ::std::sync::Arc<dyn $crate::UserRepository> =
                    ::std::convert::Into::into($factory);
                $crate::conformance::block_on($crate::conformance::$name(repo));
            }
        )*
    };
}
