import { CHANNEL_NAMES } from "../core/keys.ts";
import { formatCount, formatTime, formatUsd } from "./format.ts";
import { html, href, type Html } from "./html.ts";
import { csrfField, notice, page, type PageContext } from "./layout.ts";
import { MAX_PENDING_PER_CHANNEL, type PendingPairing } from "../access/pairing.ts";
import type { QuotaLimits } from "../quotas/guard.ts";
import { MODES, USER_STATUSES, type Usage, type UserFilters, type UserRow } from "./queries-users.ts";
import { pager } from "./views-conversations.ts";

export function userListView(
  ctx: PageContext,
  filters: UserFilters,
  rows: UserRow[],
  usage: Map<string, Usage>,
  pageNumber: number,
  more: boolean,
  message: string | undefined,
  pending: readonly PendingPairing[] = [],
): Html {
  const query = { status: filters.status, channel: filters.channel, q: filters.q };
  return page(
    ctx,
    "users",
    "Users",
    html`${notice(message)}
    ${pairingSection(ctx, pending)}
    <form class="filters" method="get" action="${ctx.base}/users">
      <label>Status <select name="status"><option value="">any</option>${USER_STATUSES.map(
        (s) => html`<option${s === filters.status ? html` selected` : ""}>${s}</option>`,
      )}</select></label>
      <label>Channel <select name="channel"><option value="">any</option>${CHANNEL_NAMES.map(
        (c) => html`<option${c === filters.channel ? html` selected` : ""}>${c}</option>`,
      )}</select></label>
      <label>Search <input type="search" name="q" value="${filters.q ?? ""}" placeholder="name or key"></label>
      <div class="filter-actions"><button type="submit">Filter</button><a href="${ctx.base}/users">Clear</a></div>
    </form>
    ${rows.length === 0
      ? html`<p class="empty">No users match.</p>`
      : html`<table class="grid-table users">
      <thead><tr><th>User</th><th>Status</th><th>Default mode</th><th>Messages</th><th>Tokens</th><th>Cost</th><th>Last seen</th></tr></thead>
      <tbody>${rows.map((u) => {
        const use = usage.get(u.key);
        return html`<tr>
          <td><a href="${ctx.base}/users/${encodeURIComponent(u.key)}">${u.displayName ?? u.key}</a>${u.displayName ? html` <code class="muted">${u.key}</code>` : ""}</td>
          <td><span class="tag tag-${u.status}">${u.status}</span></td>
          <td>${u.defaultMode}</td>
          <td>${formatCount(use?.messages ?? 0)}</td>
          <td>${formatCount((use?.tokensIn ?? 0) + (use?.tokensOut ?? 0))}</td>
          <td>${formatUsd(use?.costUsd ?? 0)}</td>
          <td class="nowrap">${formatTime(u.lastSeenAt)}</td>
        </tr>`;
      })}</tbody></table>`}
    ${pager(
      pageNumber > 1 ? href(`${ctx.base}/users`, { ...query, page: pageNumber - 1 }) : undefined,
      more ? href(`${ctx.base}/users`, { ...query, page: pageNumber + 1 }) : undefined,
      "Previous",
      "Next",
    )}`,
  );
}

/**
 * Codes waiting for approval (ACCESS_POLICY=pairing): how many per channel (at most MAX_PENDING_PER_CHANNEL each;
 * under a flood the oldest go first), then each code with its Approve button.
 */
function pairingSection(ctx: PageContext, pending: readonly PendingPairing[]): Html | "" {
  if (pending.length === 0) return "";
  const perChannel = new Map<string, number>();
  for (const p of pending) perChannel.set(p.channel, (perChannel.get(p.channel) ?? 0) + 1);
  return html`<section class="pairing" aria-labelledby="pairing-title">
      <h2 id="pairing-title">Waiting for approval</h2>
      <ul class="pairing-counts">${[...perChannel].sort(([a], [b]) => a.localeCompare(b)).map(
        ([channel, n]) => html`<li><span class="tag">${channel}</span> ${formatCount(n)} pending</li>`,
      )}</ul>
      <p class="muted">Codes are kept for the ${MAX_PENDING_PER_CHANNEL} most recent requests of each channel: when more
      strangers write, the oldest code of their channel expires early.</p>
      <table class="grid-table pairing">
      <thead><tr><th>Code</th><th>User</th><th>Asked</th><th>Expires</th><th></th></tr></thead>
      <tbody>${pending.map(
        (p) => html`<tr>
          <td><code>${p.code}</code></td>
          <td>${p.displayName ?? ""} <code class="muted">${p.user}</code></td>
          <td class="nowrap">${formatTime(p.createdAt)}</td>
          <td class="nowrap">${formatTime(p.expiresAt)}</td>
          <td><form method="post" action="${ctx.base}/pairing/${p.code}/approve" class="inline">${csrfField(ctx)}<button type="submit" class="primary">Approve ${p.code}</button></form></td>
        </tr>`,
      )}</tbody></table>
    </section>`;
}

export interface UserExtras {
  /** Model calls, tokens and cost by mode. */
  byMode: ReadonlyArray<{ mode: string; calls: number; tokens: number; costUsd: number }>;
  /** The configured defaults (QUOTA_*), shown beside the user's own values. */
  quotaDefaults?: QuotaLimits;
}

const QUOTA_INPUTS = [
  ["quotaMessagesPerMinute", "messagesPerMinute", "Messages a minute", "1"],
  ["quotaContemplationsPerHour", "contemplationsPerHour", "Contemplations an hour", "1"],
  ["quotaTokensPerDay", "tokensPerDay", "Tokens a day", "1"],
  ["quotaCostPerDayUsd", "costPerDayUsd", "Cost a day (USD)", "0.01"],
] as const;

function quotaForm(ctx: PageContext, action: string, user: UserRow, defaults: QuotaLimits | undefined): Html {
  const shown = (value: number | null | undefined) => (value === null || value === undefined ? "no limit" : String(value));
  return html`<form method="post" action="${action}/quotas" class="quotas">${csrfField(ctx)}
        <p>Empty: the configured default. 0: no limit.</p>
        ${QUOTA_INPUTS.map(
          ([field, key, label, step]) =>
            html`<label>${label} <input type="number" min="0" step="${step}" name="${field}" value="${user[field] === null ? "" : String(user[field])}" placeholder="default: ${shown(defaults?.[key])}"></label> `,
        )}
        <button type="submit">Save quotas</button>
      </form>`;
}

export function userView(ctx: PageContext, user: UserRow, usage: Usage, message: string | undefined, extras?: UserExtras): Html {
  const action = `${ctx.base}/users/${encodeURIComponent(user.key)}`;
  const statusButton = (status: UserRow["status"], label: string, cls: string) =>
    user.status === status
      ? ""
      : html`<form method="post" action="${action}/status" class="inline">${csrfField(ctx)}<input type="hidden" name="status" value="${status}"><button type="submit" class="${cls}">${label}</button></form>`;
  return page(
    ctx,
    "users",
    user.displayName ?? user.key,
    html`${notice(message)}
    <dl class="facts">
      <dt>Key</dt><dd><code>${user.key}</code></dd>
      <dt>Channel</dt><dd>${user.channel}</dd>
      <dt>Status</dt><dd><span class="tag tag-${user.status}" id="user-status">${user.status}</span></dd>
      <dt>First seen</dt><dd>${formatTime(user.createdAt)}</dd>
      <dt>Last seen</dt><dd>${formatTime(user.lastSeenAt)}</dd>
      <dt>Messages sent</dt><dd>${formatCount(usage.messages)}</dd>
      <dt>Model calls</dt><dd>${formatCount(usage.calls)}</dd>
      <dt>Tokens in / out</dt><dd>${formatCount(usage.tokensIn)} / ${formatCount(usage.tokensOut)}</dd>
      <dt>Cost</dt><dd>${formatUsd(usage.costUsd)}</dd>
      ${(extras?.byMode ?? []).map(
        (m) => html`<dt>Calls in ${m.mode}</dt><dd>${formatCount(m.calls)} · ${formatCount(m.tokens)} tokens · ${formatUsd(m.costUsd)}</dd>`,
      )}
    </dl>
    <p><a href="${href(`${ctx.base}/conversations`, { user: user.key })}">Conversations of this user</a></p>
    <section class="actions">
      <h2>Access</h2>
      <div class="buttons">
        ${statusButton("allowed", "Approve", "primary")}
        ${statusButton("blocked", "Block", "danger")}
        ${statusButton("pending", "Reset to pending", "")}
      </div>
      <h2>Quotas</h2>
      ${quotaForm(ctx, action, user, extras?.quotaDefaults)}
      <h2>Default mode</h2>
      <form method="post" action="${action}/mode" class="inline">${csrfField(ctx)}
        <select name="mode" aria-label="Default mode">${MODES.map((m) => html`<option${m === user.defaultMode ? html` selected` : ""}>${m}</option>`)}</select>
        <button type="submit">Save</button>
      </form>
      <h2>Delete</h2>
      <form method="post" action="${action}/delete" class="delete">${csrfField(ctx)}
        <p>Deletes this user's conversations, messages, model call records and the user row. Inbox rows keep only their ids.</p>
        <label class="check"><input type="checkbox" name="confirm" value="yes" required> I want to delete all of this user's data</label>
        <button type="submit" class="danger">Delete all data</button>
      </form>
    </section>`,
  );
}
