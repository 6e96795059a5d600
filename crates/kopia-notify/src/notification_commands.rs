//! `kopia-notify list|show|ack|send|run|gc`: argument parsing, printing and exit codes over the
//! kopia-notifications service. The rules live in that crate; opening the repository and finding
//! the current identity are the caller's (see [`NotificationRepository`] and [`Session`]).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use crate::send_batch;
use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Offset, TimeZone, Utc};
use clap::{ArgGroup, Args, Subcommand};
use kopia_notifications::duration::parse_duration;
use kopia_notifications::health::check::run_unreadable;
use kopia_notifications::inbox::{GcPlan, NotificationDetails};
use kopia_notifications::inert;
use kopia_notifications::schema::limits;
use kopia_notifications::{
    AckOutcome, Draft, Identity, Inbox, InboxItem, ListOptions, ManifestAccess, Notifications,
    Origin, Recipient, Severity, SnapshotSource, SourceKind, Status,
};

/// The repository, opened on first use: `run` must start its command even when the
/// repository cannot be reached, and only needs it if the command fails.
pub trait NotificationRepository {
    fn manifests(&mut self) -> Result<&mut dyn ManifestAccess>;
}

/// What every notification command needs besides its arguments.
pub struct Session<'a> {
    pub repository: &'a mut dyn NotificationRepository,
    /// The current `user@host` (Kopia client config, the OS, or `--as`).
    pub identity: Identity,
    /// Read when a command needs the time, so tests can fix it.
    pub clock: &'a dyn Fn() -> DateTime<Utc>,
}

#[derive(Subcommand)]
pub enum NotificationCommand {
    /// List pending notifications, oldest first.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show one notification in full, with who acknowledged it.
    Show(ShowArgs),
    /// Acknowledge notifications, so that they are no longer pending for you.
    Ack(AckArgs),
    /// Write a notification into the repository; prints its ID.
    Send(SendArgs),
    /// Run a command; if it fails, write an error notification about it.
    Run(RunArgs),
    /// Delete expired notifications and acknowledgements nobody needs.
    Gc(GcArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Also acknowledged and expired notifications, marked as such.
    #[arg(long)]
    all: bool,
    /// Acknowledge the listed pending notifications after printing them.
    #[arg(long)]
    auto_ack: bool,
    /// Only notifications at least this severe: normal, warning or error.
    #[arg(long, value_name = "SEVERITY", default_value = "normal")]
    min_severity: String,
    /// Only notifications about this snapshot source: `user@host:/path`, or `user@host` for
    /// all of its paths.
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    /// Notification ID or a unique prefix of it.
    #[arg(value_name = "ID")]
    id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).multiple(true).args(["all", "item", "ids"])))]
pub struct AckArgs {
    /// Acknowledge everything pending for you.
    #[arg(long, conflicts_with_all = ["item", "ids"])]
    all: bool,
    /// A notification ID or unique prefix (repeatable).
    #[arg(long, value_name = "ID")]
    item: Vec<String>,
    /// Notification IDs or unique prefixes.
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SendArgs {
    /// normal, warning or error.
    #[arg(long, default_value = "normal")]
    severity: String,
    /// `all` or `user@host`.
    #[arg(long, value_name = "RECIPIENT", default_value = "all")]
    to: String,
    /// One line, at most 200 characters.
    #[arg(long, required_unless_present = "batch")]
    title: Option<String>,
    /// Send many at once from JSON Lines (`-` for standard input): one object per line with
    /// `severity`, `to`, `title` and optionally `message`, `details`, `link`, `expiresIn`.
    /// Every line is checked first; then all are written in one write.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["title", "message", "details_file", "link", "expires_in", "snapshot_source"])]
    batch: Option<PathBuf>,
    #[arg(long, default_value = "")]
    message: String,
    /// Read the details from this file (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    details_file: Option<PathBuf>,
    /// An http:// or https:// link to more information.
    #[arg(long, value_name = "URL")]
    link: Option<String>,
    /// Lifetime, e.g. 7d, 12h, 2w or 1d12h (default 30d).
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
    /// snapshot, maintenance, corruption, upgrade or custom.
    #[arg(long = "source", value_name = "KIND", default_value = "custom")]
    source_kind: String,
    /// The Kopia snapshot source concerned, as `user@host:/path`.
    #[arg(long, value_name = "USER@HOST:PATH")]
    snapshot_source: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// Who is told when the command fails: none, default (you) or user@host.
    #[arg(long, value_name = "none|default|USER@HOST", default_value = "default")]
    on_error_notify: String,
    /// Lifetime of the failure notification (default 30d).
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
    /// After the command, print `{"exitCode","notification"}` on standard output.
    #[arg(long)]
    json: bool,
    /// The command and its arguments (after `--`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(Args)]
pub struct GcArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs one command; returns the exit code the command itself asks for (0, or for `run` the
/// child's). Errors are bad input or repository failures: nothing has been written.
pub fn run(
    command: NotificationCommand,
    session: &mut Session<'_>,
    out: &mut dyn Write,
    err: &mut (dyn Write + Send),
) -> Result<u8> {
    match command {
        NotificationCommand::List(args) => list(args, session, out, err).map(|()| 0),
        NotificationCommand::Show(args) => show(args, session, out).map(|()| 0),
        NotificationCommand::Ack(args) => ack(args, session, out).map(|()| 0),
        NotificationCommand::Send(args) => send(args, session, out).map(|()| 0),
        NotificationCommand::Run(args) => run_command(args, session, out, err),
        NotificationCommand::Gc(args) => gc(args, session, out).map(|()| 0),
    }
}

fn list(
    args: ListArgs,
    session: &mut Session<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let options = ListOptions {
        all: args.all,
        min_severity: args.min_severity.parse::<Severity>()?,
    };
    let now = (session.clock)();
    let manifests = session.repository.manifests()?;
    record_unreadable(manifests, &session.identity, now, err)?;
    let mut service = Notifications::new(manifests);
    let inbox = service.inbox()?;
    for problem in inbox.problems() {
        writeln!(
            err,
            "warning: skipping {}",
            inert::line(&problem.to_string())
        )?;
    }
    let mut items = inbox.list(&session.identity, now, options);
    if let Some(filter) = &args.source {
        items.retain(|item| source_matches(item.notification.snapshot_source.as_ref(), filter));
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&items)?)?;
    } else {
        out.write_all(render_list(&inbox, &items, &chrono::Local).as_bytes())?;
    }
    if args.auto_ack {
        let ids: Vec<String> = items
            .iter()
            .filter(|item| item.status == Status::Pending)
            .map(|item| item.notification.id.clone())
            .collect();
        if !ids.is_empty() {
            service.ack(&session.identity, &ids, now)?;
        }
    }
    Ok(())
}

/// Says which manifest packs could not be read, and records them as a corruption
/// notification to everyone (once per pack, as `check` and the app do) so that the damage is
/// not only seen by whoever happened to list; resolves such notifications once their packs
/// read again. A connection that cannot be written (read-only) only warns.
fn record_unreadable(
    manifests: &mut dyn ManifestAccess,
    identity: &Identity,
    now: DateTime<Utc>,
    err: &mut dyn Write,
) -> Result<()> {
    for damage in &manifests.damaged() {
        writeln!(
            err,
            "warning: listing without manifest content {} of pack {}: {}",
            inert::line(&damage.content_id),
            inert::line(&damage.pack_blob_id),
            inert::line(&damage.reason)
        )?;
    }
    let origin = Origin {
        user: identity.clone(),
        command: Some("kopia-notify list".into()),
    };
    if let Err(e) = run_unreadable(manifests, &origin, now, true) {
        writeln!(
            err,
            "warning: what the read found was not recorded in the repository: {}",
            inert::line(&e.to_string())
        )?;
    }
    Ok(())
}

fn show(args: ShowArgs, session: &mut Session<'_>, out: &mut dyn Write) -> Result<()> {
    let now = (session.clock)();
    let service = Notifications::new(session.repository.manifests()?);
    let inbox = service.inbox()?;
    let details = inbox.details(&args.id, &session.identity, now)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&details)?)?;
    } else {
        out.write_all(render_show(&details, &chrono::Local).as_bytes())?;
    }
    Ok(())
}

fn ack(args: AckArgs, session: &mut Session<'_>, out: &mut dyn Write) -> Result<()> {
    let now = (session.clock)();
    let mut service = Notifications::new(session.repository.manifests()?);
    let outcome = if args.all {
        service.ack_all(&session.identity, now)?
    } else {
        let ids: Vec<String> = args.item.into_iter().chain(args.ids).collect();
        service.ack(&session.identity, &ids, now)?
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&outcome)?)?;
    } else {
        out.write_all(render_ack(&outcome, args.all).as_bytes())?;
    }
    Ok(())
}

fn send(args: SendArgs, session: &mut Session<'_>, out: &mut dyn Write) -> Result<()> {
    let origin = Origin {
        user: session.identity.clone(),
        command: Some("kopia-notify send".to_string()),
    };
    if let Some(batch) = &args.batch {
        let now = (session.clock)();
        // Every line is checked before the repository is opened.
        let drafts = send_batch::parse_batch(&send_batch::read_batch(batch)?, &origin, now)?;
        let ids = Notifications::new(session.repository.manifests()?).send_all(&drafts, now)?;
        if args.json {
            writeln!(out, "{}", serde_json::json!({ "ids": ids }))?;
        } else {
            for id in ids {
                writeln!(out, "{id}")?;
            }
        }
        return Ok(());
    }
    // Everything is checked before the repository is opened.
    let mut draft = Draft::new(
        args.severity.parse()?,
        args.to.parse()?,
        args.title.as_deref().unwrap_or_default(),
        origin,
    );
    draft.source_kind = args.source_kind.parse()?;
    draft.message = args.message;
    draft.link = args.link;
    draft.expires_in = args.expires_in.as_deref().map(parse_duration).transpose()?;
    draft.snapshot_source = args
        .snapshot_source
        .as_deref()
        .map(parse_snapshot_source)
        .transpose()?;
    if let Some(path) = &args.details_file {
        draft.details = read_details(path)?;
    }
    let now = (session.clock)();
    draft.to_manifest(now)?;

    let id = Notifications::new(session.repository.manifests()?).send(&draft, now)?;
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "id": id }))?;
    } else {
        writeln!(out, "{id}")?;
    }
    Ok(())
}

fn read_details(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the details from standard input")?;
    } else {
        bytes = std::fs::read(path)
            .with_context(|| format!("cannot read details file {}", path.display()))?;
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("details file {} is not UTF-8 text", path.display()))
}

/// Kopia's `user@host:/path` spelling of a snapshot source.
fn parse_snapshot_source(text: &str) -> Result<SnapshotSource> {
    let parsed = text
        .split_once('@')
        .and_then(|(user, rest)| rest.split_once(':').map(|(host, path)| (user, host, path)));
    match parsed {
        Some((user, host, path)) if !user.is_empty() && !host.is_empty() && !path.is_empty() => {
            Ok(SnapshotSource {
                host: host.to_string(),
                user_name: user.to_string(),
                path: path.to_string(),
            })
        }
        _ => bail!("invalid snapshot source {text:?}: expected user@host:/path"),
    }
}

fn gc(args: GcArgs, session: &mut Session<'_>, out: &mut dyn Write) -> Result<()> {
    let now = (session.clock)();
    let plan = Notifications::new(session.repository.manifests()?).gc(now)?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?;
    } else {
        out.write_all(render_gc(&plan).as_bytes())?;
    }
    Ok(())
}

/// Exit code of a command that could not be started, as a shell reports it.
const EXIT_CANNOT_EXECUTE: u8 = 126;
const EXIT_NOT_FOUND: u8 = 127;
/// Bytes of the command's standard error kept for the notification.
const STDERR_TAIL_BYTES: usize = 16 * 1024;
/// Lines of it shown in the notification's details.
const STDERR_TAIL_LINES: usize = 40;

fn run_command(
    args: RunArgs,
    session: &mut Session<'_>,
    out: &mut dyn Write,
    err: &mut (dyn Write + Send),
) -> Result<u8> {
    // Bad options are reported before anything runs.
    let recipient = match args.on_error_notify.as_str() {
        "none" => None,
        "default" => Some(Recipient::User(session.identity.clone())),
        other => Some(other.parse::<Recipient>()?),
    };
    let expires_in = args.expires_in.as_deref().map(parse_duration).transpose()?;
    let command_line = shell_words(&args.command);

    let (exit_code, failure) = match execute(&args.command, err) {
        Ok((0, _)) => (0, None),
        Ok((code, tail)) => (code, Some(Failure::Exited { code, tail })),
        Err(error) => {
            let code = if error.kind() == std::io::ErrorKind::PermissionDenied {
                EXIT_CANNOT_EXECUTE
            } else {
                EXIT_NOT_FOUND
            };
            writeln!(err, "kopia-notify: cannot start {command_line}: {error}")?;
            (
                code,
                Some(Failure::NotStarted {
                    code,
                    error: error.to_string(),
                }),
            )
        }
    };

    let mut written = None;
    if let (Some(failure), Some(recipient)) = (failure, recipient) {
        let now = (session.clock)();
        let mut draft = failure_draft(&args.command, &failure, &session.identity, recipient, now);
        draft.expires_in = expires_in;
        let sent = session
            .repository
            .manifests()
            .and_then(|store| Ok(Notifications::new(store).send(&draft, now)?));
        // The command's own exit code matters more than our bookkeeping: report, keep it.
        match sent {
            Ok(id) => {
                if !args.json {
                    writeln!(
                        err,
                        "kopia-notify: the command failed with exit code {exit_code}; notification {id} written for {}",
                        draft.recipient.describe()
                    )?;
                }
                written = Some(id);
            }
            Err(error) => writeln!(
                err,
                "kopia-notify: could not write the failure notification: {}",
                one_line(&error)
            )?,
        }
    }
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::json!({ "exitCode": exit_code, "notification": written })
        )?;
    }
    Ok(exit_code)
}

enum Failure {
    Exited { code: u8, tail: String },
    NotStarted { code: u8, error: String },
}

/// Runs `argv` with standard input and output inherited and standard error copied to `err`
/// while its tail is kept. Returns the exit code (128 + signal when killed) and the tail.
fn execute(argv: &[String], err: &mut (dyn Write + Send)) -> std::io::Result<(u8, String)> {
    let (program, arguments) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command"))?;
    let mut child = Process::new(program)
        .args(arguments)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        let copier = scope.spawn(move || {
            let mut tail = TailBuffer::new(STDERR_TAIL_BYTES);
            if let Some(mut stderr) = stderr {
                tee(&mut stderr, err, &mut tail);
            }
            tail
        });
        let status = child.wait();
        // The copier ends when the child's stderr closes; a panic there only loses the tail.
        let tail = copier
            .join()
            .map_or_else(|_| String::new(), |tail| tail.text(STDERR_TAIL_LINES));
        status.map(|status| (exit_code_of(status), tail))
    })
}

fn tee(from: &mut dyn Read, to: &mut (dyn Write + Send), tail: &mut TailBuffer) {
    let mut buffer = [0u8; 8192];
    let mut passing_through = true;
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                tail.push(&buffer[..n]);
                // If our own stderr is gone, keep draining so the child never blocks.
                if passing_through {
                    passing_through = to.write_all(&buffer[..n]).and_then(|()| to.flush()).is_ok();
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

#[cfg(unix)]
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

#[cfg(not(unix))]
fn exit_code_of(status: std::process::ExitStatus) -> u8 {
    status.code().map_or(1, |code| code as u8)
}

/// The last `capacity` bytes written to it.
struct TailBuffer {
    bytes: VecDeque<u8>,
    capacity: usize,
    truncated: bool,
}

impl TailBuffer {
    fn new(capacity: usize) -> Self {
        TailBuffer {
            bytes: VecDeque::with_capacity(capacity),
            capacity,
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.bytes.extend(data);
        if self.bytes.len() > self.capacity {
            let excess = self.bytes.len() - self.capacity;
            self.bytes.drain(..excess);
            self.truncated = true;
        }
    }

    /// At most `max_lines` whole lines from the end, as text.
    fn text(&self, max_lines: usize) -> String {
        let bytes: Vec<u8> = self.bytes.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        // A cut buffer starts mid-line (maybe mid-character): drop that partial line.
        let text = match (self.truncated, text.find('\n')) {
            (true, Some(newline)) => &text[newline + 1..],
            _ => &text[..],
        };
        let lines: Vec<&str> = text.trim_end().lines().collect();
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    }
}

/// The notification about a failed command: `Maintenance failed on HOST` and the like.
fn failure_draft(
    argv: &[String],
    failure: &Failure,
    identity: &Identity,
    recipient: Recipient,
    now: DateTime<Utc>,
) -> Draft {
    let command_line = shell_words(argv);
    let host = &identity.host;
    let kind = kopia_source_kind(argv);
    let title = match kind {
        SourceKind::Maintenance => format!("Maintenance failed on {host}"),
        SourceKind::Snapshot => format!("Snapshot failed on {host}"),
        _ => format!("Command failed on {host}: {command_line}"),
    };
    let shown_command = truncate(&command_line, 1000);
    let time = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (message, details) = match failure {
        Failure::Exited { code, tail } => (
            format!("{shown_command} exited with code {code} on {host} at {time}."),
            tail.clone(),
        ),
        Failure::NotStarted { code, error } => (
            format!("{shown_command} could not be started on {host} at {time} (exit code {code}): {error}"),
            String::new(),
        ),
    };
    let mut draft = Draft::new(
        Severity::Error,
        recipient,
        &truncate(&title, limits::TITLE),
        Origin {
            user: identity.clone(),
            command: Some(truncate(
                &format!("kopia-notify run -- {command_line}"),
                limits::COMMAND,
            )),
        },
    );
    draft.source_kind = kind;
    draft.message = truncate(&message, limits::MESSAGE);
    draft.details = truncate(&details, limits::DETAILS);
    draft
}

/// `snapshot` or `maintenance` for `kopia snapshot …` / `kopia maintenance …`, else custom.
fn kopia_source_kind(argv: &[String]) -> SourceKind {
    let Some((program, arguments)) = argv.split_first() else {
        return SourceKind::Custom;
    };
    let name = Path::new(program)
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("");
    if name != "kopia" {
        return SourceKind::Custom;
    }
    match arguments
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
    {
        Some("snapshot" | "snap") => SourceKind::Snapshot,
        Some("maintenance") => SourceKind::Maintenance,
        _ => SourceKind::Custom,
    }
}

/// Cuts to `max` characters, marking the cut with `…`.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The command line as a POSIX shell would need it typed.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_line(error: &anyhow::Error) -> String {
    format!("{error:#}").replace('\n', " ")
}

/// `list` as text: per notification `DATE SEVERITY TITLE`, the `show` hint and the link.
pub fn render_list<Tz: TimeZone>(inbox: &Inbox, items: &[InboxItem], tz: &Tz) -> String {
    if items.is_empty() {
        return "There are no notifications.\n".to_string();
    }
    let mut text = String::new();
    for item in items {
        let n = &item.notification;
        let mark = match item.status {
            Status::Pending | Status::OtherRecipient => String::new(),
            Status::Acknowledged => " [acknowledged]".to_string(),
            Status::Expired => " [expired]".to_string(),
            Status::Resolved => " [resolved]".to_string(),
        };
        text.push_str(&format!(
            "{} {} {}{mark}\n",
            n.created.with_timezone(tz).date_naive().format("%Y-%m-%d"),
            n.severity.shout(),
            inert::line(&n.title)
        ));
        if let Some(about) = kind_and_source(n) {
            text.push_str(&format!("  {about}\n"));
        }
        text.push_str(&format!(
            "  To see the details 'kopia-notify show {}'\n",
            inert::line(inbox.short_id(&n.id))
        ));
        if let Some(link) = &n.link {
            text.push_str(&format!("  {}\n", inert::line(link)));
        }
    }
    text
}

/// What a notification is about, for notifications that are not custom: `snapshot
/// alice@laptop:/home`, `maintenance`.
fn kind_and_source(n: &kopia_notifications::Notification) -> Option<String> {
    match (&n.snapshot_source, n.source_kind) {
        (Some(source), kind) => Some(format!("{kind} {source}")),
        (None, SourceKind::Custom) => None,
        (None, kind) => Some(kind.to_string()),
    }
}

/// Whether `source` is `filter`: a whole `user@host:/path`, or every path of a `user@host`.
fn source_matches(source: Option<&SnapshotSource>, filter: &str) -> bool {
    source.is_some_and(|source| {
        let text = source.to_string();
        text == filter || (!filter.contains(':') && text.starts_with(&format!("{filter}:")))
    })
}

/// `show` as text: headers, the title, message and details, then the acknowledgements.
pub fn render_show<Tz: TimeZone>(details: &NotificationDetails, tz: &Tz) -> String {
    let item = &details.item;
    let n = &item.notification;
    let mut text = format!("Notification {}\n", inert::line(&n.id));
    // Every header value is one line of repository text.
    let mut field = |name: &str, value: &str| {
        text.push_str(&format!("{name:<10} {}\n", inert::line(value)));
    };
    field("Severity:", n.severity.shout());
    field("To:", &n.recipient.describe());
    field("Source:", n.source_kind.as_str());
    if let Some(origin) = &n.origin {
        let from = match &origin.command {
            Some(command) => format!("{} ({command})", origin.user),
            None => origin.user.to_string(),
        };
        field("From:", &from);
    }
    field("Created:", &timestamp(&n.created, tz));
    field("Expires:", &timestamp(&n.expires, tz));
    let status = match (item.status, item.acknowledged_at) {
        (Status::Acknowledged, Some(at)) => {
            format!("acknowledged by you at {}", timestamp(&at, tz))
        }
        (Status::Acknowledged, None) => "acknowledged by you".to_string(),
        (Status::Pending, _) => "pending".to_string(),
        (Status::Expired, _) => "expired".to_string(),
        (Status::OtherRecipient, _) => "addressed to someone else".to_string(),
        (Status::Resolved, _) => "resolved".to_string(),
    };
    field("Status:", &status);
    if let Some(resolution) = &item.resolution {
        field(
            "Resolved:",
            &format!(
                "{}: {}",
                timestamp(&resolution.resolved_at, tz),
                resolution.reason
            ),
        );
    }
    if let Some(source) = &n.snapshot_source {
        field("Snapshot:", &source.to_string());
    }
    if let Some(link) = &n.link {
        field("Link:", link);
    }
    text.push_str(&format!("\n{}\n", inert::line(&n.title)));
    if !n.message.is_empty() {
        text.push_str(&format!("\n{}\n", inert::text(n.message.trim_end())));
    }
    if !n.details.is_empty() {
        text.push_str(&format!(
            "\nDetails:\n{}\n",
            inert::text(n.details.trim_end())
        ));
    }
    if details.acknowledgements.is_empty() {
        text.push_str("\nAcknowledged by: nobody yet\n");
    } else {
        text.push_str("\nAcknowledged by:\n");
        for ack in &details.acknowledgements {
            text.push_str(&format!(
                "  {} at {}\n",
                inert::line(&ack.user.to_string()),
                timestamp(&ack.acknowledged_at, tz)
            ));
        }
    }
    text
}

/// `ack` as text.
pub fn render_ack(outcome: &AckOutcome, all: bool) -> String {
    if all {
        return if outcome.acknowledged.is_empty() {
            "There are no pending notifications.\n".to_string()
        } else {
            "All pending notifications have been acknowledged.\n".to_string()
        };
    }
    let mut text = format!(
        "Acknowledged {}.\n",
        count(outcome.acknowledged.len(), "notification")
    );
    for id in &outcome.already_acknowledged {
        text.push_str(&format!(
            "Skipped {}: already acknowledged.\n",
            inert::line(id)
        ));
    }
    for id in &outcome.expired {
        text.push_str(&format!("Skipped {}: expired.\n", inert::line(id)));
    }
    text
}

/// `gc` as text.
pub fn render_gc(plan: &GcPlan) -> String {
    let resolutions = match plan.resolutions.len() {
        0 => String::new(),
        n => format!(" (and {})", count(n, "resolution")),
    };
    format!(
        "Deleted {} and {}{resolutions}.\n",
        count(plan.notifications.len(), "expired notification"),
        count(plan.acknowledgements.len(), "acknowledgement")
    )
}

/// `1 notification`, `2 notifications`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `2022-05-19 10:00:00 UTC` or `… +02:00`, like the manifest commands print times.
pub fn timestamp<Tz: TimeZone>(t: &DateTime<Utc>, tz: &Tz) -> String {
    let local = t.with_timezone(tz);
    let offset = local.offset().fix();
    let zone = if offset.local_minus_utc() == 0 {
        "UTC".to_string()
    } else {
        offset.to_string()
    };
    format!("{} {zone}", local.naive_local().format("%Y-%m-%d %H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, FixedOffset};
    use kopia_notifications::MemoryStore;

    struct Repo {
        store: MemoryStore,
        opened: usize,
    }

    impl NotificationRepository for Repo {
        fn manifests(&mut self) -> Result<&mut dyn ManifestAccess> {
            self.opened += 1;
            Ok(&mut self.store)
        }
    }

    struct Unreachable;

    impl NotificationRepository for Unreachable {
        fn manifests(&mut self) -> Result<&mut dyn ManifestAccess> {
            bail!("repository unreachable")
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2022, 5, 19, 10, 0, 0).unwrap()
    }

    fn alice() -> Identity {
        "alice@laptop".parse().unwrap()
    }

    fn bob() -> Identity {
        "bob@desk".parse().unwrap()
    }

    fn repo() -> Repo {
        Repo {
            store: MemoryStore::new(),
            opened: 0,
        }
    }

    /// Parses a command line as the binary would (subcommands flattened at the top level).
    fn parse(words: &[&str]) -> NotificationCommand {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: NotificationCommand,
        }
        let argv = std::iter::once("kopia-notify").chain(words.iter().copied());
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().command
    }

    /// Runs a command line as `who` at `now`; returns (exit code or error text, stdout, stderr).
    fn exec(
        repo: &mut dyn NotificationRepository,
        who: &Identity,
        now: DateTime<Utc>,
        words: &[&str],
    ) -> (Result<u8, String>, String, String) {
        let clock = move || now;
        let mut session = Session {
            repository: repo,
            identity: who.clone(),
            clock: &clock,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let result = run(parse(words), &mut session, &mut out, &mut err).map_err(|e| one_line(&e));
        (
            result,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn send(repo: &mut Repo, words: &[&str]) -> String {
        let mut argv = vec!["send"];
        argv.extend_from_slice(words);
        let (result, out, _) = exec(repo, &alice(), t0(), &argv);
        assert_eq!(result, Ok(0));
        out.trim().to_string()
    }

    /// A batch is checked whole, then written in one write; `ack --all` acknowledges all of
    /// it in one more.
    #[test]
    fn send_batch_writes_every_line_at_once_and_ack_all_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let batch = dir.path().join("batch.jsonl");
        let line = |i: usize| {
            format!(
                r#"{{"severity":"warning","to":"all","title":"Disk {i} almost full","expiresIn":"2d"}}"#
            )
        };
        let lines: Vec<String> = (0..250).map(line).collect();
        std::fs::write(&batch, lines.join("\n")).unwrap();
        let mut repo = repo();
        let path = batch.to_str().unwrap();
        let (result, out, _) = exec(&mut repo, &alice(), t0(), &["send", "--batch", path]);
        assert_eq!(result, Ok(0));
        assert_eq!(out.lines().count(), 250);
        assert_eq!(repo.store.batches_written(), 1);
        let (_, listed, _) = exec(&mut repo, &bob(), t0(), &["list", "--json"]);
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 250);
        let (result, _, _) = exec(&mut repo, &bob(), t0(), &["ack", "--all"]);
        assert_eq!(result, Ok(0));
        assert_eq!(repo.store.batches_written(), 2);

        // One bad line: nothing is written, and the error names the line.
        let mut bad = lines.clone();
        bad[41] = r#"{"severity":"error","to":"all","title":"t","mesage":"typo"}"#.into();
        std::fs::write(&batch, bad.join("\n")).unwrap();
        let mut repo = self::repo();
        let (result, _, _) = exec(&mut repo, &alice(), t0(), &["send", "--batch", path]);
        let error = result.unwrap_err();
        assert!(
            error.contains("batch line 42") && error.contains("mesage"),
            "{error}"
        );
        assert_eq!(repo.store.batches_written(), 0);
        assert!(repo.store.is_empty());
        // A batch and the fields of a single notification do not mix.
        let argv = ["kopia-notify", "send", "--batch", path, "--title", "x"];
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: NotificationCommand,
        }
        assert!(<Cli as clap::Parser>::try_parse_from(argv).is_err());
    }

    #[test]
    fn send_list_show_ack_round_trip() {
        let mut repo = repo();
        let id = send(
            &mut repo,
            &[
                "--severity",
                "error",
                "--to",
                "all",
                "--title",
                "Maintenance failed on SOME_MACHINE",
                "--message",
                "It failed.",
                "--link",
                "https://kopia.io/docs/advanced/maintenance/",
                "--source",
                "maintenance",
            ],
        );
        assert_eq!(id.len(), 32);
        let short = &id[..8];

        let (result, out, _) = exec(&mut repo, &bob(), t0(), &["list"]);
        assert_eq!(result, Ok(0));
        assert_eq!(
            out,
            format!(
                "2022-05-19 ERROR Maintenance failed on SOME_MACHINE\n  maintenance\n  To see the details 'kopia-notify show {short}'\n  https://kopia.io/docs/advanced/maintenance/\n"
            )
        );

        let (result, out, _) = exec(&mut repo, &bob(), t0(), &["ack", short]);
        assert_eq!(result, Ok(0));
        assert_eq!(out, "Acknowledged 1 notification.\n");
        let (_, out, _) = exec(&mut repo, &bob(), t0(), &["list"]);
        assert_eq!(out, "There are no notifications.\n");
        let (_, out, _) = exec(&mut repo, &bob(), t0(), &["list", "--all"]);
        assert!(
            out.starts_with("2022-05-19 ERROR Maintenance failed on SOME_MACHINE [acknowledged]\n"),
            "{out}"
        );
        // Alice still has it.
        let (_, out, _) = exec(
            &mut repo,
            &alice(),
            t0(),
            &["list", "--min-severity", "warning"],
        );
        assert!(out.starts_with("2022-05-19 ERROR"), "{out}");
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["show", short]);
        assert!(out.contains("Status:    pending\n"), "{out}");
        assert!(
            out.contains("Acknowledged by:\n  bob@desk at 2022-05-19 10:00:00 UTC\n"),
            "{out}"
        );
    }

    #[test]
    fn ack_all_and_auto_ack() {
        let mut repo = repo();
        send(&mut repo, &["--title", "one"]);
        send(&mut repo, &["--title", "two", "--to", "alice@laptop"]);
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["ack", "--all"]);
        assert_eq!(out, "All pending notifications have been acknowledged.\n");
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["ack", "--all"]);
        assert_eq!(out, "There are no pending notifications.\n");

        let (_, out, _) = exec(&mut repo, &bob(), t0(), &["list", "--auto-ack"]);
        assert!(out.contains(" NORMAL one\n"), "{out}");
        assert!(!out.contains("two"), "{out}");
        let (_, out, _) = exec(&mut repo, &bob(), t0(), &["list"]);
        assert_eq!(out, "There are no notifications.\n");
    }

    #[test]
    fn ack_reports_skips_and_plurals() {
        let mut repo = repo();
        let a = send(&mut repo, &["--title", "a"]);
        let b = send(&mut repo, &["--title", "b"]);
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["ack", "--item", &a]);
        assert_eq!(out, "Acknowledged 1 notification.\n");
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["ack", &a, &b]);
        assert_eq!(
            out,
            format!("Acknowledged 1 notification.\nSkipped {a}: already acknowledged.\n")
        );
        let (_, out, _) = exec(
            &mut repo,
            &bob(),
            t0(),
            &["ack", &a, "--item", &b, "--json"],
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        // `--item` IDs come first, then the positional ones.
        assert_eq!(
            json,
            serde_json::json!({"acknowledged": [b, a], "alreadyAcknowledged": [], "expired": []})
        );
        assert_eq!(
            render_ack(&AckOutcome::default(), false),
            "Acknowledged 0 notifications.\n"
        );
    }

    #[test]
    fn bad_input_is_one_line_and_writes_nothing() {
        let mut repo = repo();
        let cases: &[(&[&str], &str)] = &[
            (
                &["send", "--title", "t", "--severity", "fatal"],
                "invalid severity \"fatal\"",
            ),
            (
                &["send", "--title", "t", "--to", "bob"],
                "invalid recipient \"bob\"",
            ),
            (&["send", "--title", " "], "the title is empty"),
            (
                &["send", "--title", "t", "--expires-in", "7x"],
                "invalid duration \"7x\"",
            ),
            (
                &["send", "--title", "t", "--link", "ftp://x"],
                "invalid link \"ftp://x\"",
            ),
            (
                &["send", "--title", "t", "--source", "weather"],
                "invalid source kind \"weather\"",
            ),
            (
                &[
                    "send",
                    "--title",
                    "t",
                    "--details-file",
                    "/nonexistent/details",
                ],
                "cannot read details file /nonexistent/details",
            ),
            (
                &["send", "--title", "t", "--snapshot-source", "/data"],
                "invalid snapshot source",
            ),
            (&["show", "0000"], "no notification with ID \"0000\""),
            (&["ack", "0000"], "no notification with ID \"0000\""),
            (
                &["list", "--min-severity", "loud"],
                "invalid severity \"loud\"",
            ),
            (
                &["run", "--on-error-notify", "nobody", "--", "true"],
                "invalid recipient \"nobody\"",
            ),
        ];
        for (words, expected) in cases {
            let (result, out, _) = exec(&mut repo, &alice(), t0(), words);
            let error = result.unwrap_err();
            assert!(error.contains(expected), "{words:?}: {error}");
            assert!(!error.contains('\n'));
            assert_eq!(out, "");
        }
        assert!(repo.store.is_empty());
        let (result, _, _) = exec(&mut Unreachable, &alice(), t0(), &["list"]);
        assert_eq!(result, Err("repository unreachable".to_string()));
    }

    #[test]
    fn send_reads_details_and_snapshot_source() {
        let mut repo = repo();
        let dir = std::env::temp_dir().join(format!("kopia-notify-details-{}", std::process::id()));
        std::fs::write(&dir, "line 1\nline 2\n").unwrap();
        let id = send(
            &mut repo,
            &[
                "--title",
                "t",
                "--details-file",
                dir.to_str().unwrap(),
                "--snapshot-source",
                "alice@laptop:/home/alice",
                "--expires-in",
                "7d",
            ],
        );
        std::fs::remove_file(&dir).unwrap();
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["show", &id, "--json"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["details"], "line 1\nline 2\n");
        assert_eq!(
            json["snapshotSource"],
            serde_json::json!({"host": "laptop", "userName": "alice", "path": "/home/alice"})
        );
        assert_eq!(json["expires"], "2022-05-26T10:00:00Z");
        assert_eq!(
            json["origin"],
            serde_json::json!({"user": "alice@laptop", "command": "kopia-notify send"})
        );
        assert_eq!(json["acknowledgements"], serde_json::json!([]));
    }

    #[test]
    fn list_json_and_malformed_warning() {
        let mut repo = repo();
        repo.store
            .insert_raw("badbad", &[("type", "notification")], "{}");
        let id = send(&mut repo, &["--title", "t", "--severity", "warning"]);
        let (result, out, err) = exec(&mut repo, &alice(), t0(), &["list", "--json"]);
        assert_eq!(result, Ok(0));
        assert_eq!(
            err,
            "warning: skipping malformed manifest badbad: label \"severity\" is missing\n"
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["id"], id.as_str());
        assert_eq!(json[0]["status"], "pending");
        assert_eq!(json[0]["severity"], "warning");
        let (_, out, _) = exec(
            &mut repo,
            &alice(),
            t0(),
            &["list", "--json", "--min-severity", "error"],
        );
        assert_eq!(out.trim(), "[]");
    }

    #[test]
    fn expiry_and_gc_with_a_fixed_clock() {
        let mut repo = repo();
        let id = send(&mut repo, &["--title", "short", "--expires-in", "1h"]);
        assert_eq!(exec(&mut repo, &alice(), t0(), &["ack", &id]).0, Ok(0));
        let later = t0() + Duration::hours(1);
        let (_, out, _) = exec(&mut repo, &bob(), later, &["list"]);
        assert_eq!(out, "There are no notifications.\n");
        let (_, out, _) = exec(&mut repo, &bob(), later, &["list", "--all"]);
        assert!(out.contains(" NORMAL short [expired]\n"), "{out}");
        let (_, out, _) = exec(&mut repo, &bob(), later, &["gc"]);
        assert_eq!(
            out,
            "Deleted 1 expired notification and 1 acknowledgement.\n"
        );
        let (_, out, _) = exec(&mut repo, &bob(), later, &["gc", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"notifications": [], "acknowledgements": []})
        );
        assert!(repo.store.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn run_keeps_the_exit_code_and_notifies_on_failure() {
        let mut repo = repo();
        let (result, out, err) = exec(
            &mut repo,
            &alice(),
            t0(),
            &["run", "--", "sh", "-c", "echo oops >&2; exit 3"],
        );
        assert_eq!(result, Ok(3));
        assert_eq!(out, "");
        assert!(err.starts_with("oops\n"), "{err}");
        assert!(
            err.contains("failed with exit code 3; notification"),
            "{err}"
        );
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["list", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let n = &json[0];
        assert_eq!(n["severity"], "error");
        assert_eq!(n["recipient"], "alice@laptop");
        assert_eq!(
            n["title"],
            "Command failed on laptop: sh -c 'echo oops >&2; exit 3'"
        );
        assert_eq!(
            n["message"],
            "sh -c 'echo oops >&2; exit 3' exited with code 3 on laptop at 2022-05-19T10:00:00Z."
        );
        assert_eq!(n["details"], "oops");
        assert_eq!(
            n["origin"]["command"],
            "kopia-notify run -- sh -c 'echo oops >&2; exit 3'"
        );
        // Bob was not told.
        let (_, out, _) = exec(&mut repo, &bob(), t0(), &["list"]);
        assert_eq!(out, "There are no notifications.\n");
    }

    #[cfg(unix)]
    #[test]
    fn run_success_and_none_do_not_open_the_repository() {
        let mut repo = repo();
        let (result, _, _) = exec(&mut repo, &alice(), t0(), &["run", "--", "true"]);
        assert_eq!(result, Ok(0));
        let (result, _, _) = exec(
            &mut repo,
            &alice(),
            t0(),
            &["run", "--on-error-notify=none", "--", "false"],
        );
        assert_eq!(result, Ok(1));
        assert_eq!(repo.opened, 0);
        // Even with the repository unreachable, the command runs and its code is kept.
        let (result, _, err) = exec(
            &mut Unreachable,
            &alice(),
            t0(),
            &["run", "--", "sh", "-c", "exit 4"],
        );
        assert_eq!(result, Ok(4));
        assert!(
            err.contains("could not write the failure notification: repository unreachable"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn run_of_a_missing_command_is_127_and_notifies_the_chosen_recipient() {
        let mut repo = repo();
        let (result, out, err) = exec(
            &mut repo,
            &alice(),
            t0(),
            &[
                "run",
                "--on-error-notify",
                "bob@desk",
                "--json",
                "--",
                "/nonexistent/kopia",
                "maintenance",
                "run",
            ],
        );
        assert_eq!(result, Ok(127));
        assert!(
            err.starts_with("kopia-notify: cannot start /nonexistent/kopia maintenance run: "),
            "{err}"
        );
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(json["exitCode"], 127);
        let (_, out, _) = exec(&mut repo, &bob(), t0(), &["list", "--json"]);
        let list: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(list[0]["id"], json["notification"]);
        assert_eq!(list[0]["title"], "Maintenance failed on laptop");
        assert_eq!(list[0]["sourceKind"], "maintenance");
    }

    #[test]
    fn stderr_tail_keeps_whole_last_lines() {
        let mut tail = TailBuffer::new(16);
        tail.push(b"first line\nsecond\nthird\n");
        assert_eq!(tail.text(10), "second\nthird");
        assert_eq!(tail.text(1), "third");
        let mut short = TailBuffer::new(100);
        short.push("héllo\n".as_bytes());
        assert_eq!(short.text(5), "héllo");
    }

    #[test]
    fn kopia_commands_are_recognised() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            kopia_source_kind(&words("kopia maintenance run --full")),
            SourceKind::Maintenance
        );
        assert_eq!(
            kopia_source_kind(&words("/usr/bin/kopia --config-file=x snapshot create /")),
            SourceKind::Snapshot
        );
        assert_eq!(
            kopia_source_kind(&words("rsync -a x y")),
            SourceKind::Custom
        );
        assert_eq!(shell_words(&words("a b'c")), "a 'b'\\''c'");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn show_renders_every_field() {
        let mut repo = repo();
        let id = send(
            &mut repo,
            &[
                "--severity",
                "warning",
                "--to",
                "bob@desk",
                "--title",
                "Disk",
                "--message",
                "Almost full.",
                "--link",
                "https://example.com/x",
                "--snapshot-source",
                "bob@desk:/srv",
            ],
        );
        let service = Notifications::new(&mut repo.store);
        let inbox = service.inbox().unwrap();
        let details = inbox
            .details(&id, &alice(), t0() + Duration::hours(1))
            .unwrap();
        let tz = FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(
            render_show(&details, &tz),
            format!(
                "Notification {id}\n\
                 Severity:  WARNING\n\
                 To:        bob@desk\n\
                 Source:    custom\n\
                 From:      alice@laptop (kopia-notify send)\n\
                 Created:   2022-05-19 12:00:00 +02:00\n\
                 Expires:   2022-06-18 12:00:00 +02:00\n\
                 Status:    addressed to someone else\n\
                 Snapshot:  bob@desk:/srv\n\
                 Link:      https://example.com/x\n\
                 \n\
                 Disk\n\
                 \n\
                 Almost full.\n\
                 \n\
                 Acknowledged by: nobody yet\n"
            )
        );
    }

    /// A notification another writer put in the repository: a right-to-left override in the
    /// title, screen-clearing and hyperlink escapes in message and details, a C1 CSI in the
    /// command. Nothing reaches the terminal raw; `--json` keeps every character.
    fn hostile_repo() -> Repo {
        let mut repo = repo();
        let payload = serde_json::json!({
            "schemaVersion": 1,
            "title": "invoice\u{202e}fdp.exe",
            "message": "line one\n\u{1b}[2Jcleared\u{7f}",
            "details": "\u{1b}]8;;https://evil.example/\u{7}click\u{1b}]8;;\u{7}\tend",
            "created": "2022-05-19T09:00:00Z",
            "origin": {"user": "mallory@host", "command": "run \u{9b}31m"},
        });
        repo.store.insert_raw(
            "0123456789abcdef0123456789abcdef",
            &[
                ("type", "notification"),
                ("severity", "error"),
                ("recipient", "*"),
                ("schemaVersion", "1"),
            ],
            &payload.to_string(),
        );
        repo
    }

    /// Every C0 (except newline and tab in multi-line text), C1, DEL and bidi character.
    fn assert_inert(text: &str) {
        for c in text.chars() {
            assert!(
                c == '\n' || c == '\t' || !inert::is_unsafe(c),
                "raw {c:?} in {text:?}"
            );
        }
    }

    #[test]
    fn hostile_text_is_escaped_in_list_and_show() {
        let mut repo = hostile_repo();
        let (result, out, err) = exec(&mut repo, &alice(), t0(), &["list"]);
        assert_eq!(result, Ok(0), "{err}");
        assert_inert(&out);
        assert!(out.contains("ERROR invoice\\u{202e}fdp.exe\n"), "{out}");

        let (result, out, _) = exec(&mut repo, &alice(), t0(), &["show", "01234567"]);
        assert_eq!(result, Ok(0));
        assert_inert(&out);
        for shown in [
            "\ninvoice\\u{202e}fdp.exe\n",
            "\nline one\n\\x1b[2Jcleared\\x7f\n",
            "\\x1b]8;;https://evil.example/\\x07click\\x1b]8;;\\x07\tend\n",
            "mallory@host (run \\x9b31m)",
        ] {
            assert!(out.contains(shown), "{shown:?} not in {out}");
        }

        // JSON is exact: the characters come back as they were written.
        for words in [&["list", "--json"][..], &["show", "01234567", "--json"][..]] {
            let (result, out, _) = exec(&mut repo, &alice(), t0(), words);
            assert_eq!(result, Ok(0));
            let json: serde_json::Value = serde_json::from_str(&out).unwrap();
            let text = json.to_string();
            assert!(text.contains("invoice\u{202e}fdp.exe"), "{text}");
        }
        let (_, out, _) = exec(&mut repo, &alice(), t0(), &["show", "01234567", "--json"]);
        assert!(out.contains("\\u001b[2Jcleared\u{7f}"), "{out}");
    }

    #[test]
    fn titles_with_controls_are_skipped_with_an_inert_warning() {
        let mut repo = repo();
        let payload = serde_json::json!({
            "schemaVersion": 1,
            "title": "\u{1b}[2Jgone",
            "created": "2022-05-19T09:00:00Z",
        });
        repo.store.insert_raw(
            "id-\u{1b}[31m-\u{202e}",
            &[
                ("type", "notification"),
                ("severity", "error"),
                ("recipient", "*"),
            ],
            &payload.to_string(),
        );
        let (result, out, err) = exec(&mut repo, &alice(), t0(), &["list"]);
        assert_eq!(result, Ok(0));
        assert_eq!(out, "There are no notifications.\n");
        assert_inert(&err);
        assert!(err.contains("id-\\x1b[31m-\\u{202e}"), "{err}");
    }
}
