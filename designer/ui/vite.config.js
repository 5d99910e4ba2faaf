// The page is served by the designer's FastAPI app under /mlpipe/designer/: relative asset
// URLs, built into the Python package so the wheel ships it.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../../mlpipe_provider/designer/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
  },
});
