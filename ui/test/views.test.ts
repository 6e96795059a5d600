import { describe, expect, it, vi } from "vitest";
import { DEFAULT_FILTER } from "../src/model";
import { renderDetail, renderEmpty, renderList, renderOnboarding, renderSettings, renderToolbar } from "../src/views";
import { SETTINGS, notification, repository } from "./fixtures";

const NOW = new Date("2025-01-10T12:00:00Z");
const HOSTILE = `<img src=x onerror="alert(1)"> & <b>bold</b> "quoted" 'single'`;

describe("renderList", () => {
  it("shows severity, title, host, repository and age per row", () => {
    const list = renderList([notification()], "1/a1", NOW, { open: () => {} });
    const row = list.querySelector('[data-testid="notification-row"]')!;
    expect(row.getAttribute("data-id")).toBe("a1");
    expect(row.classList.contains("selected")).toBe(true);
    expect(row.querySelector(".badge")!.getAttribute("aria-label")).toBe("Error");
    expect(row.querySelector(".row-title")!.textContent).toBe("Snapshot of /home failed");
    expect(row.querySelector(".host")!.textContent).toBe("laptop");
    expect(row.querySelector(".repo")!.textContent).toBe("nas");
    expect(row.querySelector(".age")!.textContent).toBe("2 h ago");
  });
  it("renders markup in titles as text", () => {
    const list = renderList([notification({ title: HOSTILE, originHost: HOSTILE })], null, NOW, { open: () => {} });
    expect(list.querySelector("img")).toBe(null);
    expect(list.querySelector("b")).toBe(null);
    expect(list.querySelector(".row-title")!.textContent).toBe(HOSTILE);
  });
  it("opens a row on click", () => {
    const open = vi.fn();
    const n = notification();
    renderList([n], null, NOW, { open }).querySelector<HTMLElement>(".row")!.click();
    expect(open).toHaveBeenCalledWith(n);
  });
  it("dates acknowledged rows by their acknowledgement", () => {
    const list = renderList([notification({ acknowledgedAt: "2025-01-10T11:55:00Z" })], null, NOW, { open: () => {} });
    expect(list.querySelector(".age")!.textContent).toBe("acknowledged 5 min ago");
  });
  it("names the snapshot source instead of the host, as text", () => {
    const source = { host: "laptop", userName: "alice", path: HOSTILE };
    const list = renderList([notification({ kind: "snapshot", snapshotSource: source })], null, NOW, { open: () => {} });
    expect(list.querySelector("img, b")).toBe(null);
    expect(list.querySelector('[data-testid="row-source"]')!.textContent).toBe(`alice@laptop:${HOSTILE}`);
    expect(list.querySelector(".host")).toBe(null);
  });
  it("dates resolved rows by their resolution", () => {
    const resolved = { at: "2025-01-10T11:50:00Z", reason: "a newer snapshot of alice@laptop:/home succeeded" };
    const row = renderList([notification({ resolved })], null, NOW, { open: () => {} }).querySelector('[data-testid="row-resolved"]')!;
    expect(row.textContent).toBe("resolved 10 min ago");
    expect(row.getAttribute("title")).toContain("a newer snapshot of alice@laptop:/home succeeded");
  });
  it("marks acknowledgements still queued", () => {
    const list = renderList([notification({ ackPending: true })], null, NOW, { open: () => {} });
    expect(list.querySelector(".pending-sync")!.textContent).toBe("ack queued");
  });
});

describe("renderDetail", () => {
  const handlers = () => ({ back: vi.fn(), acknowledge: vi.fn(), acknowledgeAll: vi.fn(), openLink: vi.fn() });

  it("shows message, preformatted details and the link, all as text", () => {
    const n = notification({ message: HOSTILE, details: `line 1\n${HOSTILE}`, link: "https://example.com/x" });
    const h = handlers();
    const el = renderDetail(n, NOW, h);
    expect(el.querySelector("img, b")).toBe(null);
    expect(el.querySelector('[data-testid="detail-message"]')!.textContent).toBe(HOSTILE);
    expect(el.querySelector("pre")!.textContent).toBe(`line 1\n${HOSTILE}`);
    el.querySelector<HTMLElement>('[data-testid="detail-link"]')!.click();
    expect(h.openLink).toHaveBeenCalledWith("https://example.com/x");
  });
  it("labels a link with its real host, not the text its writer chose", () => {
    const link = "https://bank.example@pаypal.com/login";
    const h = handlers();
    const el = renderDetail(notification({ link }), NOW, h);
    const button = el.querySelector<HTMLElement>('[data-testid="detail-link"]')!;
    expect(button.textContent).toBe("Open xn--pypal-4ve.com ↗");
    expect(button.title).toBe("https://xn--pypal-4ve.com/login");
    button.click();
    expect(h.openLink).toHaveBeenCalledWith(link);
  });
  it("offers no link that is not http(s)", () => {
    const el = renderDetail(notification({ link: "javascript:alert(1)" }), NOW, handlers());
    expect(el.querySelector('[data-testid="detail-link"]')).toBe(null);
  });
  it("acknowledges, acknowledges all and goes back", () => {
    const h = handlers();
    const n = notification();
    const el = renderDetail(n, NOW, h);
    el.querySelector<HTMLElement>("#detail-ack")!.click();
    el.querySelector<HTMLElement>("#detail-ack-all")!.click();
    el.querySelector<HTMLElement>("#detail-back")!.click();
    expect(h.acknowledge).toHaveBeenCalledWith(n);
    expect(h.acknowledgeAll).toHaveBeenCalled();
    expect(h.back).toHaveBeenCalled();
  });
  it("names kind and source, and says when and why it resolved", () => {
    const n = notification({
      kind: "snapshot",
      snapshotSource: { host: "laptop", userName: "alice", path: "/home" },
      resolved: { at: "2025-01-10T11:00:00Z", reason: `a newer clean snapshot ${HOSTILE}` },
    });
    const el = renderDetail(n, NOW, handlers());
    expect(el.querySelector('[data-testid="detail-kind"]')!.textContent).toBe("Snapshot");
    expect(el.querySelector('[data-testid="detail-source"]')!.textContent).toBe("alice@laptop:/home");
    expect(el.querySelector('[data-testid="detail-resolved"]')!.textContent).toContain(`1 h ago`);
    expect(el.querySelector('[data-testid="detail-resolved"]')!.textContent).toContain(HOSTILE);
    expect(el.querySelector("img, b")).toBe(null);
    expect(el.querySelector<HTMLButtonElement>("#detail-ack")!.disabled).toBe(true);
  });
  it("disables Acknowledge once acknowledged and says when", () => {
    const el = renderDetail(notification({ acknowledgedAt: "2025-01-10T11:00:00Z" }), NOW, handlers());
    expect(el.querySelector<HTMLButtonElement>("#detail-ack")!.disabled).toBe(true);
    expect(el.querySelector('[data-testid="detail-ack-state"]')!.textContent).toContain("1 h ago");
  });
});

describe("renderEmpty", () => {
  it("says all clear, or that filters hide everything, or that history is empty", () => {
    expect(renderEmpty("pending", false).querySelector("h2")!.textContent).toBe("All clear");
    expect(renderEmpty("pending", true).querySelector("h2")!.textContent).toBe("Nothing matches");
    expect(renderEmpty("history", false).querySelector("h2")!.textContent).toBe("Nothing here yet");
  });
});

describe("renderToolbar", () => {
  it("offers a source filter only when there are sources, labelled as text", () => {
    const change = vi.fn();
    expect(renderToolbar(DEFAULT_FILTER, [repository(1, "nas")], [], 0, { change }).querySelector("#filter-source")).toBe(null);
    const sources = ["alice@laptop:/home", `bob@x:${HOSTILE}`];
    const bar = renderToolbar(DEFAULT_FILTER, [repository(1, "nas")], sources, 2, { change });
    const select = bar.querySelector<HTMLSelectElement>("#filter-source")!;
    expect([...select.options].map((o) => o.textContent)).toEqual(["All sources", ...sources]);
    expect(bar.querySelector("img, b")).toBe(null);
    select.value = "alice@laptop:/home";
    select.dispatchEvent(new Event("change"));
    expect(change).toHaveBeenCalledWith({ ...DEFAULT_FILTER, source: "alice@laptop:/home" });
  });
});

describe("repository form", () => {
  function fill(form: HTMLElement, path: string, password = "", name = "") {
    form.querySelector<HTMLInputElement>("#repo-path")!.value = path;
    form.querySelector<HTMLInputElement>("#repo-password")!.value = password;
    form.querySelector<HTMLInputElement>("#repo-name")!.value = name;
    form.querySelector("form")!.dispatchEvent(new Event("submit", { cancelable: true }));
  }

  it("adds a filesystem repository by path and password", () => {
    const add = vi.fn(() => Promise.resolve());
    const el = renderOnboarding({ add });
    fill(el, " /mnt/backup ", "secret", "NAS");
    expect(add).toHaveBeenCalledWith({ kind: "filesystem", path: "/mnt/backup", password: "secret", name: "NAS" });
  });
  it("sends no name when none is given", () => {
    const add = vi.fn(() => Promise.resolve());
    fill(renderOnboarding({ add }), "/mnt/backup", "secret");
    expect(add).toHaveBeenCalledWith({ kind: "filesystem", path: "/mnt/backup", password: "secret", name: null });
  });
  it("adds a Kopia config file by its path", () => {
    const add = vi.fn(() => Promise.resolve());
    fill(renderOnboarding({ add }), "/home/me/.config/kopia/repository.config");
    expect(add).toHaveBeenCalledWith({ kind: "kopiaConfig", path: "/home/me/.config/kopia/repository.config" });
  });
  it("refuses an empty path and shows why", () => {
    const add = vi.fn(() => Promise.resolve());
    const el = renderOnboarding({ add });
    fill(el, "  ");
    expect(add).not.toHaveBeenCalled();
    expect(el.querySelector("#repo-error")!.textContent).not.toBe("");
  });
  it("shows the engine's error when adding fails", async () => {
    const el = renderOnboarding({ add: () => Promise.reject(new Error("wrong password")) });
    fill(el, "/mnt/backup", "bad");
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(el.querySelector("#repo-error")!.textContent).toContain("wrong password");
  });
});

describe("renderSettings", () => {
  it("saves edited settings", async () => {
    const save = vi.fn(() => Promise.resolve());
    const el = renderSettings(SETTINGS, [repository(1, "nas")], { save, remove: vi.fn(), add: vi.fn(), back: vi.fn() });
    el.querySelector<HTMLInputElement>("#setting-poll-interval")!.value = "30";
    el.querySelector<HTMLInputElement>("#setting-network-poll-interval")!.value = "1800";
    el.querySelector<HTMLSelectElement>("#setting-min-severity")!.value = "error";
    el.querySelector<HTMLInputElement>("#setting-identity")!.value = " me@box ";
    el.querySelector<HTMLInputElement>("#setting-launch-at-login")!.checked = true;
    el.querySelector<HTMLFormElement>("#settings-form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    expect(save).toHaveBeenCalledWith({
      pollIntervalSecs: 30,
      networkPollIntervalSecs: 1800,
      minPopupSeverity: "error",
      identityOverride: "me@box",
      launchAtLogin: true,
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(el.querySelector("#settings-status")!.textContent).toBe("Saved.");
  });
  it("rejects a poll interval under 5 seconds", () => {
    const save = vi.fn(() => Promise.resolve());
    const el = renderSettings(SETTINGS, [], { save, remove: vi.fn(), add: vi.fn(), back: vi.fn() });
    el.querySelector<HTMLInputElement>("#setting-poll-interval")!.value = "1";
    el.querySelector<HTMLFormElement>("#settings-form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    expect(save).not.toHaveBeenCalled();
    el.querySelector<HTMLInputElement>("#setting-poll-interval")!.value = "60";
    el.querySelector<HTMLInputElement>("#setting-network-poll-interval")!.value = "0";
    el.querySelector<HTMLFormElement>("#settings-form")!.dispatchEvent(new Event("submit", { cancelable: true }));
    expect(save).not.toHaveBeenCalled();
    expect(el.querySelector("#settings-status")!.textContent).toContain("between 5 seconds and a day");
  });
  it("removes a repository", () => {
    const remove = vi.fn();
    const cloud = { ...repository(7, "cloud"), status: { state: "unreachable" as const, error: "no such directory", retryAt: "2025-01-10T12:01:00Z" } };
    const el = renderSettings(SETTINGS, [cloud], { save: vi.fn(), remove, add: vi.fn(), back: vi.fn() });
    expect(el.querySelector('[data-testid="repository-status"]')!.textContent).toBe("unreachable: no such directory");
    el.querySelector<HTMLElement>('[data-testid="repository-remove"]')!.click();
    expect(remove).toHaveBeenCalledWith(cloud);
  });
});
