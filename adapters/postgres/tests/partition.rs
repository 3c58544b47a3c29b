//! A network partition between client and server: the server runs in a
//! network namespace of the test's own, reached over a veth pair, and the
//! test takes the link down under running writers. Every command in flight
//! ends (within the command timeout, or the connect timeout for a new
//! connection: never a hang) as Unavailable, with the outcome marked
//! unknown where COMMIT had been sent; no user is half applied; every
//! acknowledged command is present; and the same repository works again
//! once the link is back.
//!
//! Needs root (namespaces and links) and iproute2; outside CI it skips
//! with one line when they are missing.

mod common;

use common::{writers, Tally};

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use userstate::conformance::Fixture;
use userstate::storage::Scope;
use userstate::UserRepository;
use userstate_postgres::testing::{self, TestCluster};
use userstate_postgres::PostgresOptions;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// A namespace and the veth pair into it; removed on drop (removing the
/// namespace removes the pair).
struct Network {
    namespace: String,
    host_side: String,
    server_address: String,
}

impl Network {
    fn create() -> Result<Network, String> {
        let n = std::process::id() % 250 + 1;
        let network = Network {
            namespace: format!("userstate-pg-{}", std::process::id()),
            host_side: format!("usp{n}h"),
            server_address: format!("10.231.{n}.2"),
        };
        let peer = format!("usp{n}n");
        let host_address = format!("10.231.{n}.1/30");
        let server_cidr = format!("{}/30", network.server_address);
        let ns = network.namespace.as_str();
        let steps: [&[&str]; 8] = [
            &["netns", "add", ns],
            &[
                "link",
                "add",
                &network.host_side,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
            &["link", "set", &peer, "netns", ns],
            &["addr", "add", &host_address, "dev", &network.host_side],
            &["link", "set", &network.host_side, "up"],
            &["-n", ns, "addr", "add", &server_cidr, "dev", &peer],
            &["-n", ns, "link", "set", &peer, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(step)?;
        }
        Ok(network)
    }

    fn link(&self, state: &str) {
        ip(&["link", "set", &self.host_side, state]).expect("set the link");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.host_side]);
        let _ = ip(&["netns", "del", &self.namespace]);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[test]
fn a_partition_ends_every_call_and_the_repository_recovers() {
    if !testing::available() {
        return;
    }
    let network = match Network::create() {
        Ok(network) => network,
        Err(why) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true needs network namespaces for the partition test: {why}")
        }
        Err(why) => {
            eprintln!("skipping the partition test: {why}");
            return;
        }
    };
    let cluster = TestCluster::start_in_namespace(&network.namespace, &network.server_address)
        .expect("a cluster in the namespace");
    let db = cluster.create_database().expect("a database");
    let over_tcp = format!(
        "{} dbname={}",
        cluster.tcp_base().expect("a TCP address"),
        db.name()
    );
    let repo = PostgresOptions::new(over_tcp)
        .connect_timeout(CONNECT_TIMEOUT)
        .command_timeout(COMMAND_TIMEOUT)
        .open()
        .expect("open over the link");
    let f = Fixture::new(repo.clone().into());
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = writers(&f, &tally, &stop);

    tally.wait_until(|acknowledged, _| acknowledged >= 100);
    network.link("down");
    // Every writer's call in flight ends: a hang would stop here.
    tally.wait_until(|_, failures| failures >= 4);
    network.link("up");
    let before = tally.acknowledged.lock().unwrap().len();
    tally.wait_until(|acknowledged, _| acknowledged >= before + 100);
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().expect("a writer panicked");
    }

    // Checked over the server's socket, outside the namespace.
    let checker = PostgresOptions::new(db.connection_string())
        .open()
        .expect("open over the socket");
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        let user = block_on(checker.load(id, &Scope::Instance)).expect("load");
        assert!(user.is_some(), "acknowledged user {id} is missing");
    }
    let verification = block_on(checker.verify()).expect("verify");
    assert!(verification.is_sound(), "{:?}", verification.findings);
    let unknown = tally.unknown.lock().unwrap().clone();
    let applied = unknown
        .iter()
        .filter(|id| {
            block_on(checker.load(id, &Scope::Instance))
                .unwrap()
                .is_some()
        })
        .count();
    eprintln!(
        "partition: {} acknowledged, {} failed (slowest {} ms; bounds: connect {} ms, \
         command {} ms), {} with outcome unknown of which {} applied",
        acknowledged.len(),
        tally.failures.load(Ordering::SeqCst),
        tally.slowest_failure_ms.load(Ordering::SeqCst),
        CONNECT_TIMEOUT.as_millis(),
        COMMAND_TIMEOUT.as_millis(),
        unknown.len(),
        applied
    );
    drop(checker);
    drop(repo);
    drop(cluster);
}
