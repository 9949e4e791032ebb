// The video upload form, one component for the upload page and a session's
// "Upload the video again": a drop zone with its file input, any fields the
// page adds, a progress bar and Submit/Cancel.
import { h } from "./dom.js";
import { formatBytes } from "./format.js";
import { uploadFile } from "./s3upload.js";
import { unlessSignedOut } from "./api.js";
import { field, clearErrors, showApiError, showFieldError, formErrorSlot, setBusy } from "./ui.js";

const VIDEO_TYPES = { mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", avi: "video/x-msvideo" };
const ACCEPTED = new Set(Object.values(VIDEO_TYPES));
export const NOT_A_VIDEO = "This is not a video Rollcall can read. Choose an MP4, MOV or AVI file.";
const CANCELLED = "The upload was cancelled. Nothing was processed.";

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
function videoDropzone(onChoose) {
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
function uploadProgress() {
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

/**
 * The form. The page supplies:
 * - `label`, `submitLabel`, `className`, `ariaLabel`, `large` (a big submit button);
 * - `fields`: elements placed after the video field (title, date...);
 * - `fieldFor`: server field names -> form fields, for showApiError;
 * - `onChoose(file)`: after a readable video is chosen (e.g. fill the title);
 * - `check()`: [field, message] for a problem in the page's fields, or null;
 * - `prepare(contentType)`: the API call that answers `{upload, max_bytes, session}`;
 * - `onSent(answer)`: S3 has the file; `onFailed(error, answer)`: after an
 *   error is shown (answer is set when `prepare` had succeeded).
 * Answers `{element, busy(), release()}`: release() cancels an upload in flight.
 */
export function videoUploadForm({ label = "Recording", submitLabel, className, ariaLabel, large = false,
  fields = [], fieldFor = {}, onChoose = () => {}, check = () => null, prepare, onSent, onFailed = () => {} }) {
  let chosen = null;
  let controller = null;
  let busy = false;
  const picker = videoDropzone((file) => choose(file));
  const sender = uploadProgress();
  const submit = h("button", { type: "submit", class: ["btn", "btn--primary", large && "btn--large"] }, submitLabel);
  const cancel = h("button", { type: "button", class: "btn btn--ghost", hidden: true }, "Cancel upload");
  // The labelled file input lies over the whole drop zone (see .dropzone__input).
  const videoField = field({ name: "video", label, input: picker.input });
  videoField.querySelector(".field__label").after(picker.dropzone);
  picker.dropzone.append(picker.input);
  const form = h("form", { class: className, novalidate: true, "aria-label": ariaLabel },
    formErrorSlot(), videoField, fields, sender.element,
    h("div", { class: "form-actions" }, submit, cancel));

  function choose(file) {
    clearErrors(form);
    chosen = file || null;
    picker.show(chosen);
    if (chosen && !videoType(chosen)) showFieldError(form, "video", NOT_A_VIDEO);
    else if (chosen) onChoose(chosen);
  }
  cancel.addEventListener("click", () => controller && controller.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!chosen) return showFieldError(form, "video", "Choose the video of the class first.");
    const contentType = videoType(chosen);
    if (!contentType) return showFieldError(form, "video", NOT_A_VIDEO);
    const problem = check();
    if (problem) return showFieldError(form, ...problem);
    busy = true;
    setBusy(submit, true, "Uploading…");
    let answer = null;
    try {
      answer = await prepare(contentType);
      if (answer.max_bytes && chosen.size > answer.max_bytes) {
        throw Object.assign(new Error(`The video is ${formatBytes(chosen.size)}; the limit is ${formatBytes(answer.max_bytes)}. Trim or compress it first.`), { field: "video" });
      }
      controller = new AbortController();
      cancel.hidden = false;
      await sender.send(answer.upload, chosen, controller.signal).catch((error) => {
        throw Object.assign(error, { field: "video" }); // S3's refusal concerns the file
      });
    } catch (error) {
      unlessSignedOut(error, () => {
        if (error.name === "AbortError") showFieldError(form, "video", CANCELLED);
        else showApiError(form, error, { video: "video", ...fieldFor });
        onFailed(error, answer);
      });
      return;
    } finally {
      busy = false;
      controller = null;
      cancel.hidden = true;
      setBusy(submit, false);
    }
    chosen = null;
    picker.show(null);
    form.reset();
    onSent(answer);
  });

  return {
    element: form,
    busy: () => busy,
    release() {
      sender.release();
      if (controller) controller.abort();
    },
  };
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
