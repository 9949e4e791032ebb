// One person: their photo, attendance rate and history; renaming them, every
// photo with the face found in it, adding, removing and replacing photos;
// (for admins) deleting them after a confirmation.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { plural, formatDate, formatDateTime, formatMs, formatRate, formatSimilarity } from "../format.js";
import { pageHeader, badge, loading, pageError, toast, toastError, field, clearErrors, showApiError,
  showFieldError, formErrorSlot, setBusy, lockForm, confirmDialog, avatar, emptyState, isHttpUrl } from "../ui.js";
import { photoPicker, uploadPhoto } from "../photo.js";
import { PHOTO_ERRORS } from "./students.js";

const redraw = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

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
  let photos = [];
  try {
    ({ photos } = await api.get(`${path}/photos`));
  } catch (error) {
    if (api.isSignedOut(error)) return;
  }

  const renameButton = h("button", { type: "button", class: "btn btn--ghost" }, "Rename…");
  const actions = [renameButton];
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

  const renameSlot = h("div", { class: "rename-slot" });
  renameButton.addEventListener("click", () => {
    fill(renameSlot, renameForm(student, path, () => clear(renameSlot)));
    renameSlot.querySelector("input").focus();
  });

  const share = rate === null || rate === undefined ? 0 : Math.round(rate * 100);
  const profile = h("section", { class: "card profile" },
    avatar(student, "large"),
    h("div", { class: "profile__text" },
      h("dl", { class: "facts" },
        h("div", {}, h("dt", {}, "ID"), h("dd", { class: "cell-id" }, student.student_id)),
        student.email ? h("div", {}, h("dt", {}, "Email"), h("dd", {}, student.email)) : null,
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
        renameSlot,
        profile,
        photosCard(student, photos, path),
        h("section", { class: "card table-card", "aria-labelledby": "history-title" },
          h("h2", { class: "panel__title table-card__title", id: "history-title" }, "Attendance history"),
          historyBox)),
      h("div", { class: "student-side" }, addPhotoForm(student, path), replaceMainForm(student, path))));
}

/** Name and email, changed in place; past attendance keeps the old name. */
function renameForm(student, path, onClose) {
  const name = h("input", { type: "text", required: true, maxlength: 200, value: student.full_name, autocomplete: "off" });
  const email = h("input", { type: "email", maxlength: 320, value: student.email || "", autocomplete: "off" });
  const save = h("button", { type: "submit", class: "btn btn--primary" }, "Save");
  const cancel = h("button", { type: "button", class: "btn btn--ghost" }, "Cancel");
  cancel.addEventListener("click", onClose);
  const form = h("form", { class: "card panel rename-form", novalidate: true, "aria-label": "Rename" },
    formErrorSlot(),
    field({ name: "full_name", label: "Full name", input: name,
      hint: "Past attendance keeps the name it was taken under." }),
    field({ name: "email", label: "Email (optional)", input: email }),
    h("div", { class: "form-actions" }, save, cancel));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!name.value.trim()) return showFieldError(form, "full_name", "Enter the person's name.");
    setBusy(save, true, "Saving…");
    try {
      const { student: updated } = await api.patch(path, { full_name: name.value.trim(), email: email.value.trim() });
      toast(`Saved: ${updated.full_name}.`);
      redraw();
    } catch (error) {
      api.unlessSignedOut(error, () => showApiError(form, error));
      setBusy(save, false);
    }
  });
  return form;
}

/** Every photo with the face box Rollcall indexed; remove any but the last. */
function photosCard(student, photos, path) {
  const only = photos.length <= 1;
  const tiles = photos.map((photo) => {
    const frame = h("div", { class: "photo-tile__frame" },
      isHttpUrl(photo.url) ? h("img", { class: "photo-tile__img", src: photo.url, alt: `Photo of ${student.full_name}`, loading: "lazy" }) : null,
      faceBox(photo.face_box));
    const remove = h("button", { type: "button", class: "btn btn--danger-ghost btn--small", disabled: only,
      title: only ? "A person keeps at least one photo." : null }, "Remove");
    remove.addEventListener("click", async () => {
      const ok = await confirmDialog({ title: "Remove this photo?",
        message: "The photo and the face found in it are removed; Rollcall recognises the person from their other photos.",
        confirmLabel: "Remove", danger: true });
      if (!ok) return;
      setBusy(remove, true, "Removing…");
      try {
        await api.del(`${path}/photos/${api.seg(photo.photo_id)}`);
        toast("Photo removed.");
        redraw();
      } catch (error) {
        toastError(error);
        setBusy(remove, false);
      }
    });
    let makeMain = null;
    if (!photo.main) {
      makeMain = h("button", { type: "button", class: "btn btn--ghost btn--small" }, "Make main");
      makeMain.addEventListener("click", async () => {
        setBusy(makeMain, true, "Saving…");
        try {
          await api.request("PUT", `${path}/main-photo`, { body: { photo_id: photo.photo_id } });
          toast("The main photo was changed.");
          redraw();
        } catch (error) {
          toastError(error);
          setBusy(makeMain, false);
        }
      });
    }
    return h("figure", { class: "photo-tile", dataset: { photoId: photo.photo_id } }, frame,
      h("figcaption", { class: "photo-tile__actions" },
        photo.main ? h("span", { class: "photo-tile__main" }, "Main photo") : makeMain, remove));
  });
  return h("section", { class: "card panel", "aria-labelledby": "photos-title" },
    h("h2", { class: "panel__title", id: "photos-title" }, `Photos (${photos.length} of 5)`),
    h("p", { class: "panel__lead" }, "The green box is the face Rollcall recognises in each photo."),
    photos.length ? h("div", { class: "photo-grid" }, tiles) : h("p", { class: "muted" }, "The photos could not be loaded."));
}

function faceBox(box) {
  if (!box || ![box.left, box.top, box.width, box.height].every((v) => Number.isFinite(v) && v >= 0 && v <= 1)) return null;
  const pct = (v) => `${(v * 100).toFixed(2)}%`;
  return h("span", { class: "photo-tile__box", "aria-hidden": "true",
    style: { left: pct(box.left), top: pct(box.top), width: pct(box.width), height: pct(box.height) } });
}

function replaceMainForm(student, path) {
  const picker = photoPicker();
  const submit = h("button", { type: "submit", class: "btn btn--secondary btn--block" }, "Replace the main photo");
  const photoField = field({ name: "photo", label: "New main photo", input: picker.input,
    hint: "It must show the same person; the current main photo and its face are removed." });
  photoField.querySelector(".field__label").after(picker.frame);
  const form = h("form", { class: "replace-photo-form", novalidate: true }, formErrorSlot(), photoField, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!picker.file()) return showFieldError(form, "photo", "Choose a photo first.");
    setBusy(submit, true, "Uploading…");
    try {
      const photoKey = await uploadPhoto(picker.file());
      submit.textContent = "Checking the face…";
      await api.request("PUT", `${path}/main-photo`, { body: { photo_key: photoKey } });
      toast(`The main photo of ${student.full_name} was replaced.`);
      redraw();
    } catch (error) {
      api.unlessSignedOut(error, () => showApiError(form, error, PHOTO_ERRORS));
    } finally {
      setBusy(submit, false);
    }
  });
  return h("aside", { class: "card panel", "aria-labelledby": "replace-photo-title" },
    h("h2", { class: "panel__title", id: "replace-photo-title" }, "Replace the main photo"), form);
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
      redraw(); // with the new count
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
