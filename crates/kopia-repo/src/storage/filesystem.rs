//! Kopia's `filesystem` storage backend (§1.2): one `<id>.f` file per blob, spread over shard
//! directories described by the `.shards` file (the layout of [`super::sharded`]), atomic and
//! durable writes: a temp file, fsync, rename, then an fsync of the directory so the rename
//! itself survives a crash (Kopia stops at the rename). It is byte-compatible with Kopia's layout; it does not retry, throttle or chown like Kopia can.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::sharded::{
    blob_file_path, blob_id_of_file, prefix_compatible, ShardingParameters, SHARDS_FILE,
};
use super::{io_error, BlobMetadata, BlobReader, BlobWriter};
use crate::error::{Error, Result};

/// Kopia's default permissions for blob files and shard directories.
pub const DEFAULT_FILE_MODE: u32 = 0o600;
pub const DEFAULT_DIR_MODE: u32 = 0o700;

/// Connection options of a filesystem storage, as found in `repository.config` (§1.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemOptions {
    /// Permissions of new blob files (Unix only).
    pub file_mode: u32,
    /// Permissions of new shard directories (Unix only).
    pub dir_mode: u32,
    /// `dirShards` of the config: used only when the storage has no `.shards` file.
    pub dir_shards: Option<Vec<usize>>,
}

impl Default for FilesystemOptions {
    fn default() -> Self {
        FilesystemOptions {
            file_mode: DEFAULT_FILE_MODE,
            dir_mode: DEFAULT_DIR_MODE,
            dir_shards: None,
        }
    }
}

/// `storage.config` of a `filesystem` storage (§1.2.6) as Kopia writes it in
/// `repository.config`: `path`, `fileMode`, `dirMode`, `dirShards`; other keys are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemConfig {
    pub path: PathBuf,
    pub options: FilesystemOptions,
}

#[derive(Deserialize)]
struct FilesystemJson {
    #[serde(default)]
    path: String,
    #[serde(rename = "fileMode", default)]
    file_mode: Option<u32>,
    #[serde(rename = "dirMode", default)]
    dir_mode: Option<u32>,
    #[serde(rename = "dirShards", default)]
    dir_shards: Option<Vec<usize>>,
}

impl FilesystemConfig {
    /// Parses the raw `storage.config`; the reason of a failure names the offending key.
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = FilesystemJson::deserialize(config).map_err(|e| e.to_string())?;
        if parsed.path.is_empty() {
            return Err("no path".to_string());
        }
        Ok(FilesystemConfig {
            path: PathBuf::from(parsed.path),
            options: FilesystemOptions {
                // Go omits zero modes and treats them as "default".
                file_mode: parsed
                    .file_mode
                    .filter(|m| *m != 0)
                    .unwrap_or(DEFAULT_FILE_MODE),
                dir_mode: parsed
                    .dir_mode
                    .filter(|m| *m != 0)
                    .unwrap_or(DEFAULT_DIR_MODE),
                dir_shards: parsed.dir_shards,
            },
        })
    }
}

/// A Kopia repository directory on a local (or mounted) filesystem.
#[derive(Debug)]
pub struct FilesystemStorage {
    root: PathBuf,
    sharding: ShardingParameters,
    file_mode: u32,
    dir_mode: u32,
    /// Makes a directory's entries durable; a seam so tests can see each call.
    sync_directory: fn(&Path) -> io::Result<()>,
}

impl FilesystemStorage {
    /// Opens an existing storage with default options (see [`Self::open_with_options`]).
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with_options(root, &FilesystemOptions::default())
    }

    /// Opens an existing storage. Reads `.shards` but never creates it: when it is missing the
    /// layout is the config's `dirShards`, else `[3,3]`, as a non-creating Kopia assumes.
    pub fn open_with_options(root: &Path, options: &FilesystemOptions) -> Result<Self> {
        check_root(root)?;
        let shards_path = root.join(SHARDS_FILE);
        let shards_file = read_shards_file(&shards_path)?;
        let sharding =
            ShardingParameters::for_existing(shards_file.as_deref(), options.dir_shards.as_deref())
                .map_err(|e| Error::Config {
                    path: shards_path,
                    reason: e.to_string(),
                })?;
        Ok(FilesystemStorage {
            root: root.to_path_buf(),
            sharding,
            file_mode: options.file_mode,
            dir_mode: options.dir_mode,
            sync_directory,
        })
    }

    /// Prepares the storage of a new repository the way `kopia repository create filesystem`
    /// does: creates the root (mode 0700) and writes `.shards` with `[1,3]` unless it exists.
    pub fn create(root: &Path) -> Result<Self> {
        let options = FilesystemOptions::default();
        create_dir_all_with_mode(root, options.dir_mode).map_err(|e| io_error(root, e))?;
        let existing = Self::open_with_options(root, &options)?;
        if root.join(SHARDS_FILE).exists() {
            return Ok(existing);
        }
        let storage = FilesystemStorage {
            sharding: ShardingParameters::for_new_repository(),
            ..existing
        };
        let json = storage.sharding.to_json();
        storage.write_atomically(&root.join(SHARDS_FILE), json.as_bytes())?;
        Ok(storage)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn sharding(&self) -> &ShardingParameters {
        &self.sharding
    }

    /// The file that holds (or would hold) the blob.
    pub fn blob_path(&self, blob_id: &str) -> Result<PathBuf> {
        let (directories, file_name) =
            blob_file_path(&self.sharding, blob_id).ok_or_else(|| Error::Io {
                path: self.root.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid blob ID {blob_id:?}"),
                ),
            })?;
        let mut path = self.root.clone();
        path.extend(directories);
        path.push(file_name);
        Ok(path)
    }

    /// The error for a missing file: a missing blob, unless the whole root has vanished
    /// (unmounted drive, deleted repository).
    fn not_found(&self, blob_id: &str, source: io::Error) -> Error {
        match fs::metadata(&self.root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Error::StorageUnreachable {
                path: self.root.clone(),
                source,
            },
            _ => Error::BlobNotFound {
                blob_id: blob_id.to_string(),
                storage: self.describe(),
            },
        }
    }

    fn unreachable(&self, source: io::Error) -> Error {
        Error::StorageUnreachable {
            path: self.root.clone(),
            source,
        }
    }

    /// Walks `directory` (whose accumulated shard name is `accumulated`), descending only into
    /// directories that can hold IDs starting with `prefix`.
    fn list_directory(
        &self,
        directory: &Path,
        accumulated: &str,
        prefix: &str,
        out: &mut Vec<BlobMetadata>,
    ) -> Result<()> {
        let entries = match fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return if accumulated.is_empty() {
                    Err(self.unreachable(e))
                } else {
                    Ok(()) // a shard directory removed while we walked
                };
            }
            Err(e) => return Err(io_error(directory, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(directory, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue; // blob IDs are ASCII, this is a foreign file
            };
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&entry.path(), e)),
            };
            let full_name = format!("{accumulated}{name}");
            if file_type.is_dir() {
                if prefix_compatible(&full_name, prefix) {
                    self.list_directory(&entry.path(), &full_name, prefix, out)?;
                }
                continue;
            }
            let Some(blob_id) = blob_id_of_file(&full_name) else {
                continue;
            };
            if !blob_id.starts_with(prefix) {
                continue;
            }
            let metadata = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // deleted meanwhile
                Err(e) => return Err(io_error(&entry.path(), e)),
            };
            let modified = metadata
                .modified()
                .map_err(|e| io_error(&entry.path(), e))?;
            out.push(BlobMetadata {
                id: blob_id.to_string(),
                length: metadata.len(),
                timestamp: DateTime::<Utc>::from(modified),
            });
        }
        Ok(())
    }

    /// Writes `data` to `final_path` through `<final>.tmp.<16 hex>` + fsync + rename, creating
    /// missing shard directories (never the root itself).
    fn write_atomically(&self, final_path: &Path, data: &[u8]) -> Result<()> {
        let suffix: [u8; 8] = rand::random();
        let mut temp_name = final_path.as_os_str().to_owned();
        temp_name.push(format!(".tmp.{}", hex::encode(suffix)));
        let temp_path = PathBuf::from(temp_name);

        let mut file = match self.create_new_file(&temp_path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = temp_path.parent().unwrap_or(&self.root);
                self.create_shard_directories(parent)?;
                self.create_new_file(&temp_path)
                    .map_err(|e| self.write_error(&temp_path, e))?
            }
            Err(e) => return Err(self.write_error(&temp_path, e)),
        };
        let written = file.write_all(data).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written.and_then(|()| fs::rename(&temp_path, final_path)) {
            let _ = fs::remove_file(&temp_path); // best effort; the write error matters more
            return Err(self.write_error(final_path, e));
        }
        // Until its directory is synced, a crash can undo the rename: the blob would vanish
        // after we reported it written (and after an index blob that points at it).
        let directory = final_path.parent().unwrap_or(&self.root);
        (self.sync_directory)(directory).map_err(|e| io_error(directory, e))
    }

    fn write_error(&self, path: &Path, source: io::Error) -> Error {
        if source.kind() == io::ErrorKind::NotFound && !self.root.exists() {
            self.unreachable(source)
        } else {
            io_error(path, source)
        }
    }

    fn create_new_file(&self, path: &Path) -> io::Result<fs::File> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(self.file_mode);
        }
        #[cfg(not(unix))]
        let _ = self.file_mode;
        options.open(path)
    }

    /// Creates `directory` and its missing parents, but only below the root: re-creating a
    /// missing root would hide an unmounted drive (Kopia refuses it too).
    fn create_shard_directories(&self, directory: &Path) -> Result<()> {
        if !directory.starts_with(&self.root)
            || directory.components().count() <= self.root.components().count()
        {
            return Err(self.unreachable(io::Error::new(
                io::ErrorKind::NotFound,
                "the storage root directory does not exist",
            )));
        }
        let parent = directory.parent().unwrap_or(&self.root);
        let created = match create_dir_with_mode(directory, self.dir_mode) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create_shard_directories(parent)?;
                match create_dir_with_mode(directory, self.dir_mode) {
                    Ok(()) => true,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(io_error(directory, e)),
                }
            }
            Err(e) => return Err(io_error(directory, e)),
        };
        // A new shard directory is an entry of its parent: durable only once that is synced.
        if created {
            (self.sync_directory)(parent).map_err(|e| io_error(parent, e))?;
        }
        Ok(())
    }
}

impl BlobReader for FilesystemStorage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(id)?;
        fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => self.not_found(id, e),
            _ => io_error(&path, e),
        })
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(id)?;
        let mut file = fs::File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => self.not_found(id, e),
            _ => io_error(&path, e),
        })?;
        let size = file.metadata().map_err(|e| io_error(&path, e))?.len();
        let available = size.saturating_sub(offset);
        if available < length {
            return Err(Error::TruncatedBlob {
                blob_id: id.to_string(),
                offset,
                wanted: length,
                actual: size,
            });
        }
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(&path, e))?;
        let capacity = usize::try_from(length).unwrap_or(usize::MAX);
        let mut data = Vec::with_capacity(capacity);
        file.take(length)
            .read_to_end(&mut data)
            .map_err(|e| io_error(&path, e))?;
        // The file may have shrunk after the size check.
        if (data.len() as u64) < length {
            return Err(Error::TruncatedBlob {
                blob_id: id.to_string(),
                offset,
                wanted: length,
                actual: offset + data.len() as u64,
            });
        }
        Ok(data)
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let mut blobs = Vec::new();
        self.list_directory(&self.root, "", prefix, &mut blobs)?;
        // Kopia's order is unspecified; a sorted one makes every consumer deterministic.
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn describe(&self) -> String {
        format!("filesystem:{}", self.root.display())
    }
}

impl BlobWriter for FilesystemStorage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        let path = self.blob_path(id)?;
        self.write_atomically(&path, data)
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let path = self.blob_path(id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }
}

fn check_root(root: &Path) -> Result<()> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::StorageUnreachable {
            path: root.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::StorageUnreachable {
            path: root.to_path_buf(),
            source: e,
        }),
        Err(e) => Err(io_error(root, e)),
    }
}

fn read_shards_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

/// fsync of a directory, which makes renames and new entries in it durable (POSIX). Windows
/// cannot open a directory for syncing and commits renames itself (MoveFileEx).
fn sync_directory(directory: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}

fn create_dir_with_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(path)
}

fn create_dir_all_with_mode(path: &Path, mode: u32) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_storage() -> (tempfile::TempDir, FilesystemStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage = FilesystemStorage::create(dir.path()).unwrap();
        (dir, storage)
    }

    fn ids(blobs: &[BlobMetadata]) -> Vec<&str> {
        blobs.iter().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn create_writes_shards_file_like_kopia() {
        let (dir, storage) = new_storage();
        let text = fs::read_to_string(dir.path().join(".shards")).unwrap();
        assert_eq!(text, "{\"default\":[1,3],\"maxNonShardedLength\":20}\n");
        assert_eq!(storage.sharding().default_shards, vec![1, 3]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(".shards"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A second create keeps the existing layout.
        fs::write(
            dir.path().join(".shards"),
            "{\"default\":[2],\"maxNonShardedLength\":5}",
        )
        .unwrap();
        let again = FilesystemStorage::create(dir.path()).unwrap();
        assert_eq!(again.sharding().default_shards, vec![2]);
    }

    #[test]
    fn open_never_creates_shards_and_uses_fallbacks() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = FilesystemStorage::open(dir.path()).unwrap();
        assert_eq!(legacy.sharding().default_shards, vec![3, 3]);
        assert_eq!(legacy.sharding().max_non_sharded_length, 20);
        let configured = FilesystemOptions {
            dir_shards: Some(vec![2, 2]),
            ..FilesystemOptions::default()
        };
        let from_config = FilesystemStorage::open_with_options(dir.path(), &configured).unwrap();
        assert_eq!(from_config.sharding().default_shards, vec![2, 2]);
        assert!(!dir.path().join(".shards").exists());

        // .shards wins over dirShards.
        fs::write(
            dir.path().join(".shards"),
            "{\"default\":[1,1],\"maxNonShardedLength\":3}\n",
        )
        .unwrap();
        let with_file = FilesystemStorage::open_with_options(dir.path(), &configured).unwrap();
        assert_eq!(with_file.sharding().default_shards, vec![1, 1]);

        fs::write(dir.path().join(".shards"), "not json").unwrap();
        let err = FilesystemStorage::open_with_options(dir.path(), &configured).unwrap_err();
        assert!(matches!(err, Error::Config { .. }), "{err:?}");
    }

    #[test]
    fn missing_root_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("unmounted");
        let err = FilesystemStorage::open(&missing).unwrap_err();
        assert!(matches!(err, Error::StorageUnreachable { .. }), "{err:?}");

        let file = dir.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = FilesystemStorage::open(&file).unwrap_err();
        assert!(matches!(err, Error::StorageUnreachable { .. }), "{err:?}");

        // The root disappears after opening: every operation says so, puts don't recreate it.
        let root = dir.path().join("repo");
        let storage = FilesystemStorage::create(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
        for result in [
            storage.get_blob("kopia.repository").map(drop),
            storage.list_blobs("").map(drop),
            storage.put_blob("q0123456789abcdef0123456789abcdef", b"x"),
            storage.put_blob("xe1", b"x"),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::StorageUnreachable { .. }), "{err:?}");
        }
        assert!(!root.exists());
    }

    #[test]
    fn put_get_delete_round_trip() {
        let (dir, storage) = new_storage();
        let id = "q0123456789abcdef0123456789abcdef-s0123456789abcdef144";
        storage.put_blob(id, b"hello world").unwrap();
        assert!(dir
            .path()
            .join("q/012/3456789abcdef0123456789abcdef-s0123456789abcdef144.f")
            .is_file());
        assert_eq!(storage.get_blob(id).unwrap(), b"hello world");
        storage.put_blob(id, b"replaced").unwrap();
        assert_eq!(storage.get_blob(id).unwrap(), b"replaced");

        storage.delete_blob(id).unwrap();
        storage.delete_blob(id).unwrap(); // already gone: fine
        match storage.get_blob(id).unwrap_err() {
            Error::BlobNotFound {
                blob_id,
                storage: name,
            } => {
                assert_eq!(blob_id, id);
                assert_eq!(name, format!("filesystem:{}", dir.path().display()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn atomic_write_leaves_no_temp_files_and_sets_modes() {
        let (dir, storage) = new_storage();
        for i in 0..20 {
            storage
                .put_blob(&format!("p{i:032x}-s0123456789abcdef144"), &[i as u8; 100])
                .unwrap();
        }
        storage.put_blob("xe0", b"epoch-marker").unwrap();
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                assert!(!name.contains(".tmp."), "leftover temp file {name}");
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
                    if entry.file_type().unwrap().is_dir() {
                        assert_eq!(mode & !0o077, 0o700, "{name}");
                    } else {
                        assert_eq!(mode & !0o077, 0o600, "{name}");
                    }
                }
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }

    #[test]
    fn failed_write_removes_temp_file() {
        let (dir, storage) = new_storage();
        // The final name is an existing non-empty directory: rename fails.
        let blocker = dir.path().join("q/012");
        fs::create_dir_all(blocker.join("3456789abcdef0123456789abcdef.f/inside")).unwrap();
        let err = storage
            .put_blob("q0123456789abcdef0123456789abcdef", b"data")
            .unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        let leftovers: Vec<_> = fs::read_dir(&blocker)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn ranged_reads() {
        let (_dir, storage) = new_storage();
        storage
            .put_blob("kopia.maintenance", b"0123456789")
            .unwrap();
        assert_eq!(
            storage.get_blob_range("kopia.maintenance", 2, 3).unwrap(),
            b"234"
        );
        assert_eq!(
            storage.get_blob_range("kopia.maintenance", 0, 10).unwrap(),
            b"0123456789"
        );
        assert_eq!(
            storage.get_blob_range("kopia.maintenance", 10, 0).unwrap(),
            b""
        );
        match storage
            .get_blob_range("kopia.maintenance", 8, 5)
            .unwrap_err()
        {
            Error::TruncatedBlob {
                blob_id,
                offset,
                wanted,
                actual,
            } => {
                assert_eq!(
                    (blob_id.as_str(), offset, wanted, actual),
                    ("kopia.maintenance", 8, 5, 10)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = storage
            .get_blob_range("kopia.maintenance", 20, 1)
            .unwrap_err();
        assert!(matches!(err, Error::TruncatedBlob { .. }), "{err:?}");
        let err = storage.get_blob_range("missing", 0, 1).unwrap_err();
        assert!(matches!(err, Error::BlobNotFound { .. }), "{err:?}");
    }

    #[test]
    fn listing_with_prefixes_across_shard_directories() {
        let (dir, storage) = new_storage();
        let all = [
            "kopia.repository",
            "kopia.blobcfg",
            "xe0",
            "xe1",
            "xw1700000000",
            "xn0_00000000000000000000000000000001-s0000000000000001144-c1",
            "xn1_00000000000000000000000000000002-s0000000000000001144-c1",
            "xn12_0000000000000000000000000000003-s0000000000000001144-c1",
            "xs0_00000000000000000000000000000004-s0000000000000002144-c1",
            "q00000000000000000000000000000005-s0000000000000001144",
            "p00000000000000000000000000000006-s0000000000000001144",
            "_log_20260801000000_abcd_1700000000_1700000001_1_0123456789abcdef",
        ];
        for id in all {
            storage.put_blob(id, id.as_bytes()).unwrap();
        }
        // Foreign files and temp files are not blobs.
        fs::write(
            dir.path().join("x/n0_/leftover.f.tmp.0011223344556677"),
            b"",
        )
        .unwrap();
        fs::write(dir.path().join("foreign-file"), b"").unwrap();

        let mut everything: Vec<&str> = all.to_vec();
        everything.sort();
        assert_eq!(ids(&storage.list_blobs("").unwrap()), everything);
        assert_eq!(
            ids(&storage.list_blobs("x").unwrap()),
            vec![
                "xe0",
                "xe1",
                "xn0_00000000000000000000000000000001-s0000000000000001144-c1",
                "xn12_0000000000000000000000000000003-s0000000000000001144-c1",
                "xn1_00000000000000000000000000000002-s0000000000000001144-c1",
                "xs0_00000000000000000000000000000004-s0000000000000002144-c1",
                "xw1700000000",
            ]
        );
        assert_eq!(
            ids(&storage.list_blobs("xn1_").unwrap()),
            vec!["xn1_00000000000000000000000000000002-s0000000000000001144-c1"]
        );
        assert_eq!(ids(&storage.list_blobs("xe").unwrap()), vec!["xe0", "xe1"]);
        assert_eq!(
            ids(&storage.list_blobs("kopia.").unwrap()),
            vec!["kopia.blobcfg", "kopia.repository"]
        );
        assert!(storage.list_blobs("nothing").unwrap().is_empty());

        let listed = storage.list_blobs("q").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].length, listed[0].id.len() as u64);
        let age = Utc::now() - listed[0].timestamp;
        assert!(
            age.num_seconds().abs() < 60,
            "mtime {:?}",
            listed[0].timestamp
        );
    }

    #[test]
    fn listing_descends_only_into_compatible_directories() {
        let (dir, storage) = new_storage();
        storage
            .put_blob("xn0_00000000000000000000000000000001", b"x")
            .unwrap();
        fs::create_dir_all(dir.path().join("p/abc")).unwrap();

        // A directory we cannot open is a trap: listing "x" must not walk into it. (Root
        // bypasses permission bits, so only an unprivileged run can check this.)
        #[cfg(unix)]
        if !running_privileged(dir.path()) {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path().join("p"), fs::Permissions::from_mode(0o000)).unwrap();
            assert_eq!(storage.list_blobs("x").unwrap().len(), 1);
            let err = storage.list_blobs("p").unwrap_err();
            assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
            fs::set_permissions(dir.path().join("p"), fs::Permissions::from_mode(0o700)).unwrap();
        }
    }

    /// Root ignores permission bits; detect it by trying to read a mode-000 directory.
    #[cfg(unix)]
    fn running_privileged(scratch: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        let probe = scratch.join("privilege-probe");
        fs::create_dir(&probe).unwrap();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o000)).unwrap();
        let privileged = fs::read_dir(&probe).is_ok();
        fs::set_permissions(&probe, fs::Permissions::from_mode(0o700)).unwrap();
        fs::remove_dir(&probe).unwrap();
        privileged
    }

    #[cfg(unix)]
    #[test]
    fn permission_denied_names_the_path() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, storage) = new_storage();
        storage.put_blob("kopia.repository", b"{}").unwrap();
        if running_privileged(dir.path()) {
            // Permission bits are bypassed; the mapping itself is tested in storage::tests.
            return;
        }
        let file = dir.path().join("kopia.repository.f");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o000)).unwrap();
        match storage.get_blob("kopia.repository").unwrap_err() {
            Error::PermissionDenied { path } => assert_eq!(path, file),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn hostile_blob_ids_are_refused() {
        let (_dir, storage) = new_storage();
        for id in ["", "../etc/passwd", "a/b", "a\\b", "with space"] {
            assert!(storage.blob_path(id).is_err(), "{id:?}");
        }
        assert!(storage.get_blob("../x").is_err());
        assert!(storage.put_blob("../x", b"x").is_err());
    }

    thread_local! {
        static SYNCED: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    fn recording_sync(directory: &Path) -> io::Result<()> {
        SYNCED.with(|s| s.borrow_mut().push(directory.to_path_buf()));
        sync_directory(directory)
    }

    fn failing_sync(_: &Path) -> io::Result<()> {
        Err(io::Error::other("sync refused"))
    }

    #[test]
    fn every_rename_and_new_shard_directory_is_made_durable() {
        let (dir, storage) = new_storage();
        let storage = FilesystemStorage {
            sync_directory: recording_sync,
            ..storage
        };
        let root = dir.path();
        storage
            .put_blob("q0123456789abcdef0123456789abcdef", b"pack")
            .unwrap();
        // q/ and q/012/ are new: their parents are synced, then q/012/ for the rename.
        let synced = SYNCED.with(|s| s.take());
        assert_eq!(
            synced,
            vec![root.to_path_buf(), root.join("q"), root.join("q/012")]
        );
        // Existing directories: only the rename's directory.
        storage
            .put_blob("q0123456789abcdef0123456789abcdee", b"pack")
            .unwrap();
        storage.put_blob("xe0", b"epoch").unwrap();
        let synced = SYNCED.with(|s| s.take());
        assert_eq!(synced, vec![root.join("q/012"), root.to_path_buf()]);
    }

    #[test]
    fn a_failed_directory_sync_fails_the_put_naming_the_directory() {
        let (dir, storage) = new_storage();
        let storage = FilesystemStorage {
            sync_directory: failing_sync,
            ..storage
        };
        match storage.put_blob("xe0", b"epoch").unwrap_err() {
            Error::Io { path, source } => {
                assert_eq!(path, dir.path());
                assert_eq!(source.to_string(), "sync refused");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn config_keys_as_kopia_writes_them() {
        let json = serde_json::json!({"path": "/srv/repo", "fileMode": 416, "dirMode": 0,
            "dirShards": [2, 2], "unknown": true});
        let config = FilesystemConfig::from_json(&json).unwrap();
        assert_eq!(config.path, PathBuf::from("/srv/repo"));
        assert_eq!(
            config.options,
            FilesystemOptions {
                file_mode: 0o640,
                dir_mode: DEFAULT_DIR_MODE,
                dir_shards: Some(vec![2, 2]),
            }
        );
        let minimal = FilesystemConfig::from_json(&serde_json::json!({"path": "/r"})).unwrap();
        assert_eq!(minimal.options, FilesystemOptions::default());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"path": ""}),
            serde_json::json!({"path": "/r", "fileMode": "x"}),
            serde_json::json!([1]),
        ] {
            assert!(FilesystemConfig::from_json(&bad).is_err(), "{bad}");
        }
    }
}
