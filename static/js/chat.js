// The chat page: streamed answers over a POSTed fetch (Server-Sent Events parsed here, since
// EventSource cannot POST), Markdown rendered with marked and sanitized with DOMPurify before it
// touches the page, code highlighted with highlight.js, and the small behaviours around them.
// marked, DOMPurify and hljs are the vendored browser builds, loaded with `defer` before this
// module runs.

import { copyText } from "./copy.js";

const root = document.getElementById("chat");
const { marked, DOMPurify, hljs } = window;

const log = document.getElementById("chat-log");
const form = document.getElementById("composer");
const input = document.getElementById("composer-input");
const sendButton = form?.querySelector("[data-send]");
const stopButton = form?.querySelector("[data-stop]");
const statusRegion = document.getElementById("chat-status");
const budgetBanner = document.getElementById("budget-banner");

const state = {
  conversationId: root?.dataset.conversationId || null,
  streamUrl: root?.dataset.streamUrl || null,
  regenerateUrl: root?.dataset.regenerateUrl || null,
  controller: null,
};

/* Markdown ------------------------------------------------------------------------------- */

const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// Raw HTML in an answer is shown as text, not interpreted: a model that writes `<div>` without
// backticks means the characters. DOMPurify below is the guarantee; this keeps answers readable.
marked.use({
  gfm: true,
  breaks: false,
  renderer: {
    html({ text }) {
      return escapeHtml(text);
    },
  },
});

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const SANITIZE = { USE_PROFILES: { html: true }, FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"], FORBID_ATTR: ["style"] };

function renderMarkdown(target, markdown) {
  const html = marked.parse(markdown);
  target.innerHTML = DOMPurify.sanitize(html, SANITIZE);
  decorateCodeBlocks(target);
}

// A grounded answer's [n] become links to its sources (the viewer at the cited page). `sources`
// maps a number to { url, label }; text inside code is left alone.
function linkCitations(target, sources) {
  if (!sources || !sources.size) return;
  const walker = document.createTreeWalker(target, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest("code, pre, a") || !/\[\d{1,3}\]/.test(node.nodeValue) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parts = node.nodeValue.split(/(\[\d{1,3}\])/);
    const fragment = document.createDocumentFragment();
    for (const part of parts) {
      const number = /^\[(\d{1,3})\]$/.exec(part)?.[1];
      const source = number && sources.get(number);
      if (!source) {
        if (part) fragment.append(part);
        continue;
      }
      const link = document.createElement(source.url ? "a" : "span");
      link.className = "citation";
      link.textContent = part;
      link.title = source.label;
      link.dataset.citation = number;
      if (source.url) {
        link.href = source.url;
        link.target = "_blank";
        link.rel = "noopener";
      }
      fragment.append(link);
    }
    node.replaceWith(fragment);
  }
}

function sourcesFromList(list) {
  const sources = new Map();
  list?.querySelectorAll("[data-source-number]").forEach((item) => {
    sources.set(item.dataset.sourceNumber, { url: item.dataset.url, label: item.dataset.label });
  });
  return sources;
}

function sourceLabel(source) {
  return source.page ? `${source.document_name}, page ${source.page}` : source.document_name;
}

// The list under an answer that has just streamed; the page renders the same for a saved one.
function appendSources(answer, citations) {
  if (!citations || !citations.length) return;
  const departments = [...new Set(citations.map((c) => c.department).filter(Boolean))];
  const whose = departments.map((d) => `${d}’s`);
  const section = document.createElement("section");
  section.className = "chat-sources";
  section.dataset.sources = "";
  section.setAttribute("aria-label", "Sources");
  const title = document.createElement("h2");
  title.className = "chat-sources__title";
  title.textContent = "Sources ";
  const from = document.createElement("span");
  from.className = "chat-sources__whose";
  const joined = whose.length > 1 ? `${whose.slice(0, -1).join(", ")} and ${whose[whose.length - 1]}` : whose.join("");
  from.textContent = `· from ${joined} documents`;
  title.append(from);
  const list = document.createElement("ol");
  list.className = "chat-sources__list";
  for (const source of citations) {
    const item = document.createElement("li");
    item.className = "chat-source";
    item.dataset.sourceNumber = source.number;
    item.dataset.url = source.url || "";
    item.dataset.label = sourceLabel(source);
    const number = document.createElement("span");
    number.className = "chat-source__number";
    number.textContent = `[${source.number}]`;
    const body = document.createElement("span");
    body.className = "chat-source__body";
    const documentName = document.createElement(source.url ? "a" : "span");
    documentName.className = "chat-source__document";
    documentName.textContent = source.document_name;
    if (source.url) {
      documentName.href = source.url;
      documentName.target = "_blank";
      documentName.rel = "noopener";
    }
    body.append(documentName);
    if (source.page) {
      const page = document.createElement("span");
      page.className = "chat-source__page";
      page.textContent = `, page ${source.page}`;
      body.append(page);
    }
    if (source.heading) {
      const heading = document.createElement("span");
      heading.className = "chat-source__heading";
      heading.textContent = ` · ${source.heading}`;
      body.append(heading);
    }
    const dataSet = document.createElement("span");
    dataSet.className = "chat-source__data-set";
    dataSet.textContent = `${source.data_set} · ${source.department}`;
    body.append(dataSet);
    if (source.quote) {
      const quote = document.createElement("q");
      quote.className = "chat-source__quote";
      quote.textContent = source.quote;
      body.append(quote);
    }
    item.append(number, body);
    list.append(item);
  }
  section.append(title, list);
  answer.querySelector(".chat-message__actions").before(section);
}

function highlight(target) {
  target.querySelectorAll("pre code").forEach((code) => {
    if (code.dataset.highlighted) return;
    const language = [...code.classList].find((c) => c.startsWith("language-"))?.slice(9);
    if (language && !hljs.getLanguage(language)) code.classList.remove(`language-${language}`);
    hljs.highlightElement(code);
  });
}

function decorateCodeBlocks(target) {
  target.querySelectorAll("pre").forEach((pre) => {
    if (pre.parentElement.classList.contains("code-block")) return;
    const code = pre.querySelector("code");
    const language = code && [...code.classList].find((c) => c.startsWith("language-"))?.slice(9);
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const bar = document.createElement("div");
    bar.className = "code-block__bar";
    const label = document.createElement("span");
    label.textContent = language || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "chat-action chat-action--on-dark";
    copy.dataset.copyCode = "";
    copy.textContent = "Copy code";
    bar.append(label, copy);
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  });
}

/* Copy ------------------------------------------------------------------------------------ */

function flash(button, text) {
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = text;
  announce(text);
  setTimeout(() => {
    button.textContent = original;
  }, 1800);
}

/* Messages -------------------------------------------------------------------------------- */

function announce(text) {
  if (!statusRegion) return;
  statusRegion.textContent = "";
  // A fresh text node each time, so screen readers repeat an identical announcement.
  requestAnimationFrame(() => {
    statusRegion.textContent = text;
  });
}

function isNearBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
}

function scrollToEnd(force = false) {
  if (force || isNearBottom()) log.scrollTop = log.scrollHeight;
}

function appendUserMessage(text) {
  const node = document.getElementById("template-user-message").content.firstElementChild.cloneNode(true);
  node.querySelector(".chat-message__text").textContent = text;
  log.append(node);
  return node;
}

function appendAssistantMessage() {
  const node = document.getElementById("template-assistant-message").content.firstElementChild.cloneNode(true);
  node.classList.add("is-streaming");
  node.setAttribute("aria-busy", "true");
  const markdown = node.querySelector("[data-markdown]");
  markdown.rawMarkdown = "";
  markdown.innerHTML = '<span class="typing" aria-hidden="true"><span></span><span></span><span></span></span>';
  log.append(node);
  return node;
}

function addNotice(message, text, kind = "") {
  const notice = document.createElement("div");
  notice.className = `chat-notice${kind ? ` chat-notice--${kind}` : ""}`;
  if (kind === "error") notice.setAttribute("role", "alert");
  notice.textContent = text;
  message.querySelector(".chat-message__actions").before(notice);
  return notice;
}

function setActions(message, { copy = true, regenerate = false } = {}) {
  const actions = message.querySelector(".chat-message__actions");
  actions.replaceChildren();
  if (copy && message.querySelector("[data-markdown]")?.rawMarkdown) {
    actions.append(actionButton("Copy", "copyAnswer"));
  }
  if (regenerate && state.regenerateUrl) actions.append(actionButton("Regenerate", "regenerate"));
}

function actionButton(label, data) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chat-action";
  button.dataset[data] = "";
  button.textContent = label;
  return button;
}

function removeOtherRegenerateButtons() {
  log.querySelectorAll("[data-regenerate]").forEach((button) => button.remove());
}

const FINISH_NOTES = {
  length: ["The answer reached its length limit.", ""],
  content_filter: ["Azure's content filter stopped this answer.", "warning"],
};

/* Streaming ------------------------------------------------------------------------------- */

function csrfToken() {
  return root.dataset.csrf || document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/)?.[1] || "";
}

function post(url, body, signal) {
  return fetch(url, {
    method: "POST",
    body,
    signal,
    headers: { "X-CSRFToken": csrfToken(), Accept: "text/event-stream, application/json" },
    credentials: "same-origin",
  });
}

async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let boundary;
    while ((boundary = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, boundary);
      buffer = buffer.slice(boundary + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (!data.length) continue;
      let payload;
      try {
        payload = JSON.parse(data.join("\n"));
      } catch {
        payload = { text: data.join("\n") };
      }
      yield { event, data: payload };
    }
  }
}

async function errorFromResponse(response) {
  try {
    const body = await response.json();
    return body.error || body.message || null;
  } catch {
    return null;
  }
}

function setStreaming(streaming) {
  root.classList.toggle("is-streaming", streaming);
  input.disabled = streaming;
  sendButton.hidden = streaming;
  stopButton.hidden = !streaming;
  log.querySelectorAll(".suggestion, [data-regenerate], [data-retry]").forEach((b) => {
    b.disabled = streaming;
  });
  if (streaming) stopButton.focus();
}

function formatCost(value) {
  const amount = Number(value);
  if (!Number.isFinite(amount) || amount === 0) return "$0.00";
  return amount < 0.01 ? `$${amount.toFixed(4)}` : `$${amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

function showBudgetWarning(text) {
  if (!budgetBanner || !text) return;
  budgetBanner.textContent = text;
  budgetBanner.hidden = false;
}

async function streamAnswer(url, body, { userText = null } = {}) {
  removeOtherRegenerateButtons();
  const answer = appendAssistantMessage();
  const markdown = answer.querySelector("[data-markdown]");
  scrollToEnd(true);
  state.controller = new AbortController();
  setStreaming(true);
  announce("The assistant is answering…");

  let text = "";
  let frame = 0;
  let finished = false;
  let sources = null;
  const render = () => {
    frame = 0;
    const follow = isNearBottom();
    markdown.rawMarkdown = text;
    renderMarkdown(markdown, text);
    linkCitations(markdown, sources);
    if (follow) scrollToEnd(true);
  };

  const fail = (message, retryAfter) => {
    let line = message || "Something went wrong while the assistant was answering.";
    if (retryAfter) line += ` You can try again in ${Math.ceil(Number(retryAfter))} s.`;
    answer.classList.add("chat-message--failed");
    const notice = addNotice(answer, "", "error");
    const strong = document.createElement("strong");
    strong.textContent = "The answer did not come through. ";
    notice.append(strong, line);
    if (state.regenerateUrl) {
      const retry = actionButton("Try again", "retry");
      retry.className = "button button--secondary button--small chat-notice__retry";
      notice.append(retry);
    }
    scrollToEnd(true);
    announce(`Error: ${line}`);
  };

  try {
    const response = await post(url, body, state.controller.signal);
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.includes("text/event-stream")) {
      const message = await errorFromResponse(response);
      fail(message || `The server answered ${response.status}.`);
      if (userText !== null && !input.value) input.value = userText;
      return;
    }
    for await (const { event, data } of serverSentEvents(response)) {
      if (event === "start") {
        if (data.warning) showBudgetWarning(data.warning);
        const userMessage = answer.previousElementSibling;
        if (data.user_message_id && userMessage?.dataset.role === "user") userMessage.dataset.messageId = data.user_message_id;
      } else if (event === "sources") {
        sources = new Map((data.sources || []).map((source) => [String(source.number), { url: source.url, label: sourceLabel(source) }]));
      } else if (event === "delta") {
        text += data.text || "";
        if (!frame) frame = requestAnimationFrame(render);
      } else if (event === "done") {
        finished = true;
        if (frame) cancelAnimationFrame(frame);
        render();
        highlight(markdown);
        appendSources(answer, data.citations);
        if (data.message_id) answer.dataset.messageId = data.message_id;
        const note = FINISH_NOTES[data.finish_reason];
        if (note) addNotice(answer, note[0], note[1]);
        if (data.conversation_cost !== undefined && data.conversation_cost !== null) {
          document.querySelectorAll("[data-conversation-cost]").forEach((el) => {
            el.textContent = formatCost(data.conversation_cost);
          });
          document.querySelector("[data-cost-line]")?.removeAttribute("hidden");
        }
        if (data.title) setTitle(data.title);
        announce("Answer complete.");
      } else if (event === "error") {
        finished = true;
        if (frame) cancelAnimationFrame(frame);
        if (text) render();
        else markdown.remove();
        fail(data.message, data.retry_after);
      }
    }
    if (!finished) {
      if (frame) cancelAnimationFrame(frame);
      if (text) {
        render();
        highlight(markdown);
        addNotice(answer, "Incomplete · the connection broke, this is the part that arrived.", "warning");
      } else {
        markdown.remove();
        fail("The connection to the server broke before the answer started.");
      }
    }
  } catch (error) {
    if (frame) cancelAnimationFrame(frame);
    if (error.name === "AbortError") {
      if (text) {
        render();
        highlight(markdown);
      } else {
        markdown.remove();
      }
      addNotice(answer, "Stopped · the part written so far is kept.");
      announce("Stopped.");
    } else {
      if (text) render();
      else markdown.remove();
      fail("The server could not be reached. Check your connection and try again.");
    }
  } finally {
    state.controller = null;
    answer.classList.remove("is-streaming");
    answer.removeAttribute("aria-busy");
    if (!answer.querySelector("[data-markdown]")?.rawMarkdown) answer.querySelector("[data-markdown]")?.remove();
    setActions(answer, { regenerate: !answer.classList.contains("chat-message--failed") });
    setStreaming(false);
    input.focus();
    refreshConversationList();
  }
}

function setTitle(title) {
  document.querySelectorAll("[data-conversation-title]").forEach((el) => {
    el.textContent = title;
    el.classList.remove("chat-heading__title--new");
  });
  document.title = `${title} · Switchyard`;
}

/* Sending --------------------------------------------------------------------------------- */

async function startConversation() {
  const body = new FormData(form);
  body.delete("content");
  let response;
  try {
    response = await post(root.dataset.startUrl, body);
  } catch {
    return { error: "The server could not be reached. Check your connection and try again." };
  }
  if (!response.ok) return { error: (await errorFromResponse(response)) || `The server answered ${response.status}.` };
  return response.json();
}

async function send(event) {
  event?.preventDefault();
  if (state.controller) return;
  const text = input.value.trim();
  if (!text) {
    input.focus();
    return;
  }
  if (!state.streamUrl) {
    setStreaming(true);
    const started = await startConversation();
    setStreaming(false);
    if (started.error) {
      showComposerError(started.error);
      input.focus();
      return;
    }
    adoptConversation(started);
  }
  clearComposerError();
  document.getElementById("chat-welcome")?.remove();
  appendUserMessage(text);
  input.value = "";
  autoGrow();
  const body = new FormData();
  body.append("content", text);
  await streamAnswer(state.streamUrl, body, { userText: text });
}

function adoptConversation({ id, url, stream_url: streamUrl, regenerate_url: regenerateUrl }) {
  state.conversationId = id;
  state.streamUrl = streamUrl;
  state.regenerateUrl = regenerateUrl;
  root.dataset.conversationId = id;
  root.dataset.streamUrl = streamUrl;
  root.dataset.regenerateUrl = regenerateUrl;
  form.action = streamUrl;
  history.replaceState({}, "", url);
  // The assistant and the paying department are fixed now: show them, don't offer to change them.
  const picker = document.getElementById("assistant-picker");
  if (picker) {
    const chosen = picker.querySelector("input[name=deployment]:checked");
    const option = chosen?.closest(".assistant-option");
    const heading = document.querySelector(".chat-main__bar [data-conversation-title]");
    if (option && heading) {
      const assistant = document.createElement("p");
      assistant.className = "chat-heading__assistant";
      assistant.textContent = option.querySelector(".assistant-option__name").textContent;
      const wrapper = document.createElement("div");
      wrapper.className = "chat-heading";
      heading.replaceWith(wrapper);
      wrapper.append(heading, assistant);
    }
    picker.disabled = true;
    picker.hidden = true;
  }
}

function showComposerError(text) {
  let box = document.getElementById("composer-error");
  if (!box) {
    box = document.createElement("p");
    box.id = "composer-error";
    box.className = "composer__error";
    box.setAttribute("role", "alert");
    form.prepend(box);
  }
  box.textContent = text;
}

function clearComposerError() {
  document.getElementById("composer-error")?.remove();
}

async function regenerate() {
  if (state.controller || !state.regenerateUrl) return;
  // The last answer is replaced by a new one.
  const last = log.lastElementChild;
  if (last?.dataset.role === "assistant") last.remove();
  await streamAnswer(state.regenerateUrl, new FormData());
}

/* The assistant picker -------------------------------------------------------------------- */

function syncPicker() {
  const picker = document.getElementById("assistant-picker");
  if (!picker) return;
  const chosen = picker.querySelector("input[name=deployment]:checked");
  const pk = chosen?.value;
  let department = null;
  let retention = null;
  picker.querySelectorAll("[data-departments-for]").forEach((el) => {
    const mine = el.dataset.departmentsFor === pk;
    if (el.tagName === "INPUT") {
      el.disabled = !mine;
      if (mine) [department, retention] = [el.dataset.name, el.dataset.retention];
    } else {
      el.hidden = !mine;
      const select = el.querySelector("select");
      select.disabled = !mine;
      if (mine) {
        const option = select.selectedOptions[0];
        [department, retention] = [option?.textContent, option?.dataset.retention];
      }
    }
  });
  const info = (selector, text) => {
    const el = document.querySelector(selector);
    if (el && text) el.textContent = text;
  };
  info("[data-info-assistant]", chosen?.dataset.displayName);
  info("[data-info-department]", department);
  info("[data-info-retention]", retention);
}

/* The composer ------------------------------------------------------------------------------ */

const growsByItself = window.CSS?.supports?.("field-sizing", "content");

function autoGrow() {
  if (growsByItself || !input) return;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, window.innerHeight * 0.4)}px`;
}

/* The conversation list --------------------------------------------------------------------- */

function markCurrentConversation() {
  document.querySelectorAll("#conversation-list .conversation").forEach((item) => {
    const current = item.dataset.conversation === state.conversationId;
    item.classList.toggle("is-current", current);
    const link = item.querySelector(".conversation__link");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  });
}

async function refreshConversationList() {
  const list = document.getElementById("conversation-list");
  const search = document.getElementById("chat-search-input");
  if (!list || !root.dataset.searchUrl) return;
  const url = new URL(root.dataset.searchUrl, location.href);
  if (search?.value) url.searchParams.set("q", search.value);
  try {
    const response = await fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" });
    if (!response.ok) return;
    const holder = document.createElement("div");
    holder.innerHTML = await response.text();
    const fresh = holder.querySelector("#conversation-list");
    if (fresh) {
      list.replaceWith(fresh);
      window.htmx?.process(fresh);
      markCurrentConversation();
      // A stopped first answer brings no `done` event: take the title the server gave it.
      const title = fresh.querySelector(".conversation.is-current .conversation__title")?.textContent;
      if (title && document.querySelector(".chat-heading__title--new")) setTitle(title);
    }
  } catch {
    // The list catches up on the next answer or page load.
  }
}

function toggleRename(item, open) {
  const formEl = item.querySelector(".conversation__rename");
  const toggle = item.querySelector("[data-rename-toggle]");
  formEl.hidden = !open;
  toggle.setAttribute("aria-expanded", String(open));
  item.classList.toggle("is-renaming", open);
  if (open) {
    const field = formEl.querySelector("input[name=title]");
    field.focus();
    field.select();
  } else {
    toggle.focus();
  }
}

/* Phone width: the sidebar slides in over the conversation. ------------------------------- */

function setSidebar(open) {
  root.classList.toggle("sidebar-open", open);
  document.querySelectorAll("[data-sidebar-toggle]").forEach((b) => b.setAttribute("aria-expanded", String(open)));
  if (open) document.getElementById("chat-search-input")?.focus();
}

/* Wiring ---------------------------------------------------------------------------------- */

function init() {
  if (!root) return;

  document.querySelectorAll("[data-markdown]").forEach((el) => {
    el.rawMarkdown = el.textContent;
    renderMarkdown(el, el.rawMarkdown);
    linkCitations(el, sourcesFromList(el.parentElement.querySelector("[data-sources]")));
    highlight(el);
  });

  // A question whose answer never arrived (the page was closed mid-answer, the server failed
  // before it could save one) gets a way to ask again.
  const last = log?.querySelector(".chat-message:last-of-type");
  if (last?.dataset.role === "user" && state.regenerateUrl) {
    const orphan = document.getElementById("template-assistant-message").content.firstElementChild.cloneNode(true);
    orphan.querySelector("[data-markdown]").remove();
    orphan.classList.add("chat-message--failed");
    const notice = addNotice(orphan, "This question has no answer yet.");
    const retry = actionButton("Try again", "retry");
    retry.className = "button button--secondary button--small";
    notice.append(retry);
    log.append(orphan);
  }

  root.addEventListener("click", async (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if ("copyAnswer" in target.dataset) {
      const raw = target.closest(".chat-message")?.querySelector("[data-markdown]")?.rawMarkdown || "";
      if (await copyText(raw)) flash(target, "Copied");
    } else if ("copyCode" in target.dataset) {
      const code = target.closest(".code-block")?.querySelector("code")?.textContent || "";
      if (await copyText(code)) flash(target, "Copied");
    } else if ("regenerate" in target.dataset || "retry" in target.dataset) {
      regenerate();
    } else if ("suggestion" in target.dataset) {
      input.value = target.dataset.suggestion;
      autoGrow();
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    } else if ("renameToggle" in target.dataset) {
      const item = target.closest(".conversation");
      toggleRename(item, item.querySelector(".conversation__rename").hidden);
    } else if ("renameCancel" in target.dataset) {
      toggleRename(target.closest(".conversation"), false);
    } else if ("sidebarToggle" in target.dataset) {
      setSidebar(!root.classList.contains("sidebar-open"));
    }
  });

  root.addEventListener("submit", (event) => {
    const confirmText = event.target.dataset?.confirm;
    if (confirmText && !window.confirm(confirmText)) event.preventDefault();
  });

  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      const renaming = event.target.closest?.(".conversation.is-renaming");
      if (renaming) toggleRename(renaming, false);
      else if (root.classList.contains("sidebar-open")) {
        setSidebar(false);
        root.querySelector("[data-sidebar-toggle]")?.focus();
      }
    }
  });

  // A click on the dimmed conversation behind the open sidebar closes it.
  root.addEventListener("pointerdown", (event) => {
    if (root.classList.contains("sidebar-open") && !event.target.closest(".chat-sidebar, [data-sidebar-toggle]")) {
      setSidebar(false);
    }
  });

  document.body.addEventListener("htmx:afterSwap", markCurrentConversation);

  if (form && input) {
    form.addEventListener("submit", send);
    stopButton.addEventListener("click", () => state.controller?.abort());
    input.addEventListener("input", autoGrow);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    document.getElementById("assistant-picker")?.addEventListener("change", syncPicker);
    syncPicker();
    autoGrow();
    scrollToEnd(true);
    if (!input.disabled && window.matchMedia("(min-width: 48rem)").matches) input.focus({ preventScroll: true });
  }
  root.classList.add("is-ready");
}

init();
