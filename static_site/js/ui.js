// Small pieces every page uses: headers, badges, messages, field errors,
// confirmation dialogs and toasts. All text goes in as text.
import { h, clear } from "./dom.js";
import { STATUS_LABELS } from "./format.js";
import { unlessSignedOut, isSignedOut as isSignedOutError } from "./signedout.js";

export function pageHeader(title, { subtitle, actions = [], back } = {}) {
  return h("header", { class: "page-header" },
    back ? h("a", { class: "back-link", href: back.href }, "← ", back.label) : null,
    h("div", { class: "page-header__row" },
      h("div", { class: "page-header__text" },
        h("h1", { class: "page-title" }, title),
        subtitle ? h("p", { class: "page-subtitle" }, subtitle) : null),
      actions.length ? h("div", { class: "page-header__actions" }, actions) : null));
}

export function badge(status, extraClass) {
  return h("span", { class: ["badge", `badge--${String(status).toLowerCase()}`, extraClass] },
    STATUS_LABELS[status] || status);
}

export function spinner(label = "Loading") {
  return h("span", { class: "spinner", role: "img", "aria-label": label });
}

export function loading(main, what = "Loading…") {
  clear(main).append(h("div", { class: "loading-block" }, spinner(), h("span", {}, what)));
}

export function notice(kind, title, ...body) {
  return h("div", { class: ["notice", `notice--${kind}`], role: kind === "error" ? "alert" : "status" },
    title ? h("strong", { class: "notice__title" }, title) : null,
    body.length ? h("div", { class: "notice__body" }, body) : null);
}

export function emptyState(title, text, action) {
  return h("div", { class: "empty" },
    h("div", { class: "empty__art", "aria-hidden": "true" }),
    h("h2", { class: "empty__title" }, title),
    text ? h("p", { class: "empty__text" }, text) : null,
    action || null);
}

/** A full-page failure (404, network...) with a way on. */
export function pageError(main, error, back = { href: "#/sessions", label: "Back to sessions" }) {
  const title = error.status === 404 ? "Not found" : "Something went wrong";
  clear(main).append(notice("error", title, h("p", {}, error.message),
    h("p", {}, h("a", { href: back.href }, back.label))));
}

// -- forms ---------------------------------------------------------------
/** A labelled field: the input, its hint and the slot for the server's message. */
export function field({ name, label, input, hint }) {
  const id = input.id || `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  input.id = id;
  input.name = input.name || name;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  input.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  return h("div", { class: "field", dataset: { field: name } },
    h("label", { class: "field__label", for: id }, label),
    input,
    hint ? h("p", { class: "field__hint", id: hintId }, hint) : null,
    h("p", { class: "field__error", id: errorId, dataset: { errorFor: name }, "aria-live": "polite" }));
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".field--invalid")) el.classList.remove("field--invalid");
  const general = form.querySelector(".form-error");
  if (general) clear(general).hidden = true;
}

/** Put `message` beside the field `name`; false when the form has no such field. */
export function showFieldError(form, name, message) {
  const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
  if (!slot) return false;
  slot.textContent = message;
  const wrapper = slot.closest(".field");
  wrapper.classList.add("field--invalid");
  const input = wrapper.querySelector("input, select, textarea");
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  return true;
}

export function showFormError(form, message) {
  const slot = form.querySelector(".form-error");
  clear(slot).append(h("span", {}, message));
  slot.hidden = false;
}

export function formErrorSlot() {
  return h("div", { class: "form-error", role: "alert", hidden: true });
}

/** Show an API error on a form: beside its field when the server names one we have. */
export function showApiError(form, error, fieldFor = {}) {
  const name = fieldFor[error.field] || error.field || fieldFor[`code:${error.code}`];
  if (!(name && showFieldError(form, name, error.message))) showFormError(form, error.message);
}

export function setBusy(button, busy, busyLabel) {
  if (busy) {
    button.dataset.label = button.textContent;
    button.textContent = busyLabel || "Working…";
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// -- dialogs ---------------------------------------------------------------
/**
 * Ask before doing something. Resolves to null when cancelled, else
 * {reason} (reason only when `reasonLabel` is given, and then required).
 */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false, reasonLabel, reasonHint }) {
  return new Promise((resolve) => {
    const reason = reasonLabel ? h("textarea", { rows: 3, maxlength: 500, required: true }) : null;
    const cancel = h("button", { type: "button", class: "btn btn--ghost", value: "cancel" }, "Cancel");
    const confirm = h("button", { type: "submit", class: ["btn", danger ? "btn--danger" : "btn--primary"] }, confirmLabel);
    const form = h("form", { method: "dialog", class: "dialog__form", novalidate: true },
      h("h2", { class: "dialog__title" }, title),
      message ? h("p", { class: "dialog__message" }, message) : null,
      reason ? field({ name: "reason", label: reasonLabel, input: reason, hint: reasonHint }) : null,
      h("div", { class: "dialog__actions" }, cancel, confirm));
    const dialog = h("dialog", { class: "dialog", "aria-label": title }, form);
    let answer = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (reason && !reason.value.trim()) {
        clearErrors(form);
        showFieldError(form, "reason", "Say why, so the correction can be understood later.");
        return;
      }
      answer = { reason: reason ? reason.value.trim() : undefined };
      dialog.close();
    });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    // A dangerous action starts on Cancel: Enter must not delete at once.
    (reason || (danger ? cancel : confirm)).focus();
  });
}

/**
 * A dialog with a small form. `fields`: [{name, label, value, type, required,
 * maxlength, min, max, options: [{value, label}] for a choice}]; `check(values)` answers [field, message] or null; `submit(values)`
 * calls the API. Resolves to what `submit` answered, or null when cancelled.
 * The dialog stays open, with what was typed, while an error is shown.
 */
export function formDialog({ title, fields, confirmLabel = "Save", check = () => null, submit }) {
  return new Promise((resolve) => {
    const inputs = {};
    const cancel = h("button", { type: "button", class: "btn btn--ghost" }, "Cancel");
    const confirm = h("button", { type: "submit", class: "btn btn--primary" }, confirmLabel);
    const form = h("form", { method: "dialog", class: "dialog__form", novalidate: true },
      h("h2", { class: "dialog__title" }, title),
      formErrorSlot(),
      fields.map((spec) => {
        const input = spec.options
          ? h("select", {}, spec.options.map((option) => h("option", { value: option.value }, option.label)))
          : h("input", { type: spec.type || "text", value: spec.value || "", required: spec.required,
            maxlength: spec.maxlength, min: spec.min, max: spec.max, autocomplete: "off" });
        if (spec.options) input.value = spec.value || "";
        inputs[spec.name] = input;
        return field({ name: spec.name, label: spec.label, input });
      }),
      h("div", { class: "dialog__actions" }, cancel, confirm));
    const dialog = h("dialog", { class: "dialog", "aria-label": title }, form);
    let answer = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      const values = Object.fromEntries(Object.entries(inputs).map(([name, input]) => [name, input.value]));
      const problem = check(values);
      if (problem) return showFieldError(form, ...problem);
      setBusy(confirm, true, "Saving…");
      lockForm(form, true);
      try {
        answer = await submit(values);
        dialog.close();
      } catch (error) {
        lockForm(form, false);
        unlessSignedOut(error, () => showApiError(form, error));
        if (isSignedOutError(error)) dialog.close();
      } finally {
        setBusy(confirm, false);
      }
    });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    Object.values(inputs)[0].focus();
  });
}

/**
 * Lock a form's fields while it is being checked or sent (what was typed
 * stays); `except` stays usable (a Cancel button).
 */
export function lockForm(form, locked, except = []) {
  for (const control of form.querySelectorAll("input, select, textarea, button")) {
    if (except.includes(control)) continue;
    if (locked) {
      if (control.disabled) continue;
      control.dataset.locked = "true";
      control.disabled = true;
    } else if (control.dataset.locked) {
      delete control.dataset.locked;
      control.disabled = false;
    }
  }
  form.setAttribute("aria-busy", String(Boolean(locked)));
}

// -- toasts ------------------------------------------------------------------
export function toast(message, kind = "success") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: ["toast", `toast--${kind}`] }, message);
  box.append(item);
  setTimeout(() => item.classList.add("toast--leaving"), 4200);
  setTimeout(() => item.remove(), 4700);
}

/** An API failure as an error toast (nothing for a sign-out). */
export function toastError(error) {
  unlessSignedOut(error, () => toast(error.message, "error"));
}

/** True for an absolute http(s) URL: the only kind of URL from data put in src/href. */
export function isHttpUrl(value) {
  try {
    return ["http:", "https:"].includes(new URL(String(value)).protocol);
  } catch {
    return false; // not an absolute URL
  }
}

/**
 * A photo from a presigned URL, cropped around the face when the API says
 * where it is (`face_box`), or the person's initials when there is none.
 * The URL goes in as an attribute value only, never into markup.
 */
export function avatar(student, size = "small") {
  const name = student.full_name || "?";
  if (student.photo_url && isHttpUrl(student.photo_url)) {
    const img = h("img", { class: "avatar__photo", src: student.photo_url,
      alt: `Photo of ${name}`, loading: "lazy", decoding: "async" });
    const box = validBox(student.face_box);
    if (box) {
      // The load event is dispatched later, never during this call.
      const place = () => cropToFace(img, box);
      img.addEventListener("load", place);
      if (img.complete && img.naturalWidth) place();
    }
    return h("span", { class: ["avatar", `avatar--${size}`] }, img);
  }
  const initials = name.trim().split(/\s+/).slice(0, 2).map((w) => w[0] || "").join("").toUpperCase();
  return h("span", { class: ["avatar", "avatar--initials", `avatar--${size}`], "aria-hidden": "true" }, initials || "?");
}

function validBox(box) {
  if (!box || typeof box !== "object") return null;
  const { left, top, width, height } = box;
  const ok = [left, top, width, height].every((v) => Number.isFinite(v) && v >= 0 && v <= 1);
  return ok && width > 0 && height > 0 ? { left, top, width, height } : null;
}

/**
 * Show a square around the face (with room for hair and chin) in the square
 * frame: the image is scaled and moved with percentages of the frame.
 */
export function cropToFace(img, box) {
  const w = img.naturalWidth;
  const hgt = img.naturalHeight;
  if (!w || !hgt) return;
  const faceW = box.width * w;
  const faceH = box.height * hgt;
  const side = Math.min(w, hgt, Math.max(faceW, faceH) * 1.8);
  const cx = (box.left + box.width / 2) * w;
  const cy = (box.top + box.height / 2) * hgt;
  const x0 = Math.min(Math.max(cx - side / 2, 0), w - side);
  const y0 = Math.min(Math.max(cy - side / 2, 0), hgt - side);
  const pct = (v) => `${((100 * v) / side).toFixed(3)}%`;
  img.classList.add("avatar__photo--face");
  img.style.setProperty("width", pct(w));
  img.style.setProperty("height", pct(hgt));
  img.style.setProperty("left", pct(-x0));
  img.style.setProperty("top", pct(-y0));
}
