// Picking a video and sending it with a progress bar: the upload page and a
// session's "Upload the video again" share these pieces.
import { h } from "./dom.js";
import { formatBytes } from "./format.js";
import { uploadFile } from "./s3upload.js";

const VIDEO_TYPES = { mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", avi: "video/x-msvideo" };
const ACCEPTED = new Set(Object.values(VIDEO_TYPES));
export const NOT_A_VIDEO = "This is not a video Rollcall can read. Choose an MP4, MOV or AVI file.";

/** The content type to declare: the browser's, or one from the extension. */
export function videoType(file) {
  if (ACCEPTED.has(file.type)) return file.type;
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return VIDEO_TYPES[ext] || null;
}

/**
 * A drop zone with a file input lying over it. `onChoose(file)` is called for
 * a picked or dropped file; `show(file)` shows which one is chosen.
 */
export function videoDropzone(onChoose) {
  const input = h("input", { type: "file", accept: "video/mp4,video/quicktime,video/x-msvideo,.mp4,.mov,.avi,.m4v", class: "dropzone__input" });
  const fileName = h("span", { class: "dropzone__file" });
  const dropzone = h("div", { class: "dropzone" },
    h("div", { class: "dropzone__icon", "aria-hidden": "true" }),
    h("p", { class: "dropzone__text" }, h("strong", {}, "Drop the video here"), " or choose a file"),
    h("p", { class: "dropzone__hint" }, "MP4, MOV or AVI, as it came off the camera or phone"),
    fileName);
  input.addEventListener("change", () => onChoose(input.files[0] || null));
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("dropzone--over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    dropzone.addEventListener(name, () => dropzone.classList.remove("dropzone--over"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) onChoose(file);
  });
  function show(file) {
    dropzone.classList.toggle("dropzone--chosen", Boolean(file));
    fileName.textContent = file ? `${file.name} · ${formatBytes(file.size)}` : "";
  }
  return { dropzone, input, show };
}

/** A progress bar that follows an upload: `{element, send(upload, file, signal)}`. */
export function uploadProgress() {
  const bar = h("progress", { class: "progress__bar", max: 100, value: 0, "aria-label": "Upload progress" });
  const percent = h("span", { class: "progress__percent" }, "0%");
  const detail = h("span", { class: "progress__detail" });
  const element = h("div", { class: "progress", hidden: true, role: "group", "aria-label": "Upload" },
    h("div", { class: "progress__row" }, h("span", { class: "progress__label" }, "Uploading"), percent), bar, detail);

  async function send(upload, file, signal) {
    element.hidden = false;
    bar.value = 0;
    percent.textContent = "0%";
    detail.textContent = "";
    const started = performance.now();
    window.addEventListener("beforeunload", holdPage);
    try {
      await uploadFile(upload, file, {
        signal,
        onProgress(sent, total) {
          const share = total ? Math.floor((100 * sent) / total) : 0;
          bar.value = share;
          percent.textContent = `${share}%`;
          const seconds = (performance.now() - started) / 1000;
          const rate = seconds > 0.5 ? ` · ${formatBytes(sent / seconds)}/s` : "";
          detail.textContent = `${formatBytes(sent)} of ${formatBytes(total)}${rate}`;
        },
      });
    } catch (error) {
      element.hidden = true;
      throw error;
    } finally {
      window.removeEventListener("beforeunload", holdPage);
    }
  }
  return { element, send, release: () => window.removeEventListener("beforeunload", holdPage) };
}

// Closing the tab mid-upload loses the upload: let the browser ask first.
function holdPage(event) {
  event.preventDefault();
  event.returnValue = "";
}

// Sessions whose file this page itself just finished sending (until reload):
// their page says the upload arrived rather than "waiting for upload".
const justUploaded = new Map();
const JUST_UPLOADED_MS = 5 * 60 * 1000;

export function markUploaded(sessionId) {
  justUploaded.set(sessionId, Date.now());
}

export function wasJustUploaded(sessionId) {
  const at = justUploaded.get(sessionId);
  return at !== undefined && Date.now() - at < JUST_UPLOADED_MS;
}
