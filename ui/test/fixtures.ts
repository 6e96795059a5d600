import type { NotificationView, Overview, RepositoryView, Settings } from "../src/types";

export function notification(overrides: Partial<NotificationView> = {}): NotificationView {
  return {
    repo: 1,
    repoName: "nas",
    id: "a1",
    severity: "error",
    kind: "custom",
    snapshotSource: null,
    title: "Snapshot of /home failed",
    message: "kopia snapshot create exited with status 1",
    details: "ERROR unable to open /home/missing",
    link: null,
    originHost: "laptop",
    created: "2025-01-10T10:00:00Z",
    acknowledgedAt: null,
    ackPending: false,
    resolved: null,
    ...overrides,
  };
}

export function overview(notifications: NotificationView[], overrides: Partial<Overview> = {}): Overview {
  return {
    tray: { errors: 1, warnings: 0, normal: 0, unreachable: 0, wrongPassword: 0, pausedUntil: null },
    repositories: [repository(1, "nas")],
    notifications,
    onboarding: false,
    ...overrides,
  };
}

export const SETTINGS: Settings = {
  pollIntervalSecs: 60,
  networkPollIntervalSecs: 900,
  minPopupSeverity: "warning",
  identityOverride: null,
  launchAtLogin: false,
};

export function repository(id: number, name: string): RepositoryView {
  return { id, name, location: `/mnt/${name}`, status: { state: "ok", checkedAt: "2025-01-10T11:59:00Z" }, identity: "me@laptop" };
}
