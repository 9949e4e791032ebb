// What the site's forms, lists and row actions share: a form sent with its
// button busy and the API's refusal shown beside it, a list loaded into its
// box (or a notice saying why not), and a row's action asked first in a dialog.
import { clear } from "./dom.js";
import * as api from "./api.js";
import { clearErrors, showApiError, setBusy, lockForm, notice, toastError, confirmDialog } from "./ui.js";

/**
 * On submit: clear the form's errors; `check()` may answer a {field, message}
 * to show instead of sending; else `send()` runs with `button` busy
 * (`busyLabel`) and, with `lock`, the form locked. A refusal is shown beside
 * the form (`fieldFor` maps the API's field names and codes to the form's); a
 * lost sign-in goes to the sign-in page instead.
 */
export function submitWith(form, button, { busyLabel, check = () => null, lock = true, fieldFor, send }) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const problem = check();
    if (problem) return showApiError(form, problem);
    setBusy(button, true, busyLabel);
    if (lock) lockForm(form, true);
    try {
      await send();
    } catch (error) {
      api.unlessSignedOut(error, () => showApiError(form, error, fieldFor));
    } finally {
      if (lock) lockForm(form, false);
      setBusy(button, false);
    }
  });
}

/**
 * Every item of the paged list at `path` (under `key` in each page), or null
 * once `box` shows why it could not be loaded ("`what` could not be loaded").
 */
export async function loadList(box, path, key, what) {
  try {
    return await api.getAll(path, key);
  } catch (error) {
    api.unlessSignedOut(error, () => clear(box).append(notice("error", `${what} could not be loaded`, error.message)));
    return null;
  }
}

/**
 * A button whose action is asked first: `ask()` answers the confirmDialog's
 * options (`ask` or its answer null: nothing to ask), then `run()`; with `busyLabel` the
 * button is busy meanwhile. A failure is an error toast.
 */
export function confirmedAction(button, ask, run, { busyLabel } = {}) {
  button.addEventListener("click", async () => {
    const question = ask ? ask() : null;
    if (question && !(await confirmDialog(question))) return;
    if (busyLabel) setBusy(button, true, busyLabel);
    try {
      await run();
    } catch (error) {
      toastError(error);
    } finally {
      if (busyLabel) setBusy(button, false);
    }
  });
}
