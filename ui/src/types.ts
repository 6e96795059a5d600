// The shapes the app's Tauri commands return (the engine's views, serialized camelCase).
// Pure data: no behaviour lives here.

export type Severity = "error" | "warning" | "normal";

/** What a notification is about (the design's notification sources). */
export type SourceKind = "snapshot" | "maintenance" | "corruption" | "upgrade" | "custom";

/** The Kopia snapshot source a notification concerns. */
export interface SnapshotSource {
  host: string;
  userName: string;
  path: string;
}

/** Why and when a derived notification resolved itself (its cause is gone). */
export interface ResolvedView {
  at: string;
  reason: string;
}

export interface NotificationView {
  repo: number;
  repoName: string;
  id: string;
  severity: Severity;
  kind: SourceKind;
  snapshotSource: SnapshotSource | null;
  title: string;
  message: string;
  details: string;
  link: string | null;
  originHost: string;
  created: string;
  acknowledgedAt: string | null;
  ackPending: boolean;
  /** Set once the cause is gone: kept in history, never pending again. */
  resolved: ResolvedView | null;
}

export interface TrayState {
  errors: number;
  warnings: number;
  normal: number;
  unreachable: number;
  wrongPassword: number;
  pausedUntil: string | null;
}

export type RepositoryStatus =
  | { state: "ok"; checkedAt: string }
  | { state: "unreachable"; error: string; retryAt: string }
  | { state: "wrongPassword" }
  | { state: "loading" };

export interface RepositoryView {
  id: number;
  name: string;
  location: string;
  status: RepositoryStatus;
  /** The user@host acknowledgements are written as. */
  identity: string;
}

export interface Overview {
  tray: TrayState;
  repositories: RepositoryView[];
  notifications: NotificationView[];
  onboarding: boolean;
  statusLine?: string;
}

export interface Settings {
  pollIntervalSecs: number;
  /** Repositories on network storage: each check is a (billed) request. */
  networkPollIntervalSecs: number;
  minPopupSeverity: Severity;
  identityOverride: string | null;
  launchAtLogin: boolean;
}

export type AddRepositoryRequest =
  | { kind: "kopiaConfig"; path: string }
  | { kind: "filesystem"; path: string; password: string; name: string | null };

/** The commands the window calls; main.ts binds them to Tauri, tests to fakes. */
export interface Backend {
  overview(): Promise<Overview>;
  /** One notification with its message and details (the overview's rows have neither). */
  notification(repo: number, id: string): Promise<NotificationView>;
  ack(repo: number, id: string): Promise<"written" | "queued" | string>;
  ackAll(): Promise<number>;
  checkNow(): Promise<void>;
  settings(): Promise<Settings>;
  updateSettings(settings: Settings): Promise<void>;
  addRepository(request: AddRepositoryRequest): Promise<number>;
  removeRepository(repo: number): Promise<void>;
  openLink(url: string): Promise<void>;
}
