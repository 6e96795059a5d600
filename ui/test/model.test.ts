import { describe, expect, it } from "vitest";
import {
  DEFAULT_FILTER,
  formatAge,
  isSafeLink,
  linkLabel,
  linkTooltip,
  keyAction,
  moveSelection,
  parseRoute,
  sourcesOf,
  statusLine,
  visibleNotifications,
} from "../src/model";
import { notification } from "./fixtures";

const NOW = new Date("2025-01-10T12:00:00Z");

describe("formatAge", () => {
  it("words recent times relative to now", () => {
    expect(formatAge("2025-01-10T11:59:30Z", NOW)).toBe("just now");
    expect(formatAge("2025-01-10T11:55:00Z", NOW)).toBe("5 min ago");
    expect(formatAge("2025-01-10T09:00:00Z", NOW)).toBe("3 h ago");
    expect(formatAge("2025-01-09T11:00:00Z", NOW)).toBe("yesterday");
    expect(formatAge("2025-01-07T12:00:00Z", NOW)).toBe("3 days ago");
  });
  it("falls back to the date past a month and to nothing for garbage", () => {
    expect(formatAge("2024-10-01T00:00:00Z", NOW)).toBe("2024-10-01");
    expect(formatAge("not a date", NOW)).toBe("");
  });
  it("never says a future time is in the past by a negative amount", () => {
    expect(formatAge("2025-01-10T12:05:00Z", NOW)).toBe("just now");
  });
});

describe("visibleNotifications", () => {
  const pendingOld = notification({ id: "old", created: "2025-01-10T08:00:00Z" });
  const pendingNew = notification({ id: "new", severity: "warning", created: "2025-01-10T11:00:00Z" });
  const otherRepo = notification({ id: "other", repo: 2, repoName: "cloud", severity: "normal" });
  const acked = notification({ id: "acked", acknowledgedAt: "2025-01-10T11:30:00Z" });
  const queued = notification({ id: "queued", ackPending: true });
  const all = [pendingOld, acked, pendingNew, otherRepo, queued];

  it("lists pending ones newest first", () => {
    expect(visibleNotifications(all, DEFAULT_FILTER).map((n) => n.id)).toEqual(["new", "other", "old"]);
  });
  it("filters by severity and repository", () => {
    expect(visibleNotifications(all, { ...DEFAULT_FILTER, severity: "warning" }).map((n) => n.id)).toEqual(["new"]);
    expect(visibleNotifications(all, { ...DEFAULT_FILTER, repo: 2 }).map((n) => n.id)).toEqual(["other"]);
  });
  it("puts acknowledged and queued acknowledgements in the history", () => {
    expect(visibleNotifications(all, { ...DEFAULT_FILTER, tab: "history" }).map((n) => n.id).sort()).toEqual(["acked", "queued"]);
  });
  it("keeps resolved ones in history, dated by their resolution", () => {
    const resolved = notification({ id: "resolved", resolved: { at: "2025-01-10T11:45:00Z", reason: "a newer snapshot succeeded" } });
    const rows = visibleNotifications([...all, resolved], { ...DEFAULT_FILTER, tab: "history" }).map((n) => n.id);
    expect(rows).toEqual(["resolved", "acked", "queued"]);
    expect(visibleNotifications([resolved], DEFAULT_FILTER)).toEqual([]);
  });
  it("filters by snapshot source", () => {
    const home = { host: "laptop", userName: "alice", path: "/home" };
    const etc = { host: "server", userName: "root", path: "/etc" };
    const rows = [
      notification({ id: "h1", kind: "snapshot", snapshotSource: home }),
      notification({ id: "e1", kind: "snapshot", snapshotSource: etc }),
      notification({ id: "h2", kind: "snapshot", snapshotSource: home, created: "2025-01-10T11:00:00Z" }),
      notification({ id: "none" }),
    ];
    expect(sourcesOf(rows)).toEqual(["alice@laptop:/home", "root@server:/etc"]);
    expect(visibleNotifications(rows, { ...DEFAULT_FILTER, source: "alice@laptop:/home" }).map((n) => n.id)).toEqual(["h2", "h1"]);
    expect(visibleNotifications(rows, { ...DEFAULT_FILTER, source: "root@server:/etc" }).map((n) => n.id)).toEqual(["e1"]);
    expect(visibleNotifications(rows, DEFAULT_FILTER)).toHaveLength(4);
  });
  it("does not reorder its input", () => {
    visibleNotifications(all, DEFAULT_FILTER);
    expect(all[0]).toBe(pendingOld);
  });
});

describe("statusLine", () => {
  const clear = { errors: 0, warnings: 0, normal: 0, unreachable: 0, wrongPassword: 0, pausedUntil: null };
  it("counts with plurals like the tray", () => {
    expect(statusLine({ ...clear, errors: 2, warnings: 1 }, NOW)).toBe("2 errors, 1 warning");
    expect(statusLine(clear, NOW)).toBe("All clear");
    expect(statusLine({ ...clear, unreachable: 1 }, NOW)).toBe("1 repository unreachable");
    expect(statusLine({ ...clear, errors: 1, wrongPassword: 2 }, NOW)).toBe("1 error, 2 repositories with a wrong password");
  });
  it("mentions a pause only while it lasts", () => {
    expect(statusLine({ ...clear, pausedUntil: "2025-01-10T13:00:00Z" }, NOW)).toBe("All clear (popups paused)");
    expect(statusLine({ ...clear, pausedUntil: "2025-01-10T11:00:00Z" }, NOW)).toBe("All clear");
  });
});

describe("isSafeLink", () => {
  it("accepts only absolute http(s) URLs", () => {
    expect(isSafeLink("https://example.com/runbook")).toBe(true);
    expect(isSafeLink("http://nas.local:8080/")).toBe(true);
    expect(isSafeLink("javascript:alert(1)")).toBe(false);
    expect(isSafeLink("file:///etc/passwd")).toBe(false);
    expect(isSafeLink("/relative")).toBe(false);
    expect(isSafeLink(null)).toBe(false);
  });
});

describe("linkLabel", () => {
  it("shows the host only: punycode, no user info, the port if given", () => {
    expect(linkLabel("https://example.com/runbook?x=1#y")).toBe("example.com");
    expect(linkLabel("https://bank.example@evil.example/login")).toBe("evil.example");
    expect(linkLabel("https://user:secret@nas.local:8080/")).toBe("nas.local:8080");
    expect(linkLabel("https://pаypal.com/")).toBe("xn--pypal-4ve.com");
    expect(linkLabel("https://bücher.example/")).toBe("xn--bcher-kva.example");
    expect(linkLabel("https://EXAMPLE.com/")).toBe("example.com");
  });
  it("gives tooltips without user info", () => {
    expect(linkTooltip("https://user:secret@nas.local:8080/a b")).toBe("https://nas.local:8080/a%20b");
  });
});

describe("keyboard", () => {
  it("maps arrows, vi keys, Enter, a and Escape", () => {
    expect(keyAction("ArrowDown", false)).toBe("next");
    expect(keyAction("j", false)).toBe("next");
    expect(keyAction("k", false)).toBe("previous");
    expect(keyAction("Enter", false)).toBe("open");
    expect(keyAction("a", false)).toBe("acknowledge");
    expect(keyAction("Escape", false)).toBe("back");
    expect(keyAction("x", false)).toBe(null);
  });
  it("leaves typing in form fields alone except Escape", () => {
    expect(keyAction("j", true)).toBe(null);
    expect(keyAction("a", true)).toBe(null);
    expect(keyAction("Escape", true)).toBe("back");
  });
  it("moves the selection within bounds", () => {
    expect(moveSelection(-1, 1, 3)).toBe(0);
    expect(moveSelection(-1, -1, 3)).toBe(2);
    expect(moveSelection(2, 1, 3)).toBe(2);
    expect(moveSelection(0, -1, 3)).toBe(0);
    expect(moveSelection(0, 1, 0)).toBe(-1);
  });
});

describe("parseRoute", () => {
  it("reads the entry the window was opened on", () => {
    expect(parseRoute("#/n/3/abc123")).toEqual({ repo: 3, id: "abc123" });
    expect(parseRoute("#/settings")).toBe(null);
    expect(parseRoute("#/n/x/abc")).toBe(null);
  });
});
