// Files the API sends only with the bearer token (CSV): fetch them, then
// hand the browser a blob to save under a readable name.
import * as api from "./api.js";

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A file name from user text: letters, digits, dashes; never a path. */
export function safeName(...parts) {
  const name = parts.filter(Boolean).join("-")
    .normalize("NFKD").replace(/[^\w.-]+/g, "-").replace(/-+/g, "-").replace(/^[-.]+|[-.]+$/g, "");
  return (name || "rollcall").slice(0, 80);
}

export async function downloadCsv(path, filename) {
  const blob = await api.get(path, { as: "blob" });
  saveBlob(new Blob([blob], { type: "text/csv;charset=utf-8" }), filename);
}
