// One session: its status (followed live while processing), who was present
// and absent with the evidence, corrections by hand, the CSV, the printable
// report and a timeline of sightings.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import { formatDate, formatDateTime, formatMs, formatSimilarity } from "../format.js";
import { pageHeader, badge, notice, spinner, loading, pageError, toast, toastError, setBusy,
  confirmDialog, formDialog } from "../ui.js";
import { videoUploadForm, jobProgress, wasJustUploaded } from "../videoupload.js";
import * as uploads from "../uploader.js";
import * as auth from "../auth.js";
import { downloadCsv, safeName } from "../downloads.js";
import { drawTimeline } from "../timeline.js";
import { correctionDialog } from "../correction.js";
import { faceCompare, matchWords, seenWords, explained, MATCH_HELP, notThisPersonButton,
  sightingViewer, strangerGallery } from "../evidence.js";

const ATTENDED = ["PRESENT", "LATE"];

const POLL_MS = 2500;

export async function render(main, { sessionId }, { setTitle }) {
  const path = `/sessions/${api.seg(sessionId)}`;
  let timer = null;
  let stopped = false;
  let observer = null;
  // Kept across redraws (polling redraws the page): a chosen file or an upload
  // in flight survives them.
  const reupload = uploadAgainForm(sessionId, () => load());
  // An upload of this session running in the background (started on the
  // upload page, say): its progress, kept across redraws too.
  const background = jobProgress();
  const cancelBackground = h("button", { type: "button", class: "btn btn--ghost" }, "Cancel upload");
  cancelBackground.addEventListener("click", () => uploads.cancel(sessionId));
  let lastState = uploads.job(sessionId) && uploads.job(sessionId).state;
  const stopFollowing = uploads.onChange((job) => {
    if (job && job.sessionId !== sessionId) return;
    if (job && job.state === "uploading" && lastState === "uploading") {
      background.show(job);
      return;
    }
    lastState = job && job.state;
    if (!reupload.busy()) load(); // started, finished, stopped or cancelled: show the new state
  });

  let cropPolls = 0;

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
    // The crops are cut after completion: follow them until they are there (for
    // five minutes at most; a reload looks again).
    const cropsComing = data.session.status === "COMPLETED"
      && data.session.evidence_status === "pending" && cropPolls++ < 120;
    if (["AWAITING_UPLOAD", "CONVERTING", "PROCESSING"].includes(data.session.status) || cropsComing) {
      timer = setTimeout(load, POLL_MS);
    }
  }

  function draw({ session, attendance }) {
    setTitle(session.title || "Session");
    if (observer) observer.disconnect();
    const rows = attendance || [];
    const present = rows.filter((row) => ATTENDED.includes(row.status));
    const absent = rows.filter((row) => !ATTENDED.includes(row.status));

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
    actions.push(editButton(session, (changed) => draw({ session: changed, attendance })));
    if (auth.isAdmin()) actions.push(deleteButton(session));

    fill(main,
      pageHeader(session.title || "Untitled session", {
        back: { href: "#/sessions", label: "All sessions" },
        subtitle: [formatDate(session.date), session.course].filter(Boolean).join(" · "),
        actions,
      }),
      classLine(session),
      sessionStatus(session),
      statusPanel(session),
      done ? stats(session, present, absent) : null);

    if (!done) return;
    const timelineBox = h("div", { class: "timeline" });
    const viewer = sightingViewer();
    main.append(h("section", { class: "card panel", "aria-labelledby": "timeline-title" },
      h("h2", { class: "panel__title", id: "timeline-title" }, "When each person was seen"),
      h("p", { class: "panel__lead" }, "Each mark is a sighting in the video (on a small screen, close ones merge into one); the band runs from the first to the last. Click a mark to see the face."),
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
    // A part with nothing to show is null: left out (append would write "null").
    main.append(...[
      rowsTable("Present", present, session, onCorrected, "No one was recognised in this recording.", load),
      rowsTable("Absent", absent, session, onCorrected, "Everyone registered was there.", load),
      seenNotEnrolled(session),
      strangerGallery(session, load)].filter(Boolean));
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
      c.present = rows.filter((r) => ATTENDED.includes(r.status)).length;
      c.late = rows.filter((r) => r.status === "LATE").length;
      c.absent = rows.filter((r) => r.status === "ABSENT").length;
      c.excused = rows.filter((r) => r.status === "EXCUSED").length;
      draw({ session: { ...session, counts: c }, attendance: rows });
    }
  }

  function uploading() {
    const job = uploads.job(sessionId);
    return Boolean(job && job.state === "uploading");
  }

  function sessionStatus(session) {
    // The file this page just sent has arrived: the S3 event is on its way.
    const arrived = session.status === "AWAITING_UPLOAD" && wasJustUploaded(session.session_id) && !reupload.busy();
    const sending = session.status === "AWAITING_UPLOAD" && uploading();
    return h("div", { class: "session-status" },
      arrived ? h("span", { class: "badge badge--processing" }, "Uploaded")
        : sending ? h("span", { class: "badge badge--processing" }, "Uploading") : badge(session.status),
      h("span", { class: "muted" }, session.status === "AWAITING_UPLOAD" && !arrived
        ? `Created ${formatDateTime(session.created_at)}` : `Uploaded ${formatDateTime(session.created_at)}`),
      session.media ? h("span", { class: "muted media-line" }, mediaWords(session.media)) : null);
  }

  function statusPanel(session) {
    if (session.status === "CONVERTING") {
      const percent = Number.isFinite(session.conversion_percent) ? ` (${session.conversion_percent}%)` : "";
      const from = session.media && session.media.codec_name ? `${session.media.codec_name} → H.264` : "to H.264";
      return notice("info", `Converting the video (${from})${percent}…`,
        h("p", { class: "with-spinner" }, spinner("Converting"),
          "This kind of video is turned into one the face search reads first. This page updates by itself; you can leave it and come back."));
    }
    if (session.status === "PROCESSING") {
      return notice("info", "Rollcall is watching the recording",
        h("p", { class: "with-spinner" }, spinner("Processing"),
          "Faces are being found and matched. This page updates by itself; you can leave it and come back."));
    }
    if (session.status === "AWAITING_UPLOAD") {
      if (uploading() && !reupload.busy()) {
        background.show(uploads.job(sessionId));
        return notice("info", "Uploading the video",
          h("p", {}, "It carries on while you use other pages; the header shows how far it is."),
          background.element, h("div", { class: "form-actions" }, cancelBackground));
      }
      const stoppedUpload = uploads.interruptedFor(sessionId);
      reupload.label(stoppedUpload ? "Carry on with the upload" : "Upload the video again");
      if (stoppedUpload && !reupload.busy()) {
        const share = stoppedUpload.size ? Math.floor((100 * stoppedUpload.sent) / stoppedUpload.size) : 0;
        return notice("info", `The upload stopped at ${share}%`,
          h("p", {}, `Choose the same file (${stoppedUpload.fileName}) to carry on from there; another file starts over.`),
          reupload.element);
      }
      if (wasJustUploaded(session.session_id) && !reupload.busy()) {
        return notice("info", "Uploaded; starting the face search…",
          h("p", { class: "with-spinner" }, spinner("Starting"),
            "The video has arrived. This page updates by itself."));
      }
      // Nothing is running here: no spinner, but what to do.
      return notice("info", "No video yet",
        h("p", {}, "The video of this session has not arrived. Choose it below; an upload "
          + "running on another computer shows here when it arrives."),
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
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (observer) observer.disconnect();
    stopFollowing();
    reupload.release(); // the upload itself goes on
  };
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
      onUploaded();
    },
    // Once the API answered, the session waits for an upload (no longer
    // FAILED): show its new state; this form (and its message) stays.
    onFailed: (error, answer) => { if (answer) onUploaded(); },
  });
}

/** "Edit…": title, date and course in a dialog (PATCH /sessions/{id}). */
function editButton(session, onChanged) {
  const button = h("button", { type: "button", class: "btn btn--secondary" }, "Edit…");
  button.addEventListener("click", async () => {
    // The classes it may move to: the user's own (an admin's: all, or none).
    let classes = [];
    try { classes = await api.getAll("/classes", "classes"); } catch { classes = []; }
    const options = classes.map((c) => ({ value: c.class_id, label: c.name }));
    if (auth.isAdmin()) options.unshift({ value: "", label: "No class (everyone)" });
    const offset = session.start_offset_seconds ? String(Math.round(session.start_offset_seconds / 60)) : "";
    const changed = await formDialog({
      title: "Edit the session",
      confirmLabel: "Save",
      fields: [
        { name: "title", label: "Title", value: session.title || "", required: true, maxlength: 200 },
        { name: "date", label: "Date of the class", type: "date", value: session.date || "", required: true },
        { name: "course", label: "Course", value: session.course || "", maxlength: 100 },
        { name: "class_id", label: "Class", value: session.class_id || "", options },
        { name: "start_offset_seconds", label: "Class starts after (minutes into the video)", type: "number",
          value: offset, min: 0, max: 360 },
      ],
      check: (values) => (!values.title.trim() ? ["title", "Give the session a title."]
        : !values.date ? ["date", "Choose the date of the class."] : null),
      submit: (values) => {
        const body = { title: values.title.trim(), date: values.date, course: values.course.trim() };
        if ((values.class_id || null) !== (session.class_id || null)) body.class_id = values.class_id || null;
        if (values.start_offset_seconds !== offset) {
          body.start_offset_seconds = values.start_offset_seconds === "" ? null
            : Math.round(Number(values.start_offset_seconds) * 60);
        }
        return api.patch(`/sessions/${api.seg(session.session_id)}`, body);
      },
    });
    if (!changed) return;
    toast("The session is saved.");
    onChanged({ ...session, ...changed.session });
  });
  return button;
}

/** "Delete…" (admins): the video, the attendance and the session go. */
function deleteButton(session) {
  const button = h("button", { type: "button", class: "btn btn--danger-ghost" }, "Delete…");
  button.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: `Delete “${session.title || "this session"}”?`,
      message: "Its video and attendance are removed for good. This cannot be undone.",
      confirmLabel: "Delete", danger: true,
    });
    if (!ok) return;
    setBusy(button, true, "Deleting…");
    try {
      if (uploads.job(session.session_id) || uploads.interruptedFor(session.session_id)) {
        await uploads.cancel(session.session_id);
      }
      await api.del(`/sessions/${api.seg(session.session_id)}`);
      uploads.unwatch(session.session_id);
      toast(`“${session.title}” was deleted.`);
      location.hash = "#/sessions";
    } catch (error) {
      toastError(error);
      setBusy(button, false);
    }
  });
  return button;
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
    const more = h("button", { type: "button", class: "btn btn--small btn--ghost",
      "aria-label": `Other… correction for ${row.full_name}` }, "Other…");
    more.addEventListener("click", async () => {
      const updated = await correctionDialog({ sessionId: session.session_id, studentId: row.student_id,
        name: row.full_name, current: row.status });
      if (updated) onCorrected(updated);
    });
    const nameCell = h("td", { class: "cell-name", "data-label": "Name" },
      h("a", { href: `#/students/${api.seg(row.student_id)}` }, row.full_name || row.student_id),
      row.status === "LATE" || row.status === "EXCUSED" ? [" ", badge(row.status)] : null);
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
      h("td", { class: "cell-action" }, action, " ", more, second ? [" ", second] : null));
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
    toastError(error);
    setBusy(button, false);
  }
}

/** The session's class (with a link to its register), or "no class". */
function classLine(session) {
  const line = h("p", { class: "session-class muted" });
  if (!session.class_id) {
    line.append("No class: taken against everyone registered.");
    return line;
  }
  const link = h("a", { href: `#/classes/${api.seg(session.class_id)}/register` }, "the class register");
  line.append("Class: ", h("span", { class: "session-class__name" }, "…"), " · see ", link,
    session.start_offset_seconds ? ` · starts ${formatMs(session.start_offset_seconds * 1000)} into the video` : "");
  api.get(`/classes/${api.seg(session.class_id)}`)
    .then(({ class: klass }) => { line.querySelector(".session-class__name").textContent = klass.name; })
    .catch(() => { line.querySelector(".session-class__name").textContent = "(unavailable)"; });
  return line;
}

/** People recognised who are not on the class's roster: never counted, one click enrols them. */
function seenNotEnrolled(session) {
  const people = session.seen_not_enrolled || [];
  if (!people.length || !session.class_id) return null;
  return h("section", { class: "card table-card seen-not-enrolled", "aria-labelledby": "seen-title" },
    h("h2", { class: "panel__title table-card__title", id: "seen-title" }, "Seen, not on this roster",
      h("span", { class: "count" }, String(people.length))),
    h("p", { class: "panel__lead" }, "Recognised in the recording but not enrolled in this class; they are not counted here. Enrolling them counts them in later sessions."),
    h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "ID"),
        h("th", { scope: "col", class: "num" }, "First seen"), h("th", { scope: "col", class: "num" }, "Similarity"),
        h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Enrol")))),
      h("tbody", {}, people.map((person) => {
        const enrol = h("button", { type: "button", class: "btn btn--small btn--secondary",
          "aria-label": `Enrol ${person.full_name}` }, "Enrol in the class");
        enrol.addEventListener("click", async () => {
          setBusy(enrol, true, "Enrolling…");
          try {
            const answer = await api.post(`/classes/${api.seg(session.class_id)}/students`, { student_id: person.student_id });
            toast(answer.result === "added" ? `${person.full_name} enrolled.` : `${person.full_name} was already enrolled.`);
            enrol.textContent = "Enrolled";
          } catch (error) {
            toastError(error);
            setBusy(enrol, false);
          }
        });
        return h("tr", { dataset: { studentId: person.student_id } },
          h("td", {}, person.full_name), h("td", { class: "cell-id" }, person.student_id),
          h("td", { class: "num" }, formatMs(person.first_seen_ms)),
          h("td", { class: "num" }, formatSimilarity(person.similarity)),
          h("td", { class: "cell-action" }, enrol));
      }))));
}


/** What the uploaded file holds, as a teacher reads it: "HEVC (H.265), 1920×1080, 30 fps, 52 min". */
function mediaWords(media) {
  const parts = [media.codec_name || media.codec];
  if (media.width && media.height) parts.push(`${media.width}×${media.height}`);
  if (media.fps) parts.push(`${Math.round(media.fps)} fps`);
  if (media.duration_s) {
    const minutes = Math.floor(media.duration_s / 60);
    parts.push(minutes ? `${minutes} min ${Math.round(media.duration_s % 60)} s` : `${Math.round(media.duration_s)} s`);
  }
  return `${(media.container || "").toUpperCase()} · ${parts.join(", ")}`;
}
