// Entry point of the window: wires the App to Tauri's commands and events.

import { App } from "./app";
import { onOverviewChanged, onShowNotification, onShowView, tauriBackend } from "./backend";
import { parseRoute } from "./model";
import "./style.css";

const root = document.getElementById("app");
if (root) {
  const app = new App(root, tauriBackend);
  document.addEventListener("keydown", (event) => app.handleKey(event));
  void onOverviewChanged(() => void app.refresh());
  void onShowNotification((target) => app.show(target));
  void onShowView((view) => (view === "settings" ? void app.showSettings() : app.showList()));
  void app.refresh().then(() => {
    const route = parseRoute(window.location.hash);
    if (route) app.show(route);
    else if (window.location.hash === "#/settings") void app.showSettings();
  });
  // Ages ("5 min ago") stay current while the window is open.
  window.setInterval(() => app.render(), 60_000);
}
