// Your own password. After a one-time password (a new account, a reset) the
// app comes here first and asks for a password of your own.
import { h, fill } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { pageHeader, notice, field, formErrorSlot, clearErrors, showApiError, setBusy, toast } from "../ui.js";

export async function render(main) {
  const who = auth.user();
  const current = h("input", { type: "password", autocomplete: "current-password", required: true, maxlength: 256 });
  const fresh = h("input", { type: "password", autocomplete: "new-password", required: true, maxlength: 256, minlength: 10 });
  const again = h("input", { type: "password", autocomplete: "new-password", required: true, maxlength: 256 });
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Change the password");
  const form = h("form", { class: "card panel account-form", novalidate: true },
    formErrorSlot(),
    field({ name: "current_password", label: who.must_change_password ? "One-time password" : "Current password", input: current }),
    field({ name: "new_password", label: "New password", input: fresh, hint: "At least 10 characters." }),
    field({ name: "again", label: "The new password again", input: again }),
    submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!current.value) return showApiError(form, { field: "current_password", message: "Type your current password." });
    if (fresh.value.length < 10) return showApiError(form, { field: "new_password", message: "Use at least 10 characters." });
    if (fresh.value !== again.value) return showApiError(form, { field: "again", message: "The two new passwords differ." });
    setBusy(submit, true, "Saving…");
    try {
      const answer = await api.post("/auth/password", { current_password: current.value, new_password: fresh.value });
      auth.save(Object.assign(answer, { time_zone: answer.time_zone || auth.timeZone() || null }));
      toast("Your password is changed.");
      location.hash = auth.takePlace();
    } catch (error) {
      api.unlessSignedOut(error, () => showApiError(form, error, { weak_password: "new_password" }));
      current.value = "";
    } finally {
      setBusy(submit, false);
    }
  });
  fill(main,
    pageHeader("Your account", { subtitle: `${who.email} · ${who.role === "admin" ? "Administrator" : "Teacher"}` }),
    who.must_change_password ? notice("info", "Choose your own password", "You signed in with a one-time password. Choose one of your own to carry on.") : null,
    form);
  current.focus();
}
