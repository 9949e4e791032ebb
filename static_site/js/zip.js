// The photos inside a ZIP, unpacked in the browser: fflate's unzipSync
// (vendored, see js/vendor/) inflates only the entries named like photos;
// folders, hidden files and other files are listed, never unpacked. Each
// photo becomes a File, uploaded like a photo chosen one by one.
import { unzipSync } from "./vendor/fflate.js";
import { photoIdOf, photoTypeOf } from "./importplan.js";

/** Larger ZIPs are refused before reading (the whole file is read into memory). */
export const MAX_ZIP_BYTES = 1024 ** 3;

export class ZipProblem extends Error {}

/**
 * {photos: [{name, file}], ignored: [name]} of a ZIP's bytes (Uint8Array).
 * `name` is the entry's path inside the ZIP.
 */
export function photosInZip(bytes) {
  const ignored = [];
  let entries;
  try {
    entries = unzipSync(bytes, {
      filter: (entry) => {
        if (entry.name.endsWith("/")) return false; // a folder
        if (photoIdOf(entry.name) === null) {
          ignored.push(entry.name);
          return false;
        }
        return true;
      },
    });
  } catch (error) {
    throw new ZipProblem(`The ZIP file could not be read (${error.message}). Make it again, or choose the photos themselves.`);
  }
  const photos = Object.entries(entries).map(([name, data]) => {
    const base = name.split("/").pop();
    return { name, file: new File([data], base, { type: photoTypeOf(name) }) };
  });
  return { photos, ignored };
}

/** The same from a File the person chose. */
export async function readZipFile(file) {
  if (file.size > MAX_ZIP_BYTES) {
    throw new ZipProblem(`${file.name} is ${(file.size / 1024 ** 3).toFixed(1)} GB; ZIPs up to 1 GB can be read here. Split the photos into several ZIPs.`);
  }
  return photosInZip(new Uint8Array(await file.arrayBuffer()));
}
