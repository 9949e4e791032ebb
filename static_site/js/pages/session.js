// One session: its status (followed live while processing), who was present
// and absent with the evidence, corrections by hand, the CSV, the printable
// report and a timeline of sightings.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import { formatDate, formatDateTime, formatMs, formatSimilarity } from "../format.js";
import { pageHeader, badge, notice, spinner, loading, pageError, toast, toastError, setBusy,
  confirmDialog } from "../ui.js";
import { videoUploadForm, markUploaded, wasJustUploaded } from "../videoupload.js";
import { downloadCsv, safeName } from "../downloads.js";
import { drawTimeline } from "../timeline.js";

const POLL_MS = 2500;

export async function render(main, { sessionId }, { setTitle }) {
  const path = `/sessions/${api.seg(sessionId)}`;
  let timer = null;
  let stopped = false;
  let observer = null;
  // Kept across redraws (polling redraws the page): a chosen file or an upload
  // in flight survives them.
  const reupload = uploadAgainForm(sessionId, () => load());

  async function load() {
    clearTimeout(timer);
    let data;
    try {
      data = await api.get(path);
    } catch (error) {
      if (!stopped) api.unlessSignedOut(error, () => pageError(main, error));
      return;
    }
    if (stopped) return;
    draw(data);
    if (data.session.status === "PROCESSING" || data.session.status === "AWAITING_UPLOAD") {
      timer = setTimeout(load, POLL_MS);
    }
  }

  function draw({ session, attendance }) {
    setTitle(session.title || "Session");
    if (observer) observer.disconnect();
    const rows = attendance || [];
    const present = rows.filter((row) => row.status === "PRESENT");
    const absent = rows.filter((row) => row.status === "ABSENT");

    const csv = h("button", { type: "button", class: "btn btn--secondary" }, "Download CSV");
    csv.addEventListener("click", async () => {
      setBusy(csv, true, "Preparing…");
      try {
        await downloadCsv(`${path}/export.csv`, `${safeName(session.date, session.title)}.csv`);
      } catch (error) {
        toastError(error);
      } finally {
        setBusy(csv, false);
      }
    });
    const done = session.status === "COMPLETED";
    const actions = done ? [csv, h("a", { class: "btn btn--secondary", href: `#${path}/report` }, "Printable report")] : [];

    fill(main,
      pageHeader(session.title || "Untitled session", {
        back: { href: "#/sessions", label: "All sessions" },
        subtitle: [formatDate(session.date), session.course].filter(Boolean).join(" · "),
        actions,
      }),
      sessionStatus(session),
      statusPanel(session),
      done ? stats(session, present, absent) : null);

    if (!done) return;
    const timelineBox = h("div", { class: "timeline" });
    main.append(h("section", { class: "card panel", "aria-labelledby": "timeline-title" },
      h("h2", { class: "panel__title", id: "timeline-title" }, "When each person was seen"),
      h("p", { class: "panel__lead" }, "Each dot is a sighting in the video; the bar runs from the first to the last."),
      timelineBox));
    main.append(
      rowsTable("Present", present, session, onCorrected, "No one was recognised in this recording."),
      rowsTable("Absent", absent, session, onCorrected, "Everyone registered was there."));
    if (!drawTimeline(timelineBox, rows)) {
      timelineBox.append(h("p", { class: "muted" }, "No one was seen in this recording."));
    } else {
      let width = timelineBox.clientWidth;
      observer = new ResizeObserver(() => {
        if (Math.abs(timelineBox.clientWidth - width) > 20) {
          width = timelineBox.clientWidth;
          drawTimeline(timelineBox, rows);
        }
      });
      observer.observe(timelineBox);
    }

    function onCorrected(row) {
      const index = rows.findIndex((r) => r.student_id === row.student_id);
      if (index >= 0) rows[index] = row;
      const c = { ...session.counts };
      c.present = rows.filter((r) => r.status === "PRESENT").length;
      c.absent = rows.filter((r) => r.status === "ABSENT").length;
      draw({ session: { ...session, counts: c }, attendance: rows });
    }
  }

  function sessionStatus(session) {
    // The file this page just sent has arrived: the S3 event is on its way.
    const arrived = session.status === "AWAITING_UPLOAD" && wasJustUploaded(session.session_id) && !reupload.busy();
    return h("div", { class: "session-status" },
      arrived ? h("span", { class: "badge badge--processing" }, "Uploaded") : badge(session.status),
      h("span", { class: "muted" }, session.status === "AWAITING_UPLOAD" && !arrived
        ? `Created ${formatDateTime(session.created_at)}` : `Uploaded ${formatDateTime(session.created_at)}`));
  }

  function statusPanel(session) {
    if (session.status === "PROCESSING") {
      return notice("info", "Rollcall is watching the recording",
        h("p", { class: "with-spinner" }, spinner("Processing"),
          "Faces are being found and matched. This page updates by itself; you can leave it and come back."));
    }
    if (session.status === "AWAITING_UPLOAD") {
      if (wasJustUploaded(session.session_id) && !reupload.busy()) {
        return notice("info", "Uploaded; starting the face search…",
          h("p", { class: "with-spinner" }, spinner("Starting"),
            "The video has arrived. This page updates by itself."));
      }
      return notice("info", "Waiting for the recording",
        h("p", { class: "with-spinner" }, spinner("Waiting"),
          "The video has not arrived yet. If the upload was interrupted, use “Upload the video again” below."),
        reupload.element);
    }
    if (session.status === "FAILED") {
      // A file that is not a usable video fails the same way each time:
      // only another file helps. Otherwise retrying may help (and another file too).
      const fileProblem = session.error_kind === "file";
      const reason = h("p", { class: "failure-reason" }, session.error || "No reason was given.");
      if (fileProblem) {
        return notice("error", "The recording could not be processed", reason, reupload.element);
      }
      const retry = h("button", { type: "button", class: "btn btn--primary" }, "Try again");
      retry.addEventListener("click", async () => {
        setBusy(retry, true, "Starting…");
        try {
          await api.post(`${path}/retry`);
          toast("Processing the recording again.");
          load();
        } catch (error) {
          toastError(error);
          setBusy(retry, false);
        }
      });
      return notice("error", "The recording could not be processed", reason,
        h("div", { class: "failure-actions" }, retry), reupload.element);
    }
    return null;
  }

  loading(main, "Loading the session…");
  await load();
  return () => { stopped = true; clearTimeout(timer); if (observer) observer.disconnect(); };
}

/**
 * "Upload the video again": pick or drop a file, get a fresh upload for this
 * session (POST .../upload) and send it with a progress bar.
 */
function uploadAgainForm(sessionId, onUploaded) {
  return videoUploadForm({
    className: "reupload",
    ariaLabel: "Upload the video again",
    label: "Video file",
    submitLabel: "Upload the video again",
    fieldFor: { content_type: "video" },
    prepare: (contentType) => api.post(`/sessions/${api.seg(sessionId)}/upload`, { content_type: contentType }),
    onSent() {
      markUploaded(sessionId);
      toast("Uploaded; starting the face search…");
      onUploaded();
    },
    // Once the API answered, the session waits for an upload (no longer
    // FAILED): show its new state; this form (and its message) stays.
    onFailed: (error, answer) => { if (answer) onUploaded(); },
  });
}

function stats(session, present, absent) {
  const c = session.counts || {};
  const roster = c.roster ?? present.length + absent.length;
  const stat = (label, value, kind) => h("div", { class: ["stat", kind && `stat--${kind}`] },
    h("span", { class: "stat__value" }, String(value ?? 0)), h("span", { class: "stat__label" }, label));
  return h("div", { class: "stats" },
    stat("present", present.length, "present"),
    stat("absent", absent.length, "absent"),
    stat("registered", roster),
    stat("unrecognised faces", c.unrecognised ?? 0, "muted"));
}

function rowsTable(title, rows, session, onCorrected, emptyText) {
  const isPresent = title === "Present";
  const id = `table-${title.toLowerCase()}`;
  const body = rows.map((row) => {
    const action = h("button", { type: "button", class: "btn btn--small btn--ghost" },
      isPresent ? "Mark absent" : "Mark present");
    action.setAttribute("aria-label", `${isPresent ? "Mark absent" : "Mark present"}: ${row.full_name}`);
    action.addEventListener("click", () => correct(row, isPresent ? "ABSENT" : "PRESENT", session, onCorrected, action));
    const nameCell = h("td", { class: "cell-name", "data-label": "Name" },
      h("a", { href: `#/students/${api.seg(row.student_id)}` }, row.full_name || row.student_id));
    if (row.source === "manual") {
      nameCell.append(h("div", { class: "correction" },
        h("span", { class: "badge badge--manual" }, "Corrected"), " ",
        h("span", { class: "correction__text" },
          `${row.reason || "No reason given"}${row.corrected_by ? ` (${row.corrected_by})` : ""}`)));
    }
    return h("tr", { dataset: { studentId: row.student_id } },
      nameCell,
      h("td", { class: "cell-id", "data-label": "ID" }, row.student_id),
      h("td", { class: "num", "data-label": "First seen" }, formatMs(row.first_seen_ms)),
      h("td", { class: "num", "data-label": "Similarity" }, formatSimilarity(row.similarity)),
      h("td", { class: "num", "data-label": "Sightings" }, String(row.sightings ?? 0)),
      h("td", { class: "cell-action" }, action));
  });
  return h("section", { class: ["card", "table-card", `attendance-${title.toLowerCase()}`], "aria-labelledby": id },
    h("h2", { class: "panel__title table-card__title", id },
      title, h("span", { class: ["count", `count--${title.toLowerCase()}`] }, String(rows.length))),
    rows.length ? h("table", { class: "table table--attendance" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "ID"),
        h("th", { scope: "col", class: "num" }, "First seen"), h("th", { scope: "col", class: "num" }, "Similarity"),
        h("th", { scope: "col", class: "num" }, "Sightings"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Correct")))),
      h("tbody", {}, body)) : h("p", { class: "table-card__empty muted" }, emptyText));
}

async function correct(row, status, session, onCorrected, button) {
  const answer = await confirmDialog({
    title: status === "PRESENT" ? `Mark ${row.full_name} present?` : `Mark ${row.full_name} absent?`,
    message: "The automatic result is kept beside your correction.",
    confirmLabel: status === "PRESENT" ? "Mark present" : "Mark absent",
    reasonLabel: "Reason",
    reasonHint: "For example: sat outside the camera's view.",
  });
  if (!answer) return;
  setBusy(button, true, "Saving…");
  try {
    const { row: updated } = await api.patch(
      `/sessions/${api.seg(session.session_id)}/attendance/${api.seg(row.student_id)}`,
      { status, reason: answer.reason });
    toast(`${updated.full_name} is now marked ${status === "PRESENT" ? "present" : "absent"}.`);
    onCorrected(updated);
  } catch (error) {
    toastError(error);
    setBusy(button, false);
  }
}
