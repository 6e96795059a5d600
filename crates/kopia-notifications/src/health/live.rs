//! Health checks for a reader that stays open (the tray engine): the same checks as
//! [`super::check::run_check`] over a [`KopiaManifests`], with Kopia's maintenance schedule blob
//! read only when the manifests changed or the copy is an hour old, so that a refresh of an
//! unchanged repository still reads no blob, and the manifests the checks read parsed only when
//! they changed (the checks themselves only read manifests already in memory).

use chrono::{DateTime, Duration, TimeZone, Utc};
use kopia_repo::maintenance::Schedule;

use super::check::{check_records, CheckOutcome, Recorded, Records};
use super::upgrade::Versions;
use crate::kopia_store::KopiaManifests;
use crate::schema::Origin;
use crate::Error;

/// How old the cached maintenance schedule may grow while the manifests stay unchanged:
/// maintenance rewrites the schedule blob without touching a manifest (format guide,
/// "maintenance schedule"; Kopia `repo/maintenance/maintenance_schedule.go`).
const SCHEDULE_MAX_AGE: Duration = Duration::hours(1);

/// Kopia's maintenance schedule (one blob read), or why it could not be read.
pub fn maintenance_schedule(manifests: &KopiaManifests) -> Result<Schedule, String> {
    kopia_repo::maintenance::read_schedule(manifests.repository())
        .map_err(|e| format!("maintenance not checked: {e}"))
}

/// The checks of one open repository, remembering the last maintenance schedule read and the
/// records parsed from the manifests as they were.
#[derive(Debug, Default)]
pub struct LiveChecks {
    schedule: Option<(DateTime<Utc>, Result<Schedule, String>)>,
    records: Option<Records>,
}

impl LiveChecks {
    /// Runs every check at `now` after a refresh that reported `changed`, and writes the new
    /// findings and resolutions in one write unless the connection is read-only. Installed
    /// versions and releases are only known to the caller (`None`: not checked).
    pub fn run<Tz: TimeZone>(
        &mut self,
        manifests: &mut KopiaManifests,
        changed: bool,
        versions: Option<Versions>,
        origin: &Origin,
        now: DateTime<Utc>,
        zone: &Tz,
    ) -> Result<CheckOutcome, Error> {
        let fresh = match &self.schedule {
            Some((read_at, _)) => !changed && now - *read_at < SCHEDULE_MAX_AGE,
            None => false,
        };
        if !fresh {
            self.schedule = Some((now, maintenance_schedule(manifests)));
        }
        let schedule = self
            .schedule
            .as_ref()
            .map(|(_, schedule)| schedule.clone())
            .unwrap_or_else(|| Err("maintenance not read".into()));
        let recorded = Recorded {
            schedule,
            versions: versions.unwrap_or_default(),
        };
        let records = match self.records.take() {
            Some(records) if !changed => records,
            _ => Records::read(&*manifests)?,
        };
        let write = manifests.read_only_config().is_none();
        let outcome = check_records(manifests, &records, recorded, origin, now, zone, write)?;
        // Kept until a refresh reports a change, or until this check wrote: the store knows
        // our own write without a refresh reporting it, and the records hold the derived
        // notifications and resolutions it adds.
        if !outcome.written {
            self.records = Some(records);
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kopia_repo::content::writer::SessionOwner;
    use kopia_repo::repository::Repository;
    use kopia_repo::storage::counting::CountingStorage;
    use kopia_repo::storage::filesystem::FilesystemStorage;
    use kopia_repo::storage::BlobStorage;

    use super::*;
    use crate::health::snapshots::tests::manifest as snapshot_manifest;
    use crate::health::DerivedKind;
    use crate::store::ManifestAccess;
    use crate::test_fixtures::alice;

    /// A failed snapshot: one finding, written once; an unchanged
    /// repository is then checked without reading a blob, until the schedule is an hour old.
    #[test]
    fn unchanged_repositories_are_checked_without_reading_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let owner = SessionOwner {
            username: alice().user,
            hostname: alice().host,
        };
        Repository::create_filesystem(dir.path(), "pw", &owner).unwrap();
        let counting = Arc::new(CountingStorage::new(
            FilesystemStorage::open(dir.path()).unwrap(),
        ));
        let repository =
            Repository::open(Arc::clone(&counting) as Arc<dyn BlobStorage>, "pw").unwrap();
        let mut manifests = KopiaManifests::new(repository, owner).unwrap();
        let origin = Origin {
            user: alice(),
            command: None,
        };
        let now = Utc::now();
        // A snapshot that failed to read one file, shaped as Kopia writes it.
        let failed = snapshot_manifest("x", "/home/alice", now, None, 1, 0);
        let put = crate::store::NewManifest {
            labels: failed.labels,
            data: serde_json::from_str(&failed.data).unwrap(),
        };
        manifests.write(vec![put], Vec::new()).unwrap();
        let mut checks = LiveChecks::default();
        let first = checks
            .run(&mut manifests, true, None, &origin, now, &Utc)
            .unwrap();
        assert!(first.written, "{first:?}");
        let kinds: Vec<DerivedKind> = first.plan.notifications.iter().map(|n| n.2.kind).collect();
        assert_eq!(kinds, [DerivedKind::SnapshotErrors]);

        manifests.refresh().unwrap();
        assert!(!manifests.refresh().unwrap(), "our own write is known");
        counting.take_counts();
        let again = checks
            .run(&mut manifests, false, None, &origin, now, &Utc)
            .unwrap();
        let counts = counting.take_counts();
        assert!(again.plan.is_empty() && !again.written);
        assert_eq!(again.plan.unchanged, 1);
        assert_eq!((counts.gets, counts.puts), (0, 0), "{counts:?}");

        let later = now + SCHEDULE_MAX_AGE;
        checks
            .run(&mut manifests, false, None, &origin, later, &Utc)
            .unwrap();
        assert_eq!(counting.take_counts().gets, 1, "the schedule blob, once");

        // The records parsed last are used until a refresh reports a change: a snapshot that
        // failed elsewhere is found once the caller says the manifests changed.
        let elsewhere = snapshot_manifest("y", "/home/alice/docs", now, None, 2, 0);
        manifests
            .write(
                vec![crate::store::NewManifest {
                    labels: elsewhere.labels,
                    data: serde_json::from_str(&elsewhere.data).unwrap(),
                }],
                Vec::new(),
            )
            .unwrap();
        let cached = checks
            .run(&mut manifests, false, None, &origin, later, &Utc)
            .unwrap();
        assert!(cached.plan.is_empty(), "{cached:?}");
        let reread = checks
            .run(&mut manifests, true, None, &origin, later, &Utc)
            .unwrap();
        assert_eq!(reread.plan.notifications.len(), 1, "{reread:?}");
    }
}
