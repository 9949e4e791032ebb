// A class's register: people x sessions, each cell P/L/A/E with a marker when
// a teacher corrected it, totals per person and per session, sortable, over a
// date range; a cell opens the correction dialog; the same grid as CSV.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { formatDate, formatRate, STATUS_LABELS, STATUS_LETTERS, daysAgo, today } from "../format.js";
import { pageHeader, pageError, loading, notice, field, emptyState, toast, toastError, setBusy } from "../ui.js";
import { downloadCsv, safeName } from "../downloads.js";
import { correctionDialog } from "../correction.js";

const SORTS = {
  name: (a, b) => a.full_name.localeCompare(b.full_name),
  rate: (a, b) => (a.totals.rate ?? -1) - (b.totals.rate ?? -1),
  late: (a, b) => a.totals.late - b.totals.late,
  absent: (a, b) => a.totals.absent - b.totals.absent,
};

export async function render(main, { classId }, { setTitle }) {
  const from = h("input", { type: "date", value: daysAgo(120) });
  const to = h("input", { type: "date", value: today() });
  const gridBox = h("div", { class: "register" });
  let sort = { key: "name", descending: false };
  let grid = null;

  async function load() {
    loading(gridBox, "Loading the register…");
    const query = new URLSearchParams();
    if (from.value) query.set("from", from.value);
    if (to.value) query.set("to", to.value);
    try {
      grid = await api.get(`/classes/${api.seg(classId)}/attendance?${query}`);
    } catch (error) {
      return api.unlessSignedOut(error, () => clear(gridBox).append(notice("error", "The register could not be loaded", error.message)));
    }
    setTitle(`${grid.class.name}: register`);
    draw();
  }

  function draw() {
    if (!grid.sessions.length) {
      clear(gridBox).append(emptyState("No sessions in these dates",
        "Sessions of this class with attendance taken appear here, one column each."));
      return;
    }
    const people = [...grid.people].sort(SORTS[sort.key]);
    if (sort.descending) people.reverse();
    const sortButton = (key, label) => {
      const active = sort.key === key;
      const button = h("button", { type: "button", class: "sort-button", dataset: { sort: key } }, label,
        active ? (sort.descending ? " ▼" : " ▲") : "");
      button.addEventListener("click", () => {
        sort = { key, descending: active ? !sort.descending : key !== "name" };
        draw();
      });
      return h("th", { scope: "col", "aria-sort": active ? (sort.descending ? "descending" : "ascending") : "none" }, button);
    };
    const head = h("tr", {}, sortButton("name", "Name"),
      grid.sessions.map((s) => h("th", { scope: "col", class: "register__session" },
        h("a", { href: `#/sessions/${api.seg(s.session_id)}` }, formatDate(s.date)),
        h("span", { class: "register__title" }, s.title))),
      h("th", { scope: "col", class: "num" }, "Attended"), sortButton("late", "Late"),
      sortButton("absent", "Absent"), sortButton("rate", "Rate"));
    const body = people.map((person) => h("tr", { dataset: { studentId: person.student_id } },
      h("th", { scope: "row" }, h("a", { href: `#/students/${api.seg(person.student_id)}` }, person.full_name)),
      person.cells.map((cell, column) => cellFor(person, cell, grid.sessions[column])),
      h("td", { class: "num" }, String(person.totals.attended)),
      h("td", { class: "num" }, String(person.totals.late)),
      h("td", { class: "num" }, String(person.totals.absent)),
      h("td", { class: "num" }, formatRate(person.totals.rate))));
    const foot = h("tr", {}, h("th", { scope: "row" }, "Attended"),
      grid.sessions.map((s) => h("td", { class: "num" }, `${s.totals.attended}/${s.totals.taken}`)),
      h("td", { colspan: 4 }));
    clear(gridBox).append(
      h("div", { class: "register__scroll" }, h("table", { class: "table table--register" },
        h("caption", { class: "visually-hidden" }, "People by session: P present, L late, A absent, E excused; * corrected by hand"),
        h("thead", {}, head), h("tbody", {}, body), h("tfoot", {}, foot))),
      h("p", { class: "register__legend muted" }, "P present · L late · A absent · E excused · * corrected by hand. Choose a cell to correct it."));
  }

  function cellFor(person, cell, session) {
    const letter = cell ? STATUS_LETTERS[cell.status] || "?" : "–";
    const manual = cell && cell.source === "manual";
    const label = cell ? `${person.full_name}, ${formatDate(session.date)}: ${STATUS_LABELS[cell.status]}${manual ? ", corrected" : ""}` : "No row";
    const button = h("button", { type: "button", class: ["register__cell", cell && `register__cell--${cell.status.toLowerCase()}`],
      "aria-label": label, title: label, dataset: { session: session.session_id } },
    letter, manual ? h("sup", { class: "register__manual" }, "*") : null);
    button.addEventListener("click", async () => {
      const updated = await correctionDialog({ sessionId: session.session_id, studentId: person.student_id,
        name: person.full_name, current: cell ? cell.status : "PRESENT" });
      if (!updated) return;
      toast(`${updated.full_name}: ${STATUS_LABELS[updated.status]}.`);
      load();
    });
    return h("td", { class: "register__td" }, button);
  }

  loading(main, "Loading the register…");
  let klass;
  try {
    ({ class: klass } = await api.get(`/classes/${api.seg(classId)}`));
  } catch (error) {
    return api.unlessSignedOut(error, () => pageError(main, error, { href: "#/classes", label: "Back to classes" }));
  }
  const apply = h("button", { type: "submit", class: "btn btn--secondary" }, "Show");
  const download = h("button", { type: "button", class: "btn btn--secondary" }, "Download CSV");
  const filter = h("form", { class: "export-form card panel", novalidate: true },
    h("div", { class: "export-form__fields" },
      field({ name: "from", label: "From", input: from }), field({ name: "to", label: "To", input: to }),
      apply, download));
  filter.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  download.addEventListener("click", async () => {
    setBusy(download, true, "Preparing…");
    try {
      const query = new URLSearchParams();
      if (from.value) query.set("from", from.value);
      if (to.value) query.set("to", to.value);
      await downloadCsv(`/classes/${api.seg(classId)}/attendance.csv?${query}`,
        safeName("register", klass.name, from.value, "to", to.value) + ".csv");
    } catch (error) {
      toastError(error);
    } finally {
      setBusy(download, false);
    }
  });
  clear(main).append(
    pageHeader(`${klass.name}: register`, { back: { href: `#/classes/${api.seg(classId)}`, label: klass.name },
      subtitle: `Late after ${klass.late_threshold_minutes} minutes.` }),
    filter, gridBox);
  await load();
}
