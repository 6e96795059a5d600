//! The engine's SQLite state (`state.sqlite3`, mode 0600): configured repositories (never a
//! password), popups already shown, acknowledgements queued while offline, the last known list
//! of each repository and the settings. Schema changes are migrations keyed by
//! `PRAGMA user_version`. Synchronous calls; the engine keeps them short.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::EngineError;
use crate::types::{NotificationView, RepoId, Settings};

/// The database file inside the data directory.
pub const STATE_FILE_NAME: &str = "state.sqlite3";

/// Each entry upgrades the schema by one version; never edit a released one, append instead.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE repositories (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('kopia-config', 'filesystem', 'demo')),
        -- Kopia config file (kopia-config) or repository directory (filesystem, demo).
        location TEXT NOT NULL UNIQUE,
        -- Account of our OS keyring item holding the password (filesystem only).
        keyring_account TEXT,
        added_at TEXT NOT NULL
    );
    CREATE TABLE shown_popups (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        notification_id TEXT NOT NULL,
        shown_at TEXT NOT NULL,
        PRIMARY KEY (repo_id, notification_id)
    ) WITHOUT ROWID;
    CREATE TABLE queued_acks (
        repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
        notification_id TEXT NOT NULL,
        identity TEXT NOT NULL,
        queued_at TEXT NOT NULL,
        PRIMARY KEY (repo_id, notification_id, identity)
    ) WITHOUT ROWID;
    CREATE TABLE known_notifications (
        repo_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
        checked_at TEXT NOT NULL,
        -- JSON array of NotificationView as last read from the repository.
        views TEXT NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;",
];

const SETTINGS_KEY: &str = "settings";
const PAUSED_UNTIL_KEY: &str = "paused_until";
/// Set once the first run's import (or demo setup) has happened.
pub const FIRST_RUN_DONE_KEY: &str = "first_run_done";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// A Kopia or KopiaUI client config; password from Kopia's own sources.
    KopiaConfig,
    /// A filesystem repository added by path; password in our keyring item.
    Filesystem,
    /// The demo repository in the data directory; its password is public.
    Demo,
}

impl RepoKind {
    fn as_str(self) -> &'static str {
        match self {
            RepoKind::KopiaConfig => "kopia-config",
            RepoKind::Filesystem => "filesystem",
            RepoKind::Demo => "demo",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "kopia-config" => Some(RepoKind::KopiaConfig),
            "filesystem" => Some(RepoKind::Filesystem),
            "demo" => Some(RepoKind::Demo),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRecord {
    pub id: RepoId,
    pub name: String,
    pub kind: RepoKind,
    pub location: PathBuf,
    pub keyring_account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedAck {
    pub notification_id: String,
    pub identity: String,
    pub queued_at: DateTime<Utc>,
}

/// A repository's list as last read, kept for when it cannot be reached.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownList {
    pub checked_at: DateTime<Utc>,
    pub views: Vec<NotificationView>,
}

pub struct StateDb {
    conn: Connection,
    path: PathBuf,
}

impl StateDb {
    /// Opens (creating if needed) the state database in `data_dir`, which is created with mode
    /// 0700; the file gets mode 0600 before SQLite first writes to it.
    pub fn open(data_dir: &Path) -> Result<Self, EngineError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(STATE_FILE_NAME);
        create_private_file(&path)?;
        let conn = Connection::open(&path).map_err(|source| EngineError::State {
            path: path.clone(),
            source,
        })?;
        let mut db = StateDb { conn, path };
        // WAL + FULL: a committed acknowledgement survives kill -9 and power loss.
        db.check(db.conn.pragma_update(None, "journal_mode", "WAL"))?;
        db.check(db.conn.pragma_update(None, "synchronous", "FULL"))?;
        db.check(db.conn.pragma_update(None, "foreign_keys", "ON"))?;
        db.check(db.conn.busy_timeout(std::time::Duration::from_secs(5)))?;
        db.migrate()?;
        Ok(db)
    }

    fn check<T>(&self, result: rusqlite::Result<T>) -> Result<T, EngineError> {
        result.map_err(|source| EngineError::State {
            path: self.path.clone(),
            source,
        })
    }

    pub fn schema_version(&self) -> Result<i64, EngineError> {
        self.check(
            self.conn
                .pragma_query_value(None, "user_version", |row| row.get(0)),
        )
    }

    fn migrate(&mut self) -> Result<(), EngineError> {
        let current = usize::try_from(self.schema_version()?).unwrap_or(0);
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
            let version = index + 1;
            let path = self.path.clone();
            let fail = |source| EngineError::State {
                path: path.clone(),
                source,
            };
            let tx = self.conn.transaction().map_err(fail)?;
            tx.execute_batch(sql).map_err(fail)?;
            tx.pragma_update(None, "user_version", version as i64)
                .map_err(fail)?;
            tx.commit().map_err(fail)?;
            tracing::info!(version, "state database migrated");
        }
        Ok(())
    }

    fn value(&self, key: &str) -> Result<Option<String>, EngineError> {
        self.check(
            self.conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
                    row.get(0)
                })
                .optional(),
        )
    }

    fn set_value(&self, key: &str, value: Option<&str>) -> Result<(), EngineError> {
        let result = match value {
            Some(value) => self.conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            ),
            None => self
                .conn
                .execute("DELETE FROM settings WHERE key = ?1", [key]),
        };
        self.check(result).map(drop)
    }

    /// The saved settings; defaults for anything never saved or unreadable.
    pub fn settings(&self) -> Result<Settings, EngineError> {
        Ok(self
            .value(SETTINGS_KEY)?
            .and_then(|json| match serde_json::from_str(&json) {
                Ok(settings) => Some(settings),
                Err(error) => {
                    tracing::warn!(%error, "saved settings unreadable; using defaults");
                    None
                }
            })
            .unwrap_or_default())
    }

    pub fn save_settings(&self, settings: &Settings) -> Result<(), EngineError> {
        let json = serde_json::to_string(settings).unwrap_or_default();
        self.set_value(SETTINGS_KEY, Some(&json))
    }

    pub fn paused_until(&self) -> Result<Option<DateTime<Utc>>, EngineError> {
        Ok(self
            .value(PAUSED_UNTIL_KEY)?
            .and_then(|text| parse_time(&text)))
    }

    pub fn set_paused_until(&self, until: Option<DateTime<Utc>>) -> Result<(), EngineError> {
        self.set_value(PAUSED_UNTIL_KEY, until.map(format_time).as_deref())
    }

    pub fn flag(&self, key: &str) -> Result<bool, EngineError> {
        Ok(self.value(key)?.is_some())
    }

    pub fn set_flag(&self, key: &str) -> Result<(), EngineError> {
        self.set_value(key, Some("1"))
    }

    pub fn repositories(&self) -> Result<Vec<RepoRecord>, EngineError> {
        let mut statement = self.check(self.conn.prepare(
            "SELECT id, name, kind, location, keyring_account FROM repositories ORDER BY id",
        ))?;
        let rows = self.check(
            statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>()),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, name, kind, location, keyring_account)| {
                Some(RepoRecord {
                    id,
                    name,
                    kind: RepoKind::parse(&kind)?,
                    location: PathBuf::from(location),
                    keyring_account,
                })
            })
            .collect())
    }

    pub fn repository_at(&self, location: &Path) -> Result<Option<RepoId>, EngineError> {
        self.check(
            self.conn
                .query_row(
                    "SELECT id FROM repositories WHERE location = ?1",
                    [location.to_string_lossy()],
                    |row| row.get(0),
                )
                .optional(),
        )
    }

    pub fn insert_repository(
        &self,
        name: &str,
        kind: RepoKind,
        location: &Path,
        keyring_account: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<RepoRecord, EngineError> {
        self.check(self.conn.execute(
            "INSERT INTO repositories (name, kind, location, keyring_account, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                name,
                kind.as_str(),
                location.to_string_lossy(),
                keyring_account,
                format_time(now)
            ],
        ))?;
        Ok(RepoRecord {
            id: self.conn.last_insert_rowid(),
            name: name.to_string(),
            kind,
            location: location.to_path_buf(),
            keyring_account: keyring_account.map(str::to_string),
        })
    }

    /// Removes a repository with its popups, queued acknowledgements and cached list.
    pub fn remove_repository(&self, repo: RepoId) -> Result<bool, EngineError> {
        let removed = self.check(
            self.conn
                .execute("DELETE FROM repositories WHERE id = ?1", [repo]),
        )?;
        Ok(removed > 0)
    }

    pub fn shown_popups(&self, repo: RepoId) -> Result<BTreeSet<String>, EngineError> {
        self.ids(
            "SELECT notification_id FROM shown_popups WHERE repo_id = ?1",
            repo,
        )
    }

    fn ids(&self, sql: &str, repo: RepoId) -> Result<BTreeSet<String>, EngineError> {
        let mut statement = self.check(self.conn.prepare(sql))?;
        self.check(
            statement
                .query_map([repo], |row| row.get(0))
                .and_then(|rows| rows.collect()),
        )
    }

    pub fn mark_popups_shown(
        &self,
        repo: RepoId,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let tx = self.check(self.conn.unchecked_transaction())?;
        insert_shown(&tx, repo, ids, now).map_err(|source| EngineError::State {
            path: self.path.clone(),
            source,
        })?;
        self.check(tx.commit())
    }

    pub fn queue_acks(
        &self,
        repo: RepoId,
        ids: &[String],
        identity: &str,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let tx = self.check(self.conn.unchecked_transaction())?;
        for id in ids {
            self.check(tx.execute(
                "INSERT OR IGNORE INTO queued_acks (repo_id, notification_id, identity, queued_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![repo, id, identity, format_time(now)],
            ))?;
        }
        self.check(tx.commit())
    }

    pub fn queued_acks(&self, repo: RepoId) -> Result<Vec<QueuedAck>, EngineError> {
        let mut statement = self.check(self.conn.prepare(
            "SELECT notification_id, identity, queued_at FROM queued_acks
             WHERE repo_id = ?1 ORDER BY queued_at, notification_id",
        ))?;
        let rows: Vec<(String, String, String)> = self.check(
            statement
                .query_map([repo], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .and_then(|rows| rows.collect()),
        )?;
        Ok(rows
            .into_iter()
            .map(|(notification_id, identity, queued_at)| QueuedAck {
                notification_id,
                identity,
                queued_at: parse_time(&queued_at).unwrap_or(DateTime::UNIX_EPOCH),
            })
            .collect())
    }

    /// Forgets queued acknowledgements that were written (or can never be).
    pub fn unqueue_acks(&self, repo: RepoId, done: &[QueuedAck]) -> Result<(), EngineError> {
        let tx = self.check(self.conn.unchecked_transaction())?;
        for ack in done {
            self.check(tx.execute(
                "DELETE FROM queued_acks
                 WHERE repo_id = ?1 AND notification_id = ?2 AND identity = ?3",
                params![repo, ack.notification_id, ack.identity],
            ))?;
        }
        self.check(tx.commit())
    }

    /// The list last read from the repository, with when it was read.
    pub fn known_notifications(&self, repo: RepoId) -> Result<Option<KnownList>, EngineError> {
        let row: Option<(String, String)> = self.check(
            self.conn
                .query_row(
                    "SELECT checked_at, views FROM known_notifications WHERE repo_id = ?1",
                    [repo],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional(),
        )?;
        Ok(row.and_then(|(checked_at, views)| {
            let views = serde_json::from_str(&views)
                .map_err(|error| tracing::warn!(repo, %error, "cached list unreadable"))
                .ok()?;
            Some(KnownList {
                checked_at: parse_time(&checked_at)?,
                views,
            })
        }))
    }

    /// After a successful refresh, in one transaction: the list as read, the popups about to
    /// be shown, and shown-popup rows of notifications gone from the repository (they cannot
    /// come back) dropped.
    pub fn record_refresh(
        &self,
        repo: RepoId,
        views: &[NotificationView],
        popping: &[String],
        existing_ids: Option<&BTreeSet<String>>,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let json = serde_json::to_string(views).unwrap_or_else(|_| "[]".to_string());
        let tx = self.check(self.conn.unchecked_transaction())?;
        self.check(tx.execute(
            "INSERT INTO known_notifications (repo_id, checked_at, views) VALUES (?1, ?2, ?3)
             ON CONFLICT (repo_id) DO UPDATE SET checked_at = excluded.checked_at,
                                                 views = excluded.views",
            params![repo, format_time(now), json],
        ))?;
        self.check(insert_shown(&tx, repo, popping, now))?;
        if let Some(existing) = existing_ids {
            let shown = self.shown_popups(repo)?;
            for gone in shown.difference(existing) {
                self.check(tx.execute(
                    "DELETE FROM shown_popups WHERE repo_id = ?1 AND notification_id = ?2",
                    params![repo, gone],
                ))?;
            }
        }
        self.check(tx.commit())
    }
}

fn insert_shown(
    conn: &Connection,
    repo: RepoId,
    ids: &[String],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    for id in ids {
        conn.execute(
            "INSERT OR IGNORE INTO shown_popups (repo_id, notification_id, shown_at)
             VALUES (?1, ?2, ?3)",
            params![repo, id, format_time(now)],
        )?;
    }
    Ok(())
}

fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Creates `dir` (and parents) and makes it private to the user.
pub fn create_private_dir(dir: &Path) -> Result<(), EngineError> {
    let fail = |source| EngineError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 if missing, and tightens an existing one to 0600.
fn create_private_file(path: &Path) -> Result<(), EngineError> {
    let fail = |source| EngineError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options.open(path).map_err(fail)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    }
    #[cfg(not(unix))]
    options.open(path).map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
    }

    fn view(id: &str) -> NotificationView {
        NotificationView::example(id, t0())
    }

    #[test]
    fn migrates_an_empty_database_and_reopens_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let db = StateDb::open(&data_dir).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let repo = db
            .insert_repository("r", RepoKind::Demo, Path::new("/x"), None, t0())
            .unwrap();
        drop(db);
        let db = StateDb::open(&data_dir).unwrap();
        assert_eq!(db.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(db.repositories().unwrap(), [repo]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data_dir), 0o700);
            assert_eq!(mode(&data_dir.join(STATE_FILE_NAME)), 0o600);
        }
    }

    #[test]
    fn settings_and_pause_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        assert_eq!(db.settings().unwrap(), Settings::default());
        let settings = Settings {
            poll_interval_secs: 10,
            network_poll_interval_secs: 600,
            min_popup_severity: kopia_notifications::Severity::Error,
            identity_override: Some("me@here".into()),
            launch_at_login: true,
        };
        db.save_settings(&settings).unwrap();
        assert_eq!(db.settings().unwrap(), settings);
        assert_eq!(db.paused_until().unwrap(), None);
        db.set_paused_until(Some(t0())).unwrap();
        assert_eq!(db.paused_until().unwrap(), Some(t0()));
        db.set_paused_until(None).unwrap();
        assert_eq!(db.paused_until().unwrap(), None);
        assert!(!db.flag(FIRST_RUN_DONE_KEY).unwrap());
        db.set_flag(FIRST_RUN_DONE_KEY).unwrap();
        assert!(db.flag(FIRST_RUN_DONE_KEY).unwrap());
    }

    #[test]
    fn queued_acks_shown_popups_and_cascade() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).unwrap();
        let repo = db
            .insert_repository("r", RepoKind::Filesystem, Path::new("/r"), Some("/r"), t0())
            .unwrap()
            .id;
        assert!(db
            .insert_repository("dup", RepoKind::Filesystem, Path::new("/r"), None, t0())
            .is_err());
        db.queue_acks(repo, &["a".into(), "b".into()], "me@here", t0())
            .unwrap();
        db.queue_acks(repo, &["a".into()], "me@here", t0()).unwrap();
        let queued = db.queued_acks(repo).unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[0].queued_at, t0());
        db.unqueue_acks(repo, &queued[..1]).unwrap();
        assert_eq!(db.queued_acks(repo).unwrap()[0].notification_id, "b");

        db.record_refresh(repo, &[view("a"), view("b")], &["a".into()], None, t0())
            .unwrap();
        db.mark_popups_shown(repo, &["b".into(), "a".into()], t0())
            .unwrap();
        assert_eq!(db.shown_popups(repo).unwrap().len(), 2);
        let known = db.known_notifications(repo).unwrap().unwrap();
        assert_eq!((known.checked_at, known.views.len()), (t0(), 2));
        // "a" was deleted from the repository: its popup record goes.
        let existing = BTreeSet::from(["b".to_string()]);
        db.record_refresh(repo, &[view("b")], &[], Some(&existing), t0())
            .unwrap();
        assert_eq!(db.shown_popups(repo).unwrap(), existing);

        assert!(db.remove_repository(repo).unwrap());
        assert!(!db.remove_repository(repo).unwrap());
        assert!(db.queued_acks(repo).unwrap().is_empty());
        assert!(db.shown_popups(repo).unwrap().is_empty());
        assert!(db.known_notifications(repo).unwrap().is_none());
        // IDs are not reused: state of a removed repository never leaks into a new one.
        let next = db
            .insert_repository("r2", RepoKind::Filesystem, Path::new("/r"), None, t0())
            .unwrap();
        assert!(next.id > repo);
    }
}
