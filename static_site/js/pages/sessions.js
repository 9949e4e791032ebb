// The history of sessions, newest first, with status badges. While any
// session is processing the list refreshes by itself.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { formatDate, today, daysAgo } from "../format.js";
import { pageHeader, badge, emptyState, loading, notice, toast, toastError, setBusy,
  field, clearErrors, showApiError, showFormError, formErrorSlot } from "../ui.js";
import { downloadCsv, safeName } from "../downloads.js";

const REFRESH_MS = 3000;

export async function render(main) {
  let timer = null;
  let stopped = false;
  let known = null; // the sessions last listed
  const list = h("div", { class: "sessions-list" });

  async function refresh() {
    clearTimeout(timer);
    let sessions;
    try {
      ({ sessions } = await api.get("/sessions"));
    } catch (error) {
      if (!stopped) {
        api.unlessSignedOut(error, () => clear(list).append(notice("error", "The sessions could not be loaded", error.message)));
      }
      return;
    }
    if (stopped) return;
    known = sessions;
    clear(list).append(sessions.length ? table(sessions, refresh) : await firstSteps());
    if (stopped) return;
    if (sessions.some(isMoving)) {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  loading(main, "Loading sessions…");
  await refresh();
  clear(main).append(
    pageHeader("Sessions", {
      subtitle: "Every recording you uploaded and who was there.",
      actions: [h("a", { class: "btn btn--primary", href: "#/upload" }, "Upload a recording")],
    }),
    list,
    exportPanel(() => known));
  return () => { stopped = true; clearTimeout(timer); };
}

/** No sessions yet: the first thing to do, registering people before any recording. */
async function firstSteps() {
  let registered = null;
  try {
    registered = (await api.get("/students")).students.length;
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
    `${registered} ${registered === 1 ? "person is" : "people are"} registered. Upload the recording of a class and Rollcall works out who was there.`,
    h("a", { class: "btn btn--primary", href: "#/upload" }, "Upload a recording"));
}

// A fresh upload waits a moment for S3's event before it is processing.
const UPLOAD_GRACE_MS = 15 * 60 * 1000;

function isMoving(session) {
  if (session.status === "PROCESSING") return true;
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

function table(sessions, refresh) {
  const rows = sessions.map((session) => {
    const href = `#/sessions/${api.seg(session.session_id)}`;
    // One wrapper per cell: on narrow screens a cell is its label + one block.
    const titleCell = h("td", { class: "cell-title", "data-label": "Session" }, h("span", {},
      h("a", { class: "row-link", href }, session.title || "Untitled session"),
      session.course ? h("span", { class: "course-tag" }, session.course) : null));
    const status = h("div", { class: "status-block" }, badge(session.status));
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

/** The students x sessions matrix for a date range, as CSV. `listed()` answers
 * the sessions on the page (null if they could not be loaded). */
function exportPanel(listed) {
  const from = h("input", { type: "date", required: true, value: daysAgo(30) });
  const to = h("input", { type: "date", required: true, value: today() });
  const submit = h("button", { type: "submit", class: "btn btn--secondary" }, "Download CSV");
  const form = h("form", { class: "export-form", novalidate: true },
    formErrorSlot(),
    h("div", { class: "export-form__fields" },
      field({ name: "from", label: "From", input: from }),
      field({ name: "to", label: "To", input: to }),
      submit));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!from.value) return showApiError(form, { field: "from", message: "Choose the first day." });
    if (!to.value) return showApiError(form, { field: "to", message: "Choose the last day." });
    if (from.value > to.value) return showApiError(form, { field: "to", message: "The last day must not be before the first." });
    const sessions = listed();
    if (sessions && !sessions.some((s) => s.status === "COMPLETED" && s.date >= from.value && s.date <= to.value)) {
      // An empty spreadsheet would say less than this.
      return showFormError(form, `There are no sessions in this range (${formatDate(from.value)} to ${formatDate(to.value)}) with attendance taken.`);
    }
    setBusy(submit, true, "Preparing…");
    try {
      const query = new URLSearchParams({ from: from.value, to: to.value });
      await downloadCsv(`/attendance/export.csv?${query}`, safeName("attendance", from.value, "to", to.value) + ".csv");
    } catch (error) {
      api.unlessSignedOut(error, () => showApiError(form, error));
    } finally {
      setBusy(submit, false);
    }
  });
  return h("section", { class: "card panel export-panel", "aria-labelledby": "export-title" },
    h("h2", { class: "panel__title", id: "export-title" }, "Attendance over a period"),
    h("p", { class: "panel__lead" }, "Everyone against every session between two dates, for a spreadsheet."),
    form);
}
