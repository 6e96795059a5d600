import { defineConfig } from "vitest/config";

// The window is served by Tauri from ui/dist; relative paths keep it self-contained, and no
// module-preload polyfill keeps every script an external file (strict CSP, no inline code).
export default defineConfig({
  base: "./",
  clearScreen: false,
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "safari15",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.ts"],
  },
});
