// Accounts (admins only): the list, a new teacher or admin with a generated
// one-time password shown once, disabling and enabling, a password reset.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { pageHeader, loading, notice, field, formErrorSlot, toast, badge } from "../ui.js";
import { confirmedAction, submitWith } from "../forms.js";

const PAGE = 50;

export async function render(main) {
  if (!auth.isAdmin()) {
    clear(main).append(notice("error", "Only administrators manage accounts", h("p", {}, h("a", { href: "#/account" }, "Change your own password"))));
    return;
  }
  const listBox = h("div", { class: "users-list" });
  const secretBox = h("div", { class: "one-time", "aria-live": "polite" });
  let wanted = PAGE; // how many are shown: "Show more" asks for the next page
  let more = false;

  /** The first `wanted` accounts by email, paging through the API's cursors. */
  async function load() {
    const users = [];
    let cursor = null;
    do {
      const found = await api.page("/users", "users", { cursor, limit: Math.min(200, wanted - users.length) });
      users.push(...found.items);
      cursor = found.next;
    } while (cursor && users.length < wanted);
    more = Boolean(cursor);
    return users;
  }

  function showSecret(user, password, what) {
    // Shown once: the server keeps only its hash.
    clear(secretBox).append(notice("success", `${what} for ${user.email}`,
      h("p", {}, "Give this one-time password to them now; it is not shown again. They choose their own when they first sign in."),
      h("p", {}, h("code", { class: "one-time__password", dataset: { password: "true" } }, password))));
  }

  async function refresh() {
    let users;
    try {
      users = await load();
    } catch (error) {
      return api.unlessSignedOut(error, () => clear(listBox).append(notice("error", "The accounts could not be loaded", error.message)));
    }
    clear(listBox).append(h("div", { class: "card table-card" }, h("table", { class: "table table--users" },
      h("caption", { class: "visually-hidden" }, "Accounts by email"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Email"), h("th", { scope: "col" }, "Role"),
        h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")))),
      h("tbody", {}, users.map((user) => row(user))))));
    if (more) {
      const showMore = h("button", { type: "button", class: "btn btn--secondary show-more" }, "Show more");
      showMore.addEventListener("click", () => { wanted += PAGE; refresh(); });
      listBox.append(showMore);
    }
  }

  function row(user) {
    const toggle = h("button", { type: "button", class: "btn btn--small btn--ghost" }, user.disabled ? "Enable" : "Disable");
    toggle.disabled = user.email === auth.user().email;
    confirmedAction(toggle,
      () => (user.disabled ? null : { title: `Disable ${user.email}?`, confirmLabel: "Disable", danger: true,
        message: "They are signed out at once and cannot sign in until enabled again." }),
      async () => {
        await api.patch(`/users/${api.seg(user.email)}`, { disabled: !user.disabled });
        toast(user.disabled ? `${user.email} enabled.` : `${user.email} disabled.`);
        refresh();
      });
    const reset = h("button", { type: "button", class: "btn btn--small btn--ghost" }, "Reset password");
    confirmedAction(reset,
      () => ({ title: `Reset ${user.email}'s password?`, confirmLabel: "Reset",
        message: "Their current password stops working and they are signed out." }),
      async () => {
        const answer = await api.post(`/users/${api.seg(user.email)}/reset`);
        showSecret(answer.user, answer.password, "New password");
        refresh();
      }, { busyLabel: "Resetting…" });
    const state = user.disabled ? badge("DISABLED") : user.must_change_password ? h("span", { class: "muted" }, "Has a one-time password") : h("span", {}, "Active");
    return h("tr", { dataset: { email: user.email } },
      h("td", { "data-label": "Email" }, user.email),
      h("td", { "data-label": "Role" }, user.role === "admin" ? "Administrator" : "Teacher"),
      h("td", { "data-label": "State" }, state),
      h("td", { class: "cell-action" }, toggle, " ", reset));
  }

  const email = h("input", { type: "email", required: true, maxlength: 320, autocomplete: "off" });
  const role = h("select", {}, h("option", { value: "teacher" }, "Teacher"), h("option", { value: "admin" }, "Administrator"));
  const submit = h("button", { type: "submit", class: "btn btn--primary" }, "Add the account");
  const form = h("form", { class: "card panel", novalidate: true, "aria-labelledby": "new-user-title" },
    h("h2", { class: "panel__title", id: "new-user-title" }, "New account"),
    formErrorSlot(),
    h("div", { class: "grid-2" }, field({ name: "email", label: "Email", input: email }), field({ name: "role", label: "Role", input: role })),
    submit);
  submitWith(form, submit, {
    busyLabel: "Adding…",
    check: () => (email.value.trim() ? null : { field: "email", message: "Type their email address." }),
    send: async () => {
      const answer = await api.post("/users", { email: email.value.trim(), role: role.value });
      showSecret(answer.user, answer.password, "Account added");
      form.reset();
      refresh();
    },
  });

  loading(main, "Loading accounts…");
  await refresh();
  clear(main).append(pageHeader("Users", { subtitle: "Who may sign in to Rollcall." }), secretBox, listBox, form);
}
