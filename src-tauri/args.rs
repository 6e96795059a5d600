//! The command line of the tray app: `--demo`, `--hidden`, `--data-dir DIR`.
//! Parsing only; what the flags do is decided in `lib.rs`.

use std::path::PathBuf;

pub const USAGE: &str = "\
Usage: kopia-notifier [--demo] [--hidden] [--data-dir DIR]

  --demo           create and watch a demo repository with a few notifications
  --hidden         start in the tray without opening the window (used at login)
  --data-dir DIR   keep the app's state in DIR (default: $XDG_DATA_HOME/kopia-notifier;
                   also KOPIA_NOTIFIER_DATA_DIR)
";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    pub demo: bool,
    pub hidden: bool,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--demo" => options.demo = true,
            "--hidden" => options.hidden = true,
            "--data-dir" => {
                let dir = args.next().ok_or("--data-dir needs a directory")?;
                options.data_dir = Some(PathBuf::from(dir));
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            other => match other.strip_prefix("--data-dir=") {
                Some(dir) if !dir.is_empty() => options.data_dir = Some(PathBuf::from(dir)),
                _ => return Err(format!("unknown argument {other:?}")),
            },
        }
    }
    Ok(Parsed::Run(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn no_arguments_run_with_defaults() {
        assert_eq!(parse_strs(&[]), Ok(Parsed::Run(Options::default())));
    }

    #[test]
    fn flags_and_data_dir_in_both_spellings() {
        let expected = Options {
            demo: true,
            hidden: true,
            data_dir: Some(PathBuf::from("/tmp/x")),
        };
        assert_eq!(
            parse_strs(&["--demo", "--hidden", "--data-dir", "/tmp/x"]),
            Ok(Parsed::Run(expected.clone()))
        );
        assert_eq!(
            parse_strs(&["--data-dir=/tmp/x", "--hidden", "--demo"]),
            Ok(Parsed::Run(expected))
        );
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(parse_strs(&["--help"]), Ok(Parsed::Help));
        assert!(parse_strs(&["--data-dir"]).is_err());
        assert!(parse_strs(&["--data-dir="]).is_err());
        assert!(parse_strs(&["--bogus"]).unwrap_err().contains("--bogus"));
    }
}
