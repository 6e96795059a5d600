//! The after-command notice about pending notifications (`--notifications=hidden|summary|details`,
//! environment `KOPIA_NOTIFICATIONS`) and its exit-code rule. The texts and the rule are pure
//! functions; [`after_command`] is the one place that reads the repository and prints.

use std::io::{IsTerminal, Write};

use chrono::{DateTime, TimeZone, Utc};
use clap::{Args, ValueEnum};
use kopia_notifications::{Identity, Inbox, Notifications, PendingCounts};

use crate::notification_commands::{count, render_show, NotificationRepository};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum NotificationsMode {
    /// Say nothing, and leave the exit code alone.
    Hidden,
    /// One line on standard error.
    #[default]
    Summary,
    /// Every pending notification in full on standard error, then the summary line.
    Details,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// What to print about pending notifications after the command.
    #[arg(
        long = "notifications",
        env = "KOPIA_NOTIFICATIONS",
        value_enum,
        default_value_t = NotificationsMode::Summary,
        global = true,
        value_name = "MODE"
    )]
    pub mode: NotificationsMode,
}

/// Exit code when pending warnings or errors are the only reason to fail.
pub const EXIT_PENDING_PROBLEMS: u8 = 1;

const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";

/// `NOTICE: There are 3 pending notifications including 1 warning and 2 errors. To read them
/// use kopia-notify list.`, singular forms for one, no `including` part when all are normal;
/// `None` when nothing is pending.
pub fn summary_line(counts: &PendingCounts) -> Option<String> {
    let (verb, noun, them) = match counts.total {
        0 => return None,
        1 => ("is", "notification", "it"),
        _ => ("are", "notifications", "them"),
    };
    let mut problems = Vec::new();
    if counts.warnings > 0 {
        problems.push(count(counts.warnings, "warning"));
    }
    if counts.errors > 0 {
        problems.push(count(counts.errors, "error"));
    }
    let including = if problems.is_empty() {
        String::new()
    } else {
        format!(" including {}", problems.join(" and "))
    };
    Some(format!(
        "NOTICE: There {verb} {} pending {noun}{including}. To read {them} use kopia-notify list.",
        counts.total
    ))
}

/// The summary line, red when there are pending errors and `color` is allowed.
pub fn render_summary(counts: &PendingCounts, color: bool) -> Option<String> {
    let line = summary_line(counts)?;
    Some(if color && counts.errors > 0 {
        format!("{RED}{line}{RESET}")
    } else {
        line
    })
}

/// Everything the mode prints on standard error after the command (empty when nothing).
pub fn render_report<Tz: TimeZone>(
    mode: NotificationsMode,
    inbox: &Inbox,
    who: &Identity,
    now: DateTime<Utc>,
    tz: &Tz,
    color: bool,
) -> String {
    let counts = inbox.counts(who, now);
    let Some(line) = render_summary(&counts, color) else {
        return String::new();
    };
    match mode {
        NotificationsMode::Hidden => String::new(),
        NotificationsMode::Summary => format!("{line}\n"),
        NotificationsMode::Details => {
            let mut text = String::new();
            for notification in inbox.pending(who, now) {
                if let Ok(details) = inbox.details(&notification.id, who, now) {
                    text.push_str(&render_show(&details, tz));
                    text.push('\n');
                }
            }
            text.push_str(&line);
            text.push('\n');
            text
        }
    }
}

/// The exit code after the notice: the command's own failure wins; otherwise pending
/// warnings or errors make it 1, unless the user chose `hidden`.
pub fn exit_code(command_code: u8, mode: NotificationsMode, counts: &PendingCounts) -> u8 {
    if command_code != 0 {
        command_code
    } else if mode != NotificationsMode::Hidden && counts.warnings + counts.errors > 0 {
        EXIT_PENDING_PROBLEMS
    } else {
        0
    }
}

/// Red only for a person: standard error is a terminal and `NO_COLOR` is not set.
pub fn stderr_wants_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints the notice for `who` on `err` and returns the final exit code. If the repository
/// cannot be read, says so and keeps the command's code: the notice never fails a command.
pub fn after_command(
    mode: NotificationsMode,
    repository: &mut dyn NotificationRepository,
    who: &Identity,
    now: DateTime<Utc>,
    command_code: u8,
    err: &mut dyn Write,
) -> u8 {
    if mode == NotificationsMode::Hidden {
        return command_code;
    }
    let inbox = repository
        .manifests()
        .and_then(|store| Ok(Notifications::new(store).inbox()?));
    match inbox {
        Ok(inbox) => {
            let report =
                render_report(mode, &inbox, who, now, &chrono::Local, stderr_wants_color());
            // A closed stderr must not change the outcome.
            let _ = err.write_all(report.as_bytes());
            exit_code(command_code, mode, &inbox.counts(who, now))
        }
        Err(error) => {
            let _ = writeln!(
                err,
                "kopia-notify: cannot check for pending notifications: {}",
                crate::output::one_line(&error)
            );
            command_code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use kopia_notifications::{Draft, ManifestAccess, MemoryStore, Origin, Recipient, Severity};

    fn counts(total: usize, warnings: usize, errors: usize) -> PendingCounts {
        PendingCounts {
            total,
            warnings,
            errors,
        }
    }

    #[test]
    fn summary_lines() {
        assert_eq!(summary_line(&counts(0, 0, 0)), None);
        assert_eq!(
            summary_line(&counts(3, 1, 2)).unwrap(),
            "NOTICE: There are 3 pending notifications including 1 warning and 2 errors. To read them use kopia-notify list."
        );
        assert_eq!(
            summary_line(&counts(2, 0, 0)).unwrap(),
            "NOTICE: There are 2 pending notifications. To read them use kopia-notify list."
        );
        assert_eq!(
            summary_line(&counts(1, 0, 0)).unwrap(),
            "NOTICE: There is 1 pending notification. To read it use kopia-notify list."
        );
        assert_eq!(
            summary_line(&counts(1, 0, 1)).unwrap(),
            "NOTICE: There is 1 pending notification including 1 error. To read it use kopia-notify list."
        );
        assert_eq!(
            summary_line(&counts(4, 2, 0)).unwrap(),
            "NOTICE: There are 4 pending notifications including 2 warnings. To read them use kopia-notify list."
        );
    }

    #[test]
    fn red_only_with_errors_and_color() {
        let line = render_summary(&counts(1, 0, 1), true).unwrap();
        assert!(line.starts_with("\x1b[31mNOTICE:") && line.ends_with("\x1b[0m"));
        assert!(!render_summary(&counts(1, 0, 1), false)
            .unwrap()
            .contains('\x1b'));
        assert!(!render_summary(&counts(1, 1, 0), true)
            .unwrap()
            .contains('\x1b'));
    }

    #[test]
    fn exit_codes() {
        use NotificationsMode::*;
        assert_eq!(exit_code(0, Summary, &counts(0, 0, 0)), 0);
        assert_eq!(exit_code(0, Summary, &counts(2, 0, 0)), 0);
        assert_eq!(exit_code(0, Summary, &counts(1, 1, 0)), 1);
        assert_eq!(exit_code(0, Details, &counts(1, 0, 1)), 1);
        assert_eq!(exit_code(0, Hidden, &counts(1, 0, 1)), 0);
        assert_eq!(exit_code(3, Summary, &counts(1, 0, 1)), 3);
        assert_eq!(exit_code(2, Hidden, &counts(0, 0, 0)), 2);
    }

    struct Repo(MemoryStore);

    impl NotificationRepository for Repo {
        fn manifests(&mut self) -> anyhow::Result<&mut dyn ManifestAccess> {
            Ok(&mut self.0)
        }
    }

    struct Unreachable;

    impl NotificationRepository for Unreachable {
        fn manifests(&mut self) -> anyhow::Result<&mut dyn ManifestAccess> {
            anyhow::bail!("repository unreachable")
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 5, 19, 10, 0, 0).unwrap()
    }

    #[test]
    fn reports_by_mode() {
        let alice: Identity = "alice@laptop".parse().unwrap();
        let mut repo = Repo(MemoryStore::new());
        let origin = Origin {
            user: alice.clone(),
            command: None,
        };
        let mut service = Notifications::new(&mut repo.0);
        service
            .send(
                &Draft::new(
                    Severity::Error,
                    Recipient::All,
                    "Maintenance failed on SOME_MACHINE",
                    origin.clone(),
                ),
                t0(),
            )
            .unwrap();
        service
            .send(
                &Draft::new(
                    Severity::Normal,
                    Recipient::All,
                    "Upgrade available",
                    origin,
                ),
                t0(),
            )
            .unwrap();
        let inbox = service.inbox().unwrap();
        let now = t0() + Duration::minutes(5);
        let summary = "NOTICE: There are 2 pending notifications including 1 error. To read them use kopia-notify list.\n";
        assert_eq!(
            render_report(NotificationsMode::Summary, &inbox, &alice, now, &Utc, false),
            summary
        );
        assert_eq!(
            render_report(NotificationsMode::Hidden, &inbox, &alice, now, &Utc, false),
            ""
        );
        let details = render_report(NotificationsMode::Details, &inbox, &alice, now, &Utc, false);
        assert!(
            details.contains("\nMaintenance failed on SOME_MACHINE\n"),
            "{details}"
        );
        assert!(details.contains("\nUpgrade available\n"), "{details}");
        assert!(details.ends_with(summary), "{details}");

        let mut err = Vec::new();
        assert_eq!(
            after_command(
                NotificationsMode::Summary,
                &mut repo,
                &alice,
                now,
                0,
                &mut err
            ),
            1
        );
        assert_eq!(
            after_command(
                NotificationsMode::Summary,
                &mut repo,
                &alice,
                now,
                5,
                &mut err
            ),
            5
        );
        assert_eq!(
            after_command(
                NotificationsMode::Hidden,
                &mut repo,
                &alice,
                now,
                0,
                &mut err
            ),
            0
        );
        // Once expired, nothing is pending: no notice and no failure.
        let mut quiet = Vec::new();
        let later = t0() + Duration::days(31);
        assert_eq!(
            after_command(
                NotificationsMode::Summary,
                &mut repo,
                &alice,
                later,
                0,
                &mut quiet
            ),
            0
        );
        assert!(quiet.is_empty());

        let mut err = Vec::new();
        assert_eq!(
            after_command(
                NotificationsMode::Summary,
                &mut Unreachable,
                &alice,
                now,
                0,
                &mut err
            ),
            0
        );
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "kopia-notify: cannot check for pending notifications: repository unreachable\n"
        );
    }

    #[test]
    fn details_report_is_inert() {
        let alice: Identity = "alice@laptop".parse().unwrap();
        let mut repo = Repo(MemoryStore::new());
        let payload = serde_json::json!({
            "schemaVersion": 1,
            "title": "invoice\u{202e}fdp.exe",
            "message": "\u{1b}[2J\u{1b}]8;;https://evil.example/\u{7}x\u{1b}]8;;\u{7}",
            "created": "2022-05-19T09:00:00Z",
        });
        repo.0.insert_raw(
            "0123456789abcdef0123456789abcdef",
            &[
                ("type", "notification"),
                ("severity", "error"),
                ("recipient", "*"),
            ],
            &payload.to_string(),
        );
        let inbox = Notifications::new(&mut repo.0).inbox().unwrap();
        let report = render_report(
            NotificationsMode::Details,
            &inbox,
            &alice,
            t0(),
            &Utc,
            false,
        );
        for c in report.chars() {
            assert!(
                c == '\n' || !kopia_notifications::inert::is_unsafe(c),
                "raw {c:?} in {report}"
            );
        }
        assert!(report.contains("\ninvoice\\u{202e}fdp.exe\n"), "{report}");
        assert!(
            report.contains("\\x1b[2J\\x1b]8;;https://evil.example/\\x07x"),
            "{report}"
        );
    }
}
