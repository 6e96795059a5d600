//! The sharded file-tree layout Kopia uses for `filesystem`, `sftp`, `webdav` and `rclone`
//! storages (§1.2, Kopia's repo/blob/sharded): one `<id>.f` file per blob, spread over shard
//! directories described by the root's `.shards` file. Pure functions only, so that every
//! file-tree backend (local disk, SFTP, WebDAV) maps IDs to paths and back the same way.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::DecodeError;

/// Suffix of every complete blob file; anything else in the tree is not a blob.
pub const BLOB_FILE_SUFFIX: &str = ".f";
/// Name of the sharding parameters file in the storage root.
pub const SHARDS_FILE: &str = ".shards";
/// Kopia's default for `maxNonShardedLength`.
const DEFAULT_MAX_NON_SHARDED_LENGTH: usize = 20;
/// Shards Kopia assumes for an existing storage without `.shards` and without `dirShards`.
const LEGACY_DEFAULT_SHARDS: [usize; 2] = [3, 3];
/// Shards Kopia writes into `.shards` when it creates a new repository.
const NEW_REPOSITORY_SHARDS: [usize; 2] = [1, 3];

/// One `overrides` entry of `.shards`: blob IDs starting with `prefix` use `shards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOverride {
    pub prefix: String,
    #[serde(deserialize_with = "null_as_empty")]
    pub shards: Vec<usize>,
}

/// The contents of `.shards` (§1.2.3): how blob IDs map to directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardingParameters {
    #[serde(rename = "default", default, deserialize_with = "null_as_empty")]
    pub default_shards: Vec<usize>,
    #[serde(rename = "maxNonShardedLength", default)]
    pub max_non_sharded_length: usize,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub overrides: Vec<ShardOverride>,
}

/// Go decodes `null` into an empty slice; serde's `default` only covers a missing key.
fn null_as_empty<'de, D, T>(deserializer: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

impl ShardingParameters {
    /// Parameters with the given default shards and Kopia's `maxNonShardedLength` of 20.
    pub fn with_default_shards(shards: Vec<usize>) -> Self {
        ShardingParameters {
            default_shards: shards,
            max_non_sharded_length: DEFAULT_MAX_NON_SHARDED_LENGTH,
            overrides: Vec::new(),
        }
    }

    /// Parses the JSON of a `.shards` file. Unknown keys are ignored, as Go does.
    pub fn parse(json: &[u8]) -> std::result::Result<Self, DecodeError> {
        // Go's decoder reads the first JSON value and ignores what follows it.
        let mut values = serde_json::Deserializer::from_slice(json).into_iter::<Self>();
        match values.next() {
            Some(Ok(parameters)) => Ok(parameters),
            Some(Err(e)) => Err(DecodeError::new(format!(
                "invalid sharding parameters: {e}"
            ))),
            None => Err(DecodeError::new("empty sharding parameters")),
        }
    }

    /// The bytes Kopia writes into `.shards`: compact JSON and a trailing newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string(self).expect("sharding parameters always serialize");
        json.push('\n');
        json
    }

    /// The layout of an existing storage: its `.shards` file when there is one, else the
    /// config's `dirShards`, else `[3,3]`, as a Kopia that does not create the storage assumes
    /// (repo/blob/sharded). Never a reason to write `.shards`.
    pub fn for_existing(
        shards_file: Option<&[u8]>,
        dir_shards: Option<&[usize]>,
    ) -> std::result::Result<Self, DecodeError> {
        match shards_file {
            Some(json) => Self::parse(json),
            None => Ok(Self::with_default_shards(
                dir_shards.map_or_else(|| LEGACY_DEFAULT_SHARDS.to_vec(), <[usize]>::to_vec),
            )),
        }
    }

    /// The layout `kopia repository create` writes into `.shards` of a new storage.
    pub fn for_new_repository() -> Self {
        Self::with_default_shards(NEW_REPOSITORY_SHARDS.to_vec())
    }

    fn shards_for(&self, blob_id: &str) -> &[usize] {
        self.overrides
            .iter()
            .find(|o| blob_id.starts_with(o.prefix.as_str()))
            .map_or(self.default_shards.as_slice(), |o| o.shards.as_slice())
    }

    /// Splits a blob ID into its shard directory names and the remaining file stem (§1.2.2).
    /// Blob IDs are ASCII; `None` if a cut would fall inside a multi-byte character.
    pub fn split<'a>(&self, blob_id: &'a str) -> Option<(Vec<&'a str>, &'a str)> {
        let mut directories = Vec::new();
        let mut rest = blob_id;
        if blob_id.len() <= self.max_non_sharded_length {
            return Some((directories, rest));
        }
        for &width in self.shards_for(blob_id) {
            if rest.len() <= width {
                break;
            }
            directories.push(rest.get(..width)?);
            rest = rest.get(width..)?;
        }
        Some((directories, rest))
    }
}

/// Where a blob lives in a sharded tree: its shard directories, outermost first, and its file
/// name (`<rest>.f`). `None` for an ID no Kopia blob can have: empty, non-ASCII-graphic, with a
/// path separator, or cut into a `.`/`..` directory. IDs come from listings and index entries
/// (untrusted), so this is what keeps one from escaping the root.
pub fn blob_file_path<'a>(
    sharding: &ShardingParameters,
    blob_id: &'a str,
) -> Option<(Vec<&'a str>, String)> {
    if blob_id.is_empty()
        || !blob_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
    {
        return None;
    }
    let (directories, stem) = sharding.split(blob_id)?;
    if directories.iter().any(|d| *d == "." || *d == "..") {
        return None;
    }
    Some((directories, format!("{stem}{BLOB_FILE_SUFFIX}")))
}

/// The blob ID of a file whose shard directory names and file name, concatenated, are
/// `joined_name`; `None` for anything that is not a complete blob (temp files, foreign files).
pub fn blob_id_of_file(joined_name: &str) -> Option<&str> {
    joined_name
        .strip_suffix(BLOB_FILE_SUFFIX)
        .filter(|id| !id.is_empty())
}

/// Whether a directory whose accumulated name is `directory_prefix` can contain blob IDs
/// starting with `prefix` (§1.2.4): listings descend only into those.
pub fn prefix_compatible(directory_prefix: &str, prefix: &str) -> bool {
    if prefix.len() > directory_prefix.len() {
        prefix.starts_with(directory_prefix)
    } else {
        directory_prefix.starts_with(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameters(json: &str) -> ShardingParameters {
        ShardingParameters::parse(json.as_bytes()).unwrap()
    }

    fn sharded_path(parameters: &ShardingParameters, blob_id: &str) -> String {
        let (directories, stem) = parameters.split(blob_id).unwrap();
        let mut parts: Vec<String> = directories.iter().map(|d| d.to_string()).collect();
        parts.push(format!("{stem}.f"));
        parts.join("/")
    }

    /// Every example of §1.2.2 (Kopia's sharded_test.go).
    #[test]
    fn sharding_table() {
        let legacy = ShardingParameters::with_default_shards(vec![3, 3]);
        assert_eq!(
            sharded_path(&legacy, "foobarbaz12345678910123213123"),
            "foo/bar/baz12345678910123213123.f"
        );
        let current = ShardingParameters::with_default_shards(vec![1, 3]);
        assert_eq!(
            sharded_path(&current, "foobarbaz12345678910123213123"),
            "f/oob/arbaz12345678910123213123.f"
        );

        let with_overrides = parameters(
            r#"{"default":[3,2,1],"overrides":[{"prefix":"p","shards":[2,2]},
                {"prefix":"x","shards":[1,1,1]}],"maxNonShardedLength":2}"#,
        );
        for (id, path) in [
            ("ab", "ab.f"),
            ("defaultsharded", "def/au/l/tsharded.f"),
            ("phello", "ph/el/lo.f"),
            ("pgoodbye", "pg/oo/dbye.f"),
            ("xhello", "x/h/e/llo.f"),
            ("xbye", "x/b/y/e.f"),
            ("xo", "xo.f"),
        ] {
            assert_eq!(sharded_path(&with_overrides, id), path, "{id}");
        }

        let long_unsharded = parameters(r#"{"default":[3,3],"maxNonShardedLength":10}"#);
        assert_eq!(sharded_path(&long_unsharded, "foobarbar"), "foobarbar.f");
        assert_eq!(
            sharded_path(&long_unsharded, "foobarbarbar"),
            "foo/bar/barbar.f"
        );

        let always_sharded = parameters(r#"{"default":[3,3],"maxNonShardedLength":0}"#);
        for (id, path) in [
            ("fo", "fo.f"),
            ("foo", "foo.f"),
            ("foob", "foo/b.f"),
            ("foobar", "foo/bar.f"),
            ("foobar2", "foo/bar/2.f"),
        ] {
            assert_eq!(sharded_path(&always_sharded, id), path, "{id}");
        }
    }

    #[test]
    fn current_repository_layout_examples() {
        let current = ShardingParameters::with_default_shards(vec![1, 3]);
        assert_eq!(
            sharded_path(&current, "kopia.repository"),
            "kopia.repository.f"
        );
        assert_eq!(sharded_path(&current, "xw1700000000"), "xw1700000000.f");
        let xn0 = "xn0_0123456789abcdef0123456789abcdef-s0123456789abcdef144-c1";
        assert_eq!(
            sharded_path(&current, xn0),
            "x/n0_/0123456789abcdef0123456789abcdef-s0123456789abcdef144-c1.f"
        );
        assert!(sharded_path(&current, "xn12_0123456789abcdef0123456789").starts_with("x/n12/_"));
    }

    #[test]
    fn shards_file_round_trip_and_go_quirks() {
        let p = ShardingParameters::with_default_shards(vec![1, 3]);
        assert_eq!(
            p.to_json(),
            "{\"default\":[1,3],\"maxNonShardedLength\":20}\n"
        );
        assert_eq!(
            ShardingParameters::parse(p.to_json().as_bytes()).unwrap(),
            p
        );
        // null, missing keys, unknown keys and trailing bytes are all accepted by Go.
        let p = parameters(r#"{"default":null,"overrides":null,"extra":1} trailing"#);
        assert!(p.default_shards.is_empty() && p.overrides.is_empty());
        assert_eq!(p.max_non_sharded_length, 0);
        assert!(ShardingParameters::parse(b"").is_err());
        assert!(ShardingParameters::parse(b"{\"default\":[-1]}").is_err());
        assert!(ShardingParameters::parse(b"[1,2").is_err());
    }

    #[test]
    fn non_ascii_cut_is_refused_not_panicking() {
        let p = ShardingParameters::with_default_shards(vec![1, 3]);
        assert!(p.split("éééééééééééééééééééééééé").is_none());
    }

    #[test]
    fn layout_of_existing_and_new_storages() {
        let legacy = ShardingParameters::for_existing(None, None).unwrap();
        assert_eq!(legacy.default_shards, vec![3, 3]);
        assert_eq!(legacy.max_non_sharded_length, 20);
        let configured = ShardingParameters::for_existing(None, Some(&[2, 2])).unwrap();
        assert_eq!(configured.default_shards, vec![2, 2]);
        // The file wins over dirShards.
        let file = br#"{"default":[1,1],"maxNonShardedLength":3}"#;
        let from_file = ShardingParameters::for_existing(Some(file), Some(&[2, 2])).unwrap();
        assert_eq!(
            (from_file.default_shards, from_file.max_non_sharded_length),
            (vec![1, 1], 3)
        );
        assert!(ShardingParameters::for_existing(Some(b"not json"), None).is_err());
        assert_eq!(
            ShardingParameters::for_new_repository().to_json(),
            "{\"default\":[1,3],\"maxNonShardedLength\":20}\n"
        );
    }

    #[test]
    fn blob_file_paths_and_back() {
        let current = ShardingParameters::for_new_repository();
        let id = "q0123456789abcdef0123456789abcdef-s0123456789abcdef144";
        let (directories, file) = blob_file_path(&current, id).unwrap();
        assert_eq!(directories, vec!["q", "012"]);
        assert_eq!(file, "3456789abcdef0123456789abcdef-s0123456789abcdef144.f");
        let joined = format!("{}{file}", directories.concat());
        assert_eq!(blob_id_of_file(&joined), Some(id));
        assert_eq!(blob_id_of_file("x/n0_leftover.f.tmp.0011"), None);
        assert_eq!(blob_id_of_file(".f"), None);
        assert_eq!(blob_id_of_file("foreign-file"), None);
    }

    #[test]
    fn hostile_blob_ids_are_refused() {
        let current = ShardingParameters::for_new_repository();
        for id in [
            "",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "with space",
            "tab\there",
        ] {
            assert!(blob_file_path(&current, id).is_none(), "{id:?}");
        }
        // [1,3] cuts "p", "..a": a legitimate (if odd) directory name; [1,2] cuts "..".
        let odd = "p..abcdefghijklmnopqrstuvwxyz";
        assert!(blob_file_path(&current, odd).is_some());
        let dots = ShardingParameters::with_default_shards(vec![1, 2]);
        assert!(blob_file_path(&dots, odd).is_none());
    }

    #[test]
    fn listing_descends_only_into_compatible_directories() {
        assert!(prefix_compatible("x", "xn0_"));
        assert!(prefix_compatible("xn0_", "xn0_"));
        assert!(prefix_compatible("xn0_abc", "xn0_"));
        assert!(prefix_compatible("x", ""));
        assert!(!prefix_compatible("p", "xn0_"));
        assert!(!prefix_compatible("xn1_", "xn0_"));
        assert!(!prefix_compatible("xn0_abc", "xn1"));
    }
}
