// One session: its status (followed live while processing), who was present
// and absent with the evidence, corrections by hand, the CSV, the printable
// report and a timeline of sightings.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import { formatBytes, formatDate, formatDateTime, formatMs } from "../format.js";
import { pageHeader, badge, notice, spinner, loading, pageError, toast, setBusy, confirmDialog,
  field, clearErrors, showApiError, showFieldError, formErrorSlot } from "../ui.js";
import { videoType, videoDropzone, uploadProgress, markUploaded, wasJustUploaded, NOT_A_VIDEO } from "../videoupload.js";
import { downloadCsv, safeName } from "../downloads.js";
import { drawTimeline } from "../timeline.js";
import { faceCompare, matchWords, seenWords, explained, MATCH_HELP, notThisPersonButton,
  sightingViewer, strangerGallery } from "../evidence.js";

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
      if (error.code !== "signed_out" && !stopped) pageError(main, error);
      return;
    }
    if (stopped) return;
    draw(data);
    // The crops are cut after completion: follow them until they are there.
    if (data.session.status === "PROCESSING" || data.session.status === "AWAITING_UPLOAD"
      || (data.session.status === "COMPLETED" && data.session.evidence_status === "pending")) {
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
        if (error.code !== "signed_out") toast(error.message, "error");
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
    const viewer = sightingViewer();
    main.append(h("section", { class: "card panel", "aria-labelledby": "timeline-title" },
      h("h2", { class: "panel__title", id: "timeline-title" }, "When each person was seen"),
      h("p", { class: "panel__lead" }, "Each dot is a sighting in the video; the bar runs from the first to the last. Click a dot to see the face."),
      timelineBox, viewer.element));
    timelineBox.addEventListener("click", (event) => {
      const mark = event.target.closest(".timeline__mark");
      const lane = mark && mark.closest("[data-student-id]");
      const row = lane && rows.find((r) => r.student_id === lane.dataset.studentId);
      if (!row) return;
      for (const chosen of timelineBox.querySelectorAll(".timeline__mark--chosen")) chosen.classList.remove("timeline__mark--chosen");
      mark.classList.add("timeline__mark--chosen");
      viewer.show(row, Number(mark.dataset.ms));
    });
    main.append(
      rowsTable("Present", present, session, onCorrected, "No one was recognised in this recording.", load),
      rowsTable("Absent", absent, session, onCorrected, "Everyone registered was there.", load),
      strangerGallery(session, load));
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
          if (error.code !== "signed_out") toast(error.message, "error");
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
  let chosen = null;
  let controller = null;
  let busy = false;
  const picker = videoDropzone((file) => {
    clearErrors(form);
    chosen = file;
    picker.show(file);
    if (file && !videoType(file)) showFieldError(form, "video", NOT_A_VIDEO);
  });
  const sender = uploadProgress();
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Upload the video again");
  const cancel = h("button", { type: "button", class: "btn btn--ghost", hidden: true }, "Cancel upload");
  const videoField = field({ name: "video", label: "Video file", input: picker.input });
  videoField.querySelector(".field__label").after(picker.dropzone);
  picker.dropzone.append(picker.input);
  const form = h("form", { class: "reupload", novalidate: true, "aria-label": "Upload the video again" },
    formErrorSlot(), videoField, sender.element, h("div", { class: "form-actions" }, submit, cancel));
  cancel.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!chosen) return showFieldError(form, "video", "Choose the video of the class first.");
    const contentType = videoType(chosen);
    if (!contentType) return showFieldError(form, "video", NOT_A_VIDEO);
    busy = true;
    setBusy(submit, true, "Uploading…");
    let reset = false; // the session now waits for an upload (no longer FAILED)
    try {
      const answer = await api.post(`/sessions/${api.seg(sessionId)}/upload`, { content_type: contentType });
      reset = true;
      if (answer.max_bytes && chosen.size > answer.max_bytes) {
        throw Object.assign(new Error(`The video is ${formatBytes(chosen.size)}; the limit is ${formatBytes(answer.max_bytes)}. Trim or compress it first.`), { field: "video" });
      }
      controller = new AbortController();
      cancel.hidden = false;
      await sender.send(answer.upload, chosen, controller.signal);
      markUploaded(sessionId);
      toast("Uploaded; starting the face search…");
      chosen = null;
      picker.show(null);
      form.reset();
    } catch (error) {
      if (error.code === "signed_out") return;
      if (error.name === "AbortError") showFieldError(form, "video", "The upload was cancelled. Nothing was processed.");
      else showApiError(form, error, { content_type: "video", video: "video" });
      if (reset) onUploaded(); // show its new state; this form (and its message) stays
      return;
    } finally {
      busy = false;
      cancel.hidden = true;
      setBusy(submit, false);
    }
    onUploaded();
  });
  return { element: form, busy: () => busy };
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
    stat("unrecognised people", c.unrecognised ?? 0, "muted"));
}

function rowsTable(title, rows, session, onCorrected, emptyText, onChanged) {
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
    // A row the video matched can be turned down: "Not this person".
    const second = isPresent && row.moments ? notThisPersonButton(row, session, onChanged) : null;
    return h("tr", { dataset: { studentId: row.student_id } },
      h("td", { class: "cell-faces", "data-label": "Faces" }, faceCompare(row, session)),
      nameCell,
      h("td", { class: "cell-id", "data-label": "ID" }, row.student_id),
      h("td", { class: "num", "data-label": "First seen" }, formatMs(row.first_seen_ms)),
      h("td", { class: "num", "data-label": "Match" },
        row.similarity === null || row.similarity === undefined ? "—" : explained(matchWords(row.similarity), MATCH_HELP)),
      h("td", { class: "num", "data-label": "Seen" }, seenWords(row)),
      h("td", { class: "cell-action" }, action, second));
  });
  return h("section", { class: ["card", "table-card", `attendance-${title.toLowerCase()}`], "aria-labelledby": id },
    h("h2", { class: "panel__title table-card__title", id },
      title, h("span", { class: ["count", `count--${title.toLowerCase()}`] }, String(rows.length))),
    rows.length ? h("table", { class: "table table--attendance" },
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Registered photo and face in the video")),
        h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "ID"),
        h("th", { scope: "col", class: "num" }, "First seen"), h("th", { scope: "col", class: "num" }, "Match"),
        h("th", { scope: "col", class: "num" }, "Seen"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Correct")))),
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
    if (error.code !== "signed_out") toast(error.message, "error");
    setBusy(button, false);
  }
}
