//! Where KopiaUI keeps its repository configs, as a pure function of the platform, the
//! environment and which directories exist, so that every platform's layout is tested on any.
//!
//! KopiaUI (Kopia's `app/public/config.js`, `globalConfigDir`) takes the first existing of its
//! portable directories — `$KOPIA_UI_PORTABLE_CONFIG_DIR`, then a `repositories` directory
//! beside its executable or one level up (on macOS: beside `KopiaUI.app`) — and otherwise
//! Electron's `appData` joined with `kopia`. `app/public/electron.js` sets `appData` to
//! `$KOPIA_CUSTOM_APPDATA` when that is set; Electron's own is `%APPDATA%` on Windows,
//! `~/Library/Application Support` on macOS and `$XDG_CONFIG_HOME` or `~/.config` elsewhere.
//! So on Windows the first repository's config is `%APPDATA%\kopia\repository.config`, the
//! CLI's default config. Paths are joined and normalized as Node's `path` does.

/// The platforms whose KopiaUI layout differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Windows,
    MacOs,
    /// Linux and the other Unix systems.
    Unix,
}

impl Platform {
    /// The platform this program runs on.
    pub fn current() -> Platform {
        if cfg!(windows) {
            Platform::Windows
        } else if cfg!(target_os = "macos") {
            Platform::MacOs
        } else {
            Platform::Unix
        }
    }

    fn separator(self) -> char {
        match self {
            Platform::Windows => '\\',
            _ => '/',
        }
    }

    fn is_separator(self, c: char) -> bool {
        c == '/' || (self == Platform::Windows && c == '\\')
    }

    /// The directories KopiaUI's installers put its executable in (electron-builder's
    /// defaults: the per-user NSIS directory, the deb/rpm `/opt` directory, the app bundle).
    pub fn install_dirs(self, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
        match self {
            Platform::Windows => env("LOCALAPPDATA")
                .filter(|v| !v.is_empty())
                .map(|local| vec![self.join(&[&local, "Programs", "KopiaUI"])])
                .unwrap_or_default(),
            Platform::MacOs => vec!["/Applications/KopiaUI.app/Contents/MacOS".into()],
            Platform::Unix => vec!["/opt/KopiaUI".into()],
        }
    }

    /// Node's `path.join`: non-empty parts joined with the separator, then normalized.
    fn join(self, parts: &[&str]) -> String {
        let joined: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
        self.normalize(&joined.join(&self.separator().to_string()))
    }

    /// Node's `path.normalize`: one separator between elements, `.` dropped, `..` resolved
    /// lexically, a trailing separator kept; on Windows a drive or `\\server\share` prefix.
    fn normalize(self, path: &str) -> String {
        if path.is_empty() {
            return ".".into();
        }
        let (prefix, rest) = self.split_prefix(path);
        let rooted = rest.starts_with(|c| self.is_separator(c));
        let trailing = rest.ends_with(|c| self.is_separator(c));
        let mut elements: Vec<&str> = Vec::new();
        for element in rest.split(|c| self.is_separator(c)) {
            match element {
                "" | "." => {}
                ".." if elements.last().is_some_and(|last| *last != "..") => {
                    elements.pop();
                }
                ".." if rooted => {}
                other => elements.push(other),
            }
        }
        let sep = self.separator().to_string();
        let mut out = prefix.replace('/', &sep);
        if rooted {
            out.push_str(&sep);
        }
        out.push_str(&elements.join(&sep));
        if trailing && !elements.is_empty() {
            out.push_str(&sep);
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }

    /// A Windows drive (`C:`) or UNC (`\\server\share`) prefix and the rest.
    fn split_prefix(self, path: &str) -> (&str, &str) {
        if self != Platform::Windows {
            return ("", path);
        }
        let bytes = path.as_bytes();
        if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
            return path.split_at(2);
        }
        let mut chars = path.char_indices();
        let starts_unc = matches!(
            (chars.next(), chars.next()),
            (Some((_, a)), Some((_, b))) if self.is_separator(a) && self.is_separator(b)
        );
        if starts_unc {
            let mut separators = 0;
            for (i, c) in path.char_indices().skip(2) {
                if self.is_separator(c) {
                    separators += 1;
                    if separators == 2 {
                        return path.split_at(i);
                    }
                }
            }
            return (path, "");
        }
        ("", path)
    }
}

/// Electron's `appData` as KopiaUI sees it; `None` when the environment names no home.
fn app_data(platform: Platform, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(custom) = var("KOPIA_CUSTOM_APPDATA") {
        return Some(custom);
    }
    match platform {
        Platform::Windows => var("APPDATA"),
        Platform::MacOs => {
            var("HOME").map(|home| platform.join(&[&home, "Library", "Application Support"]))
        }
        Platform::Unix => var("XDG_CONFIG_HOME")
            .or_else(|| var("HOME").map(|home| platform.join(&[&home, ".config"]))),
    }
}

/// KopiaUI's portable config directories for an executable in `exe_dir`, in the order it
/// tries them.
fn portable_dirs(platform: Platform, exe_dir: &str) -> Vec<String> {
    match platform {
        // The executable is KopiaUI.app/Contents/MacOS/KopiaUI.
        Platform::MacOs => vec![platform.join(&[exe_dir, "..", "..", "..", "repositories"])],
        _ => vec![
            platform.join(&[exe_dir, "repositories"]),
            platform.join(&[exe_dir, "..", "repositories"]),
        ],
    }
}

/// KopiaUI's config directory on `platform`: the first of its portable directories that
/// `is_dir` (for an executable in any of `exe_dirs`), else `<appData>/kopia`; `None` when the
/// environment gives no appData.
pub fn config_dir(
    platform: Platform,
    env: &dyn Fn(&str) -> Option<String>,
    exe_dirs: &[String],
    is_dir: &dyn Fn(&str) -> bool,
) -> Option<String> {
    let mut portable: Vec<String> = env("KOPIA_UI_PORTABLE_CONFIG_DIR")
        .filter(|v| !v.is_empty())
        .map(|dir| platform.normalize(&dir))
        .into_iter()
        .collect();
    for exe_dir in exe_dirs {
        portable.extend(portable_dirs(platform, exe_dir));
    }
    if let Some(found) = portable.into_iter().find(|dir| is_dir(dir)) {
        return Some(found);
    }
    app_data(platform, env).map(|app_data| platform.join(&[&app_data, "kopia"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn windows_uses_appdata_and_the_per_user_install() {
        let windows = env(&[
            ("APPDATA", r"C:\Users\me\AppData\Roaming"),
            ("LOCALAPPDATA", r"C:\Users\me\AppData\Local"),
        ]);
        let installs = Platform::Windows.install_dirs(&windows);
        assert_eq!(installs, [r"C:\Users\me\AppData\Local\Programs\KopiaUI"]);
        assert_eq!(
            config_dir(Platform::Windows, &windows, &installs, &none).unwrap(),
            r"C:\Users\me\AppData\Roaming\kopia"
        );
        // A `repositories` directory beside KopiaUI.exe makes it portable.
        let portable = r"C:\Users\me\AppData\Local\Programs\KopiaUI\repositories";
        assert_eq!(
            config_dir(Platform::Windows, &windows, &installs, &|d| d == portable).unwrap(),
            portable
        );
        let one_up = r"C:\Users\me\AppData\Local\Programs\repositories";
        assert_eq!(
            config_dir(Platform::Windows, &windows, &installs, &|d| d == one_up).unwrap(),
            one_up
        );
        // Forward slashes and a UNC share, as Node normalizes them.
        let share = env(&[("APPDATA", "//server/profiles/me/Roaming/")]);
        assert_eq!(
            config_dir(Platform::Windows, &share, &[], &none).unwrap(),
            r"\\server\profiles\me\Roaming\kopia"
        );
        assert_eq!(config_dir(Platform::Windows, &env(&[]), &[], &none), None);
    }

    #[test]
    fn the_environment_overrides_come_first() {
        let both = env(&[
            ("APPDATA", r"C:\Roaming"),
            ("KOPIA_CUSTOM_APPDATA", r"D:\kopia-data\"),
            ("KOPIA_UI_PORTABLE_CONFIG_DIR", r"E:/stick/./configs"),
        ]);
        assert_eq!(
            config_dir(Platform::Windows, &both, &[], &none).unwrap(),
            r"D:\kopia-data\kopia"
        );
        assert_eq!(
            config_dir(Platform::Windows, &both, &[], &|d| d == r"E:\stick\configs").unwrap(),
            r"E:\stick\configs"
        );
    }

    #[test]
    fn macos_and_unix_layouts() {
        let home = env(&[("HOME", "/Users/me")]);
        let installs = Platform::MacOs.install_dirs(&home);
        assert_eq!(
            config_dir(Platform::MacOs, &home, &installs, &none).unwrap(),
            "/Users/me/Library/Application Support/kopia"
        );
        assert_eq!(
            config_dir(Platform::MacOs, &home, &installs, &|d| d
                == "/Applications/repositories")
            .unwrap(),
            "/Applications/repositories"
        );
        let linux = env(&[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "")]);
        let installs = Platform::Unix.install_dirs(&linux);
        assert_eq!(
            config_dir(Platform::Unix, &linux, &installs, &none).unwrap(),
            "/home/me/.config/kopia"
        );
        assert_eq!(
            config_dir(Platform::Unix, &linux, &installs, &|d| d
                == "/opt/KopiaUI/repositories")
            .unwrap(),
            "/opt/KopiaUI/repositories"
        );
        let xdg = env(&[("HOME", "/home/me"), ("XDG_CONFIG_HOME", "/cfg")]);
        assert_eq!(
            config_dir(Platform::Unix, &xdg, &[], &none).unwrap(),
            "/cfg/kopia"
        );
    }

    #[test]
    fn node_normalization() {
        assert_eq!(Platform::Unix.normalize("/a//b/./c/../d/"), "/a/b/d/");
        assert_eq!(Platform::Unix.normalize("../a/.."), "..");
        assert_eq!(Platform::Unix.normalize("/.."), "/");
        assert_eq!(Platform::Windows.normalize(r"C:/x\..\y"), r"C:\y");
        assert_eq!(Platform::Windows.normalize(""), ".");
    }
}
