//! A host's own connection pool: the adapter takes its connections from
//! it, in the schema the host names, and learns of other handles' commits
//! by reading the feed's last position while a reader waits.

mod common;

use futures::executor::block_on;
use userstate::conformance::Fixture;
use userstate::{UserRepository, UserState};
use userstate_postgres::deadpool_postgres::{Manager, Pool};
use userstate_postgres::testing;
use userstate_postgres::PostgresOptions;

#[test]
fn a_host_pool_and_schema_serve_the_repository() {
    let Some(db) = testing::database() else {
        return;
    };
    let config: tokio_postgres::Config = db.connection_string().parse().unwrap();
    let pool = Pool::builder(Manager::new(config, tokio_postgres::NoTls))
        .max_size(4)
        .build()
        .unwrap();
    let hosted = PostgresOptions::with_pool(pool)
        .schema("identity")
        .open()
        .unwrap();
    let f = Fixture::new(hosted.clone().into());
    let alice = block_on(f.user_in_state("alice", UserState::Locked));
    assert_eq!(block_on(f.stored(&alice)).state, UserState::Locked);

    // Another handle on the same schema, with a pool of its own: its commit
    // wakes a reader of the hosted handle.
    let other = PostgresOptions::new(db.connection_string())
        .schema("identity")
        .open()
        .unwrap();
    let last = block_on(f.feed_after(0));
    let g = Fixture::new(other.into());
    block_on(g.user_in_state("bob", UserState::Active));
    block_on(hosted.wait_for_events(last)).unwrap();
    let after = block_on(hosted.feed(last, 10)).unwrap();
    assert_eq!(after[0].event.user_id.as_str(), "bob");

    // The default schema of the same database is another, empty set.
    let plain = PostgresOptions::new(db.connection_string()).open().unwrap();
    assert!(block_on(plain.feed(0, 10)).unwrap().is_empty());
}
