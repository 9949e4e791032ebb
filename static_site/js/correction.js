// Correcting one person's status in one session by hand: a small dialog with
// the four statuses and a reason (required). The automatic result is kept
// beside the teacher's on the server.
import { h } from "./dom.js";
import * as api from "./api.js";
import { STATUS_LABELS } from "./format.js";
import { field, formErrorSlot, clearErrors, showFieldError, showApiError, setBusy } from "./ui.js";

const STATUSES = ["PRESENT", "LATE", "ABSENT", "EXCUSED"];

/** Resolves to the updated row, or null when cancelled. */
export function correctionDialog({ sessionId, studentId, name, current }) {
  return new Promise((resolve) => {
    const status = h("select", { required: true },
      STATUSES.map((value) => h("option", { value, selected: value === current ? true : null }, STATUS_LABELS[value])));
    const reason = h("textarea", { rows: 3, maxlength: 500, required: true });
    const cancel = h("button", { type: "button", class: "btn btn--ghost" }, "Cancel");
    const save = h("button", { type: "submit", class: "btn btn--primary" }, "Save the correction");
    const form = h("form", { method: "dialog", class: "dialog__form", novalidate: true },
      h("h2", { class: "dialog__title" }, `Correct ${name}`),
      h("p", { class: "dialog__message" }, "The automatic result is kept beside your correction."),
      formErrorSlot(),
      field({ name: "status", label: "Status", input: status }),
      field({ name: "reason", label: "Reason", input: reason, hint: "For example: a doctor's note; sat outside the camera's view." }),
      h("div", { class: "dialog__actions" }, cancel, save));
    const dialog = h("dialog", { class: "dialog", "aria-label": `Correct ${name}` }, form);
    let answer = null;
    cancel.addEventListener("click", () => dialog.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      if (!reason.value.trim()) return showFieldError(form, "reason", "Say why, so the correction can be understood later.");
      setBusy(save, true, "Saving…");
      try {
        ({ row: answer } = await api.patch(
          `/sessions/${api.seg(sessionId)}/attendance/${api.seg(studentId)}`,
          { status: status.value, reason: reason.value.trim() }));
        dialog.close();
      } catch (error) {
        api.unlessSignedOut(error, () => showApiError(form, error));
        if (api.isSignedOut(error)) dialog.close();
      } finally {
        setBusy(save, false);
      }
    });
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    status.focus();
  });
}
