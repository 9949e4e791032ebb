// The header's view of uploads and of the analysis that follows them, on
// every page: each running upload with its progress and Cancel, each upload
// a reload or a dropped connection stopped (with the way to carry on), and a
// notice (and a browser notification, if allowed) when attendance is ready.
import { h, fill } from "./dom.js";
import * as api from "./api.js";
import * as auth from "./auth.js";
import * as uploads from "./uploader.js";
import { toast } from "./ui.js";

const WATCH_MS = 5000;
const WATCH_FOR_MS = 12 * 60 * 60 * 1000; // then the sessions page says it anyway

let box = null;
let shown = ""; // which chips are drawn: redrawn only when that changes
let watchTimer = null;

const percentOf = (sent, size) => (size ? Math.floor((100 * sent) / size) : 0);
const sessionHref = (sessionId) => `#/sessions/${api.seg(sessionId)}`;

/** Start showing uploads in `container` (in the header) and watching sessions.
 * Notices go out as toasts (their region is aria-live). */
export function start(container) {
  box = container;
  uploads.onChange((job) => {
    draw();
    if (!job) return;
    if (job.state === "done") {
      toast(h("span", {}, `“${job.title}” is uploaded; attendance is being taken. `,
        h("a", { href: sessionHref(job.sessionId) }, "Open the session")));
      follow();
    } else if (job.state === "failed") {
      toast(h("span", {}, `The upload of “${job.title}” stopped: ${job.error.message} `,
        h("a", { href: sessionHref(job.sessionId) }, "Carry on")), "error");
    }
  });
  draw();
  follow();
}

/** Redraw the header's upload list (also after sign-in or sign-out). */
export function draw() {
  if (!box) return;
  const signedIn = Boolean(auth.current());
  const running = signedIn ? uploads.active() : [];
  const stopped = signedIn ? uploads.interrupted() : [];
  const key = JSON.stringify([running.map((j) => j.sessionId), stopped.map((r) => [r.sessionId, r.sent])]);
  if (key === shown) {
    // Only the numbers moved: update them in place (a focused Cancel keeps its focus).
    for (const job of running) {
      const chip = box.querySelector(`[data-session-id="${CSS.escape(job.sessionId)}"]`);
      if (!chip) continue;
      const share = percentOf(job.sent, job.size);
      chip.querySelector(".upload-chip__percent").textContent = `${share}%`;
      chip.querySelector(".upload-chip__bar").value = share;
    }
    return;
  }
  shown = key;
  const items = [
    ...running.map((job) => {
      const share = percentOf(job.sent, job.size);
      const cancel = h("button", { type: "button", class: "btn btn--ghost btn--small upload-chip__cancel",
        "aria-label": `Cancel the upload of ${job.title}` }, "Cancel");
      cancel.addEventListener("click", () => uploads.cancel(job.sessionId));
      return h("li", { class: "upload-chip", dataset: { sessionId: job.sessionId } },
        h("a", { class: "upload-chip__link", href: sessionHref(job.sessionId) },
          h("span", { class: "upload-chip__title" }, `Uploading “${job.title}”`),
          h("span", { class: "upload-chip__percent" }, `${share}%`)),
        h("progress", { class: "upload-chip__bar", max: 100, value: share, "aria-label": `Upload of ${job.title}` }),
        cancel);
    }),
    ...stopped.map((record) => h("li", { class: "upload-chip upload-chip--stopped", dataset: { sessionId: record.sessionId } },
      h("a", { class: "upload-chip__link", href: sessionHref(record.sessionId) },
        h("span", { class: "upload-chip__title" }, `Upload of “${record.title}” stopped at ${percentOf(record.sent, record.size)}%`),
        h("span", { class: "upload-chip__action" }, "Carry on")))),
  ];
  box.hidden = items.length === 0;
  fill(box, items.length ? h("ul", { class: "upload-chips", "aria-label": "Uploads" }, items) : null);
}

// -- when attendance is ready ------------------------------------------------------
/** Look at the sessions this browser uploaded until each is done or failed. */
export function follow() {
  if (watchTimer || !auth.current() || !Object.keys(uploads.watching()).length) return;
  watchTimer = setTimeout(async () => {
    for (const [sessionId, { title, since }] of Object.entries(uploads.watching())) {
      if (Date.now() - since > WATCH_FOR_MS) { uploads.unwatch(sessionId); continue; }
      let session;
      try {
        ({ session } = await api.get(`/sessions/${api.seg(sessionId)}`));
      } catch (error) {
        if (error.status === 404) uploads.unwatch(sessionId);
        if (api.isSignedOut(error)) break;
        continue;
      }
      if (session.status === "COMPLETED" || session.status === "FAILED") {
        uploads.unwatch(sessionId);
        announceResult(session, title);
      }
    }
    watchTimer = null;
    follow();
  }, WATCH_MS);
}

function announceResult(session, title) {
  const name = session.title || title || "the session";
  const done = session.status === "COMPLETED";
  const c = session.counts || {};
  const text = done
    ? `Attendance for “${name}” is ready: ${c.present || 0} of ${c.roster || 0} present.`
    : `“${name}” could not be processed.`;
  toast(h("span", {}, `${text} `, h("a", { href: sessionHref(session.session_id) }, "Open the session")),
    done ? "success" : "error");
  if (window.Notification && Notification.permission === "granted" && document.visibilityState !== "visible") {
    try {
      const note = new Notification("Rollcall", { body: text, tag: session.session_id });
      note.addEventListener("click", () => { window.focus(); location.hash = sessionHref(session.session_id); });
    } catch { /* some browsers allow notifications only from a service worker */ }
  }
}
