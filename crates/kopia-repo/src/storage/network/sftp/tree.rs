//! The sharded file tree over one SFTP session: reading files whole or in ranges, writing them
//! atomically (a temp file renamed over the final name, as Kopia's PutBlobInPath does), and
//! walking shard directories for a listing (Kopia's sharded.ListBlobs). Paths are `/`-joined
//! strings relative to the server's idea of the root (absolute, or relative to the login's
//! home directory). Requests are pipelined: several reads or writes of one file are in flight
//! at once, as Kopia's client does (UseConcurrentReads/Writes).

use chrono::{DateTime, Utc};
use futures::stream::{self, FuturesUnordered, StreamExt};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use super::connection::Session;
use crate::storage::sharded::{blob_id_of_file, prefix_compatible};
use crate::storage::BlobMetadata;

type SftpResult<T> = Result<T, SftpError>;

/// Requests of one file in flight at once.
const IN_FLIGHT: usize = 16;
/// `S_IFMT` and `S_IFDIR` of the permissions an SFTP server reports.
const FILE_TYPE_MASK: u32 = 0o170000;
const DIRECTORY: u32 = 0o040000;

/// What a ranged read found.
pub(crate) enum Range {
    Data(Vec<u8>),
    /// The file ends before the range does; its size.
    Short(u64),
}

/// `root/a/b` (no doubled separator after a root of `/`).
pub(crate) fn join(root: &str, parts: &[&str]) -> String {
    let mut path = root.to_string();
    for part in parts {
        if !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(part);
    }
    path
}

pub(crate) fn is_status(error: &SftpError, code: StatusCode) -> bool {
    matches!(error, SftpError::Status(status) if status.status_code == code)
}

/// The whole file.
pub(crate) async fn read_file(session: &Session, path: &str) -> SftpResult<Vec<u8>> {
    let sftp = &session.sftp;
    let handle = sftp
        .open(path, OpenFlags::READ, FileAttributes::empty())
        .await?
        .handle;
    let result = async {
        let size = sftp.fstat(handle.as_str()).await?.attrs.size;
        read_at(session, &handle, 0, size.unwrap_or(u64::MAX)).await
    }
    .await;
    let _ = sftp.close(handle).await; // a read-only handle: nothing to lose
    result
}

/// Exactly `length` bytes at `offset`, or the file's size when it is too short.
pub(crate) async fn read_range(
    session: &Session,
    path: &str,
    offset: u64,
    length: u64,
) -> SftpResult<Range> {
    let sftp = &session.sftp;
    let handle = sftp
        .open(path, OpenFlags::READ, FileAttributes::empty())
        .await?
        .handle;
    let result = async {
        let size = sftp.fstat(handle.as_str()).await?.attrs.size.unwrap_or(0);
        if size.saturating_sub(offset) < length {
            return Ok(Range::Short(size));
        }
        let data = read_at(session, &handle, offset, length).await?;
        Ok(if (data.len() as u64) < length {
            // Shrunk since the fstat.
            Range::Short(offset + data.len() as u64)
        } else {
            Range::Data(data)
        })
    }
    .await;
    let _ = sftp.close(handle).await;
    result
}

/// Up to `length` bytes at `offset` (fewer at the end of the file): pipelined pieces, then
/// one piece at a time if a server answered a piece short (the protocol allows it).
async fn read_at(session: &Session, handle: &str, offset: u64, length: u64) -> SftpResult<Vec<u8>> {
    let sftp = &session.sftp;
    let chunk = u64::from(session.read_chunk);
    let end = offset.saturating_add(length);
    let capacity = usize::try_from(length).unwrap_or(0).min(64 << 20);
    let mut data = Vec::with_capacity(capacity);
    let pieces = (0u64..)
        .map(move |i| offset.saturating_add(i.saturating_mul(chunk)))
        .take_while(move |start| *start < end)
        .map(move |start| (start, (end - start).min(chunk) as u32));
    let mut replies = stream::iter(pieces)
        .map(|(start, wanted)| async move { (wanted, sftp.read(handle, start, wanted).await) })
        .buffered(IN_FLIGHT);
    while let Some((wanted, reply)) = replies.next().await {
        match reply {
            Ok(piece) => {
                let short = piece.data.len() < wanted as usize;
                data.extend_from_slice(&piece.data);
                if short {
                    break;
                }
            }
            Err(e) if is_status(&e, StatusCode::Eof) => return Ok(data),
            Err(e) => return Err(e),
        }
    }
    drop(replies); // cancels the pieces still in flight
    while (data.len() as u64) < length {
        let start = offset + data.len() as u64;
        let wanted = (length - data.len() as u64).min(chunk) as u32;
        match sftp.read(handle, start, wanted).await {
            Ok(piece) if piece.data.is_empty() => break,
            Ok(piece) => data.extend_from_slice(&piece.data),
            Err(e) if is_status(&e, StatusCode::Eof) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(data)
}

/// Writes `data` to `<path>.tmp.<16 hex>` and renames it over `path`, creating the missing
/// shard `directories` below `root` (never `root` itself). The temp file is removed on failure.
pub(crate) async fn write_atomically(
    session: &Session,
    root: &str,
    directories: &[String],
    path: &str,
    data: &[u8],
) -> SftpResult<()> {
    let sftp = &session.sftp;
    let suffix: [u8; 8] = rand::random();
    let temp = format!("{path}.tmp.{}", hex::encode(suffix));
    // Exclusive create, as Kopia's O_CREATE|O_EXCL: a clash of random names is never a merge.
    let flags = OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE;
    let handle = match sftp
        .open(temp.as_str(), flags, FileAttributes::empty())
        .await
    {
        Err(e) if is_status(&e, StatusCode::NoSuchFile) && !directories.is_empty() => {
            create_directories(sftp, root, directories).await?;
            sftp.open(temp.as_str(), flags, FileAttributes::empty())
                .await?
        }
        opened => opened?,
    }
    .handle;
    let written = write_all(session, &handle, data).await;
    let closed = sftp.close(handle).await.map(drop);
    let result = match written.and(closed) {
        Ok(()) => rename_over(session, &temp, path).await,
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = sftp.remove(temp).await; // best effort; the write's error matters more
    }
    result
}

async fn write_all(session: &Session, handle: &str, data: &[u8]) -> SftpResult<()> {
    let sftp = &session.sftp;
    let chunk = session.write_chunk.max(1);
    // Owned pieces: a write request takes its bytes by value anyway.
    let pieces: Vec<(u64, Vec<u8>)> = data
        .chunks(chunk)
        .enumerate()
        .map(|(i, piece)| ((i * chunk) as u64, piece.to_vec()))
        .collect();
    let mut writes = stream::iter(pieces)
        .map(|(offset, piece)| sftp.write(handle, offset, piece))
        .buffer_unordered(IN_FLIGHT);
    while let Some(written) = writes.next().await {
        written?;
    }
    drop(writes);
    // Until the server flushed it, a crash of the server could lose a blob we reported
    // written (Kopia does not ask; OpenSSH offers it).
    if session.fsync {
        sftp.fsync(handle).await?;
    }
    Ok(())
}

/// Renames `from` over `to`: atomically with `posix-rename@openssh.com`, as Kopia does
/// (PosixRename); a server without it gets a plain rename, which fails over an existing file,
/// and then removes the old file first.
async fn rename_over(session: &Session, from: &str, to: &str) -> SftpResult<()> {
    let sftp = &session.sftp;
    if session.posix_rename {
        let mut request = Vec::with_capacity(8 + from.len() + to.len());
        for name in [from, to] {
            request.extend_from_slice(&(name.len() as u32).to_be_bytes());
            request.extend_from_slice(name.as_bytes());
        }
        return match sftp.extended("posix-rename@openssh.com", request).await? {
            Packet::Status(status) if status.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(status) => Err(SftpError::Status(status)),
            _ => Err(SftpError::UnexpectedPacket),
        };
    }
    match sftp.rename(from, to).await {
        Ok(_) => Ok(()),
        Err(e @ SftpError::Status(_)) => {
            if sftp.lstat(to).await.is_err() {
                return Err(e);
            }
            sftp.remove(to).await?;
            sftp.rename(from, to).await.map(drop)
        }
        Err(e) => Err(e),
    }
}

/// Creates `root/d1`, `root/d1/d2`… that are missing (Kopia's MkSubdirAll).
async fn create_directories(
    sftp: &RawSftpSession,
    root: &str,
    directories: &[String],
) -> SftpResult<()> {
    for depth in 1..=directories.len() {
        let parts: Vec<&str> = directories[..depth].iter().map(String::as_str).collect();
        let path = join(root, &parts);
        if let Err(e) = sftp.mkdir(path.as_str(), FileAttributes::empty()).await {
            // "Exists" has no status code of its own (OpenSSH says Failure): look.
            match sftp.stat(path.as_str()).await {
                Ok(attrs) if is_directory(&attrs.attrs) => {}
                _ => return Err(e),
            }
        }
    }
    Ok(())
}

/// Removes a file; one that is already gone is fine.
pub(crate) async fn remove(sftp: &RawSftpSession, path: &str) -> SftpResult<()> {
    match sftp.remove(path).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The file, or `None` when there is none.
pub(crate) async fn read_optional(session: &Session, path: &str) -> SftpResult<Option<Vec<u8>>> {
    match read_file(session, path).await {
        Ok(data) => Ok(Some(data)),
        Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `path` is a directory.
pub(crate) async fn is_existing_directory(sftp: &RawSftpSession, path: &str) -> SftpResult<bool> {
    match sftp.stat(path).await {
        Ok(attrs) => Ok(is_directory(&attrs.attrs)),
        Err(e) if is_status(&e, StatusCode::NoSuchFile) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_directory(attrs: &FileAttributes) -> bool {
    attrs
        .permissions
        .is_some_and(|mode| mode & FILE_TYPE_MASK == DIRECTORY)
}

/// Every blob under `root` whose ID starts with `prefix`, reading up to `parallelism`
/// directories at once and descending only into directories that can hold such IDs.
pub(crate) async fn list(
    session: &Session,
    root: &str,
    prefix: &str,
    parallelism: usize,
) -> SftpResult<Vec<BlobMetadata>> {
    let sftp = &session.sftp;
    let mut pending = vec![(root.to_string(), String::new())];
    let mut running = FuturesUnordered::new();
    let mut blobs = Vec::new();
    loop {
        while running.len() < parallelism.max(1) {
            let Some((directory, accumulated)) = pending.pop() else {
                break;
            };
            running.push(async move {
                let entries = read_directory(sftp, &directory).await;
                (directory, accumulated, entries)
            });
        }
        let Some((directory, accumulated, entries)) = running.next().await else {
            break;
        };
        let entries = match entries {
            Ok(entries) => entries,
            // A shard directory removed while we walked (maintenance); the root is an error.
            Err(e) if is_status(&e, StatusCode::NoSuchFile) && !accumulated.is_empty() => continue,
            Err(e) => return Err(e),
        };
        for (name, attrs) in entries {
            if name == "." || name == ".." {
                continue;
            }
            let full_name = format!("{accumulated}{name}");
            if is_directory(&attrs) {
                if prefix_compatible(&full_name, prefix) {
                    pending.push((join(&directory, &[&name]), full_name));
                }
                continue;
            }
            let Some(id) = blob_id_of_file(&full_name).filter(|id| id.starts_with(prefix)) else {
                continue;
            };
            // SFTP (version 3) times are whole seconds; Kopia sees the same.
            let timestamp = DateTime::<Utc>::from_timestamp(i64::from(attrs.mtime.unwrap_or(0)), 0)
                .unwrap_or_default();
            blobs.push(BlobMetadata {
                id: id.to_string(),
                length: attrs.size.unwrap_or(0),
                timestamp,
            });
        }
    }
    blobs.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(blobs)
}

/// Names and attributes of a directory's entries.
async fn read_directory(
    sftp: &RawSftpSession,
    path: &str,
) -> SftpResult<Vec<(String, FileAttributes)>> {
    let handle = sftp.opendir(path).await?.handle;
    let mut entries = Vec::new();
    let result = loop {
        match sftp.readdir(handle.as_str()).await {
            Ok(name) => entries.extend(name.files.into_iter().map(|f| (f.filename, f.attrs))),
            Err(e) if is_status(&e, StatusCode::Eof) => break Ok(entries),
            Err(e) => break Err(e),
        }
    };
    let _ = sftp.close(handle).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_without_doubled_separators() {
        assert_eq!(join("/", &["x", "n0_", "a.f"]), "/x/n0_/a.f");
        assert_eq!(join("/srv/repo", &["q", "012"]), "/srv/repo/q/012");
        assert_eq!(
            join("repo", &["kopia.repository.f"]),
            "repo/kopia.repository.f"
        );
        assert_eq!(join("/srv/repo", &[]), "/srv/repo");
    }

    #[test]
    fn only_directories_are_directories() {
        let with_mode = |mode| FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        assert!(is_directory(&with_mode(0o040755)));
        assert!(!is_directory(&with_mode(0o100644)));
        assert!(!is_directory(&with_mode(0o120777))); // symlink
        assert!(!is_directory(&with_mode(0o140755))); // socket: shares the directory bit
        assert!(!is_directory(&FileAttributes::empty()));
    }
}
