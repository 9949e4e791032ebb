// The history of sessions, newest first, with status badges. While any
// session is processing the list refreshes by itself.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { formatDate, today, daysAgo } from "../format.js";
import { pageHeader, badge, emptyState, loading, notice, toast, toastError, setBusy,
  field, clearErrors, showApiError, showFormError, formErrorSlot } from "../ui.js";
import { downloadCsv, safeName } from "../downloads.js";
import * as uploads from "../uploader.js";
import * as auth from "../auth.js";

const REFRESH_MS = 3000;

const PAGE = 50;

export async function render(main) {
  let timer = null;
  let stopped = false;
  let wanted = PAGE; // how many are shown: "Show more" asks for the next page
  let more = false;
  const list = h("div", { class: "sessions-list" });
  const classFilter = h("select", {}, h("option", { value: "" }, auth.isAdmin() ? "All classes" : "All my classes"));
  if (auth.isAdmin()) classFilter.append(h("option", { value: "none" }, "No class"));
  classFilter.addEventListener("change", () => { wanted = PAGE; refresh(); });
  let classes = [];

  /** The first `wanted` sessions, newest first, paging through the API's cursors. */
  async function load() {
    const sessions = [];
    let cursor = null;
    const path = classFilter.value ? `/sessions?class_id=${api.seg(classFilter.value)}` : "/sessions";
    do {
      const found = await api.page(path, "sessions", { cursor, limit: Math.min(200, wanted - sessions.length) });
      sessions.push(...found.items);
      cursor = found.next;
    } while (cursor && sessions.length < wanted);
    more = Boolean(cursor);
    return sessions;
  }

  async function refresh() {
    clearTimeout(timer);
    let sessions;
    try {
      sessions = await load();
    } catch (error) {
      if (!stopped) {
        api.unlessSignedOut(error, () => clear(list).append(notice("error", "The sessions could not be loaded", error.message)));
      }
      return;
    }
    if (stopped) return;
    const names = Object.fromEntries(classes.map((c) => [c.class_id, c.name]));
    const showMore = h("button", { type: "button", class: "btn btn--secondary show-more" }, "Show more");
    showMore.addEventListener("click", () => { wanted += PAGE; refresh(); });
    clear(list).append(sessions.length ? table(sessions, refresh, names) : await firstSteps(),
      more ? showMore : null);
    if (stopped) return;
    if (sessions.some(isMoving)) {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  loading(main, "Loading sessions…");
  try {
    classes = await api.getAll("/classes", "classes");
  } catch { classes = []; }
  classFilter.append(...classes.map((c) => h("option", { value: c.class_id }, c.name)));
  await refresh();
  clear(main).append(
    pageHeader("Sessions", {
      subtitle: "Every recording and who was there.",
      actions: [h("a", { class: "btn btn--primary", href: "#/upload" }, "Upload a recording")],
    }),
    h("div", { class: "filters" }, field({ name: "class", label: "Class", input: classFilter })),
    list,
    exportPanel(classes));
  return () => { stopped = true; clearTimeout(timer); };
}

/** No sessions yet: the first thing to do, registering people before any recording. */
async function firstSteps() {
  let registered = null;
  let many = false;
  try {
    const found = await api.page("/students", "students", { limit: 200 });
    registered = found.items.length;
    many = Boolean(found.next);
  } catch {
    registered = null; // unknown: suggest both steps in order
  }
  if (registered === 0 || registered === null) {
    return emptyState(
      "No sessions yet",
      "First register the people of the class, each with a photo; then upload the recording of a class and Rollcall works out who was there.",
      h("a", { class: "btn btn--primary", href: "#/students" }, "Register people"));
  }
  return emptyState(
    "No sessions yet",
    `${many ? "More than 200 people are" : `${registered} ${registered === 1 ? "person is" : "people are"}`} registered. Upload the recording of a class and Rollcall works out who was there.`,
    h("a", { class: "btn btn--primary", href: "#/upload" }, "Upload a recording"));
}

// A fresh upload waits a moment for S3's event before it is processing.
const UPLOAD_GRACE_MS = 15 * 60 * 1000;

function isMoving(session) {
  if (session.status === "PROCESSING" || session.status === "CONVERTING") return true;
  return session.status === "AWAITING_UPLOAD"
    && Date.now() - new Date(session.created_at).getTime() < UPLOAD_GRACE_MS;
}

function counts(session) {
  const c = session.counts || {};
  if (session.status !== "COMPLETED" || !c.roster) return h("span", { class: "muted" }, "—");
  const share = Math.round((100 * (c.present || 0)) / c.roster);
  return h("span", { class: "count-pill" },
    h("strong", {}, String(c.present || 0)), ` of ${c.roster} present`,
    h("span", { class: "meter", "aria-hidden": "true" },
      h("span", { class: "meter__fill", style: { width: `${share}%` } })));
}

function table(sessions, refresh, classNames = {}) {
  const rows = sessions.map((session) => {
    const href = `#/sessions/${api.seg(session.session_id)}`;
    // One wrapper per cell: on narrow screens a cell is its label + one block.
    const titleCell = h("td", { class: "cell-title", "data-label": "Session" }, h("span", {},
      h("a", { class: "row-link", href }, session.title || "Untitled session"),
      session.class_id ? h("span", { class: "course-tag" }, classNames[session.class_id] || "Class")
        : h("span", { class: "course-tag course-tag--none" }, "No class"),
      session.course ? h("span", { class: "course-tag" }, session.course) : null));
    const sending = session.status === "AWAITING_UPLOAD" && uploads.job(session.session_id)
      && uploads.job(session.session_id).state === "uploading";
    const status = h("div", { class: "status-block" },
      sending ? h("span", { class: "badge badge--processing" }, "Uploading") : badge(session.status));
    const statusCell = h("td", { "data-label": "Status" }, status);
    if (session.status === "FAILED" && session.error_kind === "file") {
      // Retrying the same file cannot help: the session's page takes another.
      status.append(h("p", { class: "failure-reason" }, session.error || "The recording could not be processed."),
        h("a", { class: "btn btn--small btn--secondary", href }, "Upload the video again"));
    } else if (session.status === "FAILED") {
      const retry = h("button", { type: "button", class: "btn btn--small btn--secondary" }, "Try again");
      retry.addEventListener("click", async () => {
        setBusy(retry, true, "Starting…");
        try {
          await api.post(`/sessions/${api.seg(session.session_id)}/retry`);
          toast(`Processing “${session.title}” again.`);
          refresh();
        } catch (error) {
          toastError(error);
          setBusy(retry, false);
        }
      });
      status.append(h("p", { class: "failure-reason" }, session.error || "The recording could not be processed."), retry);
    }
    return h("tr", { dataset: { sessionId: session.session_id, status: session.status } },
      h("td", { class: "cell-date", "data-label": "Date" }, formatDate(session.date)),
      titleCell,
      statusCell,
      h("td", { "data-label": "Attendance" }, counts(session)));
  });
  return h("div", { class: "card table-card" },
    h("table", { class: "table table--sessions" },
      h("caption", { class: "visually-hidden" }, "Sessions, newest first"),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Date"), h("th", { scope: "col" }, "Session"),
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Attendance"))),
      h("tbody", {}, rows)));
}

/** True when the API lists no completed session from `from` to `to` (of one class
 * when `classId` is given; on its first page: a full page with more to come counts
 * as "some"). */
async function noneTaken(from, to, classId) {
  const query = new URLSearchParams({ from, to, limit: "200" });
  if (classId) query.set("class_id", classId);
  try {
    const answer = await api.get(`/sessions?${query}`);
    return !answer.next_cursor && !answer.sessions.some((s) => s.status === "COMPLETED");
  } catch {
    return false; // unknown: let the download say what it says
  }
}

/** The people x sessions matrix for a date range (of one class, or all for an admin), as CSV. */
function exportPanel(classes) {
  const admin = auth.isAdmin();
  const klass = h("select", {}, admin ? h("option", { value: "" }, "Every class and person") : null,
    classes.map((c) => h("option", { value: c.class_id }, c.name)));
  const from = h("input", { type: "date", required: true, value: daysAgo(30) });
  const to = h("input", { type: "date", required: true, value: today() });
  const submit = h("button", { type: "submit", class: "btn btn--secondary" }, "Download CSV");
  const form = h("form", { class: "export-form", novalidate: true },
    formErrorSlot(),
    h("div", { class: "export-form__fields" },
      field({ name: "class_id", label: "Class", input: klass }),
      field({ name: "from", label: "From", input: from }),
      field({ name: "to", label: "To", input: to }),
      submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!from.value) return showApiError(form, { field: "from", message: "Choose the first day." });
    if (!to.value) return showApiError(form, { field: "to", message: "Choose the last day." });
    if (from.value > to.value) return showApiError(form, { field: "to", message: "The last day must not be before the first." });
    if (!admin && !klass.value) return showApiError(form, { field: "class_id", message: "Choose a class." });
    setBusy(submit, true, "Preparing…");
    if (await noneTaken(from.value, to.value, klass.value)) {
      // An empty spreadsheet would say less than this.
      setBusy(submit, false);
      return showFormError(form, `There are no sessions in this range (${formatDate(from.value)} to ${formatDate(to.value)}) with attendance taken.`);
    }
    try {
      const query = new URLSearchParams({ from: from.value, to: to.value });
      if (klass.value) query.set("class_id", klass.value);
      await downloadCsv(`/attendance/export.csv?${query}`, safeName("attendance", from.value, "to", to.value) + ".csv");
    } catch (error) {
      api.unlessSignedOut(error, () => showApiError(form, error));
    } finally {
      setBusy(submit, false);
    }
  });
  return h("section", { class: "card panel export-panel", "aria-labelledby": "export-title" },
    h("h2", { class: "panel__title", id: "export-title" }, "Attendance over a period"),
    h("p", { class: "panel__lead" }, "A class's people against its sessions between two dates, for a spreadsheet."),
    form);
}
