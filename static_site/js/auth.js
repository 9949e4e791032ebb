// Who is signed in. The token lives in localStorage with its expiry, so a
// reload keeps you signed in and an expired token is dropped before use.

const KEY = "rollcall.auth";
const NEXT_KEY = "rollcall.next";

let expiredHere = false;

export function current() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "null");
    if (saved && saved.token && saved.expires_at * 1000 > Date.now()) return saved;
    if (saved && saved.token) expiredHere = true; // it was good once: say why we ask again
  } catch { /* unreadable: treat as signed out */ }
  localStorage.removeItem(KEY);
  return null;
}

/** True once after a saved sign-in was dropped because its time was up. */
export function takeExpired() {
  const was = expiredHere;
  expiredHere = false;
  return was;
}

export function token() {
  const saved = current();
  return saved ? saved.token : null;
}

export function user() {
  const saved = current();
  return saved ? saved.user : null;
}

export function isAdmin() {
  const who = user();
  return Boolean(who && who.role === "admin");
}

/** The time zone dates and times are shown in: the deployment's (sent at
 * sign-in), else the browser's. */
export function timeZone() {
  const saved = current();
  return (saved && saved.time_zone) || undefined;
}

export function save(answer) {
  localStorage.setItem(KEY, JSON.stringify({
    token: answer.token, expires_at: answer.expires_at, user: answer.user,
    time_zone: answer.time_zone || null,
  }));
}

export function clear() {
  localStorage.removeItem(KEY);
}

/** Remember where the person was, to go back there after signing in. */
export function rememberPlace(hash) {
  if (hash && hash.startsWith("#/") && !hash.startsWith("#/login")) {
    sessionStorage.setItem(NEXT_KEY, hash);
  }
}

export function takePlace() {
  const next = sessionStorage.getItem(NEXT_KEY);
  sessionStorage.removeItem(NEXT_KEY);
  return next && next.startsWith("#/") ? next : "#/sessions";
}
