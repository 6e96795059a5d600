import { beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "../src/app";
import type { Backend, Overview } from "../src/types";
import { SETTINGS, notification, overview } from "./fixtures";

const NOW = new Date("2025-01-10T12:00:00Z");

function fakeBackend(state: Overview): Backend & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    overview: async () => structuredClone(state),
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

  it("opens the entry a popup asked for", () => {
    app.show({ repo: 1, id: "older" });
    expect(root.querySelector("#detail")!.getAttribute("data-id")).toBe("older");
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
