//! The operator's tool on SQLite and sled files, driven as a process.

mod common;

use common::{exists, export_without_positions, ok, org, run, seed, service, user, Place};
use futures::executor::block_on;
use userstate::{ErrorKind, InitialState};

#[test]
fn an_operator_unlocks_a_locked_out_admin_by_id_alone_and_is_recorded() {
    let place = Place::new();
    let db = place.sqlite("identity.sqlite3");
    seed(&db);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["--db", &db, "--json", "users", "show", "admin"])).unwrap();
    assert_eq!(shown["state"], "locked");
    assert_eq!(shown["lock"]["cause"], "lockout");

    let unlocked = run(&[
        "--db",
        &db,
        "--operator",
        "maria",
        "users",
        "unlock",
        "admin",
        "--reason",
        "locked out by the policy; ticket 4711",
    ]);
    assert_eq!(unlocked.code, 0, "{}", unlocked.stderr);
    assert!(unlocked.stdout.contains("active"), "{}", unlocked.stdout);

    let history: serde_json::Value = serde_json::from_str(&ok(&[
        "--db", &db, "--json", "users", "history", "admin", "--after", "3",
    ]))
    .unwrap();
    let last = history["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["creator"], "operator:maria");
    assert_eq!(
        last["payload"]["unlocked"]["reason"],
        "locked out by the policy; ticket 4711"
    );
    assert_eq!(last["payload"]["unlocked"]["resetsEscalation"], true);
    // The admin can log in again, as the service sees it.
    let (s, _) = service(&db);
    block_on(s.login_allowed(&user("admin"))).unwrap();

    // A second unlock is refused (exit 1) and writes nothing.
    let again = run(&[
        "--db",
        &db,
        "--operator",
        "maria",
        "users",
        "unlock",
        "admin",
    ]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("USER-NOT-LOCKED"), "{}", again.stderr);
    // So is a user that does not exist.
    let nobody = run(&[
        "--db",
        &db,
        "--operator",
        "maria",
        "users",
        "lock",
        "nobody",
    ]);
    assert_eq!(nobody.code, 1, "{}", nobody.stderr);
}

#[test]
fn verify_passes_a_sound_database_and_names_a_snapshot_corrupted_by_hand() {
    let place = Place::new();
    let db = place.sqlite("identity.sqlite3");
    let events = seed(&db);
    let sound = run(&["--db", &db, "--json", "verify"]);
    assert_eq!(sound.code, 0, "{}{}", sound.stdout, sound.stderr);
    let report: serde_json::Value = serde_json::from_str(&sound.stdout).unwrap();
    assert_eq!(report["sound"], true);
    assert_eq!(report["users"], 7);
    assert_eq!(report["events"], events);

    // Ann's stored snapshot says active while her history says locked.
    let file = rusqlite::Connection::open(place.path("identity.sqlite3")).unwrap();
    let changed = file
        .execute(
            "UPDATE users SET snapshot = replace(snapshot, '\"state\":\"locked\"', '\"state\":\"active\"') \
             WHERE id = 'ann'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(file);
    let damaged = run(&["--db", &db, "verify"]);
    assert_eq!(damaged.code, 1, "{}{}", damaged.stdout, damaged.stderr);
    let findings: Vec<&str> = damaged.stdout.lines().collect();
    assert!(
        findings.contains(&"user ann: the stored row of user ann does not match its checksum"),
        "{findings:?}"
    );
    // Nobody else is blamed: a finding names ann or no user at all.
    for other in ["admin", "bob", "cleo", "gone", "gus", "ivy"] {
        assert!(
            !findings
                .iter()
                .any(|line| line.starts_with(&format!("user {other}:"))),
            "{other} is blamed: {findings:?}"
        );
    }
    assert!(damaged.stderr.contains("finding"), "{}", damaged.stderr);
}

#[test]
fn a_removed_user_survives_a_migration_and_its_id_stays_taken() {
    let place = Place::new();
    let (sqlite, sled) = (place.sqlite("a.sqlite3"), place.sled("b.sled"));
    seed(&sqlite);
    let migrated = run(&["--db", &sqlite, "--json", "migrate", "--to", &sled]);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    let summary: serde_json::Value = serde_json::from_str(&migrated.stdout).unwrap();
    assert_eq!(summary["verified"], true);
    assert_eq!(summary["users"], 7);
    assert_eq!(summary["policies"], 3);
    assert_eq!(
        export_without_positions(&sqlite),
        export_without_positions(&sled)
    );

    let gone: serde_json::Value =
        serde_json::from_str(&ok(&["--db", &sled, "--json", "users", "show", "gone"])).unwrap();
    assert_eq!(gone["state"], "deleted");
    let history: serde_json::Value =
        serde_json::from_str(&ok(&["--db", &sled, "--json", "users", "history", "gone"])).unwrap();
    let types: Vec<String> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["payload"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(types, ["added", "locked", "removed"]);
    let removed = ok(&["--db", &sled, "users", "list", "--state", "deleted"]);
    assert!(removed.contains("gone"), "{removed}");

    let (s, root) = service(&sled);
    let taken = block_on(s.create(
        &root.clone().in_org(org("acme")),
        &user("gone"),
        InitialState::Active,
    ))
    .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AlreadyExists);
    // In another organisation too: ids are unique in the instance.
    let elsewhere = block_on(s.create(
        &root.in_org(org("globex")),
        &user("gone"),
        InitialState::Active,
    ))
    .unwrap_err();
    assert_eq!(elsewhere.kind(), ErrorKind::AlreadyExists);
}

#[test]
fn export_and_import_round_trip_and_import_refuses_a_database_that_is_not_empty() {
    let place = Place::new();
    let (source, target) = (place.sqlite("a.sqlite3"), place.sled("b.sled"));
    seed(&source);
    let file = place.path("export.jsonl");
    ok(&[
        "--db",
        &source,
        "export",
        "--output",
        file.to_str().unwrap(),
    ]);
    let lines = std::fs::read_to_string(&file).unwrap();
    assert!(lines.starts_with("{\"kind\":\"userstate-export\",\"version\":1}\n"));
    assert!(lines.trim_end().ends_with('}') && lines.contains("{\"kind\":\"end\""));
    // An export never overwrites a file.
    let twice = run(&[
        "--db",
        &source,
        "export",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(twice.code, 1, "{}", twice.stderr);

    let imported = run(&["--db", &target, "import", "--input", file.to_str().unwrap()]);
    assert_eq!(imported.code, 0, "{}", imported.stderr);
    assert_eq!(
        export_without_positions(&source),
        export_without_positions(&target)
    );

    // Into a database that is not empty: refused, nothing written.
    let before = ok(&["--db", &source, "export"]);
    let refused = run(&["--db", &source, "import", "--input", file.to_str().unwrap()]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("not empty"), "{}", refused.stderr);
    assert_eq!(ok(&["--db", &source, "export"]), before);

    // A cut-off export: what came before is written, the import fails, and
    // the whole export then resumes it.
    let cut = place.path("cut.jsonl");
    let half: Vec<&str> = lines.lines().take(lines.lines().count() / 2).collect();
    std::fs::write(&cut, half.join("\n") + "\n").unwrap();
    let third = place.sqlite("c.sqlite3");
    let cut_off = run(&["--db", &third, "import", "--input", cut.to_str().unwrap()]);
    assert_eq!(cut_off.code, 1);
    assert!(cut_off.stderr.contains("cut off"), "{}", cut_off.stderr);
    let resumed = run(&[
        "--db",
        &third,
        "--json",
        "import",
        "--resume",
        "--input",
        file.to_str().unwrap(),
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: serde_json::Value = serde_json::from_str(&resumed.stdout).unwrap();
    assert!(summary["skipped"].as_u64().unwrap() > 0);
    assert_eq!(
        export_without_positions(&source),
        export_without_positions(&third)
    );
    let verified = run(&["--db", &third, "verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}

#[test]
fn reads_list_show_history_events_and_policies() {
    let place = Place::new();
    let db = place.sqlite("identity.sqlite3");
    let events = seed(&db);
    let listed = ok(&["--db", &db, "users", "list"]);
    let rows: Vec<&str> = listed.lines().collect();
    assert!(rows[0].starts_with("ID"), "a header: {listed}");
    // Removed users are listed only when asked for.
    assert_eq!(rows.len(), 1 + 6, "{listed}");
    assert!(!listed.contains("gone"));
    let locked = ok(&[
        "--db", &db, "users", "list", "--org", "acme", "--state", "locked",
    ]);
    for id in ["admin", "ann", "bob"] {
        assert!(locked.contains(id), "{locked}");
    }
    // Pages: two at a time, then on from the cursor.
    let page: serde_json::Value = serde_json::from_str(&ok(&[
        "--db", &db, "--json", "users", "list", "--org", "acme", "--limit", "2",
    ]))
    .unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 2);
    let after = page["next"]["after"].as_str().unwrap().to_owned();
    let next: serde_json::Value = serde_json::from_str(&ok(&[
        "--db", &db, "--json", "users", "list", "--org", "acme", "--after", &after,
    ]))
    .unwrap();
    assert_eq!(next["users"].as_array().unwrap().len(), 3);

    let feed = ok(&["--db", &db, "events"]);
    assert_eq!(feed.lines().count() as u64, events);
    let later = ok(&["--db", &db, "events", "--after", "3", "--limit", "2"]);
    assert!(later.starts_with("4\t"), "{later}");
    assert_eq!(later.lines().count(), 2);
    let locks = ok(&["--db", &db, "--json", "events", "--type", "user.locked"]);
    assert_eq!(locks.lines().count(), 4, "{locks}");
    // Following: an event committed by another process's handle while the
    // command follows (or before it starts: it reads from the checkpoint).
    let writer = std::thread::spawn({
        let db = db.clone();
        move || {
            let (s, root) = service(&db);
            block_on(s.create(
                &root.in_org(org("acme")),
                &user("late"),
                InitialState::Active,
            ))
            .unwrap();
        }
    });
    let followed = common::userstate()
        .args([
            "--db",
            &db,
            "events",
            "--follow",
            "--after",
            &events.to_string(),
            "--limit",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    writer.join().unwrap();
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let line = String::from_utf8(followed.stdout).unwrap();
    assert!(line.starts_with(&format!("{}\t", events + 1)), "{line}");
    assert!(line.contains("late\tuser.added"), "{line}");

    let policy: serde_json::Value = serde_json::from_str(&ok(&[
        "--db", &db, "--json", "policy", "get", "--org", "acme",
    ]))
    .unwrap();
    assert_eq!(policy["policy"]["maxPasswordAttempts"], 3);
    assert_eq!(policy["isDefault"], false);
    assert_eq!(policy["changedBy"], "root");
    let set = ok(&[
        "--db",
        &db,
        "--operator",
        "maria",
        "--json",
        "policy",
        "set",
        "--org",
        "globex",
        "--max-otp",
        "4",
    ]);
    let set: serde_json::Value = serde_json::from_str(&set).unwrap();
    assert_eq!(set["policy"]["maxOtpAttempts"], 4);
    assert_eq!(set["changedBy"], "operator:maria");
    let default: serde_json::Value =
        serde_json::from_str(&ok(&["--db", &db, "--json", "policy", "get"])).unwrap();
    assert_eq!(default["org"], serde_json::Value::Null);
    assert_eq!(default["isDefault"], true);
    let bad = run(&[
        "--db",
        &db,
        "--operator",
        "maria",
        "policy",
        "set",
        "--duration-growth",
        "0",
    ]);
    assert_eq!(
        bad.code, 2,
        "an inconsistent policy is a usage error: {}",
        bad.stderr
    );
    let stored = block_on(service(&db).0.repository().policies(&org("globex"))).unwrap();
    assert_eq!(stored.org.unwrap().policy.max_otp_attempts, 4);
}

#[test]
fn wrong_specs_and_paths_are_usage_errors_that_create_nothing() {
    let place = Place::new();
    let folder = place.path("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let file = place.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let missing = place.path("missing.sqlite3");
    for (spec, says) in [
        ("mysql://db/identity".to_owned(), "names no backend"),
        (format!("sqlite:{}", folder.display()), "is a folder"),
        (format!("sled:{}", file.display()), "is not a folder"),
        (
            format!("sqlite:{}", missing.display()),
            "no database is there",
        ),
        ("postgres://me:s3cret@/nowhere".to_owned(), ""),
    ] {
        let ran = run(&["--db", &spec, "users", "list"]);
        if says.is_empty() {
            // Unreachable, not misconfigured; the password is not shown.
            assert_eq!(ran.code, 1, "{spec}: {}", ran.stderr);
            assert!(!ran.stderr.contains("s3cret"), "{}", ran.stderr);
            continue;
        }
        assert_eq!(ran.code, 2, "{spec}: {}", ran.stderr);
        assert!(
            ran.stderr.contains(says) && ran.stderr.contains(&spec),
            "{spec}: {}",
            ran.stderr
        );
    }
    assert!(!exists(&missing), "a read creates no database");
    let no_db = run(&["users", "list"]);
    assert_eq!(no_db.code, 2);
    assert!(no_db.stderr.contains("--db"), "{}", no_db.stderr);
    let no_command = run(&["--db", "memory"]);
    assert_eq!(no_command.code, 2);
    let bad_id = run(&["--db", "memory", "users", "show", ""]);
    assert_eq!(bad_id.code, 2, "{}", bad_id.stderr);
    let same = run(&["migrate", "--from", "memory", "--to", "memory"]);
    assert_eq!(same.code, 2);
}
