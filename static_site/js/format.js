// Turning API values into words and numbers a teacher reads at a glance.

const dateFormat = new Intl.DateTimeFormat(undefined, {
  weekday: "short", day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
});
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});

/** "2025-11-25" -> "Tue, 25 Nov 2025" (a calendar date: no time zone shift). */
export function formatDate(isoDate) {
  if (!isoDate) return "—";
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(isoDate);
  if (!match) return isoDate;
  return dateFormat.format(new Date(Date.UTC(+match[1], +match[2] - 1, +match[3])));
}

export function formatDateTime(iso) {
  if (!iso) return "—";
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? iso : dateTimeFormat.format(when);
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

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return "";
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

/** Today's date in the browser's zone as YYYY-MM-DD (the date input's format). */
export function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

export const STATUS_LABELS = {
  AWAITING_UPLOAD: "Waiting for upload",
  PROCESSING: "Processing",
  COMPLETED: "Done",
  FAILED: "Failed",
  PRESENT: "Present",
  ABSENT: "Absent",
};
