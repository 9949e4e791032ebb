// Everyone registered: a searchable table with photos, and the form that
// registers a new person (name, ID, photo with a preview). The server's
// message is shown beside the field it concerns.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { formatDayOf } from "../format.js";
import { pageHeader, emptyState, loading, notice, toast, field, clearErrors, showApiError,
  showFieldError, formErrorSlot, setBusy, lockForm, avatar } from "../ui.js";
import { photoPicker, uploadPhoto } from "../photo.js";
import { STUDENT_ID_RULE, isStudentId } from "../studentid.js";
import * as auth from "../auth.js";

const PAGE = 100;

/** Server field names and error codes -> the form field that shows the message. */
export const PHOTO_ERRORS = {
  photo_key: "photo", content_type: "photo", photo: "photo",
  "code:no_face": "photo", "code:several_faces": "photo", "code:face_too_small": "photo",
  "code:face_unclear": "photo", "code:bad_photo": "photo", "code:face_already_registered": "photo",
  "code:face_mismatch": "photo", "code:too_many_photos": "photo",
};
const FIELD_FOR = { ...PHOTO_ERRORS, "code:duplicate_student_id": "student_id" };

export async function render(main) {
  let students = [];
  let next = null; // the cursor of the next page, while there is one
  let searching = null; // the text the list was searched for
  let loaded = []; // the pages loaded without a search
  const search = h("input", { type: "search", placeholder: "Search by name or ID", autocomplete: "off", class: "search__input" });
  const searchBox = h("div", { class: "search", role: "search" },
    h("label", { class: "visually-hidden", for: "student-search" }, "Search people"), search);
  search.id = "student-search";
  const listBox = h("div", { class: "students-list" });
  const summary = h("p", { class: "page-subtitle", "aria-live": "polite" });

  function shown() {
    return students;
  }

  function drawList() {
    const list = shown();
    const scope = auth.isAdmin() ? "registered" : "in your classes";
    summary.textContent = searching ? `${list.length} found.`
      : `${students.length}${next ? "+" : ""} ${students.length === 1 ? "person" : "people"} ${scope}.`;
    if (!students.length && !searching) {
      clear(listBox).append(emptyState("No one registered yet",
        "Register each person once with a clear photo of their face; Rollcall recognises them in every recording."));
      return;
    }
    if (!list.length) {
      clear(listBox).append(h("p", { class: "muted search__none" }, "No one matches “", search.value.trim(), "”."));
      return;
    }
    clear(listBox).append(h("div", { class: "card table-card" }, h("table", { class: "table table--students" },
      h("caption", { class: "visually-hidden" }, "Registered people"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Photo")),
        h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "ID"),
        h("th", { scope: "col", class: "num" }, "Photos"), h("th", { scope: "col" }, "Registered"))),
      h("tbody", {}, list.map((student) => h("tr", { dataset: { studentId: student.student_id } },
        h("td", { class: "cell-photo" }, avatar(student)),
        h("td", { class: "cell-name", "data-label": "Name" },
          h("a", { class: "row-link", href: `#/students/${api.seg(student.student_id)}` }, student.full_name)),
        h("td", { class: "cell-id", "data-label": "ID" }, student.student_id),
        h("td", { class: "num", "data-label": "Photos" }, String(student.photo_count ?? (student.photo_keys || []).length)),
        h("td", { class: "cell-date", "data-label": "Registered" }, formatDayOf(student.created_at))))))),
      next && !searching ? moreButton() : null);
  }

  function moreButton() {
    const more = h("button", { type: "button", class: "btn btn--secondary show-more" }, "Show more");
    more.addEventListener("click", async () => {
      setBusy(more, true, "Loading…");
      try {
        const found = await api.page("/students", "students", { cursor: next, limit: PAGE });
        students = loaded = students.concat(found.items);
        next = found.next;
        drawList();
      } catch (error) {
        api.unlessSignedOut(error, () => toast(error.message, "error"));
        setBusy(more, false);
      }
    });
    return more;
  }

  // The server searches (by ID or name prefix, through its index): the list
  // may be far longer than what is loaded.
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => reload().catch(() => {}), 250);
  });

  async function reload() {
    const text = search.value.trim();
    if (text) {
      const query = new URLSearchParams({ q: text, limit: "50" });
      const found = (await api.get(`/students?${query}`)).students;
      // The server finds ID and name prefixes; people already loaded also match
      // anywhere in their name or ID.
      const needle = text.toLocaleLowerCase();
      const ids = new Set(found.map((s) => s.student_id));
      const here = loaded.filter((s) => !ids.has(s.student_id)
        && (s.full_name.toLocaleLowerCase().includes(needle) || s.student_id.toLocaleLowerCase().includes(needle)));
      students = found.concat(here);
      searching = text;
    } else {
      const found = await api.page("/students", "students", { limit: PAGE });
      students = loaded = found.items;
      next = found.next;
      searching = null;
    }
    drawList();
  }

  loading(main, "Loading people…");
  try {
    await reload();
  } catch (error) {
    api.unlessSignedOut(error, () => clear(main).append(notice("error", "The people could not be loaded", error.message)));
    return;
  }
  const register = registrationForm(async (student) => {
    toast(`${student.full_name} is registered.`);
    await reload().catch(() => {});
  });
  // On a phone the list comes first; the form opens from this button.
  const open = h("button", { type: "button", class: "btn btn--primary register-open",
    "aria-expanded": "false", "aria-controls": "register-panel" }, "Register a person");
  open.addEventListener("click", () => {
    const folded = register.classList.toggle("register--folded");
    open.setAttribute("aria-expanded", String(!folded));
    if (!folded) register.querySelector("input").focus();
  });
  clear(main).append(
    h("div", { class: "page-header" },
      h("div", { class: "page-header__row" },
        h("div", {}, h("h1", { class: "page-title" }, "People"), summary),
        h("div", { class: "page-header__actions" }, searchBox, open,
          h("a", { class: "btn btn--secondary", href: "#/import" }, "Import from a spreadsheet")))),
    h("div", { class: "students-layout" }, listBox, register));
}

function registrationForm(onRegistered) {
  const name = h("input", { type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const studentId = h("input", { type: "text", required: true, maxlength: 64, autocomplete: "off",
    spellcheck: "false", autocapitalize: "off" });
  const picker = photoPicker();
  const klass = h("select", {}, h("option", { value: "" }, auth.isAdmin() ? "No class for now" : "Choose one of your classes"));
  api.getAll("/classes", "classes").then((classes) => {
    klass.append(...classes.map((c) => h("option", { value: c.class_id }, c.name)));
    if (!auth.isAdmin() && classes.length === 1) klass.value = classes[0].class_id;
  }).catch(() => {});
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--block" }, "Register");
  const photoField = field({ name: "photo", label: "Photo", input: picker.input,
    hint: "One face, looking at the camera, in good light. JPEG or PNG." });
  photoField.querySelector(".field__label").after(picker.frame);
  const form = h("form", { class: "register-form", novalidate: true },
    formErrorSlot(),
    field({ name: "full_name", label: "Full name", input: name }),
    field({ name: "student_id", label: "ID", input: studentId,
      hint: "Letters, digits and . _ - : (up to 64). It cannot be changed later." }),
    photoField,
    field({ name: "class_id", label: "Enrol in", input: klass,
      hint: auth.isAdmin() ? "Optional." : "You see the people enrolled in your classes." }),
    submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!name.value.trim()) return showFieldError(form, "full_name", "Enter the person's name.");
    if (!isStudentId(studentId.value.trim())) return showFieldError(form, "student_id", STUDENT_ID_RULE);
    if (!picker.file()) return showFieldError(form, "photo", "Choose a photo of the person's face.");
    setBusy(submit, true, "Uploading the photo…");
    // Nothing can be changed while the face is checked; a refusal leaves it all as typed.
    lockForm(form, true);
    let student = null;
    try {
      const photoKey = await uploadPhoto(picker.file());
      submit.textContent = "Checking the face…";
      const body = { student_id: studentId.value.trim(), full_name: name.value.trim(), photo_key: photoKey };
      if (klass.value) body.class_id = klass.value;
      ({ student } = await api.post("/students", body));
    } catch (error) {
      lockForm(form, false);
      setBusy(submit, false);
      api.unlessSignedOut(error, () => showApiError(form, error, FIELD_FOR));
      return;
    }
    lockForm(form, false);
    setBusy(submit, false);
    form.reset();
    picker.reset();
    await onRegistered(student);
    name.focus();
  });

  return h("aside", { class: "card panel register register--folded", id: "register-panel", "aria-labelledby": "register-title" },
    h("h2", { class: "panel__title", id: "register-title" }, "Register a person"),
    form);
}
