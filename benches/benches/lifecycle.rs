//! Criterion benches of the service on every backend: a lock+unlock cycle,
//! `get`, the history of a user and a page of 100 locked users, with 10,000
//! users preloaded, and also 1,000,000 with `USERSTATE_BENCH_LARGE=1`.
//!
//! ```text
//! cargo bench -p userstate-benches
//! USERSTATE_BENCH_LARGE=1 cargo bench -p userstate-benches     # adds 1M users (slow to preload)
//! cargo bench -p userstate-benches -- 'sqlite-durable'          # one backend
//! ```
//!
//! Databases live in the system's temporary directory (`TMPDIR` moves
//! them); each adapter's users are preloaded once, in its fastest mode, and
//! the database is reopened in each durability mode.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use userstate::{HistoryQuery, ListQuery, LockRequest, UserState};
use userstate_benches::fixture::{self, Adapter};

/// The sizes to preload: 10k, and 1M when asked for.
fn sizes() -> Vec<usize> {
    let large = std::env::var("USERSTATE_BENCH_LARGE").is_ok_and(|v| !v.is_empty() && v != "0");
    if large {
        vec![10_000, 1_000_000]
    } else {
        vec![10_000]
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let runtime = fixture::runtime();
    for adapter in Adapter::EMBEDDED {
        for users in sizes() {
            bench_adapter(&mut criterion, &runtime, adapter, users);
        }
    }
    criterion.final_summary();
}

fn bench_adapter(
    criterion: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    adapter: Adapter,
    users: usize,
) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let loading = fixture::open_for_loading(adapter, dir.path()).expect("open for loading");
    let took = fixture::preload(runtime, &loading, users).expect("preload");
    eprintln!(
        "{adapter}: preloaded {users} users in {:.1} s",
        took.as_secs_f64()
    );
    // Memory keeps its one handle; the others close and reopen per mode.
    let memory = (adapter == Adapter::Memory).then_some(loading);
    for &mode in adapter.modes() {
        let handle = match &memory {
            Some(handle) => handle.clone(),
            None => fixture::open(adapter, mode, dir.path()).expect("open"),
        };
        let (service, admin) = fixture::service(handle.repository());
        let backend = format!("{adapter}-{mode}");
        let mut group = criterion.benchmark_group(backend.as_str());

        // Visit users far apart, so a large database is read at random.
        let mut k = 0u64;
        let mut next_user = move || {
            k += 1;
            fixture::visit(k, users)
        };

        // Two commands per lock+unlock cycle.
        group.throughput(Throughput::Elements(2));
        group.bench_function(BenchmarkId::new("lock_unlock", users), |b| {
            b.iter(|| {
                // Users preloaded active; the cycle leaves them active.
                let mut u = next_user();
                if fixture::preloaded_locked(u) {
                    u += 1;
                }
                let id = fixture::user_id(u.min(users - 1));
                runtime.block_on(async {
                    service
                        .lock(&admin, &id, LockRequest::new())
                        .await
                        .expect("lock");
                    service.unlock(&admin, &id, None).await.expect("unlock");
                });
            })
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("get", users), |b| {
            b.iter(|| {
                let id = fixture::user_id(next_user());
                black_box(runtime.block_on(service.get(&admin, &id)).expect("get"))
            })
        });
        group.bench_function(BenchmarkId::new("history", users), |b| {
            b.iter(|| {
                let id = fixture::user_id(next_user());
                black_box(
                    runtime
                        .block_on(service.history(&admin, &id, HistoryQuery::default()))
                        .expect("history"),
                )
            })
        });
        group.bench_function(BenchmarkId::new("list_100_locked", users), |b| {
            b.iter(|| {
                // A page from a random place among the locked users.
                let after = fixture::user_id(next_user());
                let query = ListQuery {
                    after: Some(userstate::Cursor::after_user(&after)),
                    ..ListQuery::in_state(UserState::Locked)
                };
                black_box(
                    runtime
                        .block_on(service.list(&admin, &query))
                        .expect("list"),
                )
            })
        });
        group.finish();
    }
}
