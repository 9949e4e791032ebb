// Upload a recording: pick or drop a video, say what it was, and watch it
// go to S3 (a real progress bar from the upload's own progress events).
// Then on to the session's page, which follows the processing.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { formatBytes, today } from "../format.js";
import { uploadFile } from "../s3upload.js";
import { pageHeader, field, clearErrors, showApiError, showFieldError, formErrorSlot, setBusy } from "../ui.js";

const VIDEO_TYPES = { mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", avi: "video/x-msvideo" };
const ACCEPTED = new Set(Object.values(VIDEO_TYPES));

/** The content type to declare: the browser's, or one from the extension. */
export function videoType(file) {
  if (ACCEPTED.has(file.type)) return file.type;
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  return VIDEO_TYPES[ext] || null;
}

// Which form field a server message belongs beside.
const FIELD_FOR = { content_type: "video", video_key: "video" };

export async function render(main) {
  let chosen = null;
  let controller = null;

  const fileInput = h("input", { type: "file", accept: "video/mp4,video/quicktime,video/x-msvideo,.mp4,.mov,.avi,.m4v", class: "dropzone__input" });
  const fileName = h("span", { class: "dropzone__file" });
  const dropzone = h("div", { class: "dropzone" },
    h("div", { class: "dropzone__icon", "aria-hidden": "true" }),
    h("p", { class: "dropzone__text" }, h("strong", {}, "Drop the video here"), " or choose a file"),
    h("p", { class: "dropzone__hint" }, "MP4, MOV or AVI, as it came off the camera or phone"),
    fileName);
  const title = h("input", { type: "text", required: true, maxlength: 200, placeholder: "e.g. Biology, week 3", autocomplete: "off" });
  const date = h("input", { type: "date", required: true, value: today() });
  const course = h("input", { type: "text", maxlength: 200, placeholder: "Optional, e.g. BIO-101", autocomplete: "off", list: "known-courses" });
  const courses = h("datalist", { id: "known-courses" });
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--large" }, "Upload and take attendance");
  const cancel = h("button", { type: "button", class: "btn btn--ghost", hidden: true }, "Cancel upload");

  const bar = h("progress", { class: "progress__bar", max: 100, value: 0, "aria-label": "Upload progress" });
  const percent = h("span", { class: "progress__percent" }, "0%");
  const detail = h("span", { class: "progress__detail" });
  const progress = h("div", { class: "progress", hidden: true, role: "group", "aria-label": "Upload" },
    h("div", { class: "progress__row" }, h("span", { class: "progress__label" }, "Uploading"), percent), bar, detail);

  // The labelled file input lies over the whole drop zone (see .dropzone__input).
  const videoField = field({ name: "video", label: "Recording", input: fileInput });
  videoField.querySelector(".field__label").after(dropzone);
  dropzone.append(fileInput);

  const form = h("form", { class: "card upload-form", novalidate: true },
    formErrorSlot(),
    videoField,
    h("div", { class: "grid-2" },
      field({ name: "title", label: "Title", input: title }),
      field({ name: "date", label: "Date of the class", input: date })),
    field({ name: "course", label: "Course", input: course, hint: "Groups sessions of the same class." }),
    courses,
    progress,
    h("div", { class: "form-actions" }, submit, cancel));

  function choose(file) {
    clearErrors(form);
    chosen = file || null;
    dropzone.classList.toggle("dropzone--chosen", Boolean(chosen));
    fileName.textContent = chosen ? `${chosen.name} · ${formatBytes(chosen.size)}` : "";
    if (chosen && !videoType(chosen)) {
      showFieldError(form, "video", "This is not a video Rollcall can read. Choose an MP4, MOV or AVI file.");
    } else if (chosen && !title.value.trim()) {
      // A helpful default: the file name without its extension.
      title.value = chosen.name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").slice(0, 200);
    }
  }
  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => { event.preventDefault(); dropzone.classList.add("dropzone--over"); });
  }
  for (const name of ["dragleave", "drop"]) {
    dropzone.addEventListener(name, () => dropzone.classList.remove("dropzone--over"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer.files[0];
    if (file) choose(file);
  });
  cancel.addEventListener("click", () => controller && controller.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!chosen) return showFieldError(form, "video", "Choose the video of the class first.");
    const contentType = videoType(chosen);
    if (!contentType) return showFieldError(form, "video", "This is not a video Rollcall can read. Choose an MP4, MOV or AVI file.");
    if (!title.value.trim()) return showFieldError(form, "title", "Give the session a title, such as the class and week.");
    if (!date.value) return showFieldError(form, "date", "Choose the date of the class.");

    setBusy(submit, true, "Uploading…");
    let created;
    try {
      const body = { title: title.value.trim(), date: date.value, content_type: contentType };
      if (course.value.trim()) body.course = course.value.trim();
      created = await api.post("/sessions", body);
    } catch (error) {
      setBusy(submit, false);
      if (error.code !== "signed_out") showApiError(form, error, FIELD_FOR);
      return;
    }
    if (created.max_bytes && chosen.size > created.max_bytes) {
      setBusy(submit, false);
      return showFieldError(form, "video", `The video is ${formatBytes(chosen.size)}; the limit is ${formatBytes(created.max_bytes)}. Trim or compress it first.`);
    }
    controller = new AbortController();
    window.addEventListener("beforeunload", holdPage);
    progress.hidden = false;
    cancel.hidden = false;
    const started = performance.now();
    try {
      await uploadFile(created.upload, chosen, {
        signal: controller.signal,
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
      window.removeEventListener("beforeunload", holdPage);
      setBusy(submit, false);
      cancel.hidden = true;
      progress.hidden = true;
      showFieldError(form, "video", error.name === "AbortError" ? "The upload was cancelled. Nothing was processed." : error.message);
      return;
    }
    window.removeEventListener("beforeunload", holdPage);
    location.hash = `#/sessions/${api.seg(created.session.session_id)}`;
  });

  main.append(
    pageHeader("Upload a recording", { subtitle: "Rollcall finds every registered person in the video and takes attendance." }),
    h("div", { class: "upload-layout" }, form,
      h("aside", { class: "card panel tips" },
        h("h2", { class: "panel__title" }, "For the best results"),
        h("ul", { class: "tips__list" },
          h("li", {}, "Film from the front, so faces look at the camera for a moment."),
          h("li", {}, "Good light helps more than a better camera."),
          h("li", {}, "A few seconds per face is enough; a whole lesson is fine too."),
          h("li", {}, "Register everyone first, on the People page.")))));
  title.focus();

  // Suggest courses already used (best effort: the form works without).
  api.get("/sessions").then(({ sessions }) => {
    const known = [...new Set(sessions.map((s) => s.course).filter(Boolean))].sort();
    clear(courses).append(...known.map((name) => h("option", { value: name })));
  }).catch(() => {});

  return () => {
    window.removeEventListener("beforeunload", holdPage);
    if (controller) controller.abort();
  };
}

// Closing the tab mid-upload loses the upload: let the browser ask first.
function holdPage(event) {
  event.preventDefault();
  event.returnValue = "";
}
