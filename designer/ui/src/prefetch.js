// The pipeline named in the page's URL is requested by index.html's first script, while this
// code is still loading (the server's open, which loads and lowers the file, is the longest part
// of opening a big pipeline); the first open of that path takes the answer from there.
import { api } from "./api.js";

export async function openPipeline(path) {
  const early = window.mlpipeEarlyOpen;
  window.mlpipeEarlyOpen = null; // once: a later open (after a save, say) asks the server again
  if (early && early.path === path) {
    try {
      const response = await early.response;
      if (response.ok) return await response.json();
    } catch {
      // fall through: the normal request reports the error the way every request does
    }
  }
  return api.open(path);
}
