/**
 * What codec a chosen recording holds, read from its headers in the browser
 * (the same boxes chalicelib/media.py reads on the server), so the upload page
 * can say before sending that a file will be converted, and roughly how long
 * that adds. Only a few small slices of the file are read, wherever its index is.
 */

const NAMES = { avc1: "h264", avc3: "h264", hvc1: "hevc", hev1: "hevc", vp09: "vp9",
  vp08: "vp8", av01: "av1", mp4v: "mpeg4" };
export const CODEC_NAMES = { h264: "H.264", hevc: "HEVC (H.265)", vp9: "VP9", vp8: "VP8",
  av1: "AV1", mpeg4: "MPEG-4 Part 2" };

async function bytes(file, from, to) {
  return new Uint8Array(await file.slice(from, to).arrayBuffer());
}

const ascii = (b, at, n = 4) => String.fromCharCode(...b.slice(at, at + n));
const u32 = (b, at) => ((b[at] << 24) >>> 0) + (b[at + 1] << 16) + (b[at + 2] << 8) + b[at + 3];

/** The moov box's payload, found by walking the top-level boxes; null if none. */
async function moov(file) {
  let at = 0;
  while (at + 8 <= file.size) {
    const head = await bytes(file, at, at + 16);
    let size = u32(head, 0);
    let headLength = 8;
    if (size === 1) {
      size = u32(head, 8) * 2 ** 32 + u32(head, 12);
      headLength = 16;
    } else if (size === 0) {
      size = file.size - at;
    }
    if (size < headLength || at + size > file.size) return null;
    if (ascii(head, 4) === "moov") {
      return size > 64 * 1024 * 1024 ? null : bytes(file, at + headLength, at + size);
    }
    at += size;
  }
  return null;
}

/** Children of a box payload: [type, start, end] of each. */
function* boxes(b, start, end) {
  let at = start;
  while (at + 8 <= end) {
    const size = u32(b, at);
    if (size < 8 || at + size > end) return;
    yield [ascii(b, at + 4), at + 8, at + size];
    at += size;
  }
}

const child = (b, [start, end], type) => {
  for (const [found, s, e] of boxes(b, start, end)) if (found === type) return [s, e];
  return null;
};

/**
 * `{container, codec, durationS}` of `file`, or null when its headers cannot be
 * read here (the server then decides). `codec` is "h264", "hevc", ... .
 */
export async function probeVideo(file) {
  try {
    const head = await bytes(file, 0, 64);
    if (ascii(head, 0) === "RIFF") return { container: "avi", codec: null, durationS: null };
    if (ascii(head, 0) === "\x1a\x45\xdf\xa3") {
      return { container: ascii(head, 0, 64).includes("webm") ? "webm" : "mkv", codec: null, durationS: null };
    }
    const container = ascii(head, 4) === "ftyp" && ascii(head, 8) !== "qt  " ? "mp4" : "mov";
    const m = await moov(file);
    if (!m) return null;
    let durationS = null;
    const mvhd = child(m, [0, m.length], "mvhd");
    if (mvhd) {
      const v1 = m[mvhd[0]] === 1;
      const scale = v1 ? u32(m, mvhd[0] + 20) : u32(m, mvhd[0] + 12);
      const length = v1 ? u32(m, mvhd[0] + 24) * 2 ** 32 + u32(m, mvhd[0] + 28) : u32(m, mvhd[0] + 16);
      durationS = scale ? length / scale : null;
    }
    for (const [type, s, e] of boxes(m, 0, m.length)) {
      if (type !== "trak") continue;
      const mdia = child(m, [s, e], "mdia");
      const hdlr = mdia && child(m, mdia, "hdlr");
      if (!hdlr || ascii(m, hdlr[0] + 8) !== "vide") continue;
      const stbl = child(m, child(m, mdia, "minf") || [0, 0], "stbl");
      const stsd = stbl && child(m, stbl, "stsd");
      if (!stsd) return null;
      const fourcc = ascii(m, stsd[0] + 12);
      return { container, codec: NAMES[fourcc] || fourcc.trim(), durationS };
    }
    return { container, codec: null, durationS };
  } catch {
    return null;
  }
}

/** True when the face search reads the file as it is (H.264 in MP4 or MOV). */
export function searchable(probe) {
  return Boolean(probe && probe.codec === "h264" && (probe.container === "mp4" || probe.container === "mov"));
}

/**
 * A sentence for a file that will be converted first, or null. The time is
 * rough: a quarter of the recording's length at most (MediaConvert is usually faster).
 */
export function conversionNote(probe) {
  if (!probe || searchable(probe)) return null;
  const kind = { webm: "WebM", mkv: "MKV", avi: "AVI", mov: "MOV", mp4: "MP4" }[probe.container] || probe.container;
  const what = probe.codec ? `${CODEC_NAMES[probe.codec] || probe.codec} video`
    : `${/^[AEFHILMNORSX]/.test(kind) ? "an" : "a"} ${kind} file`;
  const minutes = probe.durationS ? Math.max(1, Math.ceil(probe.durationS / 60 / 4)) : null;
  const extra = minutes ? `about ${minutes} minute${minutes === 1 ? "" : "s"} at most` : "a few minutes";
  return `This recording is ${what}: Rollcall converts it to H.264 before the face search, which adds ${extra}.`;
}
