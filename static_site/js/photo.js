// Choosing a face photo: type check, an instant preview, and the upload
// through the API's presigned POST. Answers the photo_key the API wants.
import { h } from "./dom.js";
import * as api from "./api.js";
import { uploadFile } from "./s3upload.js";
import { formatBytes } from "./format.js";

const PHOTO_TYPES = { jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png" };

export function photoType(file) {
  if (file.type === "image/jpeg" || file.type === "image/png") return file.type;
  return PHOTO_TYPES[(file.name.split(".").pop() || "").toLowerCase()] || null;
}

/** A file input with a preview; `.file()` is the chosen file, `.reset()` clears. */
export function photoPicker() {
  const input = h("input", { type: "file", accept: "image/jpeg,image/png", class: "photo-picker__input" });
  const preview = h("img", { class: "photo-picker__preview", alt: "Preview of the chosen photo", hidden: true });
  const placeholder = h("span", { class: "photo-picker__placeholder", "aria-hidden": "true" });
  const frame = h("div", { class: "photo-picker__frame" }, placeholder, preview);
  let url = null;
  input.addEventListener("change", () => {
    if (url) URL.revokeObjectURL(url);
    url = null;
    const file = input.files[0];
    if (file && photoType(file)) {
      url = URL.createObjectURL(file);
      preview.src = url;
      preview.hidden = false;
      placeholder.hidden = true;
    } else {
      preview.removeAttribute("src");
      preview.hidden = true;
      placeholder.hidden = false;
    }
  });
  return {
    input, frame,
    file: () => input.files[0] || null,
    reset() {
      input.value = "";
      input.dispatchEvent(new Event("change"));
    },
  };
}

/** Check the file, get a presigned POST, upload: the stored photo's key. */
export async function uploadPhoto(file) {
  const contentType = photoType(file);
  if (!contentType) {
    throw new api.ApiError(400, "bad_photo", "Choose a JPEG or PNG photo.", { field: "photo" });
  }
  const answer = await api.post("/uploads/photo", { content_type: contentType });
  if (answer.max_bytes && file.size > answer.max_bytes) {
    throw new api.ApiError(413, "too_large", `The photo is ${formatBytes(file.size)}; the limit is ${formatBytes(answer.max_bytes)}. Choose a smaller photo.`, { field: "photo" });
  }
  try {
    await uploadFile(answer.upload, file);
  } catch (error) {
    throw new api.ApiError(0, "upload_failed", error.message, { field: "photo" });
  }
  return answer.photo_key;
}
