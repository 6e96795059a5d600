//! The latest release of a product, from a releases endpoint in the shape of GitHub's releases
//! API (`GET <base>/repos/<owner>/<name>/releases/latest` answers `tag_name`, `html_url`,
//! `draft`, `prerelease`), and the answers remembered between checks so that an endpoint is
//! asked at most once a day. The HTTP request and the cache file are the caller's; this is the
//! pure part: the URL, the answer's meaning, whether a remembered answer is fresh.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::schema::rfc3339;
use crate::Error;

/// GitHub's releases API, the default endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.github.com";

/// How long an answer is trusted before the endpoint is asked again.
pub const CHECK_INTERVAL: Duration = Duration::days(1);

/// A published release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Its tag: `v0.24.0`.
    pub version: String,
    /// Its page.
    pub url: String,
}

/// `<base>/repos/<repo>/releases/latest`.
pub fn latest_release_url(base: &str, repo: &str) -> String {
    format!(
        "{}/repos/{repo}/releases/latest",
        base.trim_end_matches('/')
    )
}

#[derive(Deserialize)]
struct Answer {
    tag_name: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    prerelease: bool,
}

/// The release `url` answered with `body`; `None` for a draft or a pre-release (GitHub never
/// answers those for `latest`, other endpoints of its shape may).
pub fn parse_latest_release(url: &str, body: &str) -> Result<Option<Release>, Error> {
    let invalid = |reason: String| Error::InvalidRelease {
        url: url.to_string(),
        reason,
    };
    let answer: Answer = serde_json::from_str(body).map_err(|e| invalid(e.to_string()))?;
    if answer.tag_name.trim().is_empty() {
        return Err(invalid("tag_name is empty".into()));
    }
    if answer.draft || answer.prerelease {
        return Ok(None);
    }
    Ok(Some(Release {
        version: answer.tag_name.trim().to_string(),
        url: answer.html_url,
    }))
}

/// One remembered answer of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAnswer {
    #[serde(with = "rfc3339")]
    pub checked_at: DateTime<Utc>,
    /// `None`: the endpoint had no release (or only drafts and pre-releases).
    pub latest: Option<Release>,
}

impl CachedAnswer {
    /// Asked less than [`CHECK_INTERVAL`] before `now` (an answer from `now`'s future, after
    /// the clock went back, is not trusted).
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        let age = now - self.checked_at;
        age >= Duration::zero() && age < CHECK_INTERVAL
    }
}

/// Every endpoint's last answer, keyed by its URL (so that another endpoint is asked afresh).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseCache {
    #[serde(default)]
    pub answers: BTreeMap<String, CachedAnswer>,
}

impl ReleaseCache {
    /// The cache file's text; a file that does not parse is an empty cache (it is ours and
    /// only saves requests).
    pub fn parse(text: &str) -> ReleaseCache {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("the release cache serializes")
    }

    /// `url`'s answer when it is fresh at `now`.
    pub fn fresh(&self, url: &str, now: DateTime<Utc>) -> Option<&CachedAnswer> {
        self.answers.get(url).filter(|answer| answer.is_fresh(now))
    }

    pub fn record(&mut self, url: &str, now: DateTime<Utc>, latest: Option<Release>) {
        self.answers.insert(
            url.to_string(),
            CachedAnswer {
                checked_at: now,
                latest,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::t0;

    const URL: &str = "http://127.0.0.1:1/repos/kopia/kopia/releases/latest";

    #[test]
    fn urls_follow_githubs_shape() {
        assert_eq!(
            latest_release_url(DEFAULT_ENDPOINT, "kopia/kopia"),
            "https://api.github.com/repos/kopia/kopia/releases/latest"
        );
        assert_eq!(
            latest_release_url("http://127.0.0.1:8080/", "a/b"),
            "http://127.0.0.1:8080/repos/a/b/releases/latest"
        );
    }

    #[test]
    fn answers_parse_and_drafts_and_prereleases_do_not_count() {
        let answer = r#"{"url":"x","tag_name":"v0.24.0","name":"v0.24.0","draft":false,
            "prerelease":false,"html_url":"https://github.com/kopia/kopia/releases/tag/v0.24.0",
            "assets":[]}"#;
        assert_eq!(
            parse_latest_release(URL, answer).unwrap(),
            Some(Release {
                version: "v0.24.0".into(),
                url: "https://github.com/kopia/kopia/releases/tag/v0.24.0".into(),
            })
        );
        for skipped in [
            r#"{"tag_name":"v0.25.0-rc1","prerelease":true,"draft":false}"#,
            r#"{"tag_name":"v0.25.0","prerelease":false,"draft":true}"#,
        ] {
            assert_eq!(parse_latest_release(URL, skipped).unwrap(), None);
        }
        for bad in [
            r#"{"message":"Not Found"}"#,
            r#"{"tag_name":" "}"#,
            "<html>",
        ] {
            let error = parse_latest_release(URL, bad).unwrap_err().to_string();
            assert!(error.contains(URL), "{error}");
        }
    }

    #[test]
    fn answers_are_fresh_for_a_day_and_keyed_by_url() {
        let mut cache = ReleaseCache::default();
        assert!(cache.fresh(URL, t0()).is_none());
        let release = Release {
            version: "v0.24.0".into(),
            url: String::new(),
        };
        cache.record(URL, t0(), Some(release.clone()));
        let cache = ReleaseCache::parse(&cache.to_text());
        let hit = cache.fresh(URL, t0() + Duration::hours(23)).unwrap();
        assert_eq!(hit.latest, Some(release));
        assert!(cache.fresh(URL, t0() + CHECK_INTERVAL).is_none());
        assert!(cache.fresh(URL, t0() - Duration::minutes(1)).is_none());
        assert!(cache
            .fresh("http://other/repos/kopia/kopia/releases/latest", t0())
            .is_none());
        assert_eq!(ReleaseCache::parse("not json"), ReleaseCache::default());
    }
}
