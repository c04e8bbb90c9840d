import { loginQr, qrSvg } from "./qr.ts";
import type { ChannelName, ChannelStatus } from "../core/types.ts";
import { barChart } from "./chart.ts";
import { formatCount, formatMs, formatPercent, formatTime, formatUsd } from "./format.ts";
import { html, href, type Html } from "./html.ts";
import { page, type PageContext } from "./layout.ts";
import type { CallStats, OverviewStats } from "./queries-overview.ts";

/**
 * What the model router knows about a provider right now: its circuit breaker (closed, open until a time,
 * half-open) and its limiter's load. Structural, so the router's own type fits without this page importing it;
 * without it the overview shows only what model_calls say.
 */
export interface ProviderHealth {
  provider: string;
  state: string;
  consecutiveFailures?: number;
  openUntil?: Date;
  lastError?: string;
  running?: number;
  queued?: number;
  concurrency?: number;
}

export interface OverviewData {
  channels: Array<{ name: ChannelName; status: ChannelStatus }>;
  stats: OverviewStats;
  health: readonly ProviderHealth[];
  /** The operator's web chat link, with its token; only ever rendered for a signed-in admin. */
  webChatLink?: string;
}

export function overviewView(ctx: PageContext, data: OverviewData): Html {
  const { stats } = data;
  const bars = stats.perHour.map((h, i) => {
    const label = `${h.start.toISOString().slice(11, 16)} UTC`;
    return { label, value: h.count, tick: i % 6 === 0 || i === 23 ? h.start.toISOString().slice(11, 16) : undefined };
  });
  return page(
    ctx,
    "overview",
    "Overview",
    html`<section class="cards">
      ${card("Messages", stats.messages.hour, stats.messages.day)}
      ${card("Set aside (refused by the database)", stats.setAside.hour, stats.setAside.day)}
      ${card("Model calls", stats.calls.hour.calls, stats.calls.day.calls)}
      ${statCard("Error rate", formatPercent(stats.calls.hour.errors, stats.calls.hour.calls), formatPercent(stats.calls.day.errors, stats.calls.day.calls))}
      ${statCard("Latency p50 / p95", latency(stats.calls.hour), latency(stats.calls.day))}
      ${statCard("Cost", formatUsd(stats.calls.hour.costUsd), formatUsd(stats.calls.day.costUsd))}
    </section>
    <section>
      <h2>Messages per hour, last 24 hours</h2>
      ${barChart(bars, { title: "Messages per hour over the last 24 hours", unit: "messages" })}
    </section>
    <section>
      <h2>Channels</h2>
      <table class="grid-table">
        <thead><tr><th>Channel</th><th>State</th><th>Detail</th></tr></thead>
        <tbody>${data.channels.map(
          (c) => html`<tr>
            <td><a href="${href(`${ctx.base}/conversations`, { channel: c.name })}">${c.name}</a></td>
            <td><span class="state state-${c.status.state}">${c.status.state}</span></td>
            <td>${channelDetail(c.status)}</td>
          </tr>`,
        )}</tbody>
      </table>
    </section>
    <section>
      <h2>Model providers</h2>
      ${providersTable(data)}
    </section>
    ${data.webChatLink === undefined ? "" : webChatSection(data.webChatLink)}`,
  );
}

function webChatSection(link: string): Html {
  return html`<section id="web-chat">
      <h2>Web chat</h2>
      <p><a class="web-chat-link" href="${link}" rel="noreferrer">Open the web chat as the operator</a>.
        The link carries the operator's credential (the same one Parley prints at start): keep it to yourself. To make a
        new one, delete <code>web-chat-token</code> in the data directory and restart Parley.</p>
    </section>`;
}

function channelDetail(status: ChannelStatus): Html | string {
  if (status.detail === undefined) return "";
  // A channel waiting for a login may put the pairing code (QR text) in its detail.
  if (status.state === "needs-login") {
    const { text, qr } = loginQr(status.detail);
    return qr ? html`<p>${text}</p>${qrSvg(qr)}` : html`<code class="login-code">${status.detail}</code>`;
  }
  return status.detail;
}

function providersTable(data: OverviewData): Html {
  const { providers } = data.stats;
  const health = new Map(data.health.map((h) => [h.provider, h]));
  const names = [...new Set([...data.health.map((h) => h.provider), ...providers.map((p) => p.provider)])].sort();
  if (names.length === 0) return html`<p class="empty">No model calls in the last 7 days.</p>`;
  const showHealth = data.health.length > 0;
  return html`<table class="grid-table">
    <thead><tr><th>Provider</th>${showHealth ? html`<th>Circuit</th><th>Load</th>` : ""}<th>Calls (7 days)</th><th>Failures</th><th>Last success</th><th>Last failure</th><th>Last error</th></tr></thead>
    <tbody>${names.map((name) => {
      const p = providers.find((x) => x.provider === name);
      const h = health.get(name);
      return html`<tr>
        <td>${name}</td>
        ${showHealth ? html`<td>${h ? circuit(h) : "—"}</td><td>${h ? load(h) : "—"}</td>` : ""}
        <td>${formatCount(p?.calls ?? 0)}</td>
        <td>${formatCount(p?.failures ?? 0)}</td>
        <td>${formatTime(p?.lastOkAt)}</td>
        <td>${formatTime(p?.lastErrorAt)}</td>
        <td class="error-text">${p?.lastError ?? ""}</td>
      </tr>`;
    })}</tbody>
  </table>`;
}

function circuit(h: ProviderHealth): Html {
  const details = [
    h.state === "open" && h.openUntil ? `until ${h.openUntil.toISOString().slice(11, 19)} UTC` : "",
    h.consecutiveFailures ? `${h.consecutiveFailures} failure${h.consecutiveFailures === 1 ? "" : "s"} in a row` : "",
  ].filter(Boolean);
  return html`<span class="state state-circuit-${h.state}">${h.state}</span>${details.length > 0 ? html` <span class="muted">${details.join(", ")}</span>` : ""}`;
}

function load(h: ProviderHealth): string {
  if (h.running === undefined) return "—";
  return `${h.running}${h.concurrency === undefined ? "" : ` / ${h.concurrency}`} running${h.queued ? `, ${h.queued} queued` : ""}`;
}

function card(title: string, hour: number, day: number): Html {
  return statCard(title, formatCount(hour), formatCount(day));
}

function statCard(title: string, hour: string, day: string): Html {
  return html`<div class="card"><h2>${title}</h2><p class="big">${hour}</p><p class="sub">last hour</p><p class="day"><strong>${day}</strong> last 24 h</p></div>`;
}

/** "156 / 259 ms" when both are below a second, else each with its own unit. */
function latency(stats: CallStats): string {
  const { p50Ms, p95Ms } = stats;
  if (p50Ms !== null && p95Ms !== null && p95Ms < 1000) return `${Math.round(p50Ms)} / ${Math.round(p95Ms)} ms`;
  return `${formatMs(p50Ms)} / ${formatMs(p95Ms)}`;
}
