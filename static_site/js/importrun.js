// Running a bulk import: each ready row is registered with today's rules
// (upload the photo, POST /students), at most `concurrency` at once; a row
// that fails is reported and the others go on. Re-running the same files
// skips whoever is already registered with the same ID and name, so an
// interrupted import is finished by running it again. The steps are passed
// in (`steps`), so node tests run this with fakes and the page with the API.
import { toCsv } from "./csv.js";

export const CONCURRENCY = 4;

export const REGISTERED = "registered";
export const ALREADY = "already registered";
export const FAILED = "failed";
export const NOT_SENT = "not sent";

/** Names compared as a person reads them: accents composed, spaces collapsed, any case. */
export function sameName(a, b) {
  const norm = (s) => String(s || "").normalize("NFC").trim().replace(/\s+/g, " ").toLocaleLowerCase();
  return norm(a) === norm(b);
}

/** A short reason a teacher can act on, from an API (or upload) error. */
export function reasonFor(error) {
  const details = error.details || {};
  switch (error.code) {
    case "no_face": return "no face found";
    case "several_faces": {
      const count = /(\d+) faces/.exec(error.message || "");
      return count ? `${count[1]} faces` : "several faces";
    }
    case "face_already_registered":
      return details.full_name
        ? `face already registered as ${details.full_name} (ID ${details.student_id})`
        : "face already registered as someone else";
    case "face_too_small": return "face too small";
    case "face_unclear": return "face not clear enough";
    case "bad_photo": return "not a usable JPEG or PNG";
    case "too_large": return "photo larger than the limit";
    case "duplicate_student_id": return "ID already used by another person";
    default: return error.message || "failed";
  }
}

/**
 * Register one row. `steps` are async functions:
 *   find(id) -> the registered student, or null (none, or not visible to this user);
 *   upload(file) -> photo_key;  register({student_id, full_name, photo_key}) -> student
 *   (into a class, the page's register enrols the newcomer in the same request);
 *   setEmail(id, email);
 * and, only when importing into a class:
 *   enrol(id) -> {added, full_name} (the person joins the class), or null if
 *   there is nobody with that ID;  unenrol(id).
 * Answers {outcome, reason, detail}. Never throws, except for a sign-out.
 */
export async function importRow(row, steps) {
  const existing = await safeFind(steps, row.student_id);
  if (existing) return settleExisting(row, existing, steps);
  if (steps.enrol) {
    // Someone this user cannot see (registered, but in none of their classes)
    // joins the class if the name matches, before any photo is sent.
    const joined = await probeEnrol(steps, row);
    if (joined) return joined;
  }
  let student;
  try {
    const photoKey = await steps.upload(row.photo.file);
    student = await steps.register({ student_id: row.student_id, full_name: row.full_name, photo_key: photoKey });
  } catch (error) {
    if (error.code === "signed_out") throw error;
    if (error.code === "duplicate_student_id") {
      // Registered meanwhile (another tab, a retried request): same person or not?
      const now = await safeFind(steps, row.student_id);
      if (now) return settleExisting(row, now, steps);
    }
    return { outcome: FAILED, reason: reasonFor(error), detail: error.message || "" };
  }
  const note = row.email ? await attempt(() => steps.setEmail(student.student_id, row.email), "email not saved") : "";
  return { outcome: REGISTERED, reason: note, detail: "" };
}

function usedBy(row, name) {
  return { outcome: FAILED, reason: `ID already used by ${name}`,
    detail: `ID ${row.student_id} is registered as ${name}. Check the ID, or rename that person first.` };
}

async function settleExisting(row, existing, steps) {
  if (!sameName(existing.full_name, row.full_name)) return usedBy(row, existing.full_name);
  const note = steps.enrol ? await attempt(() => steps.enrol(row.student_id), "not added to the class") : "";
  return { outcome: ALREADY, reason: note, detail: "" };
}

/** A result if the ID is someone's (enrolled when the name matches), else null. */
async function probeEnrol(steps, row) {
  let joined;
  try {
    joined = await steps.enrol(row.student_id);
  } catch (error) {
    if (error.code === "signed_out") throw error;
    return null; // registering will say what is wrong
  }
  if (!joined) return null;
  if (sameName(joined.full_name, row.full_name)) return { outcome: ALREADY, reason: "", detail: "" };
  if (joined.added) {
    const note = await attempt(() => steps.unenrol(row.student_id), "was added to the class by mistake; remove them");
    if (note) return { ...usedBy(row, joined.full_name), reason: `ID already used by ${joined.full_name}; ${note}` };
  }
  return usedBy(row, joined.full_name);
}

async function safeFind(steps, id) {
  try {
    return await steps.find(id);
  } catch (error) {
    if (error.code === "signed_out") throw error;
    return null; // unknown, or not visible to this user: registering will tell
  }
}

async function attempt(action, what) {
  try {
    await action();
    return "";
  } catch (error) {
    if (error.code === "signed_out") throw error;
    return `${what}: ${error.message}`;
  }
}

/**
 * Run `work(item)` over `items`, at most `concurrency` at once, in order of
 * start. `onSettled(item, result, index)` after each; `shouldStop()` checked
 * before each start (in-flight ones finish). A thrown error stops the pool
 * after the in-flight ones and is rethrown (a sign-out).
 */
export async function runPool(items, work, { concurrency = CONCURRENCY, onSettled, shouldStop } = {}) {
  let next = 0;
  let failure = null;
  const results = new Array(items.length);
  async function lane() {
    while (next < items.length && !failure && !(shouldStop && shouldStop())) {
      const index = next;
      next += 1;
      try {
        results[index] = await work(items[index], index);
      } catch (error) {
        failure = failure || error;
        return;
      }
      if (onSettled) onSettled(items[index], results[index], index);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  if (failure) throw failure;
  return results;
}

/** Progress numbers: done, failed, left and the seconds left at the pace so far. */
export function progress({ total, done, failed, startedAt, now }) {
  const finished = done + failed;
  const left = total - finished;
  const elapsed = Math.max(0, (now - startedAt) / 1000);
  const secondsLeft = finished >= 2 && left > 0 ? Math.round((elapsed / finished) * left) : left === 0 ? 0 : null;
  return { total, done, failed, left, secondsLeft };
}

/** "about 2 min left", "about 40 s left", or "" before there is a pace. */
export function formatTimeLeft(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds <= 0) return "";
  if (seconds < 60) return `about ${Math.max(5, Math.round(seconds / 5) * 5)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

export const OUTCOME_HEADER = ["student_id", "full_name", "email", "photo", "outcome", "reason", "details"];

/**
 * The outcome file: one line per CSV row in the file's order. It keeps the
 * roster's columns, so after fixing the failed lines it can be imported again.
 */
export function outcomeCsv(rows) {
  return toCsv(OUTCOME_HEADER, rows.map((row) => [
    row.student_id, row.full_name, row.email || "", row.photo ? row.photo.name : "",
    row.result ? row.result.outcome : NOT_SENT,
    row.result ? row.result.reason : (row.problem ? row.problem.reason : "the import stopped before this line"),
    row.result ? row.result.detail : "",
  ]));
}
