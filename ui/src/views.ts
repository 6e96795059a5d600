// The window's views, each a function from data to a DOM subtree plus callbacks.
// They hold no state of their own; main.ts decides what to show and re-renders.

import { h } from "./dom";
import {
  type Filter,
  type SeverityFilter,
  type Tab,
  KIND_LABEL,
  SEVERITY_GLYPH,
  SEVERITY_LABEL,
  formatAge,
  formatTimestamp,
  isSafeLink,
  linkLabel,
  linkTooltip,
  notificationKey,
  sourceLabel,
} from "./model";
import type { AddRepositoryRequest, NotificationView, RepositoryView, Settings, Severity } from "./types";

export function severityBadge(severity: Severity): HTMLElement {
  return h(
    "span",
    { class: `badge badge-${severity}`, title: SEVERITY_LABEL[severity], attrs: { "aria-label": SEVERITY_LABEL[severity] } },
    h("span", { class: "glyph", attrs: { "aria-hidden": "true" } }, SEVERITY_GLYPH[severity]),
  );
}

export interface ToolbarHandlers {
  change(filter: Filter): void;
}

export function renderToolbar(
  filter: Filter,
  repositories: RepositoryView[],
  sources: string[],
  pendingCount: number,
  handlers: ToolbarHandlers,
): HTMLElement {
  const tab = (value: Tab, label: string) =>
    h(
      "button",
      {
        class: `tab${filter.tab === value ? " active" : ""}`,
        id: `tab-${value}`,
        testid: `tab-${value}`,
        type: "button",
        attrs: { role: "tab", "aria-selected": String(filter.tab === value) },
        on: { click: () => handlers.change({ ...filter, tab: value }) },
      },
      label,
    );

  const severity = h(
    "select",
    {
      id: "filter-severity",
      testid: "filter-severity",
      attrs: { "aria-label": "Severity" },
      on: { change: () => handlers.change({ ...filter, severity: severity.value as SeverityFilter }) },
    },
    ...(
      [
        ["all", "All severities"],
        ["error", "Errors"],
        ["warning", "Warnings"],
        ["normal", "Info"],
      ] as const
    ).map(([value, label]) => option(value, label, filter.severity === value)),
  );

  const repo = h(
    "select",
    {
      id: "filter-repo",
      testid: "filter-repo",
      attrs: { "aria-label": "Repository" },
      on: {
        change: () =>
          handlers.change({ ...filter, repo: repo.value === "all" ? "all" : Number(repo.value) }),
      },
    },
    option("all", "All repositories", filter.repo === "all"),
    ...repositories.map((r) => option(String(r.id), r.name, filter.repo === r.id)),
  );

  // Sources are repository text: option labels are set as text, never as markup.
  const source = h(
    "select",
    {
      id: "filter-source",
      testid: "filter-source",
      attrs: { "aria-label": "Snapshot source" },
      on: { change: () => handlers.change({ ...filter, source: source.value }) },
    },
    option("all", "All sources", filter.source === "all"),
    ...sources.map((label) => option(label, label, filter.source === label)),
  );

  return h(
    "div",
    { class: "toolbar" },
    h(
      "div",
      { class: "tabs", attrs: { role: "tablist" } },
      tab("pending", pendingCount ? `Pending (${pendingCount})` : "Pending"),
      tab("history", "History"),
    ),
    h("div", { class: "filters" }, severity, repositories.length > 1 ? repo : null, sources.length > 0 ? source : null),
  );
}

function option(value: string, label: string, selected: boolean): HTMLOptionElement {
  const el = h("option", { attrs: { value } }, label);
  el.selected = selected;
  return el;
}

export interface ListHandlers {
  open(n: NotificationView): void;
}

export function renderList(
  rows: NotificationView[],
  selectedKey: string | null,
  now: Date,
  handlers: ListHandlers,
): HTMLElement {
  return h(
    "ul",
    { class: "list", id: "notification-list", testid: "notification-list", attrs: { role: "listbox" } },
    ...rows.map((n) => {
      const key = notificationKey(n);
      const selected = key === selectedKey;
      const item = h(
        "li",
        {
          class: `row severity-${n.severity}${selected ? " selected" : ""}`,
          testid: "notification-row",
          attrs: {
            role: "option",
            "aria-selected": String(selected),
            "data-key": key,
            "data-repo": String(n.repo),
            "data-id": n.id,
            tabindex: selected ? "0" : "-1",
          },
          on: { click: () => handlers.open(n) },
        },
        severityBadge(n.severity),
        h(
          "div",
          { class: "row-main" },
          h("div", { class: "row-title" }, n.title),
          h(
            "div",
            { class: "row-meta" },
            n.snapshotSource
              ? h("span", { class: "source", testid: "row-source" }, sourceLabel(n.snapshotSource))
              : n.originHost
                ? h("span", { class: "host" }, n.originHost)
                : null,
            h("span", { class: "repo" }, n.repoName),
            n.ackPending ? h("span", { class: "pending-sync", title: "Will be written when the repository is reachable" }, "ack queued") : null,
          ),
        ),
        n.resolved && !n.acknowledgedAt
          ? h(
              "time",
              { class: "age resolved", testid: "row-resolved", title: `Resolved ${formatTimestamp(n.resolved.at)}: ${n.resolved.reason}`, attrs: { datetime: n.resolved.at } },
              `resolved ${formatAge(n.resolved.at, now)}`,
            )
          : n.acknowledgedAt
          ? h(
              "time",
              { class: "age", title: `Acknowledged ${formatTimestamp(n.acknowledgedAt)}`, attrs: { datetime: n.acknowledgedAt } },
              `acknowledged ${formatAge(n.acknowledgedAt, now)}`,
            )
          : h("time", { class: "age", title: formatTimestamp(n.created), attrs: { datetime: n.created } }, formatAge(n.created, now)),
      );
      return item;
    }),
  );
}

export function renderEmpty(tab: Tab, filtered: boolean): HTMLElement {
  const [title, text] =
    tab === "history"
      ? ["Nothing here yet", "Notifications you acknowledge, and problems that resolved themselves, are kept here until they expire."]
      : filtered
        ? ["Nothing matches", "No pending notification matches these filters."]
        : ["All clear", "No pending notifications. New ones show up here and as desktop popups."];
  return h(
    "div",
    { class: "empty", id: "empty-state", testid: "empty-state" },
    h("div", { class: "empty-mark", attrs: { "aria-hidden": "true" } }, tab === "pending" && !filtered ? "✓" : "∅"),
    h("h2", null, title),
    h("p", null, text),
  );
}

export interface DetailHandlers {
  back(): void;
  acknowledge(n: NotificationView): void;
  acknowledgeAll(): void;
  openLink(url: string): void;
}

export function renderDetail(n: NotificationView, now: Date, handlers: DetailHandlers): HTMLElement {
  const acknowledged = n.acknowledgedAt !== null || n.ackPending || n.resolved !== null;
  const ackState = n.ackPending
    ? "Acknowledged here; written to the repository when it is reachable again."
    : n.acknowledgedAt
      ? `Acknowledged ${formatAge(n.acknowledgedAt, now)} (${formatTimestamp(n.acknowledgedAt)}).`
      : null;
  return h(
    "article",
    { class: `detail severity-${n.severity}`, id: "detail", testid: "detail", attrs: { "data-repo": String(n.repo), "data-id": n.id } },
    h(
      "div",
      { class: "detail-nav" },
      h("button", { class: "link-button", id: "detail-back", testid: "detail-back", type: "button", on: { click: handlers.back } }, "← Back"),
    ),
    h(
      "header",
      { class: "detail-header" },
      severityBadge(n.severity),
      h("h2", { id: "detail-title", testid: "detail-title" }, n.title),
    ),
    h(
      "dl",
      { class: "meta" },
      h("dt", null, "Severity"),
      h("dd", null, SEVERITY_LABEL[n.severity]),
      h("dt", null, "About"),
      h("dd", { testid: "detail-kind" }, KIND_LABEL[n.kind]),
      n.snapshotSource ? h("dt", null, "Source") : null,
      n.snapshotSource ? h("dd", { testid: "detail-source" }, sourceLabel(n.snapshotSource)) : null,
      h("dt", null, "Repository"),
      h("dd", null, n.repoName),
      n.originHost ? h("dt", null, "Host") : null,
      n.originHost ? h("dd", null, n.originHost) : null,
      h("dt", null, "Created"),
      h("dd", null, h("time", { attrs: { datetime: n.created } }, `${formatTimestamp(n.created)} · ${formatAge(n.created, now)}`)),
    ),
    n.message ? h("p", { class: "message", id: "detail-message", testid: "detail-message" }, n.message) : null,
    n.details
      ? h(
          "section",
          { class: "details" },
          h("h3", null, "Details"),
          h("pre", { id: "detail-details", testid: "detail-details", attrs: { tabindex: "0" } }, n.details),
        )
      : null,
    isSafeLink(n.link)
      ? h(
          "p",
          { class: "link" },
          h(
            "button",
            {
              class: "link-button",
              id: "detail-link",
              testid: "detail-link",
              type: "button",
              title: linkTooltip(n.link),
              on: { click: () => handlers.openLink(n.link as string) },
            },
            `Open ${linkLabel(n.link)} ↗`,
          ),
        )
      : null,
    ackState ? h("p", { class: "ack-state", testid: "detail-ack-state" }, ackState) : null,
    n.resolved
      ? h(
          "p",
          { class: "ack-state resolved", testid: "detail-resolved" },
          `Resolved ${formatAge(n.resolved.at, now)} (${formatTimestamp(n.resolved.at)}): ${n.resolved.reason}`,
        )
      : null,
    h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          class: "primary",
          id: "detail-ack",
          testid: "detail-ack",
          type: "button",
          disabled: acknowledged,
          on: { click: () => handlers.acknowledge(n) },
        },
        "Acknowledge",
      ),
      h("button", { id: "detail-ack-all", testid: "detail-ack-all", type: "button", on: { click: handlers.acknowledgeAll } }, "Acknowledge all"),
    ),
  );
}

export interface RepositoryFormHandlers {
  add(request: AddRepositoryRequest): Promise<void>;
}

/** Adding a repository: a filesystem path + password, or the path of a Kopia config file. */
export function renderRepositoryForm(handlers: RepositoryFormHandlers): HTMLElement {
  const path = h("input", { id: "repo-path", testid: "repo-path", type: "text", attrs: { placeholder: "/mnt/backup/kopia", required: "", autocomplete: "off" } });
  const password = h("input", { id: "repo-password", testid: "repo-password", type: "password", attrs: { autocomplete: "off" } });
  const name = h("input", { id: "repo-name", testid: "repo-name", type: "text", attrs: { placeholder: "optional", autocomplete: "off" } });
  const error = h("p", { class: "form-error", id: "repo-error", testid: "repo-error", attrs: { role: "alert" } });
  const submit = h("button", { class: "primary", id: "repo-add", testid: "repo-add", type: "submit" }, "Add repository");
  const form = h(
    "form",
    {
      class: "repo-form",
      id: "repo-form",
      testid: "repo-form",
      on: {
        submit: (event) => {
          event.preventDefault();
          const trimmed = path.value.trim();
          if (!trimmed) {
            error.textContent = "Enter the repository folder or a Kopia config file.";
            return;
          }
          const request: AddRepositoryRequest = trimmed.endsWith(".config")
            ? { kind: "kopiaConfig", path: trimmed }
            : { kind: "filesystem", path: trimmed, password: password.value, name: name.value.trim() || null };
          error.textContent = "";
          submit.disabled = true;
          handlers
            .add(request)
            .then(() => form.reset())
            .catch((e: unknown) => {
              error.textContent = String(e);
            })
            .finally(() => {
              submit.disabled = false;
            });
        },
      },
    },
    field("Repository folder or Kopia .config file", path),
    field("Password", password, "Kept in the system keyring, never in a file."),
    field("Name", name),
    error,
    h("div", { class: "actions" }, submit),
  );
  return form;
}

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
}

export function renderOnboarding(handlers: RepositoryFormHandlers): HTMLElement {
  return h(
    "section",
    { class: "onboarding", id: "onboarding", testid: "onboarding" },
    h("h2", null, "Welcome to Kopia Notifier"),
    h(
      "p",
      null,
      "Kopia Notifier shows what your Kopia backups need you to know: failed snapshots, stalled maintenance, corruption. ",
      "The notifications live in the repository itself, so every machine connected to it sees them until someone acknowledges them.",
    ),
    h(
      "p",
      null,
      "Repositories the Kopia CLI or KopiaUI on this machine are connected to are imported automatically. None was found, so add one here:",
    ),
    renderRepositoryForm(handlers),
  );
}

export interface SettingsHandlers extends RepositoryFormHandlers {
  save(settings: Settings): Promise<void>;
  remove(repo: RepositoryView): void;
  back(): void;
}

export function renderSettings(
  settings: Settings,
  repositories: RepositoryView[],
  handlers: SettingsHandlers,
  notice = "",
): HTMLElement {
  const interval = h("input", { id: "setting-poll-interval", testid: "setting-poll-interval", type: "number", attrs: { min: "5", max: "86400", step: "1", value: String(settings.pollIntervalSecs) } });
  const networkInterval = h("input", { id: "setting-network-poll-interval", testid: "setting-network-poll-interval", type: "number", attrs: { min: "5", max: "86400", step: "1", value: String(settings.networkPollIntervalSecs) } });
  const minSeverity = h(
    "select",
    { id: "setting-min-severity", testid: "setting-min-severity" },
    option("error", "Errors only", settings.minPopupSeverity === "error"),
    option("warning", "Warnings and errors", settings.minPopupSeverity === "warning"),
    option("normal", "Everything", settings.minPopupSeverity === "normal"),
  );
  const identity = h("input", { id: "setting-identity", testid: "setting-identity", type: "text", attrs: { placeholder: "user@host (default: this machine's)", value: settings.identityOverride ?? "" } });
  const launch = h("input", { id: "setting-launch-at-login", testid: "setting-launch-at-login", type: "checkbox" });
  launch.checked = settings.launchAtLogin;
  const status = h("p", { class: "form-status", id: "settings-status", testid: "settings-status", attrs: { role: "status" } }, notice);

  const form = h(
    "form",
    {
      class: "settings-form",
      id: "settings-form",
      on: {
        submit: (event) => {
          event.preventDefault();
          const seconds = Math.round(Number(interval.value));
          const networkSeconds = Math.round(Number(networkInterval.value));
          if (![seconds, networkSeconds].every((s) => Number.isFinite(s) && s >= 5 && s <= 86400)) {
            status.textContent = "Check intervals are between 5 seconds and a day.";
            return;
          }
          const next: Settings = {
            ...settings,
            pollIntervalSecs: seconds,
            networkPollIntervalSecs: networkSeconds,
            minPopupSeverity: minSeverity.value as Severity,
            identityOverride: identity.value.trim() || null,
            launchAtLogin: launch.checked,
          };
          handlers
            .save(next)
            .then(() => {
              status.textContent = "Saved.";
            })
            .catch((e: unknown) => {
              status.textContent = String(e);
            });
        },
      },
    },
    field("Check local repositories every (seconds)", interval),
    field("Check cloud and network repositories every (seconds)", networkInterval, "Each check is a request your storage provider may bill; Check now is always immediate."),
    field("Show popups for", minSeverity),
    field("Identity", identity, "Whose user@host notifications are shown besides those for everyone."),
    h("label", { class: "checkbox" }, launch, h("span", null, "Launch at login")),
    status,
    h("div", { class: "actions" }, h("button", { class: "primary", id: "settings-save", testid: "settings-save", type: "submit" }, "Save")),
  );

  return h(
    "section",
    { class: "settings", id: "settings", testid: "settings" },
    h("div", { class: "detail-nav" }, h("button", { class: "link-button", id: "settings-back", testid: "settings-back", type: "button", on: { click: handlers.back } }, "← Back")),
    h("h2", null, "Settings"),
    form,
    h("h3", null, "Repositories"),
    repositories.length
      ? h(
          "ul",
          { class: "repositories", id: "repositories", testid: "repositories" },
          ...repositories.map((r) =>
            h(
              "li",
              { testid: "repository", attrs: { "data-repo": String(r.id) } },
              h("span", { class: "repo-main" }, h("span", { class: "repo-name" }, r.name), h("span", { class: "repo-location" }, r.location)),
              h("span", { class: `repo-status repo-${r.status.state}`, testid: "repository-status" }, repositoryStatus(r)),
              h("button", { class: "danger", type: "button", testid: "repository-remove", on: { click: () => handlers.remove(r) } }, "Remove"),
            ),
          ),
        )
      : h("p", null, "No repository yet."),
    h("h3", null, "Add a repository"),
    renderRepositoryForm(handlers),
  );
}

/** A short state of a repository: "ok", "unreachable: <why>", "wrong password", "checking…". */
export function repositoryStatus(r: RepositoryView): string {
  switch (r.status.state) {
    case "ok":
      return "ok";
    case "unreachable":
      return `unreachable: ${r.status.error}`;
    case "wrongPassword":
      return "wrong password";
    case "loading":
      return "checking…";
  }
}
