// Turning API values into words and numbers a teacher reads at a glance.
// Dates read the same everywhere (the report too): "Mon 2 Mar 2026", and
// times "Mon 2 Mar 2026, 20:45" in the deployment's time zone.
import { timeZone } from "./auth.js";

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function plainDate(year, month, day) {
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  return `${WEEKDAYS[weekday]} ${day} ${MONTHS[month - 1]} ${year}`;
}

/** "2025-11-25" -> "Tue 25 Nov 2025" (a calendar date: no time zone shift). */
export function formatDate(isoDate) {
  if (!isoDate) return "—";
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate);
  if (!match) return isoDate;
  return plainDate(+match[1], +match[2], +match[3]);
}

/** An instant ("2026-11-29T20:45:54+00:00") as "Sun 29 Nov 2026, 20:45" in the configured zone. */
export function formatDateTime(iso) {
  if (!iso) return "—";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  let parts;
  try {
    parts = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "numeric", day: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: timeZone() }).formatToParts(when);
  } catch {
    parts = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "numeric", day: "numeric",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).formatToParts(when); // unknown zone
  }
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${plainDate(+part("year"), +part("month"), +part("day"))}, ${part("hour")}:${part("minute")}`;
}

/** Today in the configured zone as YYYY-MM-DD (the date input's format). */
export function today() {
  return isoDay(new Date());
}

/** A day `days` before today, YYYY-MM-DD. */
export function daysAgo(days) {
  return isoDay(new Date(Date.now() - days * 86_400_000));
}

function isoDay(when) {
  let text;
  try {
    text = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: timeZone() }).format(when);
  } catch {
    text = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" }).format(when);
  }
  return text;
}

/** Milliseconds into the video -> "1:05" (or "1:02:05" past an hour). */
export function formatMs(ms) {
  if (ms === null || ms === undefined) return "—";
  const total = Math.max(0, Math.round(ms / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

export function formatSimilarity(value) {
  return value === null || value === undefined ? "—" : `${Number(value).toFixed(1)}%`;
}

export function formatRate(rate) {
  return rate === null || rate === undefined ? "—" : `${Math.round(rate * 100)}%`;
}

/** Sizes in the units the limits are set in (5 MiB is "5 MB", not "5.2 MB"). */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  const shown = unit ? value.toFixed(value < 10 ? 1 : 0).replace(/\.0$/, "") : value;
  return `${shown} ${units[unit]}`;
}

/** "1 photo", "3 photos". */
export function plural(count, word, many = `${word}s`) {
  return `${count} ${count === 1 ? word : many}`;
}

/** "seen once", "seen 3 times". */
export function seenTimes(count) {
  return count === 1 ? "seen once" : `seen ${count} times`;
}

/** The calendar day of an instant, in the configured zone: "Mon 2 Mar 2026". */
export function formatDayOf(iso) {
  if (!iso) return "—";
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : formatDate(isoDay(when));
}

export const STATUS_LABELS = {
  AWAITING_UPLOAD: "Waiting for upload",
  CONVERTING: "Converting",
  PROCESSING: "Processing",
  COMPLETED: "Completed",
  FAILED: "Failed",
  PRESENT: "Present",
  LATE: "Late",
  ABSENT: "Absent",
  EXCUSED: "Excused",
};

/** One letter per status, as the class register shows it. */
export const STATUS_LETTERS = { PRESENT: "P", LATE: "L", ABSENT: "A", EXCUSED: "E" };
