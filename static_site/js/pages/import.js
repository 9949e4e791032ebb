// Importing many people at once: a CSV of student_id, full_name (and email)
// with their photos (files or one ZIP, named by student ID). The page shows
// what will happen before anything is sent, then registers row by row (4 at
// once) with a progress bar, and ends with a downloadable outcome file.
// Started from a class (#/classes/<id>/import), everyone imported or already
// registered is also enrolled in that class.
import { h, clear, fill } from "../dom.js";
import * as api from "../api.js";
import * as auth from "../auth.js";
import { pageHeader, notice, setBusy, spinner } from "../ui.js";
import { uploadPhoto } from "../photo.js";
import { saveBlob, safeName } from "../downloads.js";
import { decodeText } from "../csv.js";
import { readRoster, planImport } from "../importplan.js";
import { readZipFile } from "../zip.js";
import { importRow, runPool, progress, formatTimeLeft, outcomeCsv, CONCURRENCY,
  REGISTERED, ALREADY, FAILED } from "../importrun.js";

export async function render(main, { classId } = {}) {
  let className = null;
  if (classId) {
    try {
      const answer = await api.get(`/classes/${api.seg(classId)}`);
      className = (answer.class && answer.class.name) || classId;
    } catch (error) {
      if (api.isSignedOut(error)) return undefined;
      className = classId; // shown as is; enrolling will say what is wrong
    }
  }
  const state = { csv: null, photos: [], plan: null, running: false, stop: false };
  const back = classId ? { href: `#/classes/${api.seg(classId)}`, label: `Back to ${className}` }
    : { href: "#/students", label: "All people" };
  const previewBox = h("div", { class: "import-preview", "aria-live": "polite" });
  const runBox = h("div", { class: "import-run" });

  const csvZone = fileZone({
    title: "The spreadsheet", text: "Drop the CSV here", hint: "Columns student_id, full_name, and email if you have it. Save from Excel as “CSV UTF-8”.",
    accept: ".csv,text/csv,text/plain", multiple: false, label: "CSV file",
    onChoose: (files) => { state.csv = files.length ? files[0].file : null; replan(); },
  });
  const photoZone = fileZone({
    title: "The photos", text: "Drop the photos, their folder or one ZIP here", hint: "Each named by the student ID: S-1001.jpg, S-1002.png… (JPEG or PNG; folders in the ZIP are fine).",
    accept: "image/jpeg,image/png,.jpg,.jpeg,.png,.zip,application/zip", multiple: true, label: "Photos or ZIP", folders: true,
    onChoose: (files) => { state.photos = files; replan(); },
  });

  let readings = 0;
  async function replan() {
    if (state.running) return;
    const reading = ++readings; // a later choice wins over a slower, earlier read
    clear(runBox);
    if (!state.csv) {
      fill(previewBox, state.photos.length ? h("p", { class: "muted" }, "Now choose the CSV file.") : null);
      return;
    }
    fill(previewBox, h("p", { class: "muted" }, "Reading the files…"));
    try {
      const { text, encoding } = decodeText(await state.csv.arrayBuffer());
      const roster = readRoster(text);
      if (reading !== readings) return;
      if (roster.error) {
        fill(previewBox, notice("error", "The CSV cannot be imported", h("p", {}, roster.error)));
        return;
      }
      const { photos, ignored } = await gatherPhotos(state.photos);
      if (reading !== readings) return;
      state.plan = planImport(roster.rows, photos);
      state.plan.ignoredFiles.push(...ignored);
      state.plan.encoding = encoding;
      drawPreview();
    } catch (error) {
      if (reading === readings) fill(previewBox, notice("error", "The files could not be read", h("p", {}, error.message)));
    }
  }

  function drawPreview() {
    const plan = state.plan;
    const start = h("button", { type: "button", class: "btn btn--primary btn--large", disabled: !plan.ready.length },
      plan.ready.length === 1 ? "Import 1 person" : `Import ${plan.ready.length} people`);
    start.addEventListener("click", () => run(start));
    const other = plan.badRows;
    fill(previewBox,
      h("h2", { class: "section-title" }, "Before anything is sent"),
      plan.encoding !== "utf-8" ? notice("info", "The CSV is not UTF-8",
        h("p", {}, "It was read as Windows-1252 (Excel’s plain “CSV”). Check that accented names look right, or save it as “CSV UTF-8”.")) : null,
      h("div", { class: "stats import-stats" },
        stat("Ready to import", plan.ready.length, "present"),
        stat("Rows without a photo", plan.noPhoto.length, plan.noPhoto.length && "absent"),
        stat("Photos without a row", plan.unmatchedPhotos.length, plan.unmatchedPhotos.length && "absent"),
        stat("Duplicate IDs", plan.duplicateIds.length, plan.duplicateIds.length && "absent"),
        stat("Bad IDs", plan.badIds.length, plan.badIds.length && "absent")),
      problemList("Rows without a photo", plan.noPhoto.map(rowText), "no-photo"),
      problemList("Photos without a row", plan.unmatchedPhotos, "unmatched"),
      problemList("Duplicate IDs", plan.duplicateIds.map((d) => `${d.student_id} on lines ${d.lines.join(", ")}`), "duplicates"),
      problemList("Bad IDs", plan.badIds.map((row) => `line ${row.line}: “${row.student_id}” (${row.problem.reason})`), "bad-ids"),
      problemList("Other problems", other.map((row) => `${rowText(row)}: ${row.problem.reason}`), "other"),
      problemList("Not photos (left out)", plan.ignoredFiles, "ignored", false),
      readyTable(plan.ready),
      h("div", { class: "import-start" }, start,
        h("p", { class: "muted" }, "Rows with a problem are not sent; the outcome file lists them with the reason. ",
          "People already registered with the same ID and name are skipped, so running an import again finishes it.")));
  }

  async function run(startButton) {
    const plan = state.plan;
    const rows = plan.ready;
    state.running = true;
    state.stop = false;
    for (const zone of [csvZone, photoZone]) zone.input.disabled = true;
    setBusy(startButton, true, "Importing…");
    const statusCells = new Map();
    const bar = h("progress", { class: "progress__bar", max: rows.length, value: 0, "aria-label": "Import progress" });
    const counts = h("span", { class: "progress__percent" });
    const detail = h("span", { class: "progress__detail" });
    const stopButton = h("button", { type: "button", class: "btn btn--ghost btn--small" }, "Stop after these");
    stopButton.addEventListener("click", () => { state.stop = true; setBusy(stopButton, true, "Stopping…"); });
    const table = h("table", { class: "table import-rows" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "ID"), h("th", { scope: "col" }, "Name"),
        h("th", { scope: "col" }, "Outcome"))),
      h("tbody", {}, rows.map((row) => {
        const cell = h("td", { class: "import-rows__status", "data-label": "Outcome" }, "Waiting");
        statusCells.set(row, cell);
        return h("tr", {}, h("td", { class: "cell-id", "data-label": "ID" }, row.student_id),
          h("td", { "data-label": "Name" }, row.full_name), cell);
      })));
    fill(runBox, h("section", { class: "card panel", "aria-labelledby": "import-run-title" },
      h("h2", { class: "panel__title", id: "import-run-title" }, "Importing"),
      h("div", { class: "progress import-progress", role: "group", "aria-label": "Import" },
        h("div", { class: "progress__row" }, h("span", { class: "progress__label" }, "Registering"), counts), bar, detail),
      h("div", { class: "form-actions" }, stopButton),
      h("div", { class: "table-scroll" }, table)));
    runBox.scrollIntoView({ block: "start" });
    window.addEventListener("beforeunload", holdPage);

    const startedAt = Date.now();
    let done = 0;
    let failed = 0;
    const show = () => {
      const p = progress({ total: rows.length, done, failed, startedAt, now: Date.now() });
      bar.value = done + failed;
      counts.textContent = `${done + failed} of ${rows.length}`;
      detail.textContent = [`${p.done} done`, `${p.failed} failed`, `${p.left} left`, formatTimeLeft(p.secondsLeft)]
        .filter(Boolean).join(" · ");
    };
    show();
    const ticker = setInterval(show, 1000);
    const steps = {
      find: async (id) => {
        try {
          return (await api.get(`/students/${api.seg(id)}`)).student;
        } catch (error) {
          if (error.status === 404) return null;
          throw error;
        }
      },
      upload: uploadPhoto,
      register: async (body) => (await api.post("/students", classId ? { ...body, class_id: classId } : body)).student,
      setEmail: (id, email) => api.patch(`/students/${api.seg(id)}`, { email }),
      enrol: classId ? async (id) => {
        try {
          const answer = await api.post(`/classes/${api.seg(classId)}/students`, { student_id: id });
          return { added: answer.result === "added", full_name: answer.full_name };
        } catch (error) {
          if (error.status === 404 && error.code === "unknown_student") return null;
          throw error;
        }
      } : null,
      unenrol: (id) => api.del(`/classes/${api.seg(classId)}/students/${api.seg(id)}`),
    };
    let signedOut = false;
    try {
      await runPool(rows, (row) => {
        fill(statusCells.get(row), h("span", { class: "with-spinner" }, spinner("Working"), "Working…"));
        return importRow(row, steps);
      }, {
        concurrency: CONCURRENCY,
        shouldStop: () => state.stop,
        onSettled(row, result) {
          row.result = result;
          if (result.outcome === FAILED) failed += 1; else done += 1;
          fill(statusCells.get(row), outcomeBadge(result), result.reason ? h("span", { class: "import-rows__reason" }, result.reason) : null);
          show();
        },
      });
    } catch (error) {
      signedOut = api.isSignedOut(error);
      if (!signedOut) showStopped(runBox, error);
    } finally {
      clearInterval(ticker);
      window.removeEventListener("beforeunload", holdPage);
      state.running = false;
      for (const zone of [csvZone, photoZone]) zone.input.disabled = false;
      setBusy(startButton, false);
    }
    if (signedOut) return;
    show();
    stopButton.remove();
    runBox.querySelector(".section-summary")?.remove();
    runBox.prepend(summary(plan, classId ? className : null));
  }

  fill(main,
    pageHeader(className ? `Import people into ${className}` : "Import people", {
      subtitle: "Register a whole class from a spreadsheet and a folder of photos.", back }),
    !classId && !auth.isAdmin() ? notice("info", "Import from your class’s page",
      h("p", {}, "A teacher sees the people of their own classes only. Open the class and choose "
        + "“Import people” there, so everyone imported is enrolled in it.")) : null,
    h("section", { class: "card panel import-files", "aria-label": "Files" },
      h("div", { class: "import-files__zones" }, csvZone.element, photoZone.element)),
    previewBox,
    runBox);
  return () => { state.stop = true; window.removeEventListener("beforeunload", holdPage); };
}

/** The photos chosen ([{file, path}]): image files as they are, ZIPs unpacked. */
async function gatherPhotos(chosen) {
  const photos = [];
  const ignored = [];
  for (const { file, path } of chosen) {
    if (/\.zip$/i.test(file.name) || file.type === "application/zip" || file.type === "application/x-zip-compressed") {
      const inside = await readZipFile(file);
      photos.push(...inside.photos);
      ignored.push(...inside.ignored.map((name) => `${path}: ${name}`));
    } else {
      photos.push({ name: path, file });
    }
  }
  return { photos, ignored };
}

function fileZone({ title, text, hint, accept, multiple, label, onChoose, folders = false }) {
  const input = h("input", { type: "file", accept, multiple, class: "dropzone__input", "aria-label": label });
  const chosen = h("span", { class: "dropzone__file" });
  const zone = h("div", { class: "dropzone import-zone" },
    h("p", { class: "dropzone__text" }, h("strong", {}, text), " or choose"),
    h("p", { class: "dropzone__hint" }, hint), chosen, input);
  // Each choice is [{file, path}]: path is where the file sat in a chosen or dropped folder.
  const choose = (list) => {
    zone.classList.toggle("dropzone--chosen", list.length > 0);
    chosen.textContent = list.length === 1 ? list[0].path : list.length ? `${list.length} files` : "";
    onChoose(list);
  };
  const fromInput = (el) => [...el.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
  input.addEventListener("change", () => choose(fromInput(input)));
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => { event.preventDefault(); zone.classList.add("dropzone--over"); });
  }
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("dropzone--over"));
  zone.addEventListener("drop", async (event) => {
    event.preventDefault();
    if (input.disabled) return;
    const dropped = await droppedFiles(event.dataTransfer);
    if (dropped.length) choose(dropped);
  });
  let folderButton = null;
  if (folders) {
    const folderInput = h("input", { type: "file", webkitdirectory: true, hidden: true, "aria-label": "A folder of photos" });
    folderInput.addEventListener("change", () => choose(fromInput(folderInput)));
    folderButton = h("button", { type: "button", class: "btn btn--ghost btn--small import-zone__folder" }, "Choose a whole folder");
    folderButton.addEventListener("click", () => folderInput.click());
    folderButton = [folderButton, folderInput];
  }
  return { input, element: h("div", { class: "import-zone__wrap" }, h("h2", { class: "panel__title" }, title), zone, folderButton) };
}

/** Files dropped, folders walked through (their files with their paths). */
async function droppedFiles(transfer) {
  const entries = [...(transfer.items || [])].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...transfer.files].map((file) => ({ file, path: file.name }));
  const found = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      found.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) { // readEntries answers a batch at a time, then an empty one
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
  };
  for (const entry of entries) await walk(entry);
  return found;
}

function stat(label, value, kind) {
  return h("div", { class: ["stat", kind && `stat--${kind}`], dataset: { stat: label } },
    h("span", { class: "stat__value" }, String(value)), h("span", { class: "stat__label" }, label));
}

function rowText(row) {
  return `line ${row.line}: ${row.student_id || "(no ID)"} ${row.full_name || ""}`.trim();
}

function problemList(title, items, key, open = true) {
  if (!items.length) return null;
  return h("details", { class: "card import-problems", open, dataset: { problems: key } },
    h("summary", {}, `${title} (${items.length})`),
    h("ul", {}, items.map((item) => h("li", {}, item))));
}

function readyTable(rows) {
  if (!rows.length) return null;
  return h("details", { class: "card import-problems", dataset: { problems: "ready" } },
    h("summary", {}, `Ready to import (${rows.length})`),
    h("div", { class: "table-scroll" }, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), h("th", { scope: "col" }, "ID"),
        h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Email"), h("th", { scope: "col" }, "Photo"))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        h("td", { class: "num", "data-label": "Line" }, String(row.line)),
        h("td", { class: "cell-id", "data-label": "ID" }, row.student_id),
        h("td", { "data-label": "Name" }, row.full_name), h("td", { "data-label": "Email" }, row.email),
        h("td", { "data-label": "Photo" }, row.photo.name)))))));
}

function outcomeBadge(result) {
  const kind = result.outcome === REGISTERED ? "present" : result.outcome === ALREADY ? "manual" : "absent";
  const label = result.outcome === REGISTERED ? "Registered" : result.outcome === ALREADY ? "Already registered" : "Failed";
  return h("span", { class: ["badge", `badge--${kind}`] }, label);
}

function summary(plan, className) {
  const sent = plan.rows.filter((row) => row.result);
  const count = (outcome) => sent.filter((row) => row.result.outcome === outcome).length;
  const registered = count(REGISTERED);
  const already = count(ALREADY);
  const failed = count(FAILED);
  const notSent = plan.rows.length - sent.length;
  const download = h("button", { type: "button", class: "btn btn--secondary" }, "Download the outcome (CSV)");
  download.addEventListener("click", () => {
    const stamp = new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-");
    saveBlob(new Blob([outcomeCsv(plan.rows)], { type: "text/csv;charset=utf-8" }),
      `${safeName("import-outcome", className, stamp)}.csv`);
  });
  const parts = [`${registered} registered`, `${already} already registered`, `${failed} failed`, `${notSent} not sent`];
  const allGood = failed === 0 && notSent === 0;
  return h("div", { class: "section-summary" },
    notice(allGood ? "info" : "error", "Import finished",
      h("p", { class: "import-summary" }, `${parts.join(", ")}.`,
        className ? ` Everyone imported or already registered is in ${className}.` : ""),
      allGood ? null : h("p", {}, "The outcome file says why for each line. Fix those lines (a clearer photo, the right ID), then import the same files again: people already registered are skipped."),
      h("div", { class: "form-actions" }, download)));
}

function showStopped(box, error) {
  box.prepend(notice("error", "The import stopped", h("p", {}, error.message)));
}

// Closing the tab stops the import (it can be finished by running it again).
function holdPage(event) {
  event.preventDefault();
  event.returnValue = "";
}
