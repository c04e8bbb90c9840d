import { CHANNEL_NAMES } from "../core/keys.ts";
import { formatBytes, formatCount, formatMs, formatTime, formatUsd } from "./format.ts";
import { html, href, type Html } from "./html.ts";
import { page, type PageContext } from "./layout.ts";
import { isInlineImage } from "./media.ts";
import { isoDay } from "./params.ts";
import type { ConversationDetail, ConversationFilters, ConversationListRow, MediaInfo, MessageRow, ModelCallRow, Page } from "./queries-conversations.ts";
import { MODES } from "./queries-users.ts";

export function conversationListView(ctx: PageContext, filters: ConversationFilters, result: Page<ConversationListRow>, isFirstPage: boolean): Html {
  const query = filterQuery(filters);
  return page(
    ctx,
    "conversations",
    "Conversations",
    html`<form class="filters" method="get" action="${ctx.base}/conversations">
      <label>Channel <select name="channel"><option value="">any</option>${CHANNEL_NAMES.map(
        (c) => html`<option${c === filters.channel ? html` selected` : ""}>${c}</option>`,
      )}</select></label>
      <label>User <input name="user" value="${filters.user ?? ""}" placeholder="telegram:12345" size="18"></label>
      <label>Mode <select name="mode"><option value="">any</option>${MODES.map(
        (m) => html`<option${m === filters.mode ? html` selected` : ""}>${m}</option>`,
      )}</select></label>
      <label>From <input type="date" name="from" value="${isoDay(filters.from) ?? ""}"></label>
      <label>To <input type="date" name="to" value="${isoDay(filters.to) ?? ""}"></label>
      <label class="check"><input type="checkbox" name="error" value="1"${filters.hasError ? html` checked` : ""}> had an error</label>
      <label>Search <input type="search" name="q" value="${filters.q ?? ""}" placeholder="text, name or key"></label>
      <div class="filter-actions"><button type="submit">Filter</button><a href="${ctx.base}/conversations">Clear</a></div>
    </form>
    ${result.rows.length === 0
      ? html`<p class="empty">No conversations match.</p>`
      : html`<table class="grid-table conversations">
      <thead><tr><th>#</th><th>User</th><th>Chat</th><th>Started</th><th>Last activity</th><th>Turns</th><th></th></tr></thead>
      <tbody>${result.rows.map(
        (c) => html`<tr>
          <td><a href="${ctx.base}/conversations/${c.id}">#${c.id}</a></td>
          <td>${userCell(ctx, c.userKey, c.displayName, c.userStatus)}</td>
          <td><code>${c.chatKey}</code></td>
          <td class="nowrap">${formatTime(c.startedAt)}${c.ended ? html` <span class="tag">ended</span>` : ""}</td>
          <td class="nowrap">${formatTime(c.lastAt)}</td>
          <td>${formatCount(c.turns)}</td>
          <td>${c.hasError ? html`<span class="tag tag-error">error</span>` : ""}</td>
        </tr>`,
      )}</tbody></table>`}
    ${pager(
      isFirstPage ? undefined : href(`${ctx.base}/conversations`, query),
      result.next === undefined ? undefined : href(`${ctx.base}/conversations`, { ...query, before: result.next }),
      "Newest",
      "Older",
    )}`,
  );
}

export function conversationView(ctx: PageContext, d: ConversationDetail): Html {
  const c = d.conversation;
  const path = `${ctx.base}/conversations/${c.id}`;
  const placed = placeCalls(d);
  return page(
    ctx,
    "conversations",
    `Conversation #${c.id}`,
    html`<dl class="facts">
      <dt>User</dt><dd>${userCell(ctx, c.userKey, d.user?.displayName ?? null, d.user?.status ?? null)}</dd>
      <dt>Chat</dt><dd><code>${c.chatKey}</code></dd>
      <dt>Default mode</dt><dd>${d.user?.defaultMode ?? "—"}</dd>
      <dt>Started</dt><dd>${formatTime(c.startedAt)}</dd>
      ${c.endedAt ? html`<dt>Ended</dt><dd>${formatTime(c.endedAt)}</dd>` : ""}
    </dl>
    ${c.summary ? html`<details class="summary"><summary>Summary of earlier turns</summary><p class="text">${c.summary}</p></details>` : ""}
    ${pager(d.older === undefined ? undefined : href(path, { before: d.older }), d.newer === undefined ? undefined : href(path, { after: d.newer }), "Older turns", "Newer turns")}
    ${d.turns.length === 0 ? html`<p class="empty">No turns.</p>` : html`<ol class="turns">${d.turns.map((t) => turnView(ctx, d, t, placed.get(t.id) ?? []))}</ol>`}
    ${pager(d.older === undefined ? undefined : href(path, { before: d.older }), d.newer === undefined ? undefined : href(path, { after: d.newer }), "Older turns", "Newer turns")}`,
  );
}

function turnView(ctx: PageContext, d: ConversationDetail, t: MessageRow, calls: ModelCallRow[]): Html {
  const inbox = t.role === "user" && t.inboxId !== null ? d.inbox.get(t.inboxId) : undefined;
  const mediaIds = Array.isArray(t.media) ? t.media : [];
  return html`<li class="turn turn-${t.role}" id="turn-${t.id}">
    <div class="turn-head">
      <span class="role">${t.role}</span>
      <time>${formatTime(t.createdAt)}</time>
      ${t.mode ? html`<span class="tag">${t.mode}</span>` : ""}
      <span class="muted">${formatCount(t.tokens)} tokens</span>
      ${t.role === "assistant" && t.deliveredAt === null ? html`<span class="tag tag-warn">not delivered</span>` : ""}
      ${inbox && inbox.state === "failed" ? html`<span class="tag tag-error">failed after ${inbox.attempts} attempts</span>` : ""}
    </div>
    <div class="text">${t.text}</div>
    ${inbox?.error ? html`<p class="error-text">${inbox.error}</p>` : ""}
    ${mediaIds.length > 0 ? html`<div class="media">${mediaIds.map((id) => mediaView(ctx, id, d.media.get(id)))}</div>` : ""}
    ${calls.length > 0 ? callsView(calls) : ""}
  </li>`;
}

function mediaView(ctx: PageContext, id: string, info: MediaInfo | undefined): Html {
  if (!/^[0-9a-f]{64}$/.test(id)) return html``;
  const url = `${ctx.base}/media/${id}`;
  if (!info) return html`<span class="muted">media ${id.slice(0, 12)}… (deleted)</span>`;
  const label = `${info.mimeType}, ${info.width && info.height ? `${info.width}×${info.height}, ` : ""}${formatBytes(info.bytes)}`;
  if (isInlineImage(info.mimeType)) {
    const box = info.width && info.height ? fitIn(info.width, info.height, 160) : undefined;
    return html`<a class="thumb" href="${url}"><img src="${url}" alt="${`image (${label})`}" title="${label}" loading="lazy"${
      info.width && info.height && Math.max(info.width, info.height) < 160 ? html` class="upscaled"` : ""
    }${
      box ? html` width="${box.width}" height="${box.height}"` : ""
    }></a>`;
  }
  return html`<a class="file" href="${url}" download>file (${label})</a>`;
}

/** The size that fits a `size`-pixel square, keeping the aspect ratio (small images are scaled up to be seen). */
function fitIn(width: number, height: number, size: number): { width: number; height: number } {
  const scale = size / Math.max(width, height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Model calls go under the turn they produced: by message id when recorded, else under the assistant turn of the
 * same inbox row (or the user turn when no answer was stored).
 */
function placeCalls(d: ConversationDetail): Map<number, ModelCallRow[]> {
  const byInbox = new Map<number, number>();
  for (const t of d.turns) {
    if (t.inboxId === null) continue;
    if (t.role === "assistant" || !byInbox.has(t.inboxId)) byInbox.set(t.inboxId, t.id);
  }
  const turnIds = new Set(d.turns.map((t) => t.id));
  const ids = new Set(d.calls.map((c) => c.id));
  const placed = new Map<number, ModelCallRow[]>();
  for (const call of d.calls) {
    // Children travel with their parent; only roots are placed.
    if (call.parentId !== null && ids.has(call.parentId)) continue;
    const turn =
      call.messageId !== null && turnIds.has(call.messageId) ? call.messageId : call.inboxId !== null ? byInbox.get(call.inboxId) : undefined;
    if (turn === undefined) continue;
    placed.set(turn, [...(placed.get(turn) ?? []), ...treeOf(call, d.calls)]);
  }
  return placed;
}

/** A root and all its descendants (within the loaded calls), root first. */
function treeOf(root: ModelCallRow, all: ModelCallRow[]): ModelCallRow[] {
  const out: ModelCallRow[] = [];
  const visit = (call: ModelCallRow, depth: number) => {
    if (out.includes(call) || depth > 8) return;
    out.push(call);
    for (const child of all.filter((c) => c.parentId === call.id)) visit(child, depth + 1);
  };
  visit(root, 0);
  return out;
}

function callsView(calls: ModelCallRow[]): Html {
  const ids = new Set(calls.map((c) => c.id));
  const roots = calls.filter((c) => c.parentId === null || !ids.has(c.parentId));
  const failed = calls.filter((c) => !c.ok).length;
  const cost = calls.reduce((sum, c) => sum + (c.costUsd ?? 0), 0);
  return html`<details class="calls">
    <summary>${calls.length} model call${calls.length === 1 ? "" : "s"}${failed > 0 ? html`, <span class="error-text">${failed} failed</span>` : ""}${
      cost > 0 ? ` · ${formatUsd(cost)}` : ""
    }</summary>
    <ul class="call-tree">${roots.map((r) => callNode(r, calls, 0))}</ul>
  </details>`;
}

function callNode(call: ModelCallRow, all: ModelCallRow[], depth: number): Html {
  const children = depth < 8 ? all.filter((c) => c.parentId === call.id) : [];
  return html`<li class="call ${call.ok ? "call-ok" : "call-failed"}">
    <div class="call-head">
      <strong>${call.provider}:${call.model}</strong>
      <span class="tag">${call.purpose}</span>${call.mode ? html` <span class="tag">${call.mode}</span>` : ""}
      ${call.ok ? html`<span class="tag tag-ok">ok</span>` : html`<span class="tag tag-error">failed</span>`}
    </div>
    <dl class="call-facts">
      <dt>Started</dt><dd>${formatTime(call.startedAt)}</dd>
      <dt>Latency</dt><dd>${formatMs(call.latencyMs)}</dd>
      <dt>First token</dt><dd>${formatMs(call.firstTokenMs)}</dd>
      <dt>Tokens in / out</dt><dd>${formatCount(call.tokensIn)} / ${formatCount(call.tokensOut)}</dd>
      <dt>Cost</dt><dd>${formatUsd(call.costUsd)}</dd>
    </dl>
    ${call.error ? html`<p class="error-text">${call.error}</p>` : ""}
    ${children.length > 0 ? html`<ul class="call-tree">${children.map((c) => callNode(c, all, depth + 1))}</ul>` : ""}
  </li>`;
}

export function userCell(ctx: PageContext, key: string, name: string | null, status: string | null): Html {
  return html`<a href="${ctx.base}/users/${encodeURIComponent(key)}">${name ?? key}</a>${
    name ? html` <code class="muted">${key}</code>` : ""
  }${status && status !== "allowed" ? html` <span class="tag tag-${status}">${status}</span>` : ""}`;
}

export function pager(first: string | undefined, next: string | undefined, firstLabel: string, nextLabel: string): Html | "" {
  if (first === undefined && next === undefined) return "";
  return html`<nav class="pager">${first === undefined ? "" : html`<a href="${first}">← ${firstLabel}</a>`}${
    next === undefined ? "" : html`<a href="${next}">${nextLabel} →</a>`
  }</nav>`;
}

function filterQuery(f: ConversationFilters): Record<string, string | undefined> {
  return {
    channel: f.channel,
    user: f.user,
    mode: f.mode,
    from: isoDay(f.from),
    to: isoDay(f.to),
    error: f.hasError ? "1" : undefined,
    q: f.q,
  };
}
