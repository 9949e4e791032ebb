// Rollcall's web app: a hash router over a few pages. Each page module
// exports render(main, params) and may answer a cleanup function (timers).
import * as auth from "./auth.js";
import { whenSignedOut, unlessSignedOut, API_BASE } from "./api.js";
import { h, clear } from "./dom.js";
import { notice, confirmDialog } from "./ui.js";
import * as uploads from "./uploader.js";
import * as uploadBar from "./uploadbar.js";
import * as loginPage from "./pages/login.js";
import * as sessionsPage from "./pages/sessions.js";
import * as sessionPage from "./pages/session.js";
import * as reportPage from "./pages/report.js";
import * as uploadPage from "./pages/upload.js";
import * as studentsPage from "./pages/students.js";
import * as studentPage from "./pages/student.js";
import * as classesPage from "./pages/classes.js";
import * as classPage from "./pages/class.js";
import * as registerPage from "./pages/register.js";
import * as usersPage from "./pages/users.js";
import * as accountPage from "./pages/account.js";

const ROUTES = [
  { id: "login", pattern: /^#\/login$/, page: loginPage, title: "Sign in", public: true },
  { id: "sessions", pattern: /^#\/sessions$/, page: sessionsPage, title: "Sessions", nav: "sessions" },
  { id: "upload", pattern: /^#\/upload(?:\?class=([^/&]+))?$/, page: uploadPage, title: "Upload a recording", nav: "upload", keys: ["classId"] },
  { id: "report", pattern: /^#\/sessions\/([^/]+)\/report$/, page: reportPage, title: "Printable report", nav: "sessions", keys: ["sessionId"] },
  { id: "session", pattern: /^#\/sessions\/([^/]+)$/, page: sessionPage, title: "Session", nav: "sessions", keys: ["sessionId"] },
  { id: "students", pattern: /^#\/students$/, page: studentsPage, title: "People", nav: "students" },
  { id: "student", pattern: /^#\/students\/([^/]+)$/, page: studentPage, title: "Person", nav: "students", keys: ["studentId"] },
  { id: "classes", pattern: /^#\/classes$/, page: classesPage, title: "Classes", nav: "classes" },
  { id: "register", pattern: /^#\/classes\/([^/]+)\/register$/, page: registerPage, title: "Register", nav: "classes", keys: ["classId"] },
  { id: "class", pattern: /^#\/classes\/([^/]+)$/, page: classPage, title: "Class", nav: "classes", keys: ["classId"] },
  { id: "users", pattern: /^#\/users$/, page: usersPage, title: "Users", nav: "users" },
  { id: "account", pattern: /^#\/account$/, page: accountPage, title: "Your account", nav: "account" },
];

const main = document.getElementById("main");
let cleanup = null;
let visits = 0;
let expiredMessage = null;

function match(hash) {
  for (const route of ROUTES) {
    const found = route.pattern.exec(hash);
    if (found) {
      const params = {};
      try {
        (route.keys || []).forEach((key, i) => {
          if (found[i + 1] !== undefined) params[key] = decodeURIComponent(found[i + 1]);
        });
      } catch {
        return null; // a malformed %-escape (URIError): no such page, not a stuck one
      }
      return { route, params };
    }
  }
  return null;
}

function showChrome(signedIn, navKey) {
  const bar = document.getElementById("topbar");
  bar.hidden = !signedIn;
  document.body.classList.toggle("signed-out", !signedIn);
  const who = auth.user();
  document.getElementById("who").textContent = who ? who.email : "";
  // The Users page is an administrator's; the server refuses it to anyone else too.
  for (const link of bar.querySelectorAll("[data-admin]")) link.hidden = !(who && who.role === "admin");
  for (const link of bar.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === navKey) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  const hash = location.hash || "#/sessions";
  if (!hash.startsWith("#/")) return; // in-page anchors such as the skip link
  if (typeof cleanup === "function") cleanup();
  cleanup = null;
  const found = match(hash);
  if (!found) {
    location.replace("#/sessions");
    return;
  }
  const { route: current, params } = found;
  if (!current.public && !auth.current()) {
    if (auth.takeExpired()) expiredMessage = "Your sign-in has expired. Sign in again to carry on.";
    auth.rememberPlace(hash);
    location.replace("#/login");
    return;
  }
  if (current.public && auth.current()) {
    location.replace(auth.takePlace());
    return;
  }
  // A one-time password (a new account, a reset) is replaced before anything else.
  if (!current.public && current.id !== "account" && auth.user().must_change_password) {
    auth.rememberPlace(hash);
    location.replace("#/account");
    return;
  }
  showChrome(!current.public, current.nav);
  uploadBar.draw();
  uploadBar.follow();
  document.title = `${current.title} · Rollcall`;
  // Each visit renders into its own view: a page still loading when the
  // person (or a 401) moves on writes into a view that is no longer shown.
  const view = h("div", { class: "view", dataset: { page: current.id } });
  clear(main).append(view);
  main.dataset.page = current.id;
  const visit = ++visits;
  const stillHere = () => visit === visits;
  try {
    const done = await current.page.render(view, params, {
      expiredMessage: current.public ? expiredMessage : null,
      setTitle: (title) => { if (stillHere()) document.title = `${title} · Rollcall`; },
    });
    if (stillHere()) cleanup = done;
    else if (typeof done === "function") done(); // left before it finished loading
  } catch (error) {
    unlessSignedOut(error, () => {
      clear(view).append(notice("error", "This page could not be shown", h("p", {}, error.message)));
    });
  }
  if (current.public) expiredMessage = null;
  // Screen readers and keyboards start at the new content, unless the page
  // put the focus somewhere useful itself (the sign-in form's email field).
  if (stillHere() && !view.contains(document.activeElement)) main.focus({ preventScroll: true });
}

// Any 401 from the API: forget the token, remember where we were, sign in again.
whenSignedOut((message) => {
  auth.clear();
  auth.rememberPlace(location.hash);
  expiredMessage = message || "Your sign-in has expired. Sign in again to carry on.";
  if (location.hash !== "#/login") location.hash = "#/login";
});

document.getElementById("sign-out").addEventListener("click", async () => {
  // Uploads go on the signed-in person's account: signing out stops them.
  if (uploads.active().length) {
    const ok = await confirmDialog({
      title: "Stop the upload and sign out?",
      message: "The video has not finished uploading. Signing out stops it.",
      confirmLabel: "Stop and sign out", danger: true,
    });
    if (!ok) return;
    await Promise.all(uploads.active().map((job) => uploads.cancel(job.sessionId)));
  }
  auth.clear();
  sessionStorage.clear();
  location.hash = "#/login";
});

document.querySelector(".skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

uploadBar.start(document.getElementById("upload-status"));
window.addEventListener("hashchange", route);
if (!API_BASE) {
  clear(main).append(notice("error", "Rollcall is not configured",
    h("p", {}, "config.js does not say where the API is. Publish the site with 'make publish'.")));
} else {
  route();
}
