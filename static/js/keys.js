// The page that shows a new API key once: copy it with one click, select it all on focus.

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (an http:// origin other than localhost): the old way still works.
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.append(area);
    area.select();
    const done = document.execCommand("copy");
    area.remove();
    return done;
  }
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-from]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyFrom);
  if (!source) return;
  const copied = await copyText(source.value);
  const status = document.getElementById("copy-status");
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = copied ? button.dataset.copied : "Select it and copy";
  if (status) status.textContent = copied ? "The key is copied to the clipboard." : "";
  if (!copied) source.select();
  setTimeout(() => {
    button.textContent = original;
  }, 1800);
});

document.addEventListener("focusin", (event) => {
  if (event.target.matches("[data-select-on-focus]")) event.target.select();
});
