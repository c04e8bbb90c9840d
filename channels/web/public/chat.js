// Parley web chat. Plain JavaScript, no dependencies. Every piece of model or user text reaches the page through
// text nodes (textContent / createTextNode); nothing is parsed as HTML.
(() => {
  "use strict";

  const base = document.body.dataset.base || "";

  // ---- the session ---------------------------------------------------------------------------------------------
  // The operator's link carries its token in the fragment (#token=…), which never reaches a server log or a Referer.
  // It is taken off the address bar at once and traded for an HttpOnly session cookie; nothing here keeps it.

  function takeToken() {
    const match = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(window.location.hash);
    if (/token=/.test(window.location.hash)) history.replaceState(null, "", window.location.pathname + window.location.search);
    return match ? match[1] : null;
  }

  /** Opens a session (the operator's with a token; else the current one, or a public chat's new visitor's). */
  async function openSession(token) {
    try {
      const res = await fetch(`${base}/api/session`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(token ? { token } : {}),
      });
      if (res.ok) {
        // Perhaps another identity than before: the last event this tab saw was of another chat.
        try {
          window.sessionStorage.removeItem("parley.lastEventId");
        } catch {
          // Storage may be disabled.
        }
        return null;
      }
      const body = await res.json().catch(() => null);
      return body && typeof body.error === "string" ? body.error : `Parley answered ${res.status}.`;
    } catch {
      return "Could not reach Parley. Check that it is running, then reload the page.";
    }
  }

  const token = takeToken();

  // A link opened in a tab that shows this page already changes only the fragment: trade it, then load the chat.
  window.addEventListener("hashchange", () => {
    const next = takeToken();
    if (next) void openSession(next).then((error) => (error === null ? window.location.replace(`${base}/`) : gateError(error)));
  });

  function gateError(error) {
    const status = document.getElementById("gate-status") || document.getElementById("status");
    status.textContent = error;
    status.classList.add("error");
  }

  if (document.body.dataset.page === "gate") {
    if (token) {
      document.getElementById("gate-status").textContent = "Opening the chat…";
      void openSession(token).then((error) => (error === null ? window.location.replace(`${base}/`) : gateError(error)));
    }
    return;
  }

  const MAX_CHARS = 16000;
  const MAX_UPLOAD = Number(document.body.dataset.maxUpload) || 10 * 1024 * 1024;
  const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
  const $ = (id) => document.getElementById(id);
  const ui = {
    list: $("messages"),
    empty: $("empty"),
    form: $("composer"),
    input: $("input"),
    send: $("send"),
    reset: $("reset"),
    status: $("status"),
    typing: $("typing"),
    file: $("file"),
    attachment: $("attachment"),
    preview: $("preview"),
    attachmentName: $("attachment-name"),
    removeImage: $("remove-image"),
  };

  // ---- ids and storage -----------------------------------------------------------------------------------------

  function randomId() {
    if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // Who writes is the session's (the cookie), never something the page says. The tab keeps only the id of the last
  // event it saw, so that a reload gets what it missed.
  function load(key) {
    try {
      return window.sessionStorage.getItem(key);
    } catch {
      return null;
    }
  }

  function save(key, value) {
    try {
      window.sessionStorage.setItem(key, value);
    } catch {
      // Storage may be disabled; the chat still works for this tab.
    }
  }

  const lastEventKey = "parley.lastEventId";

  // ---- Markdown to DOM -----------------------------------------------------------------------------------------

  function el(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function appendText(parent, text) {
    text.split("\n").forEach((part, i) => {
      if (i > 0) parent.append(el("br"));
      if (part) parent.append(document.createTextNode(part));
    });
  }

  function safeUrl(raw) {
    try {
      const url = new URL(raw);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function link(href, parent) {
    const a = el("a");
    a.href = href;
    a.rel = "noopener noreferrer";
    a.target = "_blank";
    parent.append(a);
    return a;
  }

  const INLINE = new RegExp(
    [
      /\\([\\`*_[\]()#>~!-])/.source, // 1 escaped punctuation
      /(`+)([^`]|[^`][\s\S]*?[^`])\2(?!`)/.source, // 2, 3 inline code
      /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 4 bold
      /__(?=\S)([\s\S]*?\S)__/.source, // 5 bold
      /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source, // 6 italic
      /(?<![\p{L}\p{N}_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\p{L}\p{N}_])/.source, // 7 italic
      /\[([^\]\n]+)\]\(\s*<?(https?:\/\/[^\s)>]+)>?\s*\)/.source, // 8, 9 link
      /(https?:\/\/[^\s<>"]*[^\s<>".,:;!?)\]}'])/.source, // 10 bare URL
    ].join("|"),
    "gu",
  );

  function inline(text, parent, inLink) {
    const re = new RegExp(INLINE);
    let at = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      const [whole] = m;
      if ((m[8] !== undefined || m[10] !== undefined) && inLink) continue; // no links inside links
      appendText(parent, text.slice(at, m.index));
      at = m.index + whole.length;
      if (m[1] !== undefined) {
        parent.append(document.createTextNode(m[1]));
      } else if (m[3] !== undefined) {
        const code = el("code");
        const inner = m[3].replace(/\n/g, " ");
        code.textContent = /^ .*[^ ].* $/.test(inner) ? inner.slice(1, -1) : inner;
        parent.append(code);
      } else if (m[4] !== undefined || m[5] !== undefined) {
        const strong = el("strong");
        inline(m[4] ?? m[5], strong, inLink);
        parent.append(strong);
      } else if (m[6] !== undefined || m[7] !== undefined) {
        const em = el("em");
        inline(m[6] ?? m[7], em, inLink);
        parent.append(em);
      } else if (m[8] !== undefined) {
        const href = safeUrl(m[9]);
        if (href) inline(m[8], link(href, parent), true);
        else appendText(parent, whole);
      } else if (m[10] !== undefined) {
        const href = safeUrl(m[10]);
        if (href) link(href, parent).textContent = m[10];
        else appendText(parent, whole);
      }
    }
    appendText(parent, text.slice(at));
  }

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
  const LIST_ITEM = /^ {0,3}(?:([-*+])|(\d{1,9})[.)])\s+(.*)$/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;

  function codeBlock(text, language) {
    const wrap = el("div", "code");
    const head = el("div", "code-head");
    const label = el("span");
    label.textContent = language || "code";
    const copy = el("button", "ghost small");
    copy.type = "button";
    copy.textContent = "Copy";
    copy.addEventListener("click", () => {
      navigator.clipboard?.writeText(text).then(
        () => {
          copy.textContent = "Copied";
          setTimeout(() => (copy.textContent = "Copy"), 1500);
        },
        () => (copy.textContent = "Copy failed"),
      );
    });
    head.append(label, copy);
    const pre = el("pre");
    const code = el("code");
    code.textContent = text;
    pre.append(code);
    pre.tabIndex = 0;
    wrap.append(head, pre);
    return wrap;
  }

  /** Renders Markdown into `into`, replacing what it held: paragraphs, headings, lists, quotes and fenced code. */
  function renderMarkdown(source, into) {
    const lines = source.replace(/\r\n?/g, "\n").split("\n");
    const out = document.createDocumentFragment();
    let paragraph = [];
    const flush = () => {
      if (paragraph.length === 0) return;
      const p = el("p");
      inline(paragraph.join("\n"), p, false);
      out.append(p);
      paragraph = [];
    };
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = FENCE.exec(line);
      if (fence) {
        flush();
        const marker = fence[1];
        const close = new RegExp(`^ {0,3}${marker[0] === "`" ? "`" : "~"}{${marker.length},}\\s*$`);
        const body = [];
        for (i += 1; i < lines.length && !close.test(lines[i]); i += 1) body.push(lines[i]);
        i += 1; // the closing fence; an unclosed fence (a draft still growing) runs to the end
        out.append(codeBlock(body.join("\n"), fence[2]));
        continue;
      }
      if (line.trim() === "") {
        flush();
        i += 1;
        continue;
      }
      const heading = HEADING.exec(line);
      if (heading) {
        flush();
        const p = el("p", "md-h");
        const strong = el("strong");
        inline(heading[2], strong, false);
        p.append(strong);
        out.append(p);
        i += 1;
        continue;
      }
      const first = LIST_ITEM.exec(line);
      if (first) {
        flush();
        const ordered = first[2] !== undefined;
        const list = el(ordered ? "ol" : "ul");
        if (ordered && Number(first[2]) !== 1) list.start = Number(first[2]);
        let item = null;
        for (; i < lines.length; i += 1) {
          const m = LIST_ITEM.exec(lines[i]);
          if (m && (m[2] !== undefined) === ordered) {
            item = el("li");
            inline(m[3], item, false);
            list.append(item);
          } else if (item && /^\s{2,}\S/.test(lines[i])) {
            item.append(el("br"));
            inline(lines[i].trim(), item, false);
          } else break;
        }
        out.append(list);
        continue;
      }
      if (QUOTE.test(line)) {
        flush();
        const quote = el("blockquote");
        const text = [];
        for (; i < lines.length && QUOTE.test(lines[i]); i += 1) text.push(QUOTE.exec(lines[i])[1]);
        const p = el("p");
        inline(text.join("\n"), p, false);
        quote.append(p);
        out.append(quote);
        continue;
      }
      paragraph.push(line);
      i += 1;
    }
    flush();
    into.replaceChildren(out);
  }

  // ---- the message list ----------------------------------------------------------------------------------------

  const sent = new Map(); // message id -> body element of an assistant bubble
  const drafts = new Map(); // draft id -> bubble element

  function nearBottom() {
    const l = ui.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  function afterChange(stick) {
    ui.empty.hidden = true;
    if (stick) ui.list.scrollTop = ui.list.scrollHeight;
  }

  function bubble(role) {
    const node = el("article", `msg msg-${role}`);
    const who = el("span", "visually-hidden");
    who.textContent = role === "user" ? "You: " : "Parley: ";
    const body = el("div", "body");
    node.append(who, body);
    return node;
  }

  function addUser(text, image) {
    const stick = true;
    const node = bubble("user");
    const body = node.querySelector(".body");
    if (image) {
      const img = el("img", "sent-image");
      img.src = URL.createObjectURL(image);
      img.alt = `Image: ${image.name || "attached image"}`;
      body.append(img);
    }
    if (text) {
      const caption = el("p");
      caption.textContent = text;
      body.append(caption);
    }
    ui.list.append(node);
    afterChange(stick);
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KB`;
    const mb = bytes / (1024 * 1024);
    return `${mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10} MB`;
  }

  const files = new Set(); // ids of file events shown (a replay after reconnecting shows nothing twice)

  /** A file Parley sent: its caption and a one-time download link under this page's base path. */
  function showFile(data) {
    if (files.has(data.id)) return;
    files.add(data.id);
    const stick = nearBottom();
    const node = bubble("assistant");
    node.classList.add("msg-file");
    const body = node.querySelector(".body");
    if (typeof data.caption === "string" && data.caption) {
      const caption = el("p");
      caption.textContent = data.caption;
      body.append(caption);
    }
    const line = el("p", "file-line");
    const a = el("a", "file-link");
    a.href = `${base}/files/${encodeURIComponent(data.token)}`;
    a.download = data.name;
    a.textContent = `Download ${data.name}`;
    const size = el("span", "file-size");
    size.textContent = ` (${formatSize(Number(data.size) || 0)})`;
    line.append(a, size);
    const note = el("p", "file-note");
    note.textContent = "The link works once, for an hour.";
    a.addEventListener("click", () => {
      // The server forgets the file once it is fetched: say so instead of offering a link that would fail.
      setTimeout(() => {
        const used = el("span", "file-used");
        used.textContent = `${data.name} downloaded`;
        a.replaceWith(used);
        note.textContent = "The link worked once; ask Parley again for another copy.";
      }, 0);
    });
    body.append(line, note);
    ui.list.append(node);
    setTyping(false);
    afterChange(stick);
  }

  function addDivider(text) {
    const stick = nearBottom();
    const node = el("p", "divider");
    node.textContent = text;
    ui.list.append(node);
    afterChange(stick);
  }

  function showReply(id, text) {
    const stick = nearBottom();
    let body = sent.get(id);
    if (!body) {
      // The first final message takes the place of the draft that announced it; other drafts of that reply go.
      const [draft, ...rest] = drafts.values();
      let node;
      if (draft) {
        node = draft;
        node.classList.remove("msg-draft");
        node.removeAttribute("aria-busy");
      } else {
        node = bubble("assistant");
        ui.list.append(node);
      }
      for (const extra of rest) extra.remove();
      drafts.clear();
      node.dataset.id = id;
      body = node.querySelector(".body");
      sent.set(id, body);
    }
    renderMarkdown(text, body);
    setTyping(false);
    afterChange(stick);
  }

  function showDraft(draftId, text) {
    const stick = nearBottom();
    let node = drafts.get(draftId);
    if (!node) {
      node = bubble("assistant");
      node.classList.add("msg-draft");
      node.setAttribute("aria-busy", "true");
      ui.list.append(node);
      drafts.set(draftId, node);
    }
    renderMarkdown(text, node.querySelector(".body"));
    setTyping(false);
    afterChange(stick);
  }

  let typingTimer;
  function setTyping(on) {
    clearTimeout(typingTimer);
    ui.typing.hidden = !on;
    if (on) typingTimer = setTimeout(() => (ui.typing.hidden = true), 6000);
  }

  // ---- status line ---------------------------------------------------------------------------------------------

  let statusTimer;
  function setStatus(text, kind) {
    clearTimeout(statusTimer);
    ui.status.textContent = text;
    ui.status.classList.toggle("error", kind === "error");
    if (kind === "brief") statusTimer = setTimeout(() => setStatus(""), 2500);
  }

  // ---- receiving: Server-Sent Events ---------------------------------------------------------------------------

  let source;
  let retryTimer;
  let retryDelay = 1000;
  let lost = false;

  function parse(event) {
    try {
      if (event.lastEventId) save(lastEventKey, event.lastEventId);
      return JSON.parse(event.data);
    } catch {
      return null;
    }
  }

  function connect() {
    clearTimeout(retryTimer);
    const last = load(lastEventKey);
    let url = `${base}/api/events`;
    if (last) url += `?lastEventId=${encodeURIComponent(last)}`;
    source = new EventSource(url);
    source.addEventListener("open", () => {
      retryDelay = 1000;
      if (lost) setStatus("Connected again.", "brief");
      lost = false;
    });
    source.addEventListener("error", () => {
      lost = true;
      setStatus("The connection to Parley dropped; reconnecting… Replies will appear once it is back.", "error");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (Parley answered with an error, e.g. while restarting): try again ourselves.
        source.close();
        retryTimer = setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      }
    });
    source.addEventListener("message", (e) => {
      const data = parse(e);
      if (data && typeof data.id === "string" && typeof data.text === "string") showReply(data.id, data.text);
    });
    source.addEventListener("edit", (e) => {
      const data = parse(e);
      if (data && typeof data.id === "string" && typeof data.text === "string") showReply(data.id, data.text);
    });
    source.addEventListener("draft", (e) => {
      const data = parse(e);
      if (data && typeof data.text === "string") showDraft(String(data.draftId), data.text);
    });
    source.addEventListener("file", (e) => {
      const data = parse(e);
      if (data && typeof data.id === "string" && typeof data.name === "string" && TOKEN_PATTERN.test(data.token)) showFile(data);
    });
    source.addEventListener("typing", () => setTyping(true));
  }

  // ---- sending -------------------------------------------------------------------------------------------------

  let pending = null; // { id, text, image, ref }: a retry of the same message reuses the id (stored once) and the upload
  let busy = false;
  let attached = null; // the File the next message carries

  /** The error sentence of a refused request: the server's own words when it sent JSON. */
  async function errorOf(res) {
    let message = `Parley answered ${res.status}.`;
    try {
      const body = await res.json();
      if (body && typeof body.error === "string") message = body.error;
    } catch {
      // Not JSON (a proxy's error page); keep the status line.
    }
    return res.status >= 500 ? `${message} Press Send to try again.` : message;
  }

  async function deliver(text, id, image) {
    try {
      const res = await fetch(`${base}/api/messages`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(image ? { text, id, image } : { text, id }),
      });
      if (res.status === 202) return null;
      if (res.status === 400 && pending) pending.ref = null; // e.g. the upload expired: upload it again next time
      return await errorOf(res);
    } catch {
      return "Could not reach Parley. Check that it is running, then press Send to try again.";
    }
  }

  /** Uploads the image; the server keeps it on disk and answers the ref the message names it by. */
  async function upload(file) {
    // The type is only a hint (Parley checks the bytes), but it must say image or binary for the upload to be taken.
    const type = /^image\/[a-z0-9.+-]+$/i.test(file.type) ? file.type : "application/octet-stream";
    try {
      const res = await fetch(`${base}/api/uploads`, { method: "POST", headers: { "Content-Type": type }, body: file });
      if (res.status === 201) {
        const body = await res.json();
        if (body && typeof body.ref === "string") return { ref: body.ref };
      }
      return { error: await errorOf(res) };
    } catch {
      return { error: "Could not send the image to Parley. Check that it is running, then press Send to try again." };
    }
  }

  function setBusy(on) {
    busy = on;
    ui.send.disabled = on;
    ui.reset.disabled = on;
    ui.file.disabled = on;
  }

  function attach(file) {
    if (!file || busy) return;
    if (file.size > MAX_UPLOAD) {
      setStatus(`That image is ${formatSize(file.size)}; the limit is ${formatSize(MAX_UPLOAD)}.`, "error");
      return;
    }
    clearAttachment();
    attached = file;
    ui.preview.src = URL.createObjectURL(file);
    ui.preview.alt = `Preview of ${file.name || "the image"}`;
    ui.attachmentName.textContent = `${file.name || "Pasted image"} (${formatSize(file.size)})`;
    ui.attachment.hidden = false;
    setStatus("Image attached: add a question if you like, then Send.", "brief");
  }

  function clearAttachment() {
    if (ui.preview.src) URL.revokeObjectURL(ui.preview.src);
    ui.preview.removeAttribute("src");
    attached = null;
    ui.file.value = "";
    ui.attachment.hidden = true;
  }

  async function submit() {
    const typed = ui.input.value;
    const text = typed.trim();
    const image = attached;
    if (busy || (text === "" && !image)) return;
    if (text.length > MAX_CHARS) {
      setStatus(`Your message is ${text.length.toLocaleString()} characters; the limit is ${MAX_CHARS.toLocaleString()}.`, "error");
      return;
    }
    if (!pending || pending.text !== text || pending.image !== image) pending = { id: randomId(), text, image, ref: null };
    setBusy(true);
    let error = null;
    if (image && !pending.ref) {
      setStatus("Sending the image…");
      const uploaded = await upload(image);
      if (uploaded.error) error = uploaded.error;
      else pending.ref = uploaded.ref;
    }
    if (!error) {
      setStatus("Sending…");
      const named = image ? { ref: pending.ref, mimeType: image.type, name: image.name } : undefined;
      error = await deliver(text, pending.id, named);
    }
    setBusy(false);
    if (error) {
      setStatus(error, "error");
    } else {
      pending = null;
      addUser(text, image);
      if (ui.input.value === typed) ui.input.value = "";
      if (attached === image) clearAttachment();
      autosize();
      setStatus(lost ? "Sent. Waiting for the connection to come back…" : "");
    }
    ui.input.focus();
  }

  async function reset() {
    if (busy) return;
    setBusy(true);
    setStatus("Starting a new conversation…");
    const error = await deliver("/reset", randomId());
    setBusy(false);
    if (error) {
      setStatus(error, "error");
      return;
    }
    addDivider("New conversation");
    setStatus("");
    ui.input.focus();
  }

  function autosize() {
    ui.input.style.height = "auto";
    ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, 192)}px`;
  }

  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    void submit();
  });
  ui.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      void submit();
    }
  });
  ui.input.addEventListener("input", autosize);
  ui.reset.addEventListener("click", () => void reset());
  ui.file.addEventListener("change", () => {
    attach(ui.file.files && ui.file.files[0]);
    ui.input.focus();
  });
  ui.removeImage.addEventListener("click", () => {
    clearAttachment();
    setStatus("Image removed.", "brief");
    ui.input.focus();
  });
  /** The first image among dropped or pasted files. */
  const imageIn = (list) => Array.from(list || []).find((f) => f.type.startsWith("image/"));
  ui.input.addEventListener("paste", (e) => {
    const file = imageIn(e.clipboardData && e.clipboardData.files);
    if (file) {
      e.preventDefault();
      attach(file);
    }
  });
  document.addEventListener("dragover", (e) => {
    if (e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files")) e.preventDefault();
  });
  document.addEventListener("drop", (e) => {
    if (!e.dataTransfer || !Array.from(e.dataTransfer.types).includes("Files")) return;
    e.preventDefault();
    const file = imageIn(e.dataTransfer.files);
    if (file) attach(file);
    else setStatus("Only images can be attached.", "error");
    ui.input.focus();
  });

  ui.input.focus();
  const hasSession = document.body.dataset.session !== "none";
  if (token || !hasSession) {
    setBusy(true);
    setStatus("Opening the chat…");
    void openSession(token).then((error) => {
      // A refused link on a page that has a session already: say so, and go on with that session.
      if (error !== null && !hasSession) {
        setStatus(error, "error");
        return;
      }
      setBusy(false);
      setStatus(error === null ? "" : error, error === null ? undefined : "error");
      connect();
    });
  } else {
    connect();
  }
})();
