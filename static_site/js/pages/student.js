// One person: their photo, attendance rate and history, adding a photo, and
// (for admins) deleting them after a confirmation.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { plural, formatDate, formatDateTime, formatMs, formatRate, formatSimilarity } from "../format.js";
import { pageHeader, badge, loading, pageError, toast, toastError, field, clearErrors, showApiError,
  showFieldError, formErrorSlot, setBusy, lockForm, confirmDialog, avatar, emptyState } from "../ui.js";
import { photoPicker, uploadPhoto } from "../photo.js";
import { PHOTO_ERRORS } from "./students.js";

export async function render(main, { studentId }, { setTitle }) {
  const path = `/students/${api.seg(studentId)}`;
  loading(main, "Loading…");
  let data;
  try {
    data = await api.get(`${path}/attendance`);
  } catch (error) {
    api.unlessSignedOut(error, () => pageError(main, error, { href: "#/students", label: "Back to people" }));
    return;
  }
  const { student, history, present, total, rate } = data;
  setTitle(student.full_name);

  const actions = [];
  if (auth.isAdmin()) {
    const remove = h("button", { type: "button", class: "btn btn--danger-ghost" }, "Delete…");
    remove.addEventListener("click", async () => {
      const ok = await confirmDialog({
        title: `Delete ${student.full_name}?`,
        message: "Their photos and face data are removed and they are no longer recognised. "
          + "Past attendance keeps their name. This cannot be undone.",
        confirmLabel: "Delete", danger: true,
      });
      if (!ok) return;
      setBusy(remove, true, "Deleting…");
      try {
        await api.del(path);
        toast(`${student.full_name} was deleted.`);
        location.hash = "#/students";
      } catch (error) {
        toastError(error);
        setBusy(remove, false);
      }
    });
    actions.push(remove);
  }

  const share = rate === null || rate === undefined ? 0 : Math.round(rate * 100);
  const profile = h("section", { class: "card profile" },
    avatar(student, "large"),
    h("div", { class: "profile__text" },
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, "ID"), h("dd", { class: "cell-id" }, student.student_id)),
        h("div", {}, h("dt", {}, "Registered"), h("dd", {}, formatDateTime(student.created_at))),
        h("div", {}, h("dt", {}, "Photos"), h("dd", {}, `${student.photo_count ?? 0} of 5`)))),
    h("div", { class: ["rate", !total && "rate--none"] },
      h("span", { class: "rate__value" }, total ? formatRate(rate) : "No sessions yet"),
      h("span", { class: "rate__label" }, total
        ? `present in ${present} of ${total} session${total === 1 ? "" : "s"}`
        : "The attendance rate appears after the first recording."),
      total ? h("span", { class: "meter meter--large", "aria-hidden": "true" },
        h("span", { class: "meter__fill", style: { width: `${share}%` } })) : null));

  const historyBox = history.length
    ? h("table", { class: "table table--history" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Date"), h("th", { scope: "col" }, "Session"),
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col", class: "num" }, "First seen"),
        h("th", { scope: "col", class: "num" }, "Similarity"))),
      h("tbody", {}, history.map((item) => h("tr", {},
        h("td", { class: "cell-date", "data-label": "Date" }, formatDate(item.date)),
        h("td", { "data-label": "Session" }, h("span", {},
          h("a", { href: `#/sessions/${api.seg(item.session_id)}` }, item.title || "Session"),
          item.course ? h("span", { class: "course-tag" }, item.course) : null)),
        h("td", { "data-label": "Status" }, h("span", { class: "badges" }, badge(item.status),
          item.source === "manual" ? h("span", { class: "badge badge--manual" }, "Corrected") : null)),
        h("td", { class: "num", "data-label": "First seen" }, formatMs(item.first_seen_ms)),
        h("td", { class: "num", "data-label": "Similarity" }, formatSimilarity(item.similarity))))))
    : emptyState("No sessions yet", "Attendance appears here after the first recording is processed.");

  clear(main).append(
    pageHeader(student.full_name, { back: { href: "#/students", label: "All people" }, actions }),
    h("div", { class: "student-layout" },
      h("div", { class: "student-main" },
        profile,
        h("section", { class: "card table-card", "aria-labelledby": "history-title" },
          h("h2", { class: "panel__title table-card__title", id: "history-title" }, "Attendance history"),
          historyBox)),
      addPhotoForm(student, path)));
}

function addPhotoForm(student, path) {
  const picker = photoPicker();
  const submit = h("button", { type: "submit", class: "btn btn--secondary btn--block" }, "Add photo");
  const photoField = field({ name: "photo", label: "Another photo", input: picker.input,
    hint: "More photos (up to 5) help recognise a person from other angles." });
  photoField.querySelector(".field__label").after(picker.frame);
  const form = h("form", { class: "add-photo-form", novalidate: true }, formErrorSlot(), photoField, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!picker.file()) return showFieldError(form, "photo", "Choose a photo first.");
    setBusy(submit, true, "Uploading…");
    lockForm(form, true);
    try {
      const photoKey = await uploadPhoto(picker.file());
      submit.textContent = "Checking the face…";
      const { student: updated } = await api.post(`${path}/photos`, { photo_key: photoKey });
      toast(`Photo added: ${updated.full_name} now has ${plural(updated.photo_count, "photo")}.`);
      lockForm(form, false);
      picker.reset();
      window.dispatchEvent(new HashChangeEvent("hashchange")); // redraw with the new count
    } catch (error) {
      lockForm(form, false);
      setBusy(submit, false);
      api.unlessSignedOut(error, () => showApiError(form, error, PHOTO_ERRORS));
    } finally {
      setBusy(submit, false);
    }
  });
  return h("aside", { class: "card panel", "aria-labelledby": "add-photo-title" },
    h("h2", { class: "panel__title", id: "add-photo-title" }, "Add a photo"), form);
}
