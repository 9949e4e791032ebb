// The one way the app talks to the API: JSON in, JSON out, the bearer token
// on every call, and every failure turned into an ApiError carrying the
// server's message and the field it concerns (error.details.field).
import * as auth from "./auth.js";

const config = window.ROLLCALL_CONFIG || {};
export const API_BASE = String(config.apiBaseUrl || "").replace(/\/+$/, "");

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.field = this.details.field || null;
  }
}

/** Raised after a 401: the app has already gone to the sign-in page. */
export class SignedOut extends ApiError {
  constructor(message) {
    super(401, "signed_out", message);
  }
}

export { isSignedOut, unlessSignedOut } from "./signedout.js";

let onSignedOut = () => {};
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

async function errorFrom(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  const error = body && body.error;
  if (error && error.message) {
    return new ApiError(response.status, error.code || "error", error.message, error.details);
  }
  const fallback = response.status >= 500
    ? "Something went wrong on our side. Try again in a moment."
    : `The request was refused (HTTP ${response.status}).`;
  return new ApiError(response.status, "error", fallback);
}

/**
 * Call the API. `as` is "json" (default), "blob" or "text".
 * A 401 anywhere but sign-in means the token expired or was revoked.
 */
export async function request(method, path, { body, as = "json" } = {}) {
  if (!API_BASE) {
    throw new ApiError(0, "no_config", "This copy of Rollcall does not know where its API is (config.js is missing).");
  }
  const headers = {};
  const token = auth.token();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API_BASE + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      mode: "cors", credentials: "omit", cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "Rollcall cannot be reached. Check your connection and try again.");
  }
  if (response.status === 401 && path !== "/auth/login") {
    const error = await errorFrom(response);
    onSignedOut(error.message);
    throw new SignedOut(error.message);
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  if (as === "blob") return response.blob();
  if (as === "text") return response.text();
  return response.json();
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body) => request("POST", path, { body });
export const patch = (path, body) => request("PATCH", path, { body });

export const del = (path) => request("DELETE", path);

/** One page of a list: `{items, next}`; `next` is the cursor of the following page. */
export async function page(path, key, { cursor, limit = 50 } = {}) {
  const url = new URL(path, "http://x");
  url.searchParams.set("limit", String(limit));
  if (cursor) url.searchParams.set("cursor", cursor);
  const answer = await get(url.pathname + url.search);
  return { items: answer[key] || [], next: answer.next_cursor || null };
}

/** Every item of a paged list, following the server's cursors (at most `max`). */
export async function getAll(path, key, { max = 5000 } = {}) {
  const items = [];
  let cursor = null;
  do {
    const found = await page(path, key, { cursor, limit: 200 });
    items.push(...found.items);
    cursor = found.next;
  } while (cursor && items.length < max);
  return items;
}

/** A path segment from user data (student IDs may hold ':' and '.'). */
export const seg = (value) => encodeURIComponent(String(value));
