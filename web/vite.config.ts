/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The dev server proxies both APIs to a running `heteroflow up` (port 3333, as the seed
// has it), so the UI calls the same origin-relative paths in development and when built.
export default defineConfig({
  plugins: [react()],
  server: {
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": "http://127.0.0.1:3333",
      "/v1": "http://127.0.0.1:3333",
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 900,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    css: false,
    // A busy two-core machine renders Mantine in jsdom slowly; a slow test is not a failure.
    testTimeout: 60_000,
  },
});
