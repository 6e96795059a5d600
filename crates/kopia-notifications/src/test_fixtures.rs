//! The clock and identities the unit tests of this crate share.

use chrono::{DateTime, TimeZone, Utc};

use crate::identity::Identity;

/// The tests' "now".
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2022, 5, 19, 10, 0, 0).unwrap()
}

pub fn alice() -> Identity {
    "alice@laptop".parse().unwrap()
}

pub fn bob() -> Identity {
    "bob@desk".parse().unwrap()
}
