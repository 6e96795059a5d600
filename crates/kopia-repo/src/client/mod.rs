//! Kopia's client side (§10): where `repository.config` files live, what we read from them and
//! where Kopia keeps repository passwords (environment, OS keyring, password file).
//! It does not connect to repositories nor talk to a Kopia server.

mod config;
mod keyring;
mod kopia_ui;
mod password;

use std::path::{Path, PathBuf};

pub use config::{load, parse_config, ClientConfig, ReadOnlyReason};
pub use keyring::{
    delete_secret, keyring_item_id, keyring_username, read_keyring_password, read_secret,
    store_password_in_keyring, store_secret,
};
pub use password::{
    decode_password_file, password_file_path, resolve_password, resolve_password_from,
    resolve_password_with_source, Password, PasswordSource,
};

/// Kopia's default config file name (flag `--config-file`, env `KOPIA_CONFIG_PATH`).
pub const DEFAULT_CONFIG_FILE_NAME: &str = "repository.config";
/// Extension of the configs KopiaUI manages, one per repository.
const CONFIG_FILE_EXTENSION: &str = "config";

/// Kopia's config directory: `<user settings dir>/kopia`, as Kopia's `ospath` computes it
/// (Linux: `$XDG_CONFIG_HOME` or `$HOME/.config`; macOS: `$HOME/Library/Application Support`;
/// Windows: `%APPDATA%`).
pub fn kopia_config_dir() -> PathBuf {
    PathBuf::from(config_dir_from_env(&|name| std::env::var(name).ok()))
}

/// [`kopia_config_dir`] from an explicit environment, as the string Kopia builds.
fn config_dir_from_env(env: &dyn Fn(&str) -> Option<String>) -> String {
    let var = |name: &str| env(name).unwrap_or_default();
    let settings_dir = if cfg!(windows) {
        var("APPDATA")
    } else if cfg!(target_os = "macos") {
        go_join(&[&var("HOME"), "Library", "Application Support"])
    } else if cfg!(target_os = "openbsd") {
        go_join(&[&var("HOME"), ".config"])
    } else {
        match env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(xdg) => xdg,
            None => go_join(&[&var("HOME"), ".config"]),
        }
    };
    go_join(&[&settings_dir, "kopia"])
}

/// The config file the Kopia CLI uses by default: `$KOPIA_CONFIG_PATH`, else
/// `repository.config`, a bare file name being placed in [`kopia_config_dir`]. The string is
/// the one Kopia hashes for its keyring entry, so it is not made absolute.
pub fn default_config_path() -> PathBuf {
    let value = std::env::var("KOPIA_CONFIG_PATH")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_CONFIG_FILE_NAME.to_string());
    resolve_config_path(&value, &kopia_config_dir())
}

/// Kopia's rule for `--config-file`: a path with a directory part (absolute or relative) is
/// used as given; a bare file name is joined to `config_dir`.
pub fn resolve_config_path(value: &str, config_dir: &Path) -> PathBuf {
    if go_base(value) != value {
        return PathBuf::from(value);
    }
    PathBuf::from(go_join(&[&config_dir.to_string_lossy(), value]))
}

/// The repository configs a user of Kopia has: the CLI's default config, then every
/// `*.config` of KopiaUI's config directory (`repository.config` first, then by name).
/// Only existing files are returned.
pub fn discover_config_files() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let cli_default = default_config_path();
    if cli_default.is_file() {
        found.push(cli_default);
    }
    for path in config_files_in(&kopia_ui_config_dir()) {
        if !found.contains(&path) {
            found.push(path);
        }
    }
    found
}

/// KopiaUI's config directory ([`kopia_ui::config_dir`] for this machine: a portable
/// directory, else `<appData>/kopia`), the CLI's directory when the environment names no home.
fn kopia_ui_config_dir() -> PathBuf {
    let env = |name: &str| std::env::var(name).ok();
    let platform = kopia_ui::Platform::current();
    let installs = platform.install_dirs(&env);
    kopia_ui::config_dir(platform, &env, &installs, &|dir| Path::new(dir).is_dir())
        .map(PathBuf::from)
        .unwrap_or_else(kopia_config_dir)
}

/// Every `*.config` file of `dir`, `repository.config` first, the rest sorted by name
/// (KopiaUI names them `repository-<milliseconds>.config`, so that is creation order).
pub fn config_files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_type()
                .is_ok_and(|t| t.is_file() || t.is_symlink())
        })
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| {
            // Node's extname: ".config" alone is a dot-file without extension.
            name.rsplit_once('.')
                .is_some_and(|(stem, ext)| !stem.is_empty() && ext == CONFIG_FILE_EXTENSION)
        })
        .collect();
    names.sort_by_key(|name| (name != DEFAULT_CONFIG_FILE_NAME, name.clone()));
    let dir = dir.to_string_lossy();
    names
        .iter()
        .map(|name| PathBuf::from(go_join(&[&dir, name])))
        .collect()
}

const SEPARATOR: char = std::path::MAIN_SEPARATOR;

fn is_separator(c: char) -> bool {
    c == '/' || (cfg!(windows) && c == '\\')
}

/// Length of a Windows volume prefix (`C:` or `\\host\share`); 0 elsewhere.
fn volume_length(path: &str) -> usize {
    if !cfg!(windows) {
        return 0;
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return 2;
    }
    if bytes.len() >= 2 && is_separator(bytes[0] as char) && is_separator(bytes[1] as char) {
        // \\host\share: the volume runs to the separator after the share name.
        let mut separators = 0;
        for (i, c) in path.char_indices().skip(2) {
            if is_separator(c) {
                separators += 1;
                if separators == 2 {
                    return i;
                }
            }
        }
        return path.len();
    }
    0
}

/// Go's `filepath.Base`: the last element, trailing separators ignored ("." for "").
fn go_base(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let path = &path[volume_length(path)..];
    let trimmed = path.trim_end_matches(is_separator);
    if trimmed.is_empty() {
        return SEPARATOR.to_string();
    }
    match trimmed.rfind(is_separator) {
        Some(i) => trimmed[i + 1..].to_string(),
        None => trimmed.to_string(),
    }
}

/// Go's `filepath.Join`: non-empty elements joined with the separator, then cleaned.
fn go_join(parts: &[&str]) -> String {
    let joined: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if joined.is_empty() {
        return String::new();
    }
    go_clean(&joined.join(&SEPARATOR.to_string()))
}

/// Go's `filepath.Clean`: one separator between elements, no `.` elements, `..` resolved
/// lexically, no trailing separator.
fn go_clean(path: &str) -> String {
    let volume_end = volume_length(path);
    let (volume, rest) = path.split_at(volume_end);
    let volume = if cfg!(windows) {
        volume.replace('/', "\\")
    } else {
        volume.to_string()
    };
    let rooted = rest.starts_with(is_separator);
    let mut elements: Vec<&str> = Vec::new();
    for element in rest.split(is_separator) {
        match element {
            "" | "." => {}
            ".." => {
                if elements.last().is_some_and(|last| *last != "..") {
                    elements.pop();
                } else if !rooted {
                    elements.push("..");
                }
            }
            other => elements.push(other),
        }
    }
    let mut cleaned = volume;
    if rooted {
        cleaned.push(SEPARATOR);
    }
    cleaned.push_str(&elements.join(&SEPARATOR.to_string()));
    if cleaned.is_empty() {
        cleaned.push('.');
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(unix, not(target_os = "macos"), not(target_os = "openbsd")))]
    #[test]
    fn linux_config_dir_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            config_dir_from_env(&env(&[("HOME", "/home/me")])),
            "/home/me/.config/kopia"
        );
        assert_eq!(
            config_dir_from_env(&env(&[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "/cfg/")])),
            "/cfg/kopia"
        );
        assert_eq!(
            config_dir_from_env(&env(&[("HOME", "/home/me/"), ("XDG_CONFIG_HOME", "")])),
            "/home/me/.config/kopia"
        );
        assert_eq!(config_dir_from_env(&env(&[])), ".config/kopia");
    }

    #[cfg(unix)]
    #[test]
    fn config_path_resolution_like_the_cli() {
        let dir = Path::new("/home/me/.config/kopia");
        assert_eq!(
            resolve_config_path("repository.config", dir),
            Path::new("/home/me/.config/kopia/repository.config")
        );
        assert_eq!(
            resolve_config_path("other.config", dir),
            Path::new("/home/me/.config/kopia/other.config")
        );
        // A directory part, even relative, means "as given" (not made absolute).
        assert_eq!(
            resolve_config_path("./x.config", dir),
            Path::new("./x.config")
        );
        assert_eq!(
            resolve_config_path("/etc/k.config", dir),
            Path::new("/etc/k.config")
        );
        assert_eq!(resolve_config_path("sub/", dir), Path::new("sub/"));
    }

    #[cfg(unix)]
    #[test]
    fn go_path_helpers() {
        assert_eq!(go_base("/a/b/repository.config"), "repository.config");
        assert_eq!(go_base("repository.config"), "repository.config");
        assert_eq!(go_base("a/"), "a");
        assert_eq!(go_base("/"), "/");
        assert_eq!(go_base(""), ".");
        assert_eq!(go_clean("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(go_clean("../a/.."), "..");
        assert_eq!(go_clean("/.."), "/");
        assert_eq!(go_clean(""), ".");
        assert_eq!(go_join(&["", ".config"]), ".config");
        assert_eq!(
            go_join(&["/x/", "kopia", "repository.config"]),
            "/x/kopia/repository.config"
        );
    }

    #[test]
    fn config_files_order_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "repository-1700000000000.config",
            "repository.config",
            "repository.config.kopia-password",
            "repository.config.mlock",
            ".config",
            "repository-1600000000000.config",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("dir.config")).unwrap();
        let names: Vec<String> = config_files_in(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec![
                "repository.config",
                "repository-1600000000000.config",
                "repository-1700000000000.config"
            ]
        );
        assert!(config_files_in(&dir.path().join("missing")).is_empty());
    }
}
