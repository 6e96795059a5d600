//! Change events of a filesystem repository: a refresh is due when an index directory or the
//! root changes (every manifest write lands there); reads and metadata changes are not changes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::hub::PollerMsg;

/// Watches a filesystem repository's root and its index directories (names starting with
/// `x` or `n`), where every manifest change lands; pack directories are left alone.
pub(crate) struct RepoWatcher {
    watcher: notify::RecommendedWatcher,
    root: PathBuf,
    watched: BTreeSet<PathBuf>,
}

impl RepoWatcher {
    pub(crate) fn new(root: &Path, sender: mpsc::Sender<PollerMsg>) -> notify::Result<Self> {
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if is_change(&event.kind) {
                        // One pending signal is enough; a full queue already has one.
                        let _ = sender.try_send(PollerMsg::FsChanged);
                    }
                }
            })?;
        watcher.watch(root, RecursiveMode::NonRecursive)?;
        let mut repo_watcher = RepoWatcher {
            watcher,
            root: root.to_path_buf(),
            watched: BTreeSet::new(),
        };
        repo_watcher.watch_index_dirs();
        Ok(repo_watcher)
    }

    /// Adds index directories created since the last call.
    pub(crate) fn watch_index_dirs(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_index_dir = name.to_str().is_some_and(|n| n.starts_with(['x', 'n']))
                && entry.file_type().is_ok_and(|t| t.is_dir());
            let path = entry.path();
            if is_index_dir && !self.watched.contains(&path) {
                match self.watcher.watch(&path, RecursiveMode::Recursive) {
                    Ok(()) => {
                        self.watched.insert(path);
                    }
                    Err(error) => tracing::debug!(%error, path = %path.display(), "not watched"),
                }
            }
        }
    }
}

/// Writes, creations, renames and deletions; not reads or metadata touches (our own refresh
/// reads the same files).
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    use notify::EventKind;
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_metadata_are_not_changes() {
        use notify::event::{AccessKind, AccessMode, CreateKind, MetadataKind, ModifyKind};
        use notify::EventKind;
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    }
}
