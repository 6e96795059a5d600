//! The sharded file-tree family over a network (WebDAV, and rclone through it): Kopia's
//! repo/blob/sharded layout, `<shard dirs>/<rest>.f` as [`crate::storage::sharded`] computes
//! it, driven by the root's `.shards` file, through any OpenDAL operator rooted at the tree.
//! The local-disk twin is [`crate::storage::filesystem`]; both map IDs the same way.

use opendal::{ErrorKind, Operator};
use std::collections::VecDeque;

use super::range::{read_range, RangeFailure};
use super::{block_on, listed_blob, request_error};
use crate::error::{Error, Result};
use crate::storage::sharded::{
    blob_file_path, blob_id_of_file, prefix_compatible, ShardingParameters, SHARDS_FILE,
};
use crate::storage::{BlobMetadata, BlobReader, BlobWriter};

/// The options Kopia's sharded.Options and the backends' own keys give a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeOptions {
    /// `dirShards`: the layout when the tree has no `.shards` file.
    pub dir_shards: Option<Vec<usize>>,
    /// `listParallelism`: shard directories listed at once; Kopia treats 0 (unset) as 1.
    pub list_parallelism: usize,
    /// `atomicWrites`: the server makes a PUT appear whole, so no temporary name is needed.
    pub atomic_writes: bool,
}

impl TreeOptions {
    fn parallelism(&self) -> usize {
        self.list_parallelism.max(1)
    }
}

/// A Kopia repository laid out as a sharded tree under the operator's root.
#[derive(Debug, Clone)]
pub struct FileTree {
    operator: Operator,
    sharding: ShardingParameters,
    options: TreeOptions,
    name: String,
}

/// Where a blob lives in the tree, as operator paths: its shard directory (`""` for the
/// root, else `"x/n0_/"`) and its file (`"x/n0_/<rest>.f"`). `None` for IDs no Kopia blob
/// has (see [`blob_file_path`]).
pub fn blob_object_path(sharding: &ShardingParameters, blob_id: &str) -> Option<(String, String)> {
    let (directories, file_name) = blob_file_path(sharding, blob_id)?;
    let directory: String = directories.iter().map(|d| format!("{d}/")).collect();
    let file = format!("{directory}{file_name}");
    Some((directory, file))
}

/// The name a non-atomic write goes to before it is moved over `file`: Kopia's
/// `<path>-<random int63>` (repo/blob/webdav PutBlobInPath). It does not end in `.f`, so no
/// listing ever takes it for a blob.
fn temporary_path(file: &str, random: u64) -> String {
    format!("{file}-{}", random >> 1)
}

impl FileTree {
    /// Opens an existing tree: reads `.shards`, and when there is none uses `dirShards`, else
    /// Kopia's legacy `[3,3]`. Never writes `.shards`, whatever the access: a connection that
    /// did not create the repository has no layout of its own to impose (the filesystem
    /// backend behaves the same).
    pub fn open(operator: Operator, options: TreeOptions, name: String) -> Result<Self> {
        let reader = operator.clone();
        let shards = block_on(async move { reader.read(SHARDS_FILE).await });
        let shards_file = match shards {
            Ok(data) => Some(data.to_vec()),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(request_error(&name, "get", Some(SHARDS_FILE), e)),
        };
        let sharding =
            ShardingParameters::for_existing(shards_file.as_deref(), options.dir_shards.as_deref())
                .map_err(|e| Error::StorageRequest {
                    storage: name.clone(),
                    operation: format!("parse {SHARDS_FILE}"),
                    reason: e.to_string(),
                })?;
        Ok(FileTree {
            operator,
            sharding,
            options,
            name,
        })
    }

    pub fn sharding(&self) -> &ShardingParameters {
        &self.sharding
    }

    fn paths(&self, blob_id: &str) -> Result<(String, String)> {
        blob_object_path(&self.sharding, blob_id).ok_or_else(|| Error::StorageRequest {
            storage: self.name.clone(),
            operation: "address".to_string(),
            reason: format!("invalid blob ID {blob_id:?}"),
        })
    }

    fn error(&self, operation: &str, blob_id: Option<&str>, error: opendal::Error) -> Error {
        request_error(&self.name, operation, blob_id, error)
    }

    fn size(&self, blob_id: &str, file: String) -> Result<u64> {
        let operator = self.operator.clone();
        block_on(async move { operator.stat(&file).await })
            .map(|m| m.content_length())
            .map_err(|e| self.error("stat", Some(blob_id), e))
    }
}

/// One PUT of `data` to `path`; when that fails and the blob has a shard directory, the
/// directory (and its parents) are created with MKCOL and the PUT is tried once more, as
/// Kopia's PutBlobInPath does. The original error wins when MKCOL fails too.
async fn write_creating_directory(
    operator: &Operator,
    directory: &str,
    path: &str,
    data: Vec<u8>,
) -> opendal::Result<()> {
    match operator.write(path, data.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if directory.is_empty() || e.kind() == ErrorKind::PermissionDenied => Err(e),
        Err(e) => match operator.create_dir(directory).await {
            Ok(()) => operator.write(path, data).await.map(drop),
            Err(_) => Err(e),
        },
    }
}

/// Lists the tree breadth first, at most `parallelism` directories at once, descending only
/// into shard directories that can hold IDs starting with `prefix` (Kopia's ListBlobs).
async fn list_tree(
    operator: Operator,
    prefix: String,
    parallelism: usize,
) -> opendal::Result<Vec<BlobMetadata>> {
    // (operator path of the directory, the blob-ID characters its path stands for)
    let mut pending: VecDeque<(String, String)> = VecDeque::from([("/".into(), String::new())]);
    let mut running = tokio::task::JoinSet::new();
    let mut blobs = Vec::new();
    loop {
        while running.len() < parallelism {
            let Some((directory, accumulated)) = pending.pop_front() else {
                break;
            };
            let operator = operator.clone();
            running.spawn(async move {
                let listed = operator.list_with(&directory).recursive(false).await;
                (directory, accumulated, listed)
            });
        }
        let Some(joined) = running.join_next().await else {
            return Ok(blobs);
        };
        let (directory, accumulated, listed) = match joined {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        for entry in listed? {
            let path = entry.path();
            if path == directory || path == "/" {
                continue; // PROPFIND answers with the collection itself too
            }
            let name = entry.name().trim_end_matches('/');
            let joined_name = format!("{accumulated}{name}");
            let metadata = entry.metadata();
            if metadata.is_dir() {
                if prefix_compatible(&joined_name, &prefix) {
                    pending.push_back((path.to_string(), joined_name));
                }
                continue;
            }
            let Some(id) = blob_id_of_file(&joined_name) else {
                continue;
            };
            if !id.starts_with(prefix.as_str()) {
                continue;
            }
            blobs.push(listed_blob(id, metadata));
        }
    }
}

impl BlobReader for FileTree {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let (_, file) = self.paths(id)?;
        let operator = self.operator.clone();
        block_on(async move { operator.read(&file).await })
            .map(|data| data.to_vec())
            .map_err(|e| self.error("get", Some(id), e))
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let (_, file) = self.paths(id)?;
        let size = || self.size(id, file.clone());
        read_range(id, offset, length, size, |range| {
            let (operator, path) = (self.operator.clone(), file.clone());
            block_on(async move { operator.read_with(&path).range(range).await })
                .map(|data| data.to_vec())
                .map_err(|e| match e.kind() {
                    ErrorKind::NotFound | ErrorKind::PermissionDenied => {
                        RangeFailure::Failed(self.error("get", Some(id), e))
                    }
                    _ => RangeFailure::PerhapsPastEnd(self.error("get", Some(id), e)),
                })
        })
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let operator = self.operator.clone();
        let owned = prefix.to_string();
        let parallelism = self.options.parallelism();
        let mut blobs = block_on(list_tree(operator, owned, parallelism))
            .map_err(|e| self.error(&format!("list {prefix:?}"), None, e))?;
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl BlobWriter for FileTree {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        let (directory, file) = self.paths(id)?;
        let operator = self.operator.clone();
        let data = data.to_vec();
        let atomic = self.options.atomic_writes;
        let temporary = temporary_path(&file, rand::random());
        block_on(async move {
            if atomic {
                return write_creating_directory(&operator, &directory, &file, data).await;
            }
            // Readers must never see a partial blob: write aside, then MOVE over the name.
            write_creating_directory(&operator, &directory, &temporary, data).await?;
            if let Err(e) = operator.rename(&temporary, &file).await {
                let _ = operator.delete(&temporary).await; // best effort; the move error matters
                return Err(e);
            }
            Ok(())
        })
        .map_err(|e| self.error("put", Some(id), e))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let (_, file) = self.paths(id)?;
        let operator = self.operator.clone();
        match block_on(async move { operator.delete(&file).await }) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(self.error("delete", Some(id), e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree over OpenDAL's in-memory service: the same code as over WebDAV (the WebDAV
    /// interop tests run it against a real server). The service has no MOVE, so trees here
    /// write atomically unless a test is about the move.
    fn atomic() -> TreeOptions {
        TreeOptions {
            atomic_writes: true,
            ..TreeOptions::default()
        }
    }

    fn memory(options: TreeOptions) -> (Operator, FileTree) {
        let operator = super::super::operator(opendal::services::Memory::default(), None).unwrap();
        let tree = FileTree::open(operator.clone(), options, "memory:/".into()).unwrap();
        (operator, tree)
    }

    fn files(operator: &Operator) -> Vec<String> {
        let operator = operator.clone();
        let entries = block_on(async move { operator.list_with("/").recursive(true).await });
        let mut paths: Vec<String> = entries
            .unwrap()
            .iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| e.path().to_string())
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn object_paths_follow_the_shards() {
        let current = ShardingParameters::for_new_repository();
        assert_eq!(
            blob_object_path(&current, "kopia.repository").unwrap(),
            (String::new(), "kopia.repository.f".to_string())
        );
        let xn0 = "xn0_0123456789abcdef0123456789abcdef-s0123456789abcdef144-c1";
        assert_eq!(
            blob_object_path(&current, xn0).unwrap(),
            (
                "x/n0_/".to_string(),
                "x/n0_/0123456789abcdef0123456789abcdef-s0123456789abcdef144-c1.f".to_string()
            )
        );
        let legacy = ShardingParameters::for_existing(None, None).unwrap();
        assert_eq!(
            blob_object_path(&legacy, "q0123456789abcdef0123456789abcdef")
                .unwrap()
                .1,
            "q01/234/56789abcdef0123456789abcdef.f"
        );
        for hostile in ["", "../x", "a/b", "with space"] {
            assert!(blob_object_path(&current, hostile).is_none(), "{hostile:?}");
        }
        let temporary = temporary_path("x/n0_/abc.f", u64::MAX);
        assert_eq!(temporary, format!("x/n0_/abc.f-{}", i64::MAX));
        assert_eq!(blob_id_of_file(&temporary.replace('/', "")), None);
    }

    #[test]
    fn missing_shards_file_means_dir_shards_or_legacy_and_is_never_written() {
        let (operator, legacy) = memory(atomic());
        assert_eq!(legacy.sharding().default_shards, vec![3, 3]);
        let configured = FileTree::open(
            operator.clone(),
            TreeOptions {
                dir_shards: Some(vec![2, 2]),
                ..atomic()
            },
            "memory:/".into(),
        )
        .unwrap();
        assert_eq!(configured.sharding().default_shards, vec![2, 2]);
        configured.put_blob("xe0", b"e").unwrap();
        assert_eq!(files(&operator), vec!["xe0.f"]);

        let shards = ShardingParameters::for_new_repository().to_json();
        let writer = operator.clone();
        block_on(async move { writer.write(SHARDS_FILE, shards).await }).unwrap();
        let from_file = FileTree::open(operator.clone(), TreeOptions::default(), "m".into());
        assert_eq!(from_file.unwrap().sharding().default_shards, vec![1, 3]);

        let writer = operator.clone();
        block_on(async move { writer.write(SHARDS_FILE, "not json").await }).unwrap();
        let err = FileTree::open(operator, TreeOptions::default(), "m".into()).unwrap_err();
        assert!(err.to_string().contains(".shards"), "{err}");
    }

    #[test]
    fn writes_land_in_shards() {
        let (operator, _) = memory(atomic());
        let shards = ShardingParameters::for_new_repository().to_json();
        let writer = operator.clone();
        block_on(async move { writer.write(SHARDS_FILE, shards).await }).unwrap();
        let tree = FileTree::open(operator.clone(), atomic(), "m".into()).unwrap();
        let pack = "q0123456789abcdef0123456789abcdef-s0123456789abcdef144";
        tree.put_blob(pack, b"pack").unwrap();
        tree.put_blob(pack, b"replaced").unwrap();
        tree.put_blob("kopia.repository", b"format").unwrap();
        assert_eq!(
            files(&operator),
            vec![
                ".shards",
                "kopia.repository.f",
                "q/012/3456789abcdef0123456789abcdef-s0123456789abcdef144.f"
            ]
        );
        assert_eq!(tree.get_blob(pack).unwrap(), b"replaced");
        tree.delete_blob(pack).unwrap();
        tree.delete_blob(pack).unwrap();
        assert!(matches!(
            tree.get_blob(pack).unwrap_err(),
            Error::BlobNotFound { .. }
        ));
    }

    #[test]
    fn a_failed_move_removes_the_temporary_file() {
        // The in-memory service refuses MOVE: the write aside succeeds, the move fails.
        let (operator, tree) = memory(TreeOptions::default());
        let err = tree.put_blob("xe0", b"epoch").unwrap_err();
        assert!(
            matches!(err, Error::StorageRequest { ref operation, .. } if operation == "put xe0"),
            "{err:?}"
        );
        assert_eq!(files(&operator), Vec::<String>::new());
    }

    #[test]
    fn listing_walks_compatible_shards_in_parallel_and_sorts() {
        for list_parallelism in [0, 1, 4] {
            let options = TreeOptions {
                dir_shards: Some(vec![1, 3]),
                list_parallelism,
                ..atomic()
            };
            let (operator, tree) = memory(options);
            let ids = [
                "xn1_00000000000000000000000000000002-s0000000000000001144-c1",
                "xn0_00000000000000000000000000000001-s0000000000000001144-c1",
                "q00000000000000000000000000000005-s0000000000000001144",
                "kopia.repository",
                "xe0",
                "p00000000000000000000000000000006-s0000000000000001144",
            ];
            for id in ids {
                tree.put_blob(id, id.as_bytes()).unwrap();
            }
            let foreign = operator.clone();
            block_on(async move { foreign.write("x/n0_/leftover.f-123", "x").await }).unwrap();
            let listed = tree.list_blobs("").unwrap();
            let mut expected = ids.to_vec();
            expected.sort();
            let listed_ids: Vec<&str> = listed.iter().map(|b| b.id.as_str()).collect();
            assert_eq!(listed_ids, expected);
            assert!(listed.iter().all(|b| b.length == b.id.len() as u64));
            let xn: Vec<String> = tree
                .list_blobs("xn")
                .unwrap()
                .into_iter()
                .map(|b| b.id)
                .collect();
            assert_eq!(xn, vec![ids[1], ids[0]]);
            assert_eq!(tree.list_blobs("xe").unwrap()[0].id, "xe0");
            assert!(tree.list_blobs("nothing").unwrap().is_empty());
        }
    }

    #[test]
    fn ranged_reads() {
        let (_, tree) = memory(atomic());
        tree.put_blob("kopia.maintenance", b"0123456789").unwrap();
        let range = |o, l| tree.get_blob_range("kopia.maintenance", o, l);
        assert_eq!(range(2, 3).unwrap(), b"234");
        assert_eq!(range(10, 0).unwrap(), b"");
        assert!(matches!(
            range(8, 5),
            Err(Error::TruncatedBlob { actual: 10, .. })
        ));
        assert!(matches!(
            range(11, 0),
            Err(Error::TruncatedBlob { actual: 10, .. })
        ));
        assert!(matches!(
            tree.get_blob_range("missing", 0, 1),
            Err(Error::BlobNotFound { .. })
        ));
    }
}
