// Sending a file straight to S3 with a presigned POST: every field the API
// gave, then the file, as multipart form data. XMLHttpRequest rather than
// fetch because only it reports upload progress.

function s3Message(xhr) {
  // S3 answers errors as XML: <Error><Code>EntityTooLarge</Code><Message>...</Message></Error>
  const xml = xhr.responseXML;
  const code = xml && xml.querySelector("Code") ? xml.querySelector("Code").textContent : "";
  if (code === "EntityTooLarge") return "The file is larger than the upload limit.";
  if (code === "AccessDenied" || code === "ExpiredToken" || xhr.status === 403) {
    return "The upload was refused (the upload link may have expired). Try again.";
  }
  return `The upload failed${code ? ` (${code})` : ""}. Try again.`;
}

/**
 * Upload `file` with `upload` ({url, fields}). `onProgress(sent, total)` is
 * called as bytes leave; `signal` (AbortSignal) cancels. Resolves when S3
 * has stored the file.
 */
export function uploadFile(upload, file, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields || {})) form.append(name, value);
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    xhr.responseType = "document";
    xhr.upload.addEventListener("progress", (event) => {
      if (onProgress && event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(file.size, file.size);
        resolve();
      } else {
        reject(new Error(s3Message(xhr)));
      }
    });
    xhr.addEventListener("error", () => reject(new Error("The upload was interrupted. Check your connection and try again.")));
    xhr.addEventListener("abort", () => reject(new DOMException("The upload was cancelled.", "AbortError")));
    if (signal) signal.addEventListener("abort", () => xhr.abort());
    xhr.send(form);
  });
}
