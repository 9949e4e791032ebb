// Sign in. After an expired token the app lands here, then goes back to
// where the person was.
import { h } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { field, clearErrors, showApiError, formErrorSlot, setBusy, notice } from "../ui.js";

export async function render(main, _params, { expiredMessage }) {
  const email = h("input", { type: "email", autocomplete: "username", required: true, maxlength: 320 });
  const password = h("input", { type: "password", autocomplete: "current-password", required: true, maxlength: 256 });
  const submit = h("button", { type: "submit", class: "btn btn--primary btn--block" }, "Sign in");
  const form = h("form", { class: "login__form", novalidate: true },
    formErrorSlot(),
    field({ name: "email", label: "Email", input: email }),
    field({ name: "password", label: "Password", input: password }),
    submit);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!email.value.trim()) return showApiError(form, { field: "email", message: "Enter your email address." });
    if (!password.value) return showApiError(form, { field: "password", message: "Enter your password." });
    setBusy(submit, true, "Signing in…");
    try {
      const answer = await api.post("/auth/login", { email: email.value.trim(), password: password.value });
      auth.save(answer);
      location.hash = auth.takePlace();
    } catch (error) {
      password.value = "";
      // Wrong credentials and a locked account concern the form as a whole.
      showApiError(form, error.code === "invalid_credentials" || error.code === "account_locked"
        ? { message: error.message } : error);
    } finally {
      setBusy(submit, false);
    }
  });

  main.append(h("section", { class: "login" },
    h("div", { class: "login__card card" },
      h("div", { class: "login__brand" },
        h("img", { src: "favicon.svg", alt: "", width: 48, height: 48 }),
        h("span", {}, "Rollcall")),
      h("h1", { class: "login__title" }, "Sign in"),
      h("p", { class: "login__lead" }, "Attendance from your class recordings."),
      expiredMessage ? notice("info", null, expiredMessage) : null,
      form),
    h("p", { class: "login__footnote" }, "Accounts are made by your Rollcall administrator.")));
  email.focus();
}
