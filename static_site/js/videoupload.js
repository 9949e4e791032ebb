// The video upload form, one component for the upload page and a session's
// "Upload the video again": a drop zone with its file input, any fields the
// page adds, a progress bar and Submit/Cancel.
import { conversionNote, probeVideo } from "./videoprobe.js";
import { h } from "./dom.js";
import { formatBytes } from "./format.js";
import * as uploads from "./uploader.js";
import { unlessSignedOut } from "./api.js";
import { field, clearErrors, showApiError, showFieldError, formErrorSlot, setBusy, lockForm } from "./ui.js";

const VIDEO_TYPES = { mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", avi: "video/x-msvideo",
  webm: "video/webm", mkv: "video/x-matroska" };
const ACCEPTED = new Set(Object.values(VIDEO_TYPES));
export const NOT_A_VIDEO = "This is not a video Rollcall can read. Choose an MP4, MOV, AVI, WebM or MKV file.";
const CANCELLED = "The upload was cancelled. Nothing was processed.";

/** The content type to declare: the browser's, or one from the extension. */
export function videoType(file) {
  if (ACCEPTED.has(file.type)) return file.type;
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return VIDEO_TYPES[ext] || null;
}

/**
 * The video type the first bytes of `file` reveal, or null: the server's
 * rules (chalicelib/uploads.py sniff_type), so a renamed document is refused
 * before a byte is sent.
 */
export async function sniffVideo(file) {
  const head = new Uint8Array(await file.slice(0, 32).arrayBuffer()); // what the server reads
  const text = (from, to) => String.fromCharCode(...head.slice(from, to));
  if (text(0, 4) === "RIFF" && text(8, 12) === "AVI ") return "video/x-msvideo";
  if (text(4, 8) === "ftyp") return text(8, 12) === "qt  " ? "video/quicktime" : "video/mp4";
  if (["moov", "mdat", "wide", "free", "skip"].includes(text(4, 8))) return "video/quicktime";
  if (text(0, 4) === "\x1a\x45\xdf\xa3") return text(0, 64).includes("webm") ? "video/webm" : "video/x-matroska";
  return null;
}

/** The type to declare for a readable video, else null (by name, then by content). */
async function checkedType(file) {
  return videoType(file) && (await sniffVideo(file).catch(() => null)) ? videoType(file) : null;
}

/**
 * A drop zone with a file input lying over it. `onChoose(file)` is called for
 * a picked or dropped file; `show(file)` shows which one is chosen.
 */
function videoDropzone(onChoose) {
  const input = h("input", { type: "file", accept: "video/mp4,video/quicktime,video/x-msvideo,video/webm,video/x-matroska,.mp4,.mov,.avi,.m4v,.webm,.mkv", class: "dropzone__input" });
  const fileName = h("span", { class: "dropzone__file" });
  const dropzone = h("div", { class: "dropzone" },
    h("div", { class: "dropzone__icon", "aria-hidden": "true" }),
    // Touch screens cannot drop a file: they are asked to choose one.
    h("p", { class: "dropzone__text dropzone__text--pointer" }, h("strong", {}, "Drop the video here"), " or choose a file"),
    h("p", { class: "dropzone__text dropzone__text--touch" }, h("strong", {}, "Choose the video")),
    h("p", { class: "dropzone__hint" }, "MP4, MOV, AVI, WebM or MKV, as it came off the camera or phone"),
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

/** A progress bar that follows an upload job of uploader.js. */
export function jobProgress() {
  const bar = h("progress", { class: "progress__bar", max: 100, value: 0, "aria-label": "Upload progress" });
  const label = h("span", { class: "progress__label" }, "Uploading");
  const percent = h("span", { class: "progress__percent" }, "0%");
  const detail = h("span", { class: "progress__detail" });
  const element = h("div", { class: "progress", hidden: true, role: "group", "aria-label": "Upload" },
    h("div", { class: "progress__row" }, label, percent), bar, detail);
  let started = 0;
  let firstSent = 0;
  function show(job) {
    if (!job) { element.hidden = true; return; }
    if (element.hidden) { started = performance.now(); firstSent = job.sent; }
    element.hidden = false;
    const share = job.size ? Math.floor((100 * job.sent) / job.size) : 0;
    bar.value = share;
    percent.textContent = `${share}%`;
    label.textContent = job.resumed ? "Carrying on with the upload" : "Uploading";
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0.5 && job.sent > firstSent ? ` · ${formatBytes((job.sent - firstSent) / seconds)}/s` : "";
    detail.textContent = `${formatBytes(job.sent)} of ${formatBytes(job.size)}${rate}`;
  }
  return { element, show };
}

/**
 * The form. The page supplies:
 * - `label`, `submitLabel`, `className`, `ariaLabel`, `large` (a big submit button);
 * - `fields`: elements placed after the video field (title, date...);
 * - `fieldFor`: server field names -> form fields, for showApiError;
 * - `onChoose(file)`: after a readable video is chosen (e.g. fill the title);
 * - `check()`: [field, message] for a problem in the page's fields, or null;
 * - `prepare(contentType)`: the API call that answers `{session, max_bytes}`;
 * - `onSent(answer)`: S3 has the file; `onFailed(error, answer)`: after an
 *   error is shown (answer is set when `prepare` had succeeded).
 * The file goes up through uploader.js, so leaving the page does not stop it.
 * Answers `{element, busy(), release()}`: release() stops following the upload.
 */
export function videoUploadForm({ label = "Recording", submitLabel, className, ariaLabel, large = false,
  fields = [], fieldFor = {}, onChoose = () => {}, check = () => null, prepare, onSent, onFailed = () => {} }) {
  let chosen = null;
  let current = null; // the upload job this form started
  let busy = false;
  let released = false;
  const picker = videoDropzone((file) => choose(file));
  const progress = jobProgress();
  const stopFollowing = uploads.onChange((job) => { if (job && job === current) progress.show(job); });
  const submit = h("button", { type: "submit", class: ["btn", "btn--primary", large && "btn--large"] }, submitLabel);
  const cancel = h("button", { type: "button", class: "btn btn--ghost", hidden: true }, "Cancel upload");
  // The labelled file input lies over the whole drop zone (see .dropzone__input).
  const videoField = field({ name: "video", label, input: picker.input });
  videoField.querySelector(".field__label").after(picker.dropzone);
  // Said before sending: a recording the face search cannot read is converted first.
  const conversion = h("p", { class: "upload-note", hidden: true, "aria-live": "polite" });
  picker.dropzone.after(conversion);
  picker.dropzone.append(picker.input);
  const form = h("form", { class: className, novalidate: true, "aria-label": ariaLabel },
    formErrorSlot(), videoField, fields, progress.element,
    h("div", { class: "form-actions" }, submit, cancel));

  async function choose(file) {
    clearErrors(form);
    chosen = file || null;
    picker.show(chosen);
    conversion.hidden = true;
    if (!chosen) return;
    if (!(await checkedType(chosen))) {
      if (file === chosen) showFieldError(form, "video", NOT_A_VIDEO);
    } else if (file === chosen) {
      onChoose(chosen);
      const note = conversionNote(await probeVideo(chosen));
      if (file === chosen && note) {
        conversion.textContent = note;
        conversion.hidden = false;
      }
    }
  }
  cancel.addEventListener("click", () => current && uploads.cancel(current.sessionId));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    clearErrors(form);
    if (!chosen) return showFieldError(form, "video", "Choose the video of the class first.");
    const file = chosen;
    busy = true;
    setBusy(submit, true, "Checking the file…");
    lockForm(form, true, [cancel]); // what was typed stays, unchangeable, until the end
    const unlock = () => {
      busy = false;
      cancel.hidden = true;
      lockForm(form, false);
      setBusy(submit, false);
    };
    const contentType = await checkedType(file);
    const problem = contentType ? check() : ["video", NOT_A_VIDEO];
    if (problem) {
      unlock();
      return showFieldError(form, ...problem);
    }
    submit.textContent = "Uploading…";
    if (window.Notification && Notification.permission === "default") {
      // Asked now, while the teacher acts: a notice when attendance is ready.
      Notification.requestPermission().catch(() => {});
    }
    let answer = null;
    try {
      answer = await prepare(contentType);
      if (answer.max_bytes && file.size > answer.max_bytes) {
        throw Object.assign(new Error(`The video is ${formatBytes(file.size)}; the limit is ${formatBytes(answer.max_bytes)}. Trim or compress it first.`), { field: "video" });
      }
      current = uploads.start({ sessionId: answer.session.session_id, title: answer.session.title, file });
      progress.show(current);
      cancel.hidden = false;
      await current.finished.catch((error) => {
        throw Object.assign(error, { field: "video" }); // S3's refusal concerns the file
      });
    } catch (error) {
      unlock();
      progress.show(null);
      unlessSignedOut(error, () => {
        if (error.name === "AbortError") showFieldError(form, "video", CANCELLED);
        else showApiError(form, error, { video: "video", ...fieldFor });
        onFailed(error, answer);
      });
      return;
    }
    unlock();
    if (released) return; // the teacher moved on; the header told them
    chosen = null;
    picker.show(null);
    form.reset();
    onSent(answer);
  });

  return {
    element: form,
    busy: () => busy,
    /** Another label for the submit button (not while it is busy). */
    label(text) {
      if (!busy) submit.textContent = text;
    },
    release() {
      released = true;
      stopFollowing();
    },
  };
}

const JUST_UPLOADED_MS = 5 * 60 * 1000;

/** True for a while after this browser finished sending the session's video:
 * its page says the upload arrived rather than "waiting for upload". */
export function wasJustUploaded(sessionId) {
  const job = uploads.job(sessionId);
  return Boolean(job && job.state === "done" && Date.now() - job.doneAt < JUST_UPLOADED_MS);
}
