// A picture of when each person was seen during the video: one lane per
// person, a faint bar from first to last sighting and a mark per sighting
// (row.seen_ms). Drawn as SVG at the container's width; names are text nodes.
import { s, clear } from "./dom.js";
import { formatMs, seenTimes } from "./format.js";

const LANE = 30;
const TOP = 8;
const AXIS = 28;
// Narrower than this, each name goes on its own line above its lane, with the
// whole width for it and for the plot (beside the plot it was cut short).
const STACK_BELOW = 520;
const STACKED_LANE = 46;

// Sightings nearer than this (pixels) are one bar on narrow screens.
const BAR_GAP = 10;

/** Sorted positions grouped into [first, last] runs whose neighbours are within `gap`. */
export function runs(positions, gap) {
  const sorted = [...positions].sort((a, b) => a - b);
  const out = [];
  for (const p of sorted) {
    const last = out.at(-1);
    if (last && p - last[1] <= gap) last[1] = p;
    else out.push([p, p]);
  }
  return out;
}

function niceStep(totalMs, width) {
  const targetTicks = Math.max(2, Math.floor(width / 90));
  const raw = totalMs / targetTicks;
  const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map((sec) => sec * 1000);
  return steps.find((step) => step >= raw) || 3600_000;
}

function shorten(name, max) {
  return name.length > max ? `${name.slice(0, max - 1)}…` : name;
}

/** Where the axis ends: the last sighting rounded up a little (not a whole step). */
export function axisEnd(endMs, step) {
  const unit = step <= 10_000 ? 1000 : step <= 60_000 ? 5000 : step <= 600_000 ? 30_000 : 60_000;
  return Math.max(unit, Math.ceil(endMs / unit) * unit);
}

/** Draw `rows` (attendance rows with seen_ms) into `container`. */
export function drawTimeline(container, rows) {
  const seen = rows.filter((row) => Array.isArray(row.seen_ms) && row.seen_ms.length);
  clear(container);
  if (!seen.length) return false;
  const width = Math.max(280, container.clientWidth || 800);
  const stacked = width < STACK_BELOW;
  const lane = stacked ? STACKED_LANE : LANE;
  const labelWidth = stacked ? 0 : Math.min(190, Math.round(width * 0.3));
  const plotLeft = stacked ? 16 : labelWidth + 12;
  const plotWidth = width - plotLeft - 22; // room for the last tick label
  const endMs = Math.max(1000, ...seen.flatMap((row) => [...row.seen_ms, row.last_seen_ms || 0]));
  const step = niceStep(endMs, plotWidth);
  const totalMs = axisEnd(endMs, step);
  const x = (ms) => plotLeft + (plotWidth * ms) / totalMs;
  const height = TOP + seen.length * lane + AXIS;
  // Ticks every step, and one at the end unless it would crowd the last one.
  const ticks = [];
  for (let t = 0; t < totalMs; t += step) ticks.push(t);
  if (ticks.length > 1 && x(totalMs) - x(ticks.at(-1)) < 44) ticks.pop();
  ticks.push(totalMs);

  const svg = s("svg", { class: "timeline__svg", width, height, viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": `When each person was seen, over ${formatMs(totalMs)} of video` });
  for (const t of ticks) {
    svg.append(
      s("line", { class: "timeline__grid", x1: x(t), x2: x(t), y1: TOP, y2: TOP + seen.length * lane }),
      s("text", { class: "timeline__tick", x: x(t), y: height - 8, "text-anchor": "middle" }, formatMs(t)));
  }
  seen.forEach((row, i) => {
    const mid = stacked ? TOP + i * lane + 31 : TOP + i * lane + lane / 2;
    const kind = row.status === "PRESENT" ? "present" : "absent";
    const name = stacked
      ? s("text", { class: "timeline__name", x: plotLeft - 4, y: TOP + i * lane + 14, "text-anchor": "start" },
        shorten(row.full_name || row.student_id, Math.floor((width - plotLeft) / 7.6)))
      : s("text", { class: "timeline__name", x: labelWidth, y: mid + 4, "text-anchor": "end" },
        shorten(row.full_name || row.student_id, Math.floor(labelWidth / 8.2)));
    const group = s("g", { class: `timeline__lane timeline__lane--${kind}`, dataset: { studentId: row.student_id } },
      s("title", {}, `${row.full_name}: ${seenTimes(row.sightings ?? row.seen_ms.length)}, `
        + `from ${formatMs(row.first_seen_ms ?? row.seen_ms[0])} to ${formatMs(row.last_seen_ms ?? row.seen_ms.at(-1))}`),
      name);
    const first = Math.min(...row.seen_ms);
    const last = Math.max(...row.seen_ms);
    group.append(s("rect", { class: "timeline__span", x: x(first) - 3, y: mid - 7,
      width: Math.max(6, x(last) - x(first) + 6), height: 14, rx: 7 }));
    if (stacked) {
      // On a phone the dots would run into a blur: sightings closer than a
      // few pixels merge into one bar.
      for (const [from, to] of runs(row.seen_ms.map(x), BAR_GAP)) {
        group.append(s("rect", { class: "timeline__bar", x: from - 3, y: mid - 5,
          width: Math.max(6, to - from + 6), height: 10, rx: 3 }));
      }
    } else {
      for (const ms of row.seen_ms) {
        // data-ms: a click on a sighting shows its face (js/evidence.js).
        group.append(s("circle", { class: "timeline__mark", cx: x(ms), cy: mid, r: 4, dataset: { ms: String(ms) } }));
      }
    }
    svg.append(group);
  });
  container.append(svg);
  return true;
}
