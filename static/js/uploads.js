// A data set's upload: files dropped on the drop zone or chosen with the picker, each sent in its
// own request (so one refusal never stops the others) with its progress, then Switchyard's answer
// beside it: added, a new version, unchanged, or refused with the reason.
// Without this script the form still posts the chosen files and the page lists what happened.

const PARALLEL_UPLOADS = 3;

const form = document.querySelector("form[data-upload]");
const list = document.getElementById("upload-list");

if (form && list) {
  const zone = form.querySelector("[data-drop-zone]");
  const input = form.querySelector('input[type="file"]');
  const maxBytes = Number(form.dataset.maxBytes);
  const maxMb = form.dataset.maxMb;
  const queue = [];
  let running = 0;

  form.classList.add("upload-form--js");

  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    addFiles(input.files);
    input.value = "";
  });

  // The whole zone is a drop target; dragging over the page elsewhere does nothing.
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("is-dragging");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("is-dragging");
  });
  zone.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    zone.classList.remove("is-dragging");
    addFiles(event.dataTransfer.files);
  });
  // A file dropped just beside the zone must not replace the page with the file.
  window.addEventListener("dragover", (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  window.addEventListener("drop", (event) => {
    if (hasFiles(event) && !zone.contains(event.target)) event.preventDefault();
  });

  function hasFiles(event) {
    return Array.from(event.dataTransfer?.types || []).includes("Files");
  }

  function addFiles(files) {
    for (const file of Array.from(files || [])) {
      const item = uploadItem(file);
      list.hidden = false;
      list.prepend(item.element);
      if (file.size > maxBytes) {
        // Refused before sending: the server would refuse it too, after the whole wait.
        const size = (file.size / 1024 / 1024).toLocaleString(undefined, { maximumFractionDigits: 1 });
        item.finish(
          "refused",
          "Not added",
          `This file is ${size} MB; files of up to ${maxMb} MB can be added. ` +
            "Split it or save a smaller copy (for example with images compressed) and upload that.",
        );
        continue;
      }
      queue.push({ file, item });
    }
    pump();
  }

  function pump() {
    while (running < PARALLEL_UPLOADS && queue.length) {
      const { file, item } = queue.shift();
      running += 1;
      send(file, item).finally(() => {
        running -= 1;
        pump();
      });
    }
  }

  function send(file, item) {
    return new Promise((resolve) => {
      const body = new FormData();
      body.append("csrfmiddlewaretoken", form.querySelector('[name="csrfmiddlewaretoken"]').value);
      body.append("file", file, file.name);
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("Accept", "application/json");
      request.responseType = "json";
      item.state("sending", "Uploading", 0);
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) item.state("sending", "Uploading", event.loaded / event.total);
      });
      request.upload.addEventListener("load", () => item.state("checking", "Checking", 1));
      request.addEventListener("load", () => {
        const answer = request.response;
        if (!answer || typeof answer !== "object" || !("refused" in answer)) {
          item.finish(
            "refused",
            "Not added",
            request.status === 403
              ? "You may no longer add documents here."
              : "Switchyard did not answer as expected: reload the page and try this file again.",
          );
        } else if (answer.refused) {
          item.finish("refused", "Not added", answer.message);
        } else if (answer.outcome === "unchanged") {
          item.finish("unchanged", "Unchanged", answer.message);
        } else {
          const labels = { new_version: `Version ${answer.document.version} queued`, retried: "Queued again" };
          const label = labels[answer.outcome] || "Queued";
          item.finish("done", label, answer.message);
          document.body.dispatchEvent(new CustomEvent("documents-changed"));
        }
        resolve();
      });
      request.addEventListener("error", () => {
        item.finish("refused", "Not sent", "The connection broke off: check it and add this file again.");
        resolve();
      });
      request.send(body);
    });
  }

  function uploadItem(file) {
    const element = document.createElement("li");
    element.className = "upload-item";
    const head = document.createElement("div");
    head.className = "upload-item__head";
    const name = document.createElement("span");
    name.className = "upload-item__name";
    name.textContent = file.name;
    const size = document.createElement("span");
    size.className = "upload-item__size";
    size.textContent = humanSize(file.size);
    const badge = document.createElement("span");
    badge.className = "badge";
    head.append(name, size, badge);
    const progress = document.createElement("progress");
    progress.className = "upload-item__progress";
    progress.max = 1;
    progress.value = 0;
    progress.setAttribute("aria-label", `Upload of ${file.name}`);
    const message = document.createElement("p");
    message.className = "upload-item__message";
    element.append(head, progress, message);
    const badges = {
      waiting: "badge",
      sending: "badge badge--primary",
      checking: "badge badge--primary",
      done: "badge badge--success",
      unchanged: "badge",
      refused: "badge badge--danger",
    };

    function show(kind, label) {
      element.dataset.state = kind;
      element.className = `upload-item upload-item--${kind}`;
      badge.className = badges[kind];
      badge.textContent = label;
    }
    show("waiting", "Waiting");

    return {
      element,
      state(kind, label, fraction) {
        progress.value = fraction;
        show(kind, kind === "sending" ? `${label} ${Math.round(fraction * 100)}%` : label);
        if (kind === "checking") progress.removeAttribute("value");
      },
      finish(kind, label, text) {
        progress.remove();
        show(kind, label);
        message.textContent = text;
      },
    };
  }

  function humanSize(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }
}
