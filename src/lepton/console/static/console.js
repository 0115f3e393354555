// The console's own script: the upload with a progress bar, and the CSRF header on htmx
// requests. No inline script exists anywhere, so the page's Content-Security-Policy can forbid it.
"use strict";

document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) event.detail.headers["X-CSRF-Token"] = meta.content;
});

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  if (!form) return;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = form.elements.file.files[0];
    const name = form.elements.name.value.trim();
    const target = form.elements.target.value.trim();
    const progress = document.getElementById("upload-progress");
    const status = document.getElementById("upload-status");
    const query = new URLSearchParams({ name: name, source_name: file.name });
    if (target) query.set("target", target);
    const request = new XMLHttpRequest();
    request.open("POST", "/datasets/upload?" + query.toString());
    request.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    progress.hidden = false;
    progress.value = 0;
    status.textContent = "Uploading " + file.name + " ...";
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
    });
    request.addEventListener("load", () => {
      if (request.status === 201) {
        progress.value = 100;
        status.textContent = "Profiled. Opening it ...";
        window.location.assign(request.getResponseHeader("Location"));
        return;
      }
      let message = "The upload failed (HTTP " + request.status + ").";
      try {
        const body = JSON.parse(request.responseText);
        message = body.error.message + " " + (body.error.fix || "");
      } catch (ignored) {
        // not a JSON error: keep the status line
      }
      status.textContent = message;
    });
    request.addEventListener("error", () => {
      status.textContent = "The upload could not reach the server.";
    });
    request.send(file);
  });
});
