// Pure functions behind the window: filtering, ordering, wording and keyboard mapping.
// No DOM and no IPC here, so everything is unit-tested in plain node.

import type { NotificationView, Severity, SnapshotSource, SourceKind, TrayState } from "./types";

export type Tab = "pending" | "history";
export type SeverityFilter = Severity | "all";

export interface Filter {
  tab: Tab;
  severity: SeverityFilter;
  /** A repository id, or "all". */
  repo: number | "all";
  /** A snapshot source as `sourceLabel` writes it, or "all". */
  source: string | "all";
}

export const DEFAULT_FILTER: Filter = { tab: "pending", severity: "all", repo: "all", source: "all" };

const SEVERITY_RANK: Record<Severity, number> = { error: 2, warning: 1, normal: 0 };

/** Stable key of one notification across repositories (ids are only unique per repository). */
export function notificationKey(n: Pick<NotificationView, "repo" | "id">): string {
  return `${n.repo}/${n.id}`;
}

export function isAcknowledged(n: NotificationView): boolean {
  return n.acknowledgedAt !== null || n.ackPending;
}

/** In history rather than pending: acknowledged (here or queued) or resolved by itself. */
export function isSettled(n: NotificationView): boolean {
  return isAcknowledged(n) || n.resolved !== null;
}

/** When a settled notification left the pending list: acknowledged, else resolved. */
export function settledAt(n: NotificationView): string {
  return n.acknowledgedAt ?? n.resolved?.at ?? n.created;
}

/** `user@host:/path`, as Kopia names a snapshot source. */
export function sourceLabel(source: SnapshotSource): string {
  return `${source.userName}@${source.host}:${source.path}`;
}

/** The distinct snapshot sources of some notifications, sorted, for the source filter. */
export function sourcesOf(all: NotificationView[]): string[] {
  const labels = new Set<string>();
  for (const n of all) {
    if (n.snapshotSource) labels.add(sourceLabel(n.snapshotSource));
  }
  return [...labels].sort();
}

/**
 * The rows of the list for a filter: pending ones newest first; history (acknowledged, including
 * acknowledgements still queued, and resolved) most recently settled first.
 */
export function visibleNotifications(all: NotificationView[], filter: Filter): NotificationView[] {
  const rows = all.filter(
    (n) =>
      (filter.tab === "history") === isSettled(n) &&
      (filter.severity === "all" || n.severity === filter.severity) &&
      (filter.repo === "all" || n.repo === filter.repo) &&
      (filter.source === "all" || (n.snapshotSource !== null && sourceLabel(n.snapshotSource) === filter.source)),
  );
  const time = (n: NotificationView) => Date.parse(filter.tab === "history" ? settledAt(n) : n.created) || 0;
  return rows.sort((a, b) => time(b) - time(a) || SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity]);
}

/** "just now", "5 min ago", "3 h ago", "2 days ago", or the date past a month. */
export function formatAge(timestamp: string, now: Date): string {
  const then = Date.parse(timestamp);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((now.getTime() - then) / 1000));
  if (seconds < 60) return "just now";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  if (days < 31) return days === 1 ? "yesterday" : `${days} days ago`;
  return new Date(then).toISOString().slice(0, 10);
}

/** A full local date and time for tooltips and the detail view. */
export function formatTimestamp(timestamp: string): string {
  const then = Date.parse(timestamp);
  if (Number.isNaN(then)) return timestamp;
  return new Date(then).toLocaleString();
}

export const SEVERITY_LABEL: Record<Severity, string> = {
  error: "Error",
  warning: "Warning",
  normal: "Info",
};

export const KIND_LABEL: Record<SourceKind, string> = {
  snapshot: "Snapshot",
  maintenance: "Maintenance",
  corruption: "Corruption",
  upgrade: "Upgrade",
  custom: "Message",
};

/** A glyph per severity, so severity never rests on colour alone. */
export const SEVERITY_GLYPH: Record<Severity, string> = {
  error: "✕",
  warning: "!",
  normal: "i",
};

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** The window's status line, worded like the tray's (the engine's `TrayState::status_line`). */
export function statusLine(tray: TrayState, now: Date): string {
  const parts: string[] = [];
  if (tray.errors) parts.push(plural(tray.errors, "error"));
  if (tray.warnings) parts.push(plural(tray.warnings, "warning"));
  if (tray.normal) parts.push(plural(tray.normal, "notice"));
  if (tray.unreachable) {
    parts.push(`${tray.unreachable} ${tray.unreachable === 1 ? "repository" : "repositories"} unreachable`);
  }
  if (tray.wrongPassword) {
    parts.push(`${tray.wrongPassword} ${tray.wrongPassword === 1 ? "repository" : "repositories"} with a wrong password`);
  }
  let line = parts.length ? parts.join(", ") : "All clear";
  if (tray.pausedUntil && Date.parse(tray.pausedUntil) > now.getTime()) {
    line += " (popups paused)";
  }
  return line;
}

/** Only absolute http(s) URLs are ever offered as links. */
export function isSafeLink(url: string | null | undefined): url is string {
  if (!url) return false;
  try {
    const parsed = new URL(url);
    return (parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.host !== "";
  } catch {
    return false;
  }
}

/**
 * What a link button shows: the link's host only, as the browser resolves it — punycode for
 * non-ASCII (look-alike) hosts, no user name or password, the port if one is given. The raw
 * URL is written by whoever wrote the notification; `https://bank.example@evil.example/` reads
 * as the bank but goes to `evil.example`, which is what is shown.
 */
export function linkLabel(url: string): string {
  return new URL(url).host;
}

/** The link's full address for its tooltip: normalised, without user name and password. */
export function linkTooltip(url: string): string {
  const parsed = new URL(url);
  parsed.username = "";
  parsed.password = "";
  return parsed.href;
}

export type KeyAction = "next" | "previous" | "open" | "acknowledge" | "back" | null;

/** Maps a key press to what it does; keys typed into form fields are left alone. */
export function keyAction(key: string, inFormField: boolean): KeyAction {
  if (key === "Escape") return "back";
  if (inFormField) return null;
  switch (key) {
    case "ArrowDown":
    case "j":
      return "next";
    case "ArrowUp":
    case "k":
      return "previous";
    case "Enter":
      return "open";
    case "a":
      return "acknowledge";
    default:
      return null;
  }
}

/** Moves a selection within a list of `length` rows, clamped at both ends. */
export function moveSelection(index: number, delta: number, length: number): number {
  if (length === 0) return -1;
  if (index < 0) return delta > 0 ? 0 : length - 1;
  return Math.min(length - 1, Math.max(0, index + delta));
}

/** Parses the `#/n/<repo>/<id>` route the app opens the window with after a popup click. */
export function parseRoute(hash: string): { repo: number; id: string } | null {
  const match = /^#\/n\/(\d+)\/([^/]+)$/.exec(hash);
  if (!match) return null;
  return { repo: Number(match[1]), id: decodeURIComponent(match[2]) };
}
