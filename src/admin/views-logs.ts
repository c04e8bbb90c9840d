import { LOG_LEVELS } from "../observability/log-sink.ts";
import { formatTime } from "./format.ts";
import { html, href, type Html } from "./html.ts";
import { page, type PageContext } from "./layout.ts";
import type { LogFilters, LogRow } from "./queries-logs.ts";
import { pager } from "./views-conversations.ts";

/**
 * The logs page: the live tail (filled by admin.js from the server-sent events stream, text only) above the older
 * lines from the logs table. One filter form drives both. The lines were scrubbed of secrets before they were
 * stored or streamed.
 */
export function logsView(
  ctx: PageContext,
  filters: LogFilters,
  older: { rows: LogRow[]; next?: number },
  sources: readonly string[],
  live: boolean,
  isFirstPage: boolean,
): Html {
  const query = { level: filters.level, source: filters.source, q: filters.q };
  const stream = href(`${ctx.base}/logs/stream`, query);
  return page(
    ctx,
    "logs",
    "Logs",
    html`<form class="filters" method="get" action="${ctx.base}/logs">
      <label>Level at least <select name="level"><option value="">any</option>${LOG_LEVELS.map(
        (l) => html`<option${l === filters.level ? html` selected` : ""}>${l}</option>`,
      )}</select></label>
      <label>Source <input name="source" value="${filters.source ?? ""}" list="log-sources" size="14"></label>
      <datalist id="log-sources">${sources.map((s) => html`<option value="${s}"></option>`)}</datalist>
      <label>Search <input type="search" name="q" value="${filters.q ?? ""}" placeholder="text in message or data"></label>
      <div class="filter-actions"><button type="submit">Filter</button><a href="${ctx.base}/logs">Clear</a></div>
    </form>
    <section class="tail">
      <h2>Live</h2>
      ${live
        ? html`<div class="tail-controls"><button type="button" id="tail-pause">Pause</button> <span id="tail-state" class="muted">connecting…</span></div>
      <div class="tail-box"><table class="log-table"><tbody id="tail-rows" data-stream="${stream}"></tbody></table></div>`
        : html`<p class="empty">The live tail is not connected: this process's logger does not write to the admin log sink.</p>`}
    </section>
    <section>
      <h2>Stored</h2>
      ${older.rows.length === 0
        ? html`<p class="empty">No stored log lines match.</p>`
        : html`<table class="log-table stored"><tbody>${older.rows.map((row) => logRow(row))}</tbody></table>`}
      ${pager(
        isFirstPage ? undefined : href(`${ctx.base}/logs`, query),
        older.next === undefined ? undefined : href(`${ctx.base}/logs`, { ...query, before: older.next }),
        "Newest",
        "Older",
      )}
    </section>`,
  );
}

function logRow(row: LogRow): Html {
  const data = row.data === null || row.data === undefined ? "" : JSON.stringify(row.data);
  return html`<tr class="level-${row.level}">
    <td class="time">${formatTime(row.time)}</td>
    <td class="level">${row.level}</td>
    <td class="source">${row.source ?? ""}</td>
    <td class="message">${row.message}${data === "" ? "" : html`<div class="data">${data.length > 2000 ? `${data.slice(0, 2000)}…` : data}</div>`}</td>
  </tr>`;
}
