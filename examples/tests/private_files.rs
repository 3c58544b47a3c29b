//! The examples' databases by default: in a private folder of the user
//! who runs them, which another local account can neither read nor plant
//! first. Runs the built examples as processes, with a home of their own.

#![cfg(unix)]

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::example;

/// A home folder others may pass through (as most are), so that only the
/// examples' own folder keeps them out.
fn home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o755)).unwrap();
    home
}

fn run_as(home: &Path, program: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .stdin(Stdio::null());
    command
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The examples' folder under `home`, on Linux.
fn folder(home: &Path) -> PathBuf {
    home.join(".local/share/userstate-examples")
}

/// Asserts the folder is 0700 with 0600 files, and, when the test can act
/// as another account (it runs as root), that `nobody` can read nothing.
fn assert_private(folder: &Path) {
    assert_eq!(mode(folder), 0o700, "{}", folder.display());
    let files: Vec<PathBuf> = fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    if rustix::process::geteuid().is_root() {
        for target in files.iter().chain([&folder.to_path_buf()]) {
            let read = Command::new("runuser")
                .args(["-u", "nobody", "--", "cat"])
                .arg(target)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("runuser, to read as another account");
            assert!(!read.status.success(), "nobody read {}", target.display());
            let why = String::from_utf8_lossy(&read.stderr);
            assert!(why.contains("Permission denied"), "{why}");
        }
    }
}

#[test]
fn the_quickstart_keeps_its_database_private() {
    let home = home();
    let out = run_as(home.path(), &example("quickstart"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let folder = folder(home.path());
    assert!(
        stdout.contains(&folder.join("quickstart.sqlite3").display().to_string()),
        "{stdout}"
    );
    assert_private(&folder);
}

#[test]
fn the_http_service_keeps_its_database_private() {
    let home = home();
    let mut service = run_as(home.path(), &example("http_service"))
        .args(["--listen", "127.0.0.1:0", "--demo"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The service logs "serving" once its storage is open.
    let mut log = BufReader::new(service.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    while !line.contains("serving") {
        line.clear();
        if log.read_line(&mut line).unwrap() == 0 {
            panic!("http_service stopped: {seen}");
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("http.sqlite3"), "{seen}");
    assert_private(&folder(home.path()));
    service.kill().unwrap();
    service.wait().unwrap();
}

#[test]
fn a_planted_folder_is_refused() {
    // A link to a folder of the planter's choosing, which any account can
    // leave in a shared place.
    let home = home();
    let elsewhere = home.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let planted = folder(home.path());
    fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
    let out = run_as(home.path(), &example("quickstart"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the quickstart followed a planted link"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_folder_of_another_account_is_refused() {
    let home = home();
    let planted = folder(home.path());
    fs::create_dir_all(&planted).unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o777)).unwrap();
    // Handing it to another account takes root; as anyone else, the folder
    // stays this account's own and must be made private instead.
    if !rustix::process::geteuid().is_root() {
        let out = run_as(home.path(), &example("quickstart"))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(mode(&planted), 0o700);
        return;
    }
    let status = Command::new("chown")
        .arg("nobody")
        .arg(&planted)
        .status()
        .unwrap();
    assert!(status.success());
    assert_ne!(fs::metadata(&planted).unwrap().uid(), 0);
    let out = run_as(home.path(), &example("quickstart"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the quickstart used a planted folder"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("belongs to another user"), "{stderr}");
    assert_eq!(
        fs::read_dir(&planted).unwrap().count(),
        0,
        "nothing written"
    );
}
