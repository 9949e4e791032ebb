// Upload a recording: pick or drop a video, say what it was, and watch it
// go to S3 (a real progress bar from the upload's own progress events).
// Then on to the session's page, which follows the processing.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { formatBytes, today } from "../format.js";
import { videoType, videoDropzone, uploadProgress, markUploaded, NOT_A_VIDEO } from "../videoupload.js";
import { pageHeader, field, clearErrors, showApiError, showFieldError, formErrorSlot, setBusy } from "../ui.js";

export { videoType };

// Which form field a server message belongs beside.
const FIELD_FOR = { content_type: "video", video_key: "video" };

export async function render(main) {
  let chosen = null;
  let controller = null;

  const picker = videoDropzone((file) => choose(file));
  const { dropzone, input: fileInput } = picker;
  const title = h("input", { type: "text", required: true, maxlength: 200, placeholder: "e.g. Biology, week 3", autocomplete: "off" });
  const date = h("input", { type: "date", required: true, value: today() });
  const course = h("input", { type: "text", maxlength: 100, placeholder: "Optional, e.g. BIO-101", autocomplete: "off", list: "known-courses" });
  const courses = h("datalist", { id: "known-courses" });
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--large" }, "Upload and take attendance");
  const cancel = h("button", { type: "button", class: "btn btn--ghost", hidden: true }, "Cancel upload");

  const sender = uploadProgress();
  const progress = sender.element;

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
    picker.show(chosen);
    if (chosen && !videoType(chosen)) {
      showFieldError(form, "video", NOT_A_VIDEO);
    } else if (chosen && !title.value.trim()) {
      // A helpful default: the file name without its extension.
      title.value = chosen.name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").slice(0, 200);
    }
  }
  cancel.addEventListener("click", () => controller && controller.abort());

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!chosen) return showFieldError(form, "video", "Choose the video of the class first.");
    const contentType = videoType(chosen);
    if (!contentType) return showFieldError(form, "video", NOT_A_VIDEO);
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
    cancel.hidden = false;
    try {
      await sender.send(created.upload, chosen, controller.signal);
    } catch (error) {
      setBusy(submit, false);
      cancel.hidden = true;
      showFieldError(form, "video", error.name === "AbortError" ? "The upload was cancelled. Nothing was processed." : error.message);
      return;
    }
    markUploaded(created.session.session_id);
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
    sender.release();
    if (controller) controller.abort();
  };
}
