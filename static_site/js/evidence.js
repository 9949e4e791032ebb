// The evidence on a session page, in plain words: the registered photo beside
// the face cut from the video, "matched 99 %", "seen for 58 s", a viewer for
// the timeline's sightings, the unrecognised people as a gallery with
// "Register this person", and "Not this person" on a present row.
// Crop links are short-lived presigned URLs from the API, only ever put in
// src attributes; every name is text.
import { h, clear } from "./dom.js";
import * as api from "./api.js";
import { formatMs } from "./format.js";
import { avatar, isHttpUrl, field, clearErrors, showApiError, showFieldError, formErrorSlot,
  setBusy, toast, confirmDialog } from "./ui.js";
import { photoPicker, uploadPhoto } from "./photo.js";
import { STUDENT_ID_RULE, isStudentId } from "./studentid.js";

export const MATCH_HELP = "How closely the face in the video matches this person's registered photo "
  + "(100 % would be the same picture). Rollcall counts a sighting from 80 %; the same person usually scores above 90 %.";
const SEEN_HELP = "Time the face was in view, adding up the moments it was seen (time away from the camera is not counted).";

/** "matched 99 %" (a whole number; "—" when never matched). */
export function matchWords(similarity) {
  if (similarity === null || similarity === undefined) return "—";
  return `matched ${Math.floor(Number(similarity))} %`;
}

/** "seen for 58 s", "seen for 2 min 5 s", "seen briefly", or "not seen". */
export function seenWords(row) {
  if (!row.sightings && !row.seen_for_ms) return "not seen";
  const seconds = Math.round((row.seen_for_ms || 0) / 1000);
  if (seconds < 1) return "seen briefly";
  if (seconds < 60) return `seen for ${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  return `seen for ${minutes} min${seconds % 60 ? ` ${seconds % 60} s` : ""}`;
}

/** A word with its explanation on hover and focus (title), marked as explained. */
export function explained(text, help) {
  return h("span", { class: "explained", title: help, tabindex: "0" }, text);
}

function cropImage(url, alt, extraClass) {
  if (!url || !isHttpUrl(url)) return null;
  return h("img", { class: ["crop", extraClass], src: url, alt, loading: "lazy", decoding: "async",
    width: 80, height: 80 });
}

function waiting(session) {
  if (session.evidence_status === "pending") return "Cutting pictures from the video…";
  if (session.evidence_status === "failed") return "No picture from the video (it could not be cut).";
  if (session.evidence_status === "deleted") return "Pictures from the video were deleted (retention).";
  return "No picture from the video.";
}

/** The registered photo beside the face cut from the video (best match). */
export function faceCompare(row, session) {
  const name = row.full_name || row.student_id;
  const crop = cropImage(row.crops && row.crops.best, `${name} in the video`, "crop--row");
  return h("div", { class: "face-compare" },
    h("figure", { class: "face-compare__item" }, avatar({ ...row, full_name: name }, "medium"),
      h("figcaption", {}, "Registered")),
    h("figure", { class: "face-compare__item" },
      crop || h("span", { class: "crop crop--empty", title: waiting(session) }, row.sightings ? "…" : "—"),
      h("figcaption", {}, "In the video")));
}

/** "Not this person" on a row matched from the video. */
export function notThisPersonButton(row, session, onDone) {
  const button = h("button", { type: "button", class: "btn btn--small btn--ghost not-this-person" }, "Not this person");
  button.setAttribute("aria-label", `Not this person: ${row.full_name}`);
  button.addEventListener("click", async () => {
    const answer = await confirmDialog({
      title: `Is this not ${row.full_name}?`,
      message: "They will be marked absent, and the face joins the unrecognised people of this session, where it can be registered.",
      confirmLabel: "Not this person",
    });
    if (!answer) return;
    setBusy(button, true, "Saving…");
    try {
      await api.post(`/sessions/${api.seg(session.session_id)}/attendance/${api.seg(row.student_id)}/not-this-person`, {});
      toast(`${row.full_name} is now marked absent; the face is with the unrecognised people.`);
      onDone();
    } catch (error) {
      if (error.code !== "signed_out") toast(error.message, "error");
      setBusy(button, false);
    }
  });
  return button;
}

/**
 * A panel that shows the picture of a clicked sighting: the crop nearest in
 * time among the person's (best match, first sighting), with when it was.
 * `show(row, ms)` fills it.
 */
export function sightingViewer() {
  const body = h("div", { class: "sighting-viewer__body" },
    h("p", { class: "muted" }, "Click a sighting on the timeline to see the face the video showed."));
  const element = h("div", { class: "sighting-viewer", "aria-live": "polite" }, body);
  function show(row, ms) {
    const moments = row.moments || {};
    const options = ["best", "first"].filter((w) => moments[w] && row.crops && row.crops[w]);
    const name = row.full_name || row.student_id;
    clear(body);
    if (!options.length) {
      body.append(h("p", {}, `${name} at ${formatMs(ms)}: no picture from the video.`));
      return;
    }
    const which = options.reduce((a, b) => (Math.abs(moments[a].ms - ms) <= Math.abs(moments[b].ms - ms) ? a : b));
    const at = moments[which].ms;
    body.append(cropImage(row.crops[which], `${name} at ${formatMs(at)}`, "crop--large"),
      h("p", { class: "sighting-viewer__caption" }, h("strong", {}, name), ` at ${formatMs(ms)}`,
        at === ms ? "" : ` (picture from ${formatMs(at)}, the nearest kept: ${which === "best" ? "best match" : "first sighting"})`));
  }
  return { element, show };
}

/** The unrecognised people, once each, with their face and "Register this person". */
export function strangerGallery(session, onChanged) {
  // One entry per person: the server leaves out entries merged into another as
  // the same face; they are numbered for people in the order shown (the API's
  // number, which can skip, is only used to ask for one).
  const strangers = (session.strangers || []).filter((s) => !s.merged_into);
  const open = strangers.filter((s) => !s.registered_as);
  const title = h("h2", { class: "panel__title", id: "strangers-title" }, "Unrecognised people",
    h("span", { class: "count" }, String(open.length)));
  const lead = h("p", { class: "panel__lead" },
    "People in the video who match nobody registered, each shown once. Register a newcomer from here.");
  if (!strangers.length) {
    return h("section", { class: "card panel strangers", "aria-labelledby": "strangers-title" }, title,
      h("p", { class: "muted" }, "Everyone seen in the video was recognised."));
  }
  const cards = strangers.map((stranger, index) => {
    const person = `Person ${index + 1}`;
    const label = stranger.from_student ? `${person} (not ${stranger.from_student})` : person;
    const picture = cropImage(stranger.crop, `${label} in the video`, "crop--card")
      || h("span", { class: "crop crop--card crop--empty", title: waiting(session) }, "?");
    const facts = h("p", { class: "stranger__facts" },
      `first seen ${formatMs(stranger.first_seen_ms)} · `, explained(seenWords({ sightings: 1, seen_for_ms: stranger.seen_for_ms }), SEEN_HELP));
    let action;
    if (stranger.registered_as) {
      action = h("p", { class: "stranger__done" }, "Registered as ",
        h("a", { href: `#/students/${api.seg(stranger.registered_as)}` }, stranger.registered_as));
    } else {
      action = h("button", { type: "button", class: "btn btn--small btn--primary" }, "Register this person");
      action.setAttribute("aria-label", `Register ${label}`);
      action.addEventListener("click", () => registerDialog(session, stranger, onChanged, person));
    }
    return h("li", { class: ["stranger", stranger.registered_as && "stranger--registered"], dataset: { number: String(stranger.number) } },
      picture, h("h3", { class: "stranger__name" }, label), facts, action);
  });
  return h("section", { class: "card panel strangers", "aria-labelledby": "strangers-title" }, title, lead,
    h("ul", { class: "stranger-gallery" }, cards));
}

/**
 * "Register this person": name and ID, the crop from the video as the photo.
 * When the video's face cannot be a registration photo (too small, blurred),
 * the server says so; the dialog then asks for a photo and sends that instead.
 */
export function registerDialog(session, stranger, onDone, person = `Person ${stranger.number}`) {
  const name = h("input", { type: "text", maxlength: 200, autocomplete: "off", required: true });
  const studentId = h("input", { type: "text", maxlength: 64, autocomplete: "off", required: true, spellcheck: "false" });
  const picker = photoPicker();
  const photoField = field({ name: "photo", label: "Photo", input: picker.input,
    hint: "A clear photo of their face, looking at the camera (JPEG or PNG)." });
  photoField.querySelector(".field__label").after(picker.frame);
  photoField.hidden = true;
  const fromVideo = cropImage(stranger.crop, `${person} in the video`, "crop--large");
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Register");
  const cancel = h("button", { type: "button", class: "btn btn--ghost" }, "Cancel");
  const intro = h("p", { class: "dialog__message" }, stranger.has_photo
    ? "The picture from the video is used as their photo. They are then marked present in this session."
    : "Choose a photo of them; they are then marked present in this session.");
  if (!stranger.has_photo) photoField.hidden = false;
  const form = h("form", { class: "dialog__form register-stranger", novalidate: true },
    h("h2", { class: "dialog__title" }, `Register ${person.toLowerCase()}`),
    fromVideo, intro, formErrorSlot(),
    field({ name: "full_name", label: "Full name", input: name }),
    field({ name: "student_id", label: "ID", input: studentId, hint: "Letters, digits and _ . - : (up to 64)." }),
    photoField,
    h("div", { class: "dialog__actions" }, cancel, submit));
  const dialog = h("dialog", { class: "dialog", "aria-label": `Register ${person.toLowerCase()}` }, form);
  cancel.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!name.value.trim()) return showFieldError(form, "full_name", "Enter their full name.");
    if (!isStudentId(studentId.value.trim())) return showFieldError(form, "student_id", STUDENT_ID_RULE);
    const needsPhoto = !photoField.hidden;
    if (needsPhoto && !picker.file()) return showFieldError(form, "photo", "Choose a photo of their face.");
    setBusy(submit, true, needsPhoto ? "Uploading…" : "Registering…");
    try {
      const body = { full_name: name.value.trim(), student_id: studentId.value.trim() };
      if (needsPhoto) body.photo_key = await uploadPhoto(picker.file());
      await api.post(`/sessions/${api.seg(session.session_id)}/unrecognised/${stranger.number}/register`, body);
      toast(`${body.full_name} is registered and marked present.`);
      dialog.close();
      onDone();
    } catch (error) {
      if (error.code === "signed_out") return;
      if (error.code === "video_photo_unusable" || error.code === "no_video_photo") {
        photoField.hidden = false; // the page asks for a photo instead
        if (fromVideo) fromVideo.classList.add("crop--refused");
        intro.textContent = "The picture from the video cannot be used as a registration photo.";
        showFieldError(form, "photo", error.message);
      } else {
        showApiError(form, error, { photo_key: "photo", "code:duplicate_student_id": "student_id",
          "code:face_already_registered": "photo", "code:no_face": "photo", "code:face_too_small": "photo",
          "code:face_unclear": "photo", "code:several_faces": "photo", "code:bad_photo": "photo" });
      }
    } finally {
      setBusy(submit, false);
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  name.focus();
  return dialog;
}
