// The Tauri side of the window: command calls and the events the app pushes.
// Nothing but IPC plumbing; the commands are defined in src-tauri/commands.rs.

import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { AddRepositoryRequest, Backend, NotificationView, Overview, Settings } from "./types";

export const tauriBackend: Backend = {
  overview: () => invoke<Overview>("overview"),
  notification: (repo, id) => invoke<NotificationView>("notification", { repo, id }),
  ack: (repo, id) => invoke<string>("ack", { repo, id }),
  ackAll: () => invoke<number>("ack_all"),
  checkNow: () => invoke<void>("check_now"),
  settings: () => invoke<Settings>("settings"),
  updateSettings: (settings) => invoke<void>("update_settings", { settings }),
  addRepository: (request: AddRepositoryRequest) => invoke<number>("add_repository", { request }),
  removeRepository: (repo) => invoke<void>("remove_repository", { repo }),
  openLink: (url) => invoke<void>("open_link", { url }),
};

/** The app emits `overview-changed` whenever the engine's state changes. */
export function onOverviewChanged(handler: () => void): Promise<UnlistenFn> {
  return listen("overview-changed", () => handler());
}

/** The app emits `show-notification` when a popup or tray entry asks for one entry. */
export function onShowNotification(handler: (target: { repo: number; id: string }) => void): Promise<UnlistenFn> {
  return listen<{ repo: number; id: string }>("show-notification", (event) => handler(event.payload));
}

/** The app emits `show-view` ("settings", "list") from the tray menu. */
export function onShowView(handler: (view: string) => void): Promise<UnlistenFn> {
  return listen<string>("show-view", (event) => handler(event.payload));
}
