// The printable report. The API renders it (text/html, needs the token), so
// it is fetched and shown in a sandboxed frame: no script in it can run, and
// the Print button prints just the report.
import { h, clear } from "../dom.js";
import * as api from "../api.js";
import { pageHeader, loading, pageError } from "../ui.js";

export async function render(main, { sessionId }) {
  const path = `/sessions/${api.seg(sessionId)}`;
  loading(main, "Preparing the report…");
  let html;
  try {
    html = await api.get(`${path}/report`, { as: "text" });
  } catch (error) {
    api.unlessSignedOut(error, () => pageError(main, error, { href: `#${path}`, label: "Back to the session" }));
    return;
  }
  const frame = h("iframe", { class: "report-frame", title: "Printable attendance report",
    sandbox: "allow-same-origin allow-modals" });
  frame.srcdoc = html; // server-rendered and escaped; sandboxed without scripts
  // As tall as the report, again when the width changes (a phone turned, a
  // window resized): the report's layout, and so its height, follows the width.
  function fit() {
    const doc = frame.contentDocument;
    if (!doc || !doc.body) return;
    const margin = parseFloat(frame.contentWindow.getComputedStyle(doc.body).marginBottom) || 0;
    frame.style.height = `${Math.ceil(doc.body.getBoundingClientRect().bottom + margin) + 24}px`;
  }
  frame.addEventListener("load", () => {
    const doc = frame.contentDocument;
    if (!doc) return;
    // The report's own buttons need script, which the sandbox forbids: ours prints.
    for (const button of doc.querySelectorAll("button")) button.hidden = true;
    fit();
  });
  window.addEventListener("resize", fit);
  const print = h("button", { type: "button", class: "btn btn--primary" }, "Print");
  print.addEventListener("click", () => frame.contentWindow.print());
  clear(main).append(
    pageHeader("Printable report", { back: { href: `#${path}`, label: "Back to the session" }, actions: [print] }),
    h("div", { class: "card report-card" }, frame));
  return () => window.removeEventListener("resize", fit);
}
