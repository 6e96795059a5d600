//! Content IDs: the optional one-letter prefix plus the content hash, in Kopia's string form
//! (`m0343…`) and in the binary key form used by indexes (prefix byte or 0, then the hash).
//! This is only the identifier; hashing a payload into one is the crypto layer's job.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::DecodeError;

/// Longest hash Kopia supports (32 bytes, e.g. BLAKE2B-256).
pub const MAX_HASH_LENGTH: usize = 32;

/// Longest binary key: prefix byte plus the longest hash.
pub const MAX_KEY_LENGTH: usize = MAX_HASH_LENGTH + 1;

/// Number of trailing hash bytes used as the encryption IV of a content.
const CONTENT_IV_LENGTH: usize = 16;

/// A content ID stored inline as its binary index key, so it is cheap to copy and hash.
///
/// Equality, hashing and ordering all use the key bytes; the order is Kopia's (unprefixed IDs
/// first, then `g`..`z`, each by hash bytes), which is also the sort order of index entries.
#[derive(Clone, Copy)]
pub struct ContentId {
    key_length: u8,
    key: [u8; MAX_KEY_LENGTH],
}

fn is_valid_prefix(byte: u8) -> bool {
    (b'g'..=b'z').contains(&byte)
}

impl ContentId {
    /// Parses Kopia's string form. Odd length means the first character is a prefix
    /// (`g`..`z`); the rest is lowercase or uppercase hex. The empty string is Kopia's empty ID.
    pub fn parse(s: &str) -> Result<Self, DecodeError> {
        let bytes = s.as_bytes();
        let (prefix, hex_part) = if bytes.len() % 2 == 1 {
            if !is_valid_prefix(bytes[0]) {
                return Err(DecodeError::new(format!(
                    "invalid content ID {s:?}: prefix must be a letter between 'g' and 'z'"
                )));
            }
            (bytes[0], &s[1..])
        } else {
            (0, s)
        };
        if hex_part.len() > 2 * MAX_HASH_LENGTH {
            return Err(DecodeError::new(format!(
                "invalid content ID {s:?}: hash longer than {MAX_HASH_LENGTH} bytes"
            )));
        }
        if prefix != 0 && hex_part.is_empty() {
            return Err(DecodeError::new(format!(
                "invalid content ID {s:?}: too short"
            )));
        }
        let mut id = ContentId {
            key_length: 1 + (hex_part.len() / 2) as u8,
            key: [0; MAX_KEY_LENGTH],
        };
        id.key[0] = prefix;
        hex::decode_to_slice(hex_part, &mut id.key[1..id.key_length as usize]).map_err(|e| {
            DecodeError::new(format!("invalid content ID {s:?}: bad hex in hash: {e}"))
        })?;
        Ok(id)
    }

    /// Builds an ID from its binary index key (prefix byte, then hash bytes).
    pub fn from_key_bytes(key: &[u8]) -> Result<Self, DecodeError> {
        let Some((&prefix, hash)) = key.split_first() else {
            return Err(DecodeError::new("empty content ID key"));
        };
        if prefix != 0 && !is_valid_prefix(prefix) {
            return Err(DecodeError::new(format!(
                "content ID key {} has invalid prefix byte {prefix:#04x}",
                hex::encode(key)
            )));
        }
        if prefix != 0 && hash.is_empty() {
            return Err(DecodeError::new(format!(
                "content ID key {} has a prefix but no hash",
                hex::encode(key)
            )));
        }
        if hash.len() > MAX_HASH_LENGTH {
            return Err(DecodeError::new(format!(
                "content ID key of {} bytes is longer than {MAX_KEY_LENGTH}",
                key.len()
            )));
        }
        let mut id = ContentId {
            key_length: key.len() as u8,
            key: [0; MAX_KEY_LENGTH],
        };
        id.key[..key.len()].copy_from_slice(key);
        Ok(id)
    }

    /// Builds an ID from an optional prefix (`g`..`z`) and a non-empty hash of at most 32 bytes.
    pub fn from_hash(prefix: Option<char>, hash: &[u8]) -> Result<Self, DecodeError> {
        let prefix_byte = match prefix {
            None => 0,
            Some(c) if c.is_ascii() && is_valid_prefix(c as u8) => c as u8,
            Some(c) => {
                return Err(DecodeError::new(format!(
                    "invalid content prefix {c:?}: must be a letter between 'g' and 'z'"
                )))
            }
        };
        if hash.is_empty() {
            return Err(DecodeError::new("content hash is empty"));
        }
        if hash.len() > MAX_HASH_LENGTH {
            return Err(DecodeError::new(format!(
                "content hash of {} bytes is longer than {MAX_HASH_LENGTH}",
                hash.len()
            )));
        }
        let mut id = ContentId {
            key_length: 1 + hash.len() as u8,
            key: [0; MAX_KEY_LENGTH],
        };
        id.key[0] = prefix_byte;
        id.key[1..1 + hash.len()].copy_from_slice(hash);
        Ok(id)
    }

    /// The binary index key: prefix byte (0 for none) followed by the hash.
    pub fn key_bytes(&self) -> &[u8] {
        &self.key[..self.key_length as usize]
    }

    /// The one-letter prefix, if any.
    pub fn prefix(&self) -> Option<char> {
        match self.key[0] {
            0 => None,
            b => Some(b as char),
        }
    }

    /// The hash part (the key without its prefix byte).
    pub fn hash(&self) -> &[u8] {
        &self.key[1..self.key_length as usize]
    }

    /// The IV used to encrypt this content: the last 16 bytes of the hash (the whole hash when
    /// it is 16 bytes or shorter; the crypto layer rejects IVs of the wrong length).
    pub fn iv(&self) -> &[u8] {
        let hash = self.hash();
        &hash[hash.len().saturating_sub(CONTENT_IV_LENGTH)..]
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(prefix) = self.prefix() {
            write!(f, "{prefix}")?;
        }
        for byte in self.hash() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ContentId::parse(s)
    }
}

impl PartialEq for ContentId {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes() == other.key_bytes()
    }
}

impl Eq for ContentId {}

impl Hash for ContentId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key_bytes().hash(state);
    }
}

impl Ord for ContentId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key_bytes().cmp(other.key_bytes())
    }
}

impl PartialOrd for ContentId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kopia_ordering_list_round_trips_and_sorts() {
        // Kopia's id_test.go list, already in ascending order.
        let ordered = [
            "",
            "0012abcd",
            "12345678",
            "ffffffff",
            "g01234567",
            "g01234568",
            "yffffffff",
            "z00000000",
            "z00000001",
            "zffffffff",
        ];
        let ids: Vec<ContentId> = ordered
            .iter()
            .map(|s| ContentId::parse(s).unwrap())
            .collect();
        for (s, id) in ordered.iter().zip(&ids) {
            assert_eq!(id.to_string(), *s);
        }
        for (i, a) in ids.iter().enumerate() {
            for (j, b) in ids.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn binary_key_form() {
        let id = ContentId::parse("m0343b2576af3824da2cb7b09d0dc6322").unwrap();
        assert_eq!(id.prefix(), Some('m'));
        assert_eq!(id.key_bytes()[0], b'm');
        assert_eq!(id.key_bytes().len(), 17);
        assert_eq!(hex::encode(id.hash()), "0343b2576af3824da2cb7b09d0dc6322");
        assert_eq!(ContentId::from_key_bytes(id.key_bytes()).unwrap(), id);

        let plain = ContentId::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(plain.prefix(), None);
        assert_eq!(plain.key_bytes()[0], 0);
        let rebuilt = ContentId::from_hash(None, plain.hash()).unwrap();
        assert_eq!(rebuilt, plain);
        let prefixed = ContentId::from_hash(Some('k'), plain.hash()).unwrap();
        assert_eq!(prefixed.to_string(), "k0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn iv_is_last_16_hash_bytes() {
        let short = ContentId::parse("m0343b2576af3824da2cb7b09d0dc6322").unwrap();
        assert_eq!(short.iv(), short.hash());
        let long_hash: Vec<u8> = (0u8..32).collect();
        let long = ContentId::from_hash(Some('k'), &long_hash).unwrap();
        assert_eq!(long.iv(), &long_hash[16..]);
    }

    #[test]
    fn rejects_invalid_strings() {
        for bad in [
            "x",
            "x1",
            "xx",
            "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f11",
            "A00",
            "@abcd",
            "zz",
            "0g",
        ] {
            assert!(ContentId::parse(bad).is_err(), "{bad}");
        }
        // Uppercase hex is accepted (Go's hex decoder does too); output is lowercase.
        assert_eq!(ContentId::parse("mABCD").unwrap().to_string(), "mabcd");
    }

    #[test]
    fn rejects_invalid_keys_and_hashes() {
        assert!(ContentId::from_key_bytes(&[]).is_err());
        assert!(ContentId::from_key_bytes(&[b'a', 1, 2]).is_err());
        assert!(ContentId::from_key_bytes(b"m").is_err());
        assert!(ContentId::from_key_bytes(&[0; 34]).is_err());
        assert!(ContentId::from_hash(None, &[]).is_err());
        assert!(ContentId::from_hash(Some('a'), &[1]).is_err());
        assert!(ContentId::from_hash(Some('é'), &[1]).is_err());
        assert!(ContentId::from_hash(None, &[0; 33]).is_err());
    }

    #[test]
    fn hash_and_eq_ignore_unused_storage() {
        use std::collections::HashSet;
        let a = ContentId::parse("g0102").unwrap();
        let b = ContentId::from_key_bytes(&[b'g', 1, 2]).unwrap();
        let set: HashSet<ContentId> = [a].into_iter().collect();
        assert!(set.contains(&b));
    }
}
