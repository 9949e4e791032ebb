// Upload a recording: pick or drop a video, say what it was, and watch it
// go to S3 (a real progress bar from the upload's own progress events).
// Then on to the session's page, which follows the processing.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { today } from "../format.js";
import { videoType, videoUploadForm } from "../videoupload.js";
import * as auth from "../auth.js";
import { pageHeader, field } from "../ui.js";

export { videoType };

// Which form field a server message belongs beside.
const FIELD_FOR = { content_type: "video", video_key: "video" };

export async function render(main, params = {}) {
  const admin = auth.isAdmin();
  const klass = h("select", { required: !admin },
    h("option", { value: "" }, admin ? "Everyone (no class): an event or office" : "Choose a class"));
  const offset = h("input", { type: "number", min: 0, max: 360, step: 1, placeholder: "0", inputmode: "numeric" });
  const title = h("input", { type: "text", required: true, maxlength: 200, placeholder: "e.g. Biology, week 3", autocomplete: "off" });
  const date = h("input", { type: "date", required: true, value: today() });
  const course = h("input", { type: "text", maxlength: 100, placeholder: "Optional, e.g. BIO-101", autocomplete: "off", list: "known-courses" });
  const courses = h("datalist", { id: "known-courses" });

  const upload = videoUploadForm({
    className: "card upload-form",
    label: "Recording",
    submitLabel: "Upload and take attendance",
    large: true,
    fieldFor: FIELD_FOR,
    fields: [
      h("div", { class: "grid-2" },
        field({ name: "title", label: "Title", input: title }),
        field({ name: "date", label: "Date of the class", input: date })),
      h("div", { class: "grid-2" },
        field({ name: "class_id", label: "Class", input: klass, hint: "Attendance is taken against the people enrolled in it." }),
        field({ name: "start_offset_seconds", label: "Class starts after (minutes into the video)", input: offset,
          hint: "Optional. Lateness counts from here; empty: the video's start." })),
      field({ name: "course", label: "Course", input: course, hint: "Optional label, e.g. a course code." }),
      courses,
    ],
    onChoose(file) {
      // A helpful default: the file name without its extension.
      if (!title.value.trim()) title.value = file.name.replace(/\.[^.]+$/, "").replace(/[_-]+/g, " ").slice(0, 200);
    },
    check() {
      if (!title.value.trim()) return ["title", "Give the session a title, such as the class and week."];
      if (!date.value) return ["date", "Choose the date of the class."];
      if (!admin && !klass.value) return ["class_id", "Choose the class this recording is of."];
      return null;
    },
    prepare(contentType) {
      const body = { title: title.value.trim(), date: date.value, content_type: contentType };
      if (course.value.trim()) body.course = course.value.trim();
      if (klass.value) body.class_id = klass.value;
      if (offset.value) body.start_offset_seconds = Math.round(Number(offset.value) * 60);
      return api.post("/sessions", body);
    },
    onSent(created) {
      location.hash = `#/sessions/${api.seg(created.session.session_id)}`;
    },
  });

  main.append(
    pageHeader("Upload a recording", { subtitle: "Rollcall finds every registered person in the video and takes attendance." }),
    h("div", { class: "upload-layout" }, upload.element,
      h("aside", { class: "card panel tips" },
        h("h2", { class: "panel__title" }, "For the best results"),
        h("ul", { class: "tips__list" },
          h("li", {}, "Film from the front, so faces look at the camera for a moment."),
          h("li", {}, "Good light helps more than a better camera."),
          h("li", {}, "A few seconds per face is enough; a whole lesson is fine too."),
          h("li", {}, "Register everyone first, on the People page.")))));
  // No focus on the title: on a phone the keyboard would cover the page
  // before a video is chosen.

  // The classes this person may take attendance for (an admin's: all).
  api.getAll("/classes", "classes").then((classes) => {
    klass.append(...classes.map((c) => h("option", { value: c.class_id, selected: c.class_id === params.classId ? true : null },
      c.term ? `${c.name} (${c.term})` : c.name)));
    if (params.classId) klass.value = params.classId;
    else if (!admin && classes.length === 1) klass.value = classes[0].class_id;
  }).catch(() => {});

  // Suggest courses already used (best effort: the form works without).
  api.get("/sessions?limit=200").then(({ sessions }) => {
    const known = [...new Set(sessions.map((s) => s.course).filter(Boolean))].sort();
    clear(courses).append(...known.map((name) => h("option", { value: name })));
  }).catch(() => {});

  return () => upload.release();
}
