// The window's controller: holds the current view, filter and selection, re-renders on
// change, and maps keys and clicks to backend commands.

import { h, replaceChildren } from "./dom";
import {
  DEFAULT_FILTER,
  type Filter,
  isSettled,
  keyAction,
  moveSelection,
  notificationKey,
  sourcesOf,
  statusLine,
  visibleNotifications,
} from "./model";
import type { Backend, NotificationView, Overview, Settings } from "./types";
import { renderDetail, renderEmpty, renderList, renderOnboarding, renderSettings, renderToolbar } from "./views";

type View = { kind: "list" } | { kind: "detail"; repo: number; id: string } | { kind: "settings"; settings: Settings };

/** Rows rendered at once; "Show more" adds as many again. */
export const PAGE_SIZE = 200;

export class App {
  private overview: Overview | null = null;
  private view: View = { kind: "list" };
  private filter: Filter = { ...DEFAULT_FILTER };
  private selectedKey: string | null = null;
  /** How many rows of the list are rendered. */
  private limit = PAGE_SIZE;
  /** The open notification's whole text, fetched when it is opened. */
  private detail: NotificationView | null = null;
  private error = "";
  /** Shown in the settings view until it is left ("Saved."), surviving re-renders. */
  private settingsNotice = "";

  constructor(
    private readonly root: HTMLElement,
    private readonly backend: Backend,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Fetches the overview and re-renders; called at start and on every `overview-changed`. */
  async refresh(): Promise<void> {
    try {
      this.overview = await this.backend.overview();
      this.error = "";
    } catch (e) {
      this.error = String(e);
    }
    this.render();
  }

  /** Opens the detail view of one notification (popup click, tray entry, route). */
  show(target: { repo: number; id: string }): void {
    this.view = { kind: "detail", repo: target.repo, id: target.id };
    this.selectedKey = notificationKey(target);
    this.detail = null;
    this.render();
    void this.loadDetail(target);
  }

  private async loadDetail(target: { repo: number; id: string }): Promise<void> {
    try {
      const full = await this.backend.notification(target.repo, target.id);
      if (this.view.kind === "detail" && notificationKey(this.view) === notificationKey(full)) {
        this.detail = full;
        this.render();
      }
    } catch (e) {
      this.error = String(e);
      this.render();
    }
  }

  showList(): void {
    this.view = { kind: "list" };
    this.settingsNotice = "";
    this.render();
  }

  async showSettings(): Promise<void> {
    try {
      const settings = await this.backend.settings();
      this.view = { kind: "settings", settings };
    } catch (e) {
      this.error = String(e);
    }
    this.render();
  }

  /** The filtered rows, all of them. */
  private allRows(): NotificationView[] {
    return this.overview ? visibleNotifications(this.overview.notifications, this.filter) : [];
  }

  /** The rows rendered now: the first `limit` of them. */
  private rows(): NotificationView[] {
    return this.allRows().slice(0, this.limit);
  }

  private find(repo: number, id: string): NotificationView | undefined {
    return this.overview?.notifications.find((n) => n.repo === repo && n.id === id);
  }

  handleKey(event: KeyboardEvent): void {
    const target = event.target as HTMLElement | null;
    const inField = !!target && ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName);
    const action = keyAction(event.key, inField);
    if (!action || event.ctrlKey || event.metaKey || event.altKey) return;
    if (this.view.kind !== "list") {
      if (action === "back") {
        event.preventDefault();
        this.showList();
      } else if (action === "acknowledge" && this.view.kind === "detail") {
        const n = this.find(this.view.repo, this.view.id);
        if (n) void this.acknowledge(n);
      }
      return;
    }
    const rows = this.rows();
    const index = rows.findIndex((n) => notificationKey(n) === this.selectedKey);
    switch (action) {
      case "next":
      case "previous": {
        event.preventDefault();
        const next = moveSelection(index, action === "next" ? 1 : -1, rows.length);
        this.selectedKey = next >= 0 ? notificationKey(rows[next]) : null;
        this.render();
        this.root.querySelector<HTMLElement>(".row.selected")?.focus();
        break;
      }
      case "open":
        if (index >= 0) {
          event.preventDefault();
          this.show(rows[index]);
        }
        break;
      case "acknowledge":
        if (index >= 0) void this.acknowledge(rows[index]);
        break;
      case "back":
        break;
    }
  }

  private async acknowledge(n: NotificationView): Promise<void> {
    await this.run(() => this.backend.ack(n.repo, n.id));
    // Keep the selection on the row that took the acknowledged one's place.
    if (this.view.kind === "list") {
      const rows = this.rows();
      const index = rows.findIndex((r) => notificationKey(r) === notificationKey(n));
      const next = rows[index + 1] ?? rows[index - 1];
      if (next) this.selectedKey = notificationKey(next);
    }
    await this.refresh();
  }

  private async run<T>(action: () => Promise<T>): Promise<T | undefined> {
    try {
      return await action();
    } catch (e) {
      this.error = String(e);
      this.render();
      return undefined;
    }
  }

  render(): void {
    const now = this.now();
    const overview = this.overview;
    const header = h(
      "header",
      { class: "app-header" },
      h("h1", null, "Kopia Notifier"),
      h("span", { class: "status", id: "status-line", testid: "status-line" }, overview ? (overview.repositories.length ? statusLine(overview.tray, now) : "No repository yet") : "Loading…"),
      h(
        "div",
        { class: "header-actions" },
        h("button", { id: "check-now", testid: "check-now", type: "button", title: "Check the repositories now", on: { click: () => void this.run(() => this.backend.checkNow()) } }, "Check now"),
        h("button", { id: "open-settings", testid: "open-settings", type: "button", on: { click: () => void this.showSettings() } }, "Settings"),
      ),
    );
    const banner = this.error ? h("p", { class: "error-banner", id: "error-banner", testid: "error-banner", attrs: { role: "alert" } }, this.error) : null;
    replaceChildren(this.root, header, banner, h("main", { id: "content" }, this.renderContent(now)));
  }

  private renderContent(now: Date): Node | null {
    const overview = this.overview;
    if (!overview) return null;
    const add = async (request: Parameters<Backend["addRepository"]>[0]) => {
      await this.backend.addRepository(request);
      await this.refresh();
    };
    if (this.view.kind === "settings") {
      return renderSettings(this.view.settings, overview.repositories, {
        save: async (settings) => {
          await this.backend.updateSettings(settings);
          this.settingsNotice = "Saved.";
          if (this.view.kind === "settings") this.view = { kind: "settings", settings };
        },
        remove: (repo) => void this.run(() => this.backend.removeRepository(repo.id)).then(() => this.refresh()),
        add,
        back: () => this.showList(),
      }, this.settingsNotice);
    }
    if (overview.onboarding || overview.repositories.length === 0) {
      return renderOnboarding({ add });
    }
    if (this.view.kind === "detail") {
      const row = this.find(this.view.repo, this.view.id);
      if (row) {
        // The row has the current state (acknowledged, resolved); the fetched view the text.
        const full = this.detail && notificationKey(this.detail) === notificationKey(row) ? this.detail : null;
        const n = full ? { ...row, message: full.message, details: full.details } : row;
        return renderDetail(n, now, {
          back: () => this.showList(),
          acknowledge: (item) => void this.acknowledge(item),
          acknowledgeAll: () => void this.run(() => this.backend.ackAll()).then(() => this.refresh()),
          openLink: (url) => void this.run(() => this.backend.openLink(url)),
        });
      }
      // Gone (expired or collected): fall back to the list.
      this.view = { kind: "list" };
    }
    const all = this.allRows();
    const rows = all.slice(0, this.limit);
    if (this.selectedKey === null || !rows.some((n) => notificationKey(n) === this.selectedKey)) {
      this.selectedKey = rows.length ? notificationKey(rows[0]) : null;
    }
    const pending = overview.notifications.filter((n) => !isSettled(n)).length;
    const filtered = this.filter.severity !== "all" || this.filter.repo !== "all" || this.filter.source !== "all";
    const toolbar = renderToolbar(this.filter, overview.repositories, sourcesOf(overview.notifications), pending, {
      change: (filter) => {
        this.filter = filter;
        this.limit = PAGE_SIZE;
        this.render();
      },
    });
    const footer =
      this.filter.tab === "pending" && pending > 0
        ? h("div", { class: "list-footer" }, h("button", { id: "ack-all", testid: "ack-all", type: "button", on: { click: () => void this.run(() => this.backend.ackAll()).then(() => this.refresh()) } }, "Acknowledge all"), h("span", { class: "hint" }, "↑↓ or j/k to move · Enter to open · a to acknowledge"))
        : null;
    const body = rows.length
      ? renderList(rows, this.selectedKey, now, { open: (n) => this.show(n) })
      : renderEmpty(this.filter.tab, filtered);
    const more =
      all.length > rows.length
        ? h(
            "button",
            {
              class: "link-button show-more",
              id: "show-more",
              testid: "show-more",
              type: "button",
              on: {
                click: () => {
                  this.limit += PAGE_SIZE;
                  this.render();
                },
              },
            },
            `Show ${Math.min(PAGE_SIZE, all.length - rows.length)} more (${all.length - rows.length} not shown)`,
          )
        : null;
    const wrap = h("div", { class: "list-view" }, toolbar, body, more, footer);
    return wrap;
  }
}
