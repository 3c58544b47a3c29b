//! Repositories for the tests: on a temporary file kept alive as long as the
//! repository, and two handles on one file behind one repository.

#![allow(dead_code)] // Each test binary uses a different part.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use userstate::{
    Commit, Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId, UserRepository,
};
use userstate_sqlite::{Durability, SqliteOptions, SqliteRepository};

/// A repository on a file in its own temporary directory, removed when the
/// repository is dropped (the repository first: it closes the file).
#[derive(Debug)]
pub struct TempRepo {
    pub repo: SqliteRepository,
    pub dir: TempDir,
}

impl TempRepo {
    pub fn open(options: &SqliteOptions) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = options.open(db_path(dir.path())).expect("open");
        TempRepo { repo, dir }
    }

    pub fn path(&self) -> PathBuf {
        db_path(self.dir.path())
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("users.db")
}

pub fn relaxed() -> SqliteOptions {
    SqliteOptions::new().durability(Durability::Relaxed)
}

/// A fresh durable (default options) repository on a temporary file.
pub fn durable_file() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&SqliteOptions::new()))
}

/// A fresh relaxed repository on a temporary file.
pub fn relaxed_file() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&relaxed()))
}

/// A fresh in-memory repository.
pub fn in_memory() -> Arc<dyn UserRepository> {
    SqliteRepository::open_in_memory().expect("open").into()
}

#[async_trait]
impl UserRepository for TempRepo {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        self.repo.load(id).await
    }
    async fn append(&self, commit: Commit) -> Result<()> {
        self.repo.append(commit).await
    }
    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        self.repo.history(id, query).await
    }
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        self.repo.list(org, query).await
    }
}

/// Two independently opened handles on one file (each with its own writer
/// thread, readers and connections), used in turn: every call goes to the
/// next handle, so a command's load and append usually go to different ones.
#[derive(Debug)]
pub struct TwoHandles {
    handles: [SqliteRepository; 2],
    next: AtomicUsize,
    dir: TempDir,
}

impl TwoHandles {
    pub fn open(options: &SqliteOptions) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = db_path(dir.path());
        let first = options.open(&path).expect("open first handle");
        let second = options.open(&path).expect("open second handle");
        TwoHandles {
            handles: [first, second],
            next: AtomicUsize::new(0),
            dir,
        }
    }

    pub fn handles(&self) -> &[SqliteRepository; 2] {
        &self.handles
    }

    fn handle(&self) -> &SqliteRepository {
        let [first, second] = &self.handles;
        if self.next.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            first
        } else {
            second
        }
    }
}

/// A fresh pair of relaxed handles on one temporary file.
pub fn two_handles() -> Arc<dyn UserRepository> {
    Arc::new(TwoHandles::open(&relaxed()))
}

#[async_trait]
impl UserRepository for TwoHandles {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        self.handle().load(id).await
    }
    async fn append(&self, commit: Commit) -> Result<()> {
        self.handle().append(commit).await
    }
    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        self.handle().history(id, query).await
    }
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        self.handle().list(org, query).await
    }
}
