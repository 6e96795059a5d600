// The shapes the app's Tauri commands return (the engine's views, serialized camelCase).
// Pure data: no behaviour lives here.

export type Severity = "error" | "warning" | "normal";

export interface NotificationView {
  repo: number;
  repoName: string;
  id: string;
  severity: Severity;
  title: string;
  message: string;
  details: string;
  link: string | null;
  originHost: string;
  created: string;
  acknowledgedAt: string | null;
  ackPending: boolean;
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
  ack(repo: number, id: string): Promise<"written" | "queued" | string>;
  ackAll(): Promise<number>;
  checkNow(): Promise<void>;
  settings(): Promise<Settings>;
  updateSettings(settings: Settings): Promise<void>;
  addRepository(request: AddRepositoryRequest): Promise<number>;
  removeRepository(repo: number): Promise<void>;
  openLink(url: string): Promise<void>;
}
