// One class: its roster (add one person, paste or upload a list of IDs with a
// result per line, remove), its late threshold, and for admins its name,
// teachers, archiving and deletion.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { pageHeader, pageError, loading, notice, field, formErrorSlot, toast, emptyState } from "../ui.js";
import { confirmedAction, loadList, submitWith } from "../forms.js";
import { emailList } from "./classes.js";

const RESULT_LABELS = {
  added: "Added", already_enrolled: "Already enrolled", unknown_id: "Unknown ID",
  invalid: "Not an ID", header: "Header line",
};

export async function render(main, { classId }, { setTitle }) {
  loading(main, "Loading the class…");
  let klass;
  try {
    ({ class: klass } = await api.get(`/classes/${api.seg(classId)}`));
  } catch (error) {
    return api.unlessSignedOut(error, () => pageError(main, error, { href: "#/classes", label: "Back to classes" }));
  }
  setTitle(klass.name);
  const rosterBox = h("div", { class: "roster" });

  async function refreshRoster() {
    const people = await loadList(rosterBox, `/classes/${api.seg(classId)}/students`, "students", "The roster");
    if (!people) return;
    clear(rosterBox).append(people.length ? rosterTable(klass, people, refreshRoster)
      : emptyState("Nobody enrolled yet", "Add people by their ID, or paste a list below."));
  }

  fill(main,
    pageHeader(klass.name, {
      subtitle: [klass.term, klass.teachers.length ? `Taught by ${klass.teachers.join(", ")}` : "No teacher yet"]
        .filter(Boolean).join(" · "),
      back: { href: "#/classes", label: "Classes" },
      actions: [
        h("a", { class: "btn btn--primary", href: `#/classes/${api.seg(classId)}/register` }, "Register"),
        klass.archived ? null : h("a", { class: "btn btn--secondary", href: `#/upload?class=${api.seg(classId)}` }, "Upload a recording"),
        klass.archived ? null : h("a", { class: "btn btn--secondary", href: `#/classes/${api.seg(classId)}/import` }, "Import people"),
      ].filter(Boolean),
    }),
    klass.archived ? notice("info", "This class is archived", "Its roster and sessions are kept; it takes no new sessions.") : null,
    h("div", { class: "class-layout" },
      h("section", { class: "card panel", "aria-labelledby": "roster-title" },
        h("h2", { class: "panel__title", id: "roster-title" }, "People in this class"),
        rosterBox),
      h("div", { class: "class-side" },
        klass.archived ? null : addOneForm(klass, refreshRoster),
        klass.archived ? null : importForm(klass, refreshRoster),
        settingsForm(klass))));
  await refreshRoster();
}

function rosterTable(klass, people, refresh) {
  return h("table", { class: "table table--roster" },
    h("caption", { class: "visually-hidden" }, "Enrolled people by name"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "ID"),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Remove")))),
    h("tbody", {}, people.map((person) => {
      const remove = h("button", { type: "button", class: "btn btn--small btn--ghost",
        "aria-label": `Remove ${person.full_name} from the class` }, "Remove");
      remove.hidden = klass.archived;
      confirmedAction(remove,
        () => ({ title: `Remove ${person.full_name} from ${klass.name}?`,
          message: "Their past attendance stays; later sessions will not count them.", confirmLabel: "Remove", danger: true }),
        async () => {
          await api.del(`/classes/${api.seg(klass.class_id)}/students/${api.seg(person.student_id)}`);
          toast(`${person.full_name} removed.`);
          refresh();
        });
      return h("tr", { dataset: { studentId: person.student_id } },
        h("td", { "data-label": "Name" }, h("a", { href: `#/students/${api.seg(person.student_id)}` }, person.full_name)),
        h("td", { class: "cell-id", "data-label": "ID" }, person.student_id),
        h("td", { class: "cell-action" }, remove));
    })));
}

function addOneForm(klass, refresh) {
  const id = h("input", { type: "text", required: true, maxlength: 64, autocomplete: "off", placeholder: "Student ID" });
  const submit = h("button", { type: "submit", class: "btn btn--secondary" }, "Add");
  const form = h("form", { class: "card panel", novalidate: true },
    h("h2", { class: "panel__title" }, "Add one person"),
    formErrorSlot(),
    h("div", { class: "inline-form" }, field({ name: "student_id", label: "ID", input: id }), submit));
  submitWith(form, submit, {
    busyLabel: "Adding…",
    lock: false,
    check: () => (id.value.trim() ? null : { field: "student_id", message: "Type the person's ID." }),
    send: async () => {
      const answer = await api.post(`/classes/${api.seg(klass.class_id)}/students`, { student_id: id.value.trim() });
      toast(answer.result === "added" ? `${answer.full_name} added.` : `${answer.full_name} was already enrolled.`);
      id.value = "";
      refresh();
    },
  });
  return form;
}

function importForm(klass, refresh) {
  const text = h("textarea", { rows: 6, placeholder: "One ID per line, or paste a CSV column" });
  const file = h("input", { type: "file", accept: ".csv,.txt,text/csv,text/plain" });
  const submit = h("button", { type: "submit", class: "btn btn--secondary" }, "Import the list");
  const results = h("div", { class: "import-results", "aria-live": "polite" });
  const form = h("form", { class: "card panel", novalidate: true, "aria-labelledby": "import-title" },
    h("h2", { class: "panel__title", id: "import-title" }, "Add a list of IDs"),
    h("p", { class: "panel__lead" }, "Paste IDs, one per line, or choose a CSV file: the column named “Student ID” (or the first) is read."),
    formErrorSlot(),
    field({ name: "text", label: "IDs", input: text }),
    field({ name: "file", label: "Or a file", input: file }),
    submit, results);
  file.addEventListener("change", async () => {
    const chosen = file.files[0];
    if (chosen) text.value = await chosen.text();
  });
  submitWith(form, submit, {
    busyLabel: "Importing…",
    check: () => (text.value.trim() ? null : { field: "text", message: "Paste some IDs or choose a file." }),
    send: async () => {
      const answer = await api.post(`/classes/${api.seg(klass.class_id)}/roster/import`, { text: text.value });
      const s = answer.summary;
      clear(results).append(
        h("p", { class: "import-summary" },
          `${s.added} added, ${s.already_enrolled} already enrolled, ${s.unknown_id} unknown, ${s.invalid} not IDs.`),
        h("table", { class: "table table--import" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), h("th", { scope: "col" }, "Value"),
            h("th", { scope: "col" }, "Result"))),
          h("tbody", {}, answer.results.map((r) => h("tr", { dataset: { result: r.result } },
            h("td", { class: "num" }, String(r.line)),
            h("td", {}, r.value || "—", r.full_name ? h("span", { class: "muted" }, ` (${r.full_name})`) : null),
            h("td", {}, h("span", { class: ["badge", `badge--${r.result.replace("_", "-")}`] }, RESULT_LABELS[r.result] || r.result)))))));
      if (s.added) refresh();
    },
  });
  return form;
}

function settingsForm(klass) {
  const admin = auth.isAdmin();
  const name = h("input", { type: "text", maxlength: 120, value: klass.name, required: true });
  const term = h("input", { type: "text", maxlength: 60, value: klass.term || "" });
  const teachers = h("textarea", { rows: 2 }, klass.teachers.join("\n"));
  const late = h("input", { type: "number", min: 0, max: 240, value: klass.late_threshold_minutes });
  const save = h("button", { type: "submit", class: "btn btn--secondary" }, "Save");
  const form = h("form", { class: "card panel", novalidate: true },
    h("h2", { class: "panel__title" }, "Settings"),
    formErrorSlot(),
    admin ? field({ name: "name", label: "Name", input: name }) : null,
    admin ? field({ name: "term", label: "Term", input: term }) : null,
    admin ? field({ name: "teachers", label: "Teachers", input: teachers, hint: "Sign-in emails, one per line." }) : null,
    field({ name: "late_threshold_minutes", label: "Late after (minutes)", input: late }),
    h("div", { class: "form-actions" }, save));
  submitWith(form, save, {
    busyLabel: "Saving…",
    lock: false,
    send: async () => {
      const body = { late_threshold_minutes: Number(late.value) };
      if (admin) Object.assign(body, { name: name.value.trim(), term: term.value.trim() || null, teachers: emailList(teachers.value) });
      await api.patch(`/classes/${api.seg(klass.class_id)}`, body);
      toast("Saved.");
    },
  });
  if (admin) {
    const archive = h("button", { type: "button", class: "btn btn--ghost" }, klass.archived ? "Unarchive" : "Archive");
    confirmedAction(archive, null, async () => {
      await api.patch(`/classes/${api.seg(klass.class_id)}`, { archived: !klass.archived });
      toast(klass.archived ? "Class unarchived." : "Class archived.");
      location.hash = "#/classes";
    });
    const remove = h("button", { type: "button", class: "btn btn--danger" }, "Delete");
    confirmedAction(remove,
      () => ({ title: `Delete ${klass.name}?`, danger: true, confirmLabel: "Delete",
        message: "Its roster goes too. A class with sessions cannot be deleted: archive it instead." }),
      async () => {
        await api.del(`/classes/${api.seg(klass.class_id)}`);
        toast("Class deleted.");
        location.hash = "#/classes";
      });
    form.querySelector(".form-actions").append(archive, remove);
  }
  return form;
}
