import { beforeEach, describe, expect, it, vi } from "vitest";
import { App, PAGE_SIZE } from "../src/app";
import type { Backend, Overview } from "../src/types";
import { SETTINGS, notification, overview } from "./fixtures";

const NOW = new Date("2025-01-10T12:00:00Z");

function fakeBackend(state: Overview): Backend & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    // As the engine does: rows without message and details, those fetched one at a time.
    overview: async () => {
      const copy = structuredClone(state);
      copy.notifications = copy.notifications.map((n) => ({ ...n, message: "", details: "" }));
      return copy;
    },
    notification: async (repo, id) => {
      calls.push(`notification ${repo}/${id}`);
      const n = state.notifications.find((x) => x.repo === repo && x.id === id);
      if (!n) throw new Error(`unknown notification ${id}`);
      return structuredClone(n);
    },
    ack: async (repo, id) => {
      calls.push(`ack ${repo}/${id}`);
      const n = state.notifications.find((x) => x.repo === repo && x.id === id);
      if (n) n.acknowledgedAt = NOW.toISOString();
      return "written";
    },
    ackAll: async () => {
      calls.push("ackAll");
      return 0;
    },
    checkNow: async () => void calls.push("checkNow"),
    settings: async () => SETTINGS,
    updateSettings: async () => void calls.push("updateSettings"),
    addRepository: async () => 1,
    removeRepository: async () => undefined,
    openLink: async (url) => void calls.push(`open ${url}`),
  };
}

function key(root: HTMLElement, k: string) {
  root.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
}

describe("App", () => {
  let root: HTMLElement;
  let app: App;
  let backend: ReturnType<typeof fakeBackend>;

  beforeEach(async () => {
    document.body.replaceChildren();
    root = document.createElement("div");
    document.body.appendChild(root);
    backend = fakeBackend(
      overview([
        notification({ id: "older", created: "2025-01-10T09:00:00Z" }),
        notification({ id: "newer", severity: "warning", title: "Maintenance overdue", created: "2025-01-10T11:00:00Z" }),
      ]),
    );
    app = new App(root, backend, () => NOW);
    root.addEventListener("keydown", (event) => app.handleKey(event));
    await app.refresh();
  });

  const selectedId = () => root.querySelector(".row.selected")?.getAttribute("data-id");

  it("lists pending notifications with the first selected", () => {
    expect(root.querySelectorAll('[data-testid="notification-row"]').length).toBe(2);
    expect(selectedId()).toBe("newer");
    expect(root.querySelector("#status-line")!.textContent).toBe("1 error");
  });

  it("moves with j/k and arrows, opens with Enter and returns with Escape", () => {
    key(root, "j");
    expect(selectedId()).toBe("older");
    key(root, "ArrowUp");
    expect(selectedId()).toBe("newer");
    key(root, "Enter");
    expect(root.querySelector("#detail-title")!.textContent).toBe("Maintenance overdue");
    key(root, "Escape");
    expect(root.querySelector("#notification-list")).not.toBe(null);
  });

  it("acknowledges the selected row with a and moves it to the history", async () => {
    key(root, "a");
    await vi.waitFor(() => expect(backend.calls).toContain("ack 1/newer"));
    await vi.waitFor(() => expect(root.querySelectorAll('[data-testid="notification-row"]').length).toBe(1));
    root.querySelector<HTMLElement>("#tab-history")!.click();
    expect(selectedId()).toBe("newer");
  });

  it("opens the entry a popup asked for and fetches its whole text", async () => {
    app.show({ repo: 1, id: "older" });
    expect(root.querySelector("#detail")!.getAttribute("data-id")).toBe("older");
    expect(backend.calls).toContain("notification 1/older");
    await vi.waitFor(() => expect(root.querySelector("#detail-details")?.textContent).toBe("ERROR unable to open /home/missing"));
    expect(root.querySelector("#detail-message")!.textContent).toBe("kopia snapshot create exited with status 1");
  });

  it("renders a long list a page at a time", async () => {
    const many = Array.from({ length: PAGE_SIZE * 2 + 5 }, (_, i) =>
      notification({ id: `n${i}`, created: new Date(Date.parse("2025-01-01T00:00:00Z") + i * 60_000).toISOString() }),
    );
    backend.overview = async () => overview(many);
    await app.refresh();
    const rows = () => root.querySelectorAll('[data-testid="notification-row"]').length;
    expect(rows()).toBe(PAGE_SIZE);
    expect(root.querySelector("#show-more")!.textContent).toBe(`Show ${PAGE_SIZE} more (${PAGE_SIZE + 5} not shown)`);
    root.querySelector<HTMLElement>("#show-more")!.click();
    expect(rows()).toBe(PAGE_SIZE * 2);
    root.querySelector<HTMLElement>("#show-more")!.click();
    expect(rows()).toBe(PAGE_SIZE * 2 + 5);
    expect(root.querySelector("#show-more")).toBe(null);
    // A new filter starts from the first page again.
    root.querySelector<HTMLElement>("#tab-history")!.click();
    root.querySelector<HTMLElement>("#tab-pending")!.click();
    expect(rows()).toBe(PAGE_SIZE);
  });

  it("shows onboarding when there is no repository", async () => {
    backend.overview = async () => overview([], { repositories: [], onboarding: true });
    await app.refresh();
    expect(root.querySelector("#onboarding")).not.toBe(null);
    expect(root.querySelector("#status-line")!.textContent).toBe("No repository yet");
  });

  it("keeps saying Saved. when a change re-renders the settings", async () => {
    await app.showSettings();
    root.querySelector<HTMLFormElement>("#settings-form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    await vi.waitFor(() => expect(backend.calls).toContain("updateSettings"));
    await app.refresh();
    expect(root.querySelector("#settings-status")!.textContent).toBe("Saved.");
    key(root, "Escape");
    await app.showSettings();
    expect(root.querySelector("#settings-status")!.textContent).toBe("");
  });

  it("shows the empty state when nothing is pending", async () => {
    backend.overview = async () => overview([]);
    await app.refresh();
    expect(root.querySelector("#empty-state h2")!.textContent).toBe("All clear");
  });
});
