//! Notification and acknowledgement manifests as any writer of the repository may shape them:
//! the first line is the label map (JSON), the rest the payload.
#![no_main]
use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use kopia_notifications::{Acknowledgement, Notification, StoredManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (labels, payload) = text.split_once('\n').unwrap_or(("{}", text));
    let Ok(labels) = serde_json::from_str::<BTreeMap<String, String>>(labels) else {
        return;
    };
    let manifest = StoredManifest {
        id: "0123456789abcdef0123456789abcdef".to_string(),
        labels,
        modified: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        data: payload.to_string(),
    };
    if let Ok(notification) = Notification::from_manifest(&manifest) {
        let _ = notification.is_expired(Utc::now());
    }
    let _ = Acknowledgement::from_manifest(&manifest);
});
