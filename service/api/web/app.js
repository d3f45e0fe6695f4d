// Footnote's page: ask, read the answer as it is written, open the exact quote in its document.
// Every text from the server or a document is put in the page as text (textContent, text
// nodes), never parsed as HTML.
"use strict";

const KEY = "footnote-api-key";
const NOT_COVERED = "The documents do not cover this question.";
const $ = (id) => document.getElementById(id);
const state = { history: [], documents: [], voter: sessionId() };

function sessionId() {
  let id = sessionStorage.getItem("footnote-voter");
  if (!id) {
    id = "web:" + Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("footnote-voter", id);
  }
  return id;
}

// An element with attributes (on* handlers as functions) and children (strings become text).
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function announce(text) {
  $("status").textContent = text;
}

// -- the API, with the key when the server asks for one ------------------------------------------

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? { ...extra, Authorization: "Bearer " + key } : extra;
}

let keyPrompt = null;
function askForKey(refused) {
  if (keyPrompt) return keyPrompt;
  const dialog = $("key-dialog");
  $("key-error").hidden = !refused;
  $("key-input").value = "";
  keyPrompt = new Promise((resolve) => {
    $("key-form").onsubmit = () => {
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      keyPrompt = null;
      resolve();
    };
  });
  dialog.showModal();
  $("key-input").focus();
  return keyPrompt;
}

// fetch, asking for a key (again) while the server answers 401.
async function api(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401) return response;
    await askForKey(Boolean(sessionStorage.getItem(KEY)));
  }
}

async function problem(response) {
  try {
    const body = await response.json();
    return body.message || body.detail || response.statusText;
  } catch {
    return response.status + " " + response.statusText;
  }
}

// -- asking ----------------------------------------------------------------------------------------

function filters() {
  const sources = [...document.querySelectorAll("#filter-sources input:checked")].map((box) => box.value);
  const out = {};
  if (sources.length) out.source = sources;
  if ($("date-from").value) out.date_from = $("date-from").value;
  if ($("date-to").value) out.date_to = $("date-to").value;
  return Object.keys(out).length ? out : null;
}

// The Server-Sent Events of a streamed response, as {event, data} objects.
async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      yield { event, data: data.join("\n") };
    }
  }
}

async function ask(question) {
  const turn = el("article", { class: "turn" }, el("h3", { class: "q" }, question));
  const answer = el("div", { class: "answer", "aria-live": "polite", "aria-busy": "true" });
  turn.append(answer);
  $("conversation").append(turn);
  turn.scrollIntoView({ block: "nearest" });
  const body = { question, history: state.history.slice(-10) };
  const chosen = filters();
  if (chosen) body.filters = chosen;
  const button = $("ask-button");
  button.disabled = true;
  try {
    const response = await api("/ask/stream", {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" },
    });
    if (!response.ok) {
      answer.textContent = "";
      answer.append(el("span", { class: "error" }, await problem(response)));
      return;
    }
    for await (const { event, data } of events(response)) {
      if (event === "token") answer.append(JSON.parse(data).text);
      else if (event === "answer") showAnswer(turn, answer, JSON.parse(data));
      else if (event === "error") answer.append(el("p", { class: "error" }, JSON.parse(data).detail));
    }
  } catch (error) {
    answer.append(el("p", { class: "error" }, "The server could not be reached: " + error.message));
  } finally {
    answer.setAttribute("aria-busy", "false");
    button.disabled = false;
  }
}

// The checked answer replaces the streamed text: [n] markers become links to their quotes.
function showAnswer(turn, node, result) {
  node.textContent = "";
  node.dataset.mode = result.mode;
  const byId = new Map(result.citations.map((c) => [c.id, c]));
  if (!result.answerable) {
    node.classList.add("refused");
    node.append(result.answer || NOT_COVERED);
  } else {
    let at = 0;
    for (const match of result.answer.matchAll(/\[(\d+)\]/g)) {
      const citation = byId.get(Number(match[1]));
      if (!citation) continue;
      node.append(result.answer.slice(at, match.index));
      node.append(el("a", {
        href: "#", class: "marker", "data-cite": citation.id,
        "aria-label": `source ${citation.id}: ${citation.source}`,
        onclick: (e) => { e.preventDefault(); openSource(result, citation); },
      }, `[${citation.id}]`));
      at = match.index + match[0].length;
    }
    node.append(result.answer.slice(at));
  }
  const flags = el("div", { class: "flags" });
  if (typeof result.confidence === "number") {
    flags.append(el("p", { class: "confidence" }, `Confidence ${Math.round(result.confidence * 100)}%`));
  }
  if (result.fallback_reason) {
    flags.append(el("p", { class: "warn" }, "The language model failed, so this answer is quoted instead: " + result.fallback_reason));
  }
  for (const u of result.unsupported || []) {
    flags.append(el("p", { class: "warn" }, `Not supported by its source (${u.reason}): “${u.sentence}”`));
  }
  if ((result.dropped_markers || []).length) {
    flags.append(el("p", { class: "warn" }, "Removed markers naming no passage: " + result.dropped_markers.map((n) => `[${n}]`).join(", ")));
  }
  turn.append(flags);
  if (result.citations.length) {
    turn.append(el("ol", { class: "citations", "aria-label": "Sources" }, result.citations.map((c) => el("li", { value: c.id },
      el("button", { type: "button", class: "cite", "data-cite": c.id, onclick: () => openSource(result, c) },
        [c.title || c.source, c.title ? ` (${c.source})` : "", c.date ? `, ${c.date}` : "", c.page ? `, page ${c.page}` : ""].join("")),
      el("blockquote", {}, c.quote)))));
  }
  turn.append(feedback(result));
  state.history.push({ question: result.question, answer: result.answer });
  announce(result.answerable ? "Answer ready with " + result.citations.length + " sources." : NOT_COVERED);
}

function feedback(result) {
  let answerId = null;
  const status = el("span", { class: "meta", "aria-live": "polite" });
  const vote = async (value, button, other) => {
    const body = answerId ? { answer_id: answerId } : {
      answer: { question: result.question, answer: result.answer, answerable: result.answerable, mode: result.mode,
                citations: result.citations.map(({ id, source, quote, start, end }) => ({ id, source, quote, start, end })) },
    };
    const response = await api("/feedback", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...body, vote: value, voter: state.voter }),
    });
    if (!response.ok) { status.textContent = await problem(response); return; }
    answerId = (await response.json()).answer_id;
    button.setAttribute("aria-pressed", "true");
    other.setAttribute("aria-pressed", "false");
    status.textContent = "Thanks: vote recorded.";
  };
  const up = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Helpful" }, "👍 Yes");
  const down = el("button", { type: "button", "aria-pressed": "false", "aria-label": "Not helpful" }, "👎 No");
  up.addEventListener("click", () => vote("up", up, down));
  down.addEventListener("click", () => vote("down", down, up));
  return el("div", { class: "feedback" }, "Was this useful?", up, down, status);
}

// -- reading a source: the document, every quote of this answer from it highlighted ---------------

async function openSource(result, chosen) {
  const response = await api("/documents/" + encodeURIComponent(chosen.source));
  const reader = $("reader");
  reader.hidden = false;
  $("reader-title").textContent = chosen.title || chosen.source;
  const text = $("reader-text");
  text.textContent = "";
  if (!response.ok) {
    text.append(el("p", { class: "error" }, await problem(response)));
    return;
  }
  const doc = await response.json();
  $("reader-meta").textContent = [doc.source, doc.date, chosen.page ? `quote on page ${chosen.page}` : ""].filter(Boolean).join(" · ");
  const spans = result.citations.filter((c) => c.source === chosen.source).sort((a, b) => a.start - b.start || a.id - b.id);
  const pages = doc.pages || [];
  let at = 0;
  let page = 0;
  // Plain text between the marks, with a page label where a PDF's page begins.
  const plain = (upto) => {
    while (page < pages.length && pages[page] <= upto) {
      if (pages[page] >= at) {
        if (pages[page] > at) text.append(doc.text.slice(at, pages[page]));
        at = pages[page];
        if (pages.length > 1) text.append(el("span", { class: "page", "aria-hidden": "true" }, `Page ${page + 1}`));
      }
      page += 1;
    }
    if (upto > at) text.append(doc.text.slice(at, upto));
    at = Math.max(at, upto);
  };
  let active = null;
  for (const c of spans) {
    if (c.start < at) continue;  // overlaps a quote already marked
    plain(c.start);
    const mark = el("mark", { "data-cite": c.id, class: c.id === chosen.id ? "active" : null }, doc.text.slice(c.start, c.end));
    if (c.id === chosen.id) active = mark;
    text.append(mark);
    at = c.end;
  }
  plain(doc.text.length);
  if (active) {
    active.setAttribute("tabindex", "-1");
    active.scrollIntoView({ block: "center" });
    active.focus({ preventScroll: true });
  }
  announce(`Opened ${doc.source}, quote ${chosen.id} highlighted.`);
}

// -- documents ------------------------------------------------------------------------------------

async function loadDocuments() {
  const response = await api("/documents");
  if (!response.ok) return;
  state.documents = await response.json();
  const rows = state.documents.map((d) => el("tr", {},
    el("td", {}, d.title || "—"), el("td", { class: "file" }, d.source), el("td", {}, d.date || "—"),
    el("td", {}, d.chunks), el("td", {}, d.characters == null ? "—" : d.characters.toLocaleString() + " chars"),
    el("td", {}, el("button", { type: "button", class: "plain", "aria-label": "Delete " + d.source, onclick: () => remove(d.source) }, "Delete"))));
  $("doc-table").tBodies[0].replaceChildren(...rows);
  const checked = new Set([...document.querySelectorAll("#filter-sources input:checked")].map((b) => b.value));
  $("filter-sources").replaceChildren(...state.documents.map((d) => el("label", {},
    el("input", { type: "checkbox", value: d.source, checked: checked.has(d.source) }), d.title || d.source)));
}

async function remove(source) {
  if (!confirm(`Delete ${source} from the index and the corpus?`)) return;
  const response = await api("/documents/" + encodeURIComponent(source), { method: "DELETE" });
  announce(response.ok ? `Deleted ${source}.` : await problem(response));
  await loadDocuments();
}

// One request per file, so each file gets its own progress and its own result or error.
function upload(file) {
  const progress = el("progress", { max: 100, value: 0, "aria-label": "Uploading " + file.name });
  const result = el("span", {});
  $("uploads").append(el("li", {}, el("span", { class: "file" }, file.name), progress, result));
  return new Promise((resolve) => {
    const send = () => {
      const request = new XMLHttpRequest();
      request.open("POST", "/documents");
      for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
      request.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total; };
      request.onload = async () => {
        if (request.status === 401) { await askForKey(true); send(); return; }
        progress.value = 100;
        let body = {};
        try { body = JSON.parse(request.responseText); } catch { /* not JSON: said below */ }
        if (request.status >= 200 && request.status < 300) {
          const dupes = Object.entries(body.duplicates || {});
          result.className = "ok";
          result.textContent = body.added && body.added.length ? "added as " + body.added.join(", ")
            : body.updated && body.updated.length ? "replaced " + body.updated.join(", ")
            : dupes.length ? "already indexed as " + dupes[0][1] : "unchanged";
        } else {
          result.className = "error";
          result.textContent = body.message || body.detail || `failed (${request.status})`;
        }
        resolve();
      };
      request.onerror = () => { result.className = "error"; result.textContent = "the server could not be reached"; resolve(); };
      const form = new FormData();
      form.append("files", file, file.name);
      request.send(form);
    };
    send();
  });
}

async function uploadAll(files) {
  for (const file of files) await upload(file);
  await loadDocuments();
  announce("Upload finished.");
}

// -- wiring ---------------------------------------------------------------------------------------

function wire() {
  const question = $("question");
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = question.value.trim();
    if (!text) return;
    question.value = "";
    ask(text);
  });
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("new-conversation").addEventListener("click", () => {
    state.history = [];
    $("conversation").replaceChildren();
    question.focus();
  });
  $("reader-close").addEventListener("click", () => { $("reader").hidden = true; question.focus(); });
  const toggle = $("docs-toggle");
  toggle.addEventListener("click", () => {
    const open = $("documents").hidden;
    $("documents").hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) loadDocuments();
  });
  $("file-input").addEventListener("change", (e) => { uploadAll([...e.target.files]); e.target.value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll([...e.dataTransfer.files]); });
  loadDocuments();
  question.focus();
}

wire();
