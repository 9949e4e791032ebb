// Session videos go up here, outside any page: an upload keeps going while
// the teacher moves around the site (the header shows it, with Cancel), and
// closing or reloading the tab while one runs asks first.
//
// Each video is an S3 multipart upload: the API signs URLs for the parts
// (8-64 MB each), a few go at once straight to S3 by PUT, each retried with
// backoff. Which file went to which session is kept in localStorage, so after
// a dropped connection or a reload the same file carries on from the parts
// S3 already has (the API lists them) instead of starting over.
import * as api from "./api.js";

const IN_FLIGHT = 4;
const MAX_TRIES = 8;            // per part, before the upload waits for the teacher
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
const SAVED_KEY = "rollcall.uploads";
const WATCH_KEY = "rollcall.watching";

/** A job: {sessionId, title, fileName, size, sent, state, error}. state is
 * "uploading", "done", "failed" or "cancelled". */
const jobs = new Map();
const listeners = new Set();

export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function changed(job) {
  for (const listener of [...listeners]) {
    try { listener(job); } catch (error) { console.error(error); }
  }
}

export function job(sessionId) {
  return jobs.get(sessionId) || null;
}

export function active() {
  return [...jobs.values()].filter((j) => j.state === "uploading");
}

// -- what survives a reload -------------------------------------------------
function readSaved() {
  try {
    const saved = JSON.parse(localStorage.getItem(SAVED_KEY) || "{}");
    return saved && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}

function writeSaved(saved) {
  try { localStorage.setItem(SAVED_KEY, JSON.stringify(saved)); } catch { /* storage full or off */ }
}

function remember(sessionId, record) {
  const saved = readSaved();
  if (record) saved[sessionId] = record;
  else delete saved[sessionId];
  writeSaved(saved);
}

/** Uploads this browser started and did not finish, not running now: {sessionId, title, fileName, size, sent}. */
export function interrupted() {
  return Object.entries(readSaved())
    .filter(([sessionId]) => !active().some((j) => j.sessionId === sessionId))
    .map(([sessionId, r]) => ({ sessionId, title: r.title, fileName: r.name, size: r.size, sent: r.sent || 0 }));
}

export function interruptedFor(sessionId) {
  return interrupted().find((r) => r.sessionId === sessionId) || null;
}

/** Forget an interrupted upload (the teacher chose not to carry on). */
export function forget(sessionId) {
  remember(sessionId, null);
  changed(null);
}

function sameFile(record, file) {
  return record && record.name === file.name && record.size === file.size
    && record.lastModified === file.lastModified;
}

// -- the upload -------------------------------------------------------------------
class Cancelled extends Error {
  constructor() { super("The upload was cancelled. Nothing was processed."); this.name = "AbortError"; }
}

/**
 * Send `file` as the video of session `sessionId`. Answers the job at once;
 * `job.finished` resolves when S3 has the whole file (rejects with the reason
 * it stopped: AbortError when cancelled).
 */
export function start({ sessionId, title, file }) {
  const running = jobs.get(sessionId);
  if (running && running.state === "uploading") return running;
  const controller = new AbortController();
  const current = {
    sessionId, title, fileName: file.name, size: file.size, sent: 0, state: "uploading",
    error: null, resumed: false, controller,
  };
  current.finished = run(current, file, controller.signal).then(() => {
    current.state = "done";
    current.doneAt = Date.now();
    current.sent = current.size;
    remember(sessionId, null);
    watch(sessionId, title);
    changed(current);
  }, (error) => {
    current.state = error.name === "AbortError" ? "cancelled" : "failed";
    current.error = error;
    changed(current);
    throw error;
  });
  current.finished.catch(() => {}); // the caller may not wait for it
  jobs.set(sessionId, current);
  changed(current);
  return current;
}

export async function cancel(sessionId) {
  const current = jobs.get(sessionId);
  if (current && current.state === "uploading") current.controller.abort();
  remember(sessionId, null);
  // S3 drops the parts it has (the lifecycle rule would, a day later).
  try { await api.del(`/sessions/${api.seg(sessionId)}/multipart`); } catch { /* best effort */ }
  changed(current || null);
}

async function run(current, file, outer) {
  const path = `/sessions/${api.seg(current.sessionId)}/multipart`;
  // Cancelling stops everything; so does one part failing for good (the
  // other parts in flight stop too: the job has ended).
  const stopAll = new AbortController();
  outer.addEventListener("abort", () => stopAll.abort(), { once: true });
  const signal = stopAll.signal;
  let upload = null;
  const record = readSaved()[current.sessionId];
  if (sameFile(record, file)) {
    try {
      upload = await api.get(path);
    } catch (error) {
      if (error.status !== 404) throw error;
    }
    if (upload && (upload.upload_id !== record.uploadId || upload.size !== file.size)) upload = null;
  }
  if (upload) {
    current.resumed = upload.parts.length > 0;
  } else {
    upload = await api.post(path, { size: file.size });
  }
  if (signal.aborted) throw new Cancelled();
  remember(current.sessionId, {
    uploadId: upload.upload_id, name: file.name, size: file.size, lastModified: file.lastModified,
    title: current.title, sent: 0,
  });

  const partSize = upload.part_size;
  const count = upload.part_count;
  const bytesOf = (n) => Math.min(partSize, file.size - (n - 1) * partSize);
  const etags = new Map();
  for (const part of upload.parts) {
    if (part.size === bytesOf(part.part_number)) etags.set(part.part_number, part.etag);
  }
  const inFlight = new Map(); // part number -> bytes sent so far
  const report = () => {
    let sent = 0;
    for (const n of etags.keys()) sent += bytesOf(n);
    for (const bytes of inFlight.values()) sent += bytes;
    current.sent = Math.min(sent, file.size);
    changed(current);
  };
  report();

  const urls = new Map();
  let signing = null; // one signing request at a time; the workers share its answer
  async function urlFor(n) {
    while (!urls.has(n)) {
      if (!signing) {
        // This part and the next few missing ones in one request.
        const wanted = [n];
        for (let m = n + 1; m <= count && wanted.length < Math.min(upload.max_urls || 20, 20); m += 1) {
          if (!etags.has(m) && !urls.has(m)) wanted.push(m);
        }
        signing = api.post(`${path}/parts`, { upload_id: upload.upload_id, part_numbers: wanted })
          .then((answer) => {
            for (const [key, url] of Object.entries(answer.urls)) urls.set(Number(key), url);
          })
          .finally(() => { signing = null; });
      }
      await signing;
    }
    return urls.get(n);
  }

  const queue = [];
  for (let n = 1; n <= count; n += 1) if (!etags.has(n)) queue.push(n);

  async function sendPart(n) {
    for (let attempt = 1; ; attempt += 1) {
      if (signal.aborted) throw new Cancelled();
      try {
        const url = await urlFor(n);
        const etag = await putPart(url, file.slice((n - 1) * partSize, (n - 1) * partSize + bytesOf(n)), signal,
          (loaded) => { inFlight.set(n, loaded); report(); });
        inFlight.delete(n);
        etags.set(n, etag);
        const saved = readSaved();
        if (saved[current.sessionId]) {
          saved[current.sessionId].sent = [...etags.keys()].reduce((sum, m) => sum + bytesOf(m), 0);
          writeSaved(saved);
        }
        report();
        return;
      } catch (error) {
        inFlight.delete(n);
        report();
        if (error.name === "AbortError" || signal.aborted) throw new Cancelled();
        if (api.isSignedOut(error) || (error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429)) {
          if (error.expired) urls.delete(n); // a link past its time: sign it again
          else throw error;
        }
        if (attempt >= MAX_TRIES) throw new Error("The connection keeps failing. The upload stopped; choose the file again on the session's page to carry on.");
        await pause(BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)], signal);
        await online(signal);
      }
    }
  }

  async function worker() {
    while (queue.length) await sendPart(queue.shift());
  }
  const sendAll = async () => {
    try {
      await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, queue.length) }, worker));
    } catch (error) {
      stopAll.abort();
      throw outer.aborted ? new Cancelled() : error;
    }
  };
  await sendAll();

  for (let round = 1; ; round += 1) {
    const parts = [...etags.entries()].sort((a, b) => a[0] - b[0]).map(([n, etag]) => ({ part_number: n, etag }));
    try {
      await api.post(`${path}/complete`, { upload_id: upload.upload_id, parts });
      return;
    } catch (error) {
      // S3 lacks a part we thought sent (or holds another): send those again, once.
      const again = error.code === "parts_missing" ? error.details.missing
        : error.code === "part_mismatch" ? [error.details.part_number] : null;
      if (!again || round > 1) throw error;
      for (const n of again) { etags.delete(n); queue.push(n); }
      await sendAll();
    }
  }
}

/** PUT one part; resolves with its ETag. XMLHttpRequest for upload progress. */
function putPart(url, blob, signal, onProgress) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Cancelled()); // cancelled while its URL was being signed
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded));
    xhr.addEventListener("load", () => {
      const etag = xhr.getResponseHeader("ETag");
      if (xhr.status >= 200 && xhr.status < 300 && etag) return resolve(etag);
      const error = new Error(`S3 refused a part (HTTP ${xhr.status}).`);
      error.status = xhr.status || 500;
      // An expired link is 403 with <Code>AccessDenied</Code>: sign it again.
      error.expired = xhr.status === 403 && /expired/i.test(xhr.responseText || "");
      reject(error);
    });
    xhr.addEventListener("error", () => reject(Object.assign(new Error("The connection dropped."), { status: 0 })));
    xhr.addEventListener("abort", () => reject(new Cancelled()));
    const stop = () => xhr.abort();
    signal.addEventListener("abort", stop, { once: true });
    xhr.addEventListener("loadend", () => signal.removeEventListener("abort", stop));
    xhr.send(blob);
  });
}

function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(new Cancelled()); }, { once: true });
  });
}

/** Resolves when the browser thinks it is online (at once if it is). */
function online(signal) {
  if (typeof navigator === "undefined" || navigator.onLine !== false) return Promise.resolve();
  return new Promise((resolve, reject) => {
    window.addEventListener("online", resolve, { once: true });
    signal.addEventListener("abort", () => reject(new Cancelled()), { once: true });
  });
}

// Closing or reloading the tab stops the upload: let the browser ask first.
window.addEventListener("beforeunload", (event) => {
  if (!active().length) return;
  event.preventDefault();
  event.returnValue = "";
});

// -- telling the teacher when attendance is ready -----------------------------------
/** Sessions whose video this browser sent, followed until they are done. */
export function watching() {
  try {
    const saved = JSON.parse(localStorage.getItem(WATCH_KEY) || "{}");
    return saved && typeof saved === "object" ? saved : {};
  } catch {
    return {};
  }
}

export function watch(sessionId, title) {
  const saved = watching();
  saved[sessionId] = { title: title || "", since: Date.now() };
  try { localStorage.setItem(WATCH_KEY, JSON.stringify(saved)); } catch { /* storage off */ }
}

export function unwatch(sessionId) {
  const saved = watching();
  delete saved[sessionId];
  try { localStorage.setItem(WATCH_KEY, JSON.stringify(saved)); } catch { /* storage off */ }
}
