// CSV as spreadsheets write it, in and out. Reading: UTF-8 with or without a
// byte-order mark (Windows-1252 when the bytes are not UTF-8, as Excel's
// plain "CSV" format is), comma, semicolon or tab chosen from the first line
// (or Excel's "sep=;" line), quoted fields holding separators, quotes ("")
// and line breaks, CRLF/LF/CR line ends. Writing: UTF-8 with a BOM, every
// field quoted when needed, and text starting with = + - @ prefixed with '
// so a spreadsheet never runs it as a formula (as the API's exports do).

const SEPARATORS = [",", ";", "\t"];

/** Text of a file's bytes: UTF-8 (BOM dropped), else Windows-1252. */
export function decodeText(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  try {
    return { text: stripBom(new TextDecoder("utf-8", { fatal: true }).decode(data)), encoding: "utf-8" };
  } catch {
    return { text: new TextDecoder("windows-1252").decode(data), encoding: "windows-1252" };
  }
}

function stripBom(text) {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The separator the header line uses most, outside quotes (comma on a tie). */
export function detectSeparator(text) {
  const counts = new Map(SEPARATORS.map((sep) => [sep, 0]));
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === "\n" || ch === "\r")) break;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch) + 1);
  }
  let best = ",";
  for (const sep of SEPARATORS) if (counts.get(sep) > counts.get(best)) best = sep;
  return best;
}

/**
 * Records of a CSV text: [{line, fields}], `line` being where the record
 * starts (1-based, counting the lines of the file). Blank lines are skipped.
 */
export function parseCsv(input, separator) {
  let text = stripBom(String(input));
  let lineOffset = 0;
  const sepLine = /^sep=(.)\r?\n?/i.exec(text);
  if (sepLine) {
    separator = separator || sepLine[1];
    text = text.slice(sepLine[0].length);
    lineOffset = 1;
  }
  const sep = separator || detectSeparator(text);
  const records = [];
  let fields = [];
  let field = "";
  let quoted = false;
  let wasQuoted = false;
  let line = 1 + lineOffset;
  let start = line;
  const endField = () => {
    fields.push(wasQuoted ? field : field.trim());
    field = "";
    wasQuoted = false;
  };
  const endRecord = () => {
    endField();
    if (fields.some((value) => value !== "")) records.push({ line: start, fields });
    fields = [];
  };
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 1; } else quoted = false;
      } else {
        if (ch === "\n" || (ch === "\r" && text[i + 1] !== "\n")) line += 1;
        field += ch;
      }
    } else if (ch === '"' && field.trim() === "") {
      field = "";
      quoted = true;
      wasQuoted = true;
    } else if (ch === sep) {
      endField();
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i += 1;
      endRecord();
      line += 1;
      start = line;
    } else if (!(wasQuoted && (ch === " " || ch === "\t"))) {
      field += ch; // (spaces after a closing quote are dropped)
    }
  }
  endRecord();
  return records;
}

/** One CSV cell: formula-safe, quoted when it holds a separator, quote or line break. */
export function csvCell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@]/.test(text)) text = `'${text}`;
  return /[",;\r\n\t]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A CSV file's text (BOM first, CRLF line ends) from a header and rows of cells. */
export function toCsv(header, rows) {
  return `\ufeff${[header, ...rows].map((row) => row.map(csvCell).join(",")).join("\r\n")}\r\n`;
}
