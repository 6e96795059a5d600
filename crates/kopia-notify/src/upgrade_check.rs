//! The upgrade part of `kopia-notify check`: this machine's installed Kopia (`KOPIA_BIN`, then
//! `kopia` on `PATH`, then KopiaUI's bundled binary) and Kopia Notifier itself against the
//! latest releases of a releases endpoint in GitHub's shape. Each endpoint is asked at most
//! once a day: its answer is remembered in our state file
//! (`$XDG_STATE_HOME/kopia-notifier/releases.json`, else `~/.local/state/…`, mode 0600), never
//! in the repository. All requests together take at most [`TIME_LIMIT`], and run while the
//! repository opens; without network the products are simply not compared (a debug log).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use kopia_notifications::health::releases::{
    latest_release_url, parse_latest_release, Release, ReleaseCache, DEFAULT_ENDPOINT,
};
use kopia_notifications::health::upgrade::{Product, ProductVersions, Versions};

/// The longest the release requests may take, connecting included.
const TIME_LIMIT: Duration = Duration::from_secs(3);

/// Our own version, compared against our latest release.
const OUR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where KopiaUI installs its bundled `kopia` (electron-builder's `server` resources,
/// Kopia's `app/package.json`; `app/public/utils.js` starts it from there).
const KOPIAUI_BINARIES: [&str; 2] = [
    "/opt/KopiaUI/resources/server/kopia",
    "/Applications/KopiaUI.app/Contents/Resources/server/kopia",
];

#[derive(Args)]
pub struct UpgradeArgs {
    /// Do not compare installed versions against the latest releases (no network request).
    #[arg(
        long,
        env = "KOPIA_NOTIFY_NO_UPGRADE_CHECK",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    no_upgrade_check: bool,
    /// Releases endpoint in GitHub's releases-API shape
    /// (`<URL>/repos/kopia/kopia/releases/latest`).
    #[arg(
        long,
        env = "KOPIA_NOTIFY_RELEASES_URL",
        value_name = "URL",
        default_value = DEFAULT_ENDPOINT
    )]
    releases_url: String,
}

/// The products this machine could compare at `now`; empty when turned off.
pub fn versions(args: &UpgradeArgs, now: DateTime<Utc>) -> Versions {
    if args.no_upgrade_check {
        tracing::debug!("upgrade check turned off");
        return Versions::default();
    }
    let mut installed = vec![(Product::KopiaNotifier, OUR_VERSION.to_string())];
    match installed_kopia() {
        Ok(version) => installed.push((Product::Kopia, version)),
        Err(why) => tracing::debug!(why = %format!("{why:#}"), "Kopia's version not compared"),
    }
    let state_file = state_file();
    let mut cache = state_file
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| ReleaseCache::parse(&text))
        .unwrap_or_default();

    let urls: Vec<String> = installed
        .iter()
        .map(|(product, _)| latest_release_url(&args.releases_url, product.releases_repo()))
        .collect();
    let stale: Vec<&str> = urls
        .iter()
        .filter(|url| cache.fresh(url, now).is_none())
        .map(String::as_str)
        .collect();
    let answers = fetch_all(&stale);
    let asked = answers.iter().any(|(_, answer)| answer.is_ok());
    for (url, answer) in answers {
        match answer {
            Ok(latest) => cache.record(url, now, latest),
            Err(why) => tracing::debug!(url, why = %format!("{why:#}"), "release not checked"),
        }
    }
    if asked {
        if let Some(path) = &state_file {
            if let Err(why) = save(path, &cache) {
                tracing::debug!(why = %format!("{why:#}"), "release answers not remembered");
            }
        }
    }
    let products = installed
        .into_iter()
        .zip(&urls)
        .filter_map(|((product, installed), url)| {
            let answer = cache.fresh(url, now)?;
            Some(ProductVersions {
                product,
                installed,
                latest: answer.latest.clone(),
            })
        })
        .collect();
    Versions { products }
}

/// Asks every URL at once, all within [`TIME_LIMIT`].
fn fetch_all<'a>(urls: &[&'a str]) -> Vec<(&'a str, Result<Option<Release>>)> {
    if urls.is_empty() {
        return Vec::new();
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIME_LIMIT))
        .http_status_as_error(false)
        .user_agent(format!("kopia-notify/{OUR_VERSION}"))
        .build()
        .into();
    std::thread::scope(|scope| {
        let asks: Vec<_> = urls
            .iter()
            .map(|url| {
                let agent = &agent;
                (*url, scope.spawn(move || fetch(agent, url)))
            })
            .collect();
        asks.into_iter()
            .map(|(url, ask)| {
                let answer = ask
                    .join()
                    .unwrap_or_else(|_| bail!("the request to {url} panicked"));
                (url, answer)
            })
            .collect()
    })
}

/// The latest release `url` answers; `None` when the repository has none (HTTP 404).
fn fetch(agent: &ureq::Agent, url: &str) -> Result<Option<Release>> {
    let mut response = agent
        .get(url)
        .header("Accept", "application/vnd.github+json")
        .call()
        .with_context(|| format!("GET {url}"))?;
    match response.status().as_u16() {
        200 => {}
        404 => return Ok(None),
        status => bail!("GET {url}: HTTP {status}"),
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .with_context(|| format!("GET {url}: reading the answer"))?;
    Ok(parse_latest_release(url, &body)?)
}

/// `$XDG_STATE_HOME/kopia-notifier/releases.json` (XDG's default `~/.local/state`).
fn state_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/state")))?;
    Some(base.join("kopia-notifier").join("releases.json"))
}

/// Writes the cache whole (a temporary file renamed over it), readable by its owner only.
fn save(path: &Path, cache: &ReleaseCache) -> Result<()> {
    let dir = path.parent().expect("the state file has a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let temporary = path.with_extension(format!("json.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        file.write_all(cache.to_text().as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().with_context(|| format!("writing {}", path.display()))
}

/// The installed Kopia's version, as `kopia --version` prints it first (`v0.23.1`).
fn installed_kopia() -> Result<String> {
    let binary = kopia_binary().context("no kopia on PATH or from KopiaUI")?;
    let output = std::process::Command::new(&binary)
        .arg("--version")
        .env("KOPIA_CHECK_FOR_UPDATES", "false")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .map(str::to_string)
        .with_context(|| format!("{} --version printed nothing", binary.display()))
}

/// `KOPIA_BIN`, else the first `kopia` on `PATH`, else KopiaUI's bundled one.
fn kopia_binary() -> Option<PathBuf> {
    if let Some(binary) = std::env::var_os("KOPIA_BIN") {
        return Some(binary.into());
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("kopia"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(KOPIAUI_BINARIES.iter().map(PathBuf::from))
        .find(|candidate| candidate.is_file())
}
