// Classes: a teacher's own, or every class for an admin (who creates them and
// names their teachers). The list pages through the API's cursors.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { pageHeader, emptyState, loading, field, formErrorSlot, toast } from "../ui.js";
import { loadList, submitWith } from "../forms.js";

export async function render(main) {
  const admin = auth.isAdmin();
  const listBox = h("div", { class: "classes-list" });
  const showArchived = h("input", { type: "checkbox" });

  async function refresh() {
    loading(listBox, "Loading classes…");
    const classes = await loadList(listBox, `/classes${showArchived.checked ? "?archived=1" : ""}`, "classes", "The classes");
    if (!classes) return;
    clear(listBox).append(classes.length ? table(classes) : emptyState(
      "No classes yet",
      admin ? "Create a class below and name its teachers; they then add the people who attend it."
        : "An administrator has not given you a class yet."));
  }
  showArchived.addEventListener("change", refresh);

  fill(main,
    pageHeader("Classes", { subtitle: admin ? "Every class, its teachers and its people."
      : "The classes you teach." }),
    h("label", { class: "checkbox-line" }, showArchived, " Show archived classes"),
    listBox,
    admin ? createForm(refresh) : null);
  await refresh();
}

function table(classes) {
  return h("div", { class: "card table-card" }, h("table", { class: "table table--classes" },
    h("caption", { class: "visually-hidden" }, "Classes by name"),
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Class"), h("th", { scope: "col" }, "Term"),
      h("th", { scope: "col" }, "Teachers"), h("th", { scope: "col", class: "num" }, "People"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Register")))),
    h("tbody", {}, classes.map((c) => h("tr", { dataset: { classId: c.class_id } },
      h("td", { "data-label": "Class" },
        h("a", { class: "row-link", href: `#/classes/${api.seg(c.class_id)}` }, c.name),
        c.archived ? h("span", { class: "badge badge--archived" }, "Archived") : null),
      h("td", { "data-label": "Term" }, c.term || "—"),
      h("td", { "data-label": "Teachers" }, c.teachers.length ? c.teachers.join(", ") : "—"),
      h("td", { class: "num", "data-label": "People" }, String(c.enrolled)),
      h("td", { "data-label": "Register" },
        h("a", { href: `#/classes/${api.seg(c.class_id)}/register` }, "Register")))))));
}

/** Teacher emails typed one per line or separated by commas. */
export function emailList(text) {
  return text.split(/[\s,;]+/).map((e) => e.trim()).filter(Boolean);
}

function createForm(refresh) {
  const name = h("input", { type: "text", required: true, maxlength: 120, placeholder: "e.g. BIO 101 – Tuesday lab", autocomplete: "off" });
  const term = h("input", { type: "text", maxlength: 60, placeholder: "Optional, e.g. Autumn 2026", autocomplete: "off" });
  const teachers = h("textarea", { rows: 2, placeholder: "teacher@school.org" });
  const late = h("input", { type: "number", min: 0, max: 240, value: 10, required: true });
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Create the class");
  const form = h("form", { class: "card panel", novalidate: true, "aria-labelledby": "new-class-title" },
    h("h2", { class: "panel__title", id: "new-class-title" }, "New class"),
    formErrorSlot(),
    h("div", { class: "grid-2" },
      field({ name: "name", label: "Name", input: name }),
      field({ name: "term", label: "Term", input: term })),
    field({ name: "teachers", label: "Teachers", input: teachers, hint: "Their sign-in emails, one per line. Add accounts on the Users page first." }),
    field({ name: "late_threshold_minutes", label: "Late after (minutes)", input: late, hint: "Someone first seen later than this after the start is marked late." }),
    submit);
  submitWith(form, submit, {
    busyLabel: "Creating…",
    check: () => (name.value.trim() ? null : { field: "name", message: "Give the class a name." }),
    send: async () => {
      const body = { name: name.value.trim(), teachers: emailList(teachers.value),
        late_threshold_minutes: Number(late.value) };
      if (term.value.trim()) body.term = term.value.trim();
      const { class: made } = await api.post("/classes", body);
      toast(`Class “${made.name}” created.`);
      form.reset();
      late.value = 10;
      refresh();
    },
  });
  return form;
}
