// Planning a bulk import before anything is sent: the roster read from the
// CSV, the photos matched to its rows by file name, and every problem a
// teacher should see first (rows without a photo, photos without a row,
// duplicate IDs, bad IDs). Pure functions over plain data, so node tests
// run them as the page does.
import { parseCsv } from "./csv.js";
import { STUDENT_ID_RULE, isStudentId } from "./studentid.js";

export const MAX_NAME_LENGTH = 200;
const EMAIL_PATTERN = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const PHOTO_EXTENSIONS = ["jpg", "jpeg", "png"];
// Column names as people write them, all meaning the same field.
const COLUMNS = {
  student_id: ["student_id", "studentid", "student_number", "id"],
  full_name: ["full_name", "fullname", "name"],
  email: ["email", "e_mail", "email_address"],
};

function columnKey(header) {
  return header.trim().toLowerCase().replace(/[\s\-]+/g, "_");
}

/** A value as written back by our outcome file ('=x means =x): the quote goes. */
function cell(value) {
  const text = (value || "").trim();
  return /^'[=+\-@]/.test(text) ? text.slice(1) : text;
}

function hasControl(text) {
  return /[\u0000-\u001f\u007f-\u009f]/.test(text);
}

/**
 * The roster in a CSV text. Answers {rows, error}: `error` (a sentence) when
 * the header lacks the columns; each row is {line, student_id, full_name,
 * email, problem}, `problem` null or what stops it from being imported.
 */
export function readRoster(text) {
  const records = parseCsv(text);
  if (!records.length) return { rows: [], error: "The CSV file is empty." };
  const [header, ...body] = records;
  const keys = header.fields.map(columnKey);
  const at = {};
  for (const [name, aliases] of Object.entries(COLUMNS)) {
    const index = keys.findIndex((key) => aliases.includes(key));
    if (index >= 0) at[name] = index;
  }
  if (at.student_id === undefined || at.full_name === undefined) {
    const found = header.fields.filter(Boolean).map((f) => `“${f}”`).join(", ") || "none";
    return { rows: [], error: `The first line must name the columns student_id and full_name (email is optional). Found: ${found}.` };
  }
  const rows = body.map(({ line, fields }) => {
    const row = {
      line,
      student_id: cell(fields[at.student_id]),
      full_name: cell(fields[at.full_name]).normalize("NFC"),
      email: at.email === undefined ? "" : cell(fields[at.email]),
      problem: null,
    };
    row.problem = rowProblem(row);
    return row;
  });
  return { rows, error: null };
}

function rowProblem(row) {
  if (!row.student_id) return { kind: "bad_id", reason: "no student ID" };
  if (!isStudentId(row.student_id)) return { kind: "bad_id", reason: `bad ID: ${STUDENT_ID_RULE}` };
  if (!row.full_name) return { kind: "bad_row", reason: "no name" };
  if (row.full_name.length > MAX_NAME_LENGTH) return { kind: "bad_row", reason: `name longer than ${MAX_NAME_LENGTH} characters` };
  if (hasControl(row.full_name)) return { kind: "bad_row", reason: "the name holds a line break or tab" };
  if (row.email && !EMAIL_PATTERN.test(row.email)) return { kind: "bad_row", reason: "the email is not an address" };
  return null;
}

/**
 * The student ID a photo's file name stands for, or null when the file is
 * not a photo: "S-1.JPG" and "class/2024/S-1.jpeg" stand for "S-1". Folders,
 * hidden files and macOS's "__MACOSX/" and "._x" copies are not photos.
 */
export function photoIdOf(path) {
  const parts = String(path).split(/[\\/]/);
  const name = parts.pop();
  if (!name || parts.includes("__MACOSX") || name.startsWith(".")) return null;
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return null;
  const ext = name.slice(dot + 1).toLowerCase();
  return PHOTO_EXTENSIONS.includes(ext) ? name.slice(0, dot).trim() : null;
}

/** The content type for a photo's name (from its extension), or null. */
export function photoTypeOf(path) {
  const ext = String(path).split(".").pop().toLowerCase();
  return ext === "png" ? "image/png" : (ext === "jpg" || ext === "jpeg") ? "image/jpeg" : null;
}

/**
 * Match the roster's rows to photos. `photos` are {name, ...} (name may be a
 * path inside a ZIP); anything else in the object is kept for the upload.
 *
 * Answers {rows, ready, noPhoto, duplicateIds, badRows, unmatchedPhotos,
 * ignoredFiles}: every row gets `photo` (or null) and `problem` (or null);
 * `ready` holds the rows to send. A photo matches the row whose ID is its
 * name (case-insensitively when only one row could be meant); two photos
 * for one ID, or one ID on two rows, stop those rows.
 */
export function planImport(rows, photos) {
  const planned = rows.map((row) => ({ ...row, photo: null }));
  const ignoredFiles = [];
  const byId = new Map();
  for (const photo of photos) {
    const id = photoIdOf(photo.name);
    if (id === null) {
      ignoredFiles.push(photo.name);
      continue;
    }
    if (!byId.has(id)) byId.set(id, []);
    byId.get(id).push(photo);
  }

  // The same ID on several rows: none of them is imported.
  const lines = new Map();
  for (const row of planned) {
    if (row.problem && row.problem.kind === "bad_id") continue;
    if (!lines.has(row.student_id)) lines.set(row.student_id, []);
    lines.get(row.student_id).push(row.line);
  }
  const duplicateIds = [];
  for (const [id, where] of lines) {
    if (where.length < 2) continue;
    duplicateIds.push({ student_id: id, lines: where });
    for (const row of planned) {
      if (row.student_id === id && !row.problem) {
        row.problem = { kind: "duplicate_id", reason: `ID ${id} is on lines ${where.join(", ")}: keep one` };
      }
    }
  }

  // Photos by exact name, else by a name differing only in case (one row only).
  const used = new Set();
  const folded = new Map();
  for (const id of byId.keys()) {
    const key = id.toLowerCase();
    folded.set(key, folded.has(key) ? null : id); // null: two names fold alike
  }
  const rowIdsFolded = new Map();
  for (const row of planned) {
    const key = row.student_id.toLowerCase();
    rowIdsFolded.set(key, (rowIdsFolded.get(key) || 0) + 1);
  }
  for (const row of planned) {
    if (!row.student_id) continue;
    let id = byId.has(row.student_id) ? row.student_id : null;
    if (id === null && rowIdsFolded.get(row.student_id.toLowerCase()) === 1) {
      id = folded.get(row.student_id.toLowerCase()) || null;
    }
    if (id === null) continue;
    used.add(id);
    const found = byId.get(id);
    if (found.length > 1) {
      if (!row.problem) {
        row.problem = { kind: "two_photos", reason: `${found.length} photos for this ID (${found.map((p) => p.name).join(", ")}): keep one` };
      }
      continue;
    }
    row.photo = found[0];
  }
  for (const row of planned) {
    if (!row.problem && !row.photo) {
      row.problem = { kind: "no_photo", reason: `no photo named ${row.student_id}.jpg, .jpeg or .png` };
    }
  }
  const unmatchedPhotos = [...byId.entries()].filter(([id]) => !used.has(id))
    .flatMap(([, found]) => found.map((photo) => photo.name));
  const kind = (k) => planned.filter((row) => row.problem && row.problem.kind === k);
  return {
    rows: planned,
    ready: planned.filter((row) => !row.problem),
    noPhoto: kind("no_photo"),
    duplicateIds,
    badIds: kind("bad_id"),
    badRows: planned.filter((row) => row.problem && !["no_photo", "bad_id", "duplicate_id"].includes(row.problem.kind)),
    unmatchedPhotos,
    ignoredFiles,
  };
}
