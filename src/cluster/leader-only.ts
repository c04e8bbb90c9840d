import { DeliveryError } from "../core/errors.ts";
import type { ChannelAdapter, ChannelStatus, OnMessage } from "../core/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { Leadership } from "./leader.ts";

/**
 * Channels that run in one process of a cluster at a time, in two shapes:
 *
 * - `receiveAsLeaderOnly`: only the receiving is the leader's (Telegram long polling: two processes calling
 *   getUpdates for one bot take each other's updates away with 409 Conflict), while sending works everywhere: any
 *   process's workers may answer any chat. `sender` does the sending in every process and is never started.
 * - `runAsLeaderOnly`: the whole channel is the leader's (a WhatsApp Web session: one browser holds the linked
 *   device, and sending needs it too). A standby refuses to send with a retryable DeliveryError, so a reply stored
 *   at a hand-over is sent again later, by whichever process leads then; `leads()` tells the workers whether to
 *   claim the channel's messages at all.
 *
 * While this process leads, an adapter made by `create` runs; it is stopped when leadership ends and a new one is
 * made for the next term (an adapter starts only once). A receiver that fails while this process still leads
 * (e.g. a 409 while the previous leader's last request was still open) is replaced after a pause; a whole channel
 * is not, as it keeps itself alive (WhatsApp's supervisor restarts its browser).
 */
export interface LeaderOnlyOptions {
  leadership: Leadership;
  sender: ChannelAdapter;
  createReceiver: () => ChannelAdapter;
  /** Shown as the status detail while another process receives, e.g. "standby: another Parley process receives …". */
  standbyDetail: string;
  log: Logger;
  /** Pause before replacing a failed receiver; doubles up to a minute. Default 5 s. */
  restartMs?: number;
}

export function receiveAsLeaderOnly(options: LeaderOnlyOptions): ChannelAdapter {
  const { sender } = options;
  const terms = leaderTerms({ ...options, name: sender.name, create: options.createReceiver, replaceFailed: true });
  return {
    name: sender.name,
    limits: sender.limits,
    start: terms.start,
    send: (chat, text, opts) => sender.send(chat, text, opts),
    ...(sender.sendFile ? { sendFile: sender.sendFile.bind(sender) } : {}),
    ...(sender.edit ? { edit: sender.edit.bind(sender) } : {}),
    ...(sender.draft ? { draft: sender.draft.bind(sender) } : {}),
    ...(sender.typing ? { typing: sender.typing.bind(sender) } : {}),
    ...(sender.download ? { download: sender.download.bind(sender) } : {}),
    status: () => terms.status(options.standbyDetail),
  };
}

export interface RunAsLeaderOnlyOptions {
  leadership: Leadership;
  /** A fresh, unstarted channel for each term. The first one is made at once: its members are the channel's. */
  create: () => ChannelAdapter;
  /** The status detail, and the refusal of a send, while another process runs the channel. */
  standbyDetail: string;
  log: Logger;
}

export interface LeaderOnlyChannel {
  adapter: ChannelAdapter;
  /** Whether the channel runs in this process right now: only then can it deliver. */
  leads(): boolean;
}

export function runAsLeaderOnly(options: RunAsLeaderOnlyOptions): LeaderOnlyChannel {
  let first: ChannelAdapter | undefined = options.create();
  const shape = first;
  const create = () => {
    const next = first ?? options.create();
    first = undefined;
    return next;
  };
  const terms = leaderTerms({ ...options, name: shape.name, create, replaceFailed: false });

  /** The adapter of the current term; a standby (or a process that is stopping) refuses, retryably. */
  const running = (operation: string): ChannelAdapter => {
    const adapter = terms.current();
    if (adapter === undefined) {
      throw new DeliveryError(`cannot ${operation} on ${shape.name} from this process (${options.standbyDetail})`, true);
    }
    return adapter;
  };
  const adapter: ChannelAdapter = {
    name: shape.name,
    limits: shape.limits,
    start: terms.start,
    send: async (chat, text, opts) => running("send").send(chat, text, opts),
    ...(shape.sendFile ? { sendFile: async (chat, file, opts) => running("sendFile").sendFile!(chat, file, opts) } : {}),
    ...(shape.edit ? { edit: async (chat, id, text) => running("edit").edit!(chat, id, text) } : {}),
    ...(shape.draft ? { draft: async (chat, id, text) => running("draft").draft!(chat, id, text) } : {}),
    ...(shape.typing ? { typing: async (chat) => running("typing").typing!(chat) } : {}),
    ...(shape.download ? { download: async (file, maxBytes, signal) => running("download").download!(file, maxBytes, signal) } : {}),
    status: () => terms.status(options.standbyDetail),
  };
  return { adapter, leads: () => terms.current() !== undefined };
}

interface Terms {
  start(onMessage: OnMessage, signal: AbortSignal): Promise<void>;
  /** The adapter running for this process's current term; undefined in standby and once stopped. */
  current(): ChannelAdapter | undefined;
  status(standbyDetail: string): ChannelStatus;
}

/** One adapter per term of leadership: started when the term begins, aborted when it ends. */
function leaderTerms(options: {
  leadership: Leadership;
  name: string;
  create: () => ChannelAdapter;
  replaceFailed: boolean;
  log: Logger;
  restartMs?: number;
}): Terms {
  const { leadership, name, log } = options;
  const restartMs = options.restartMs ?? 5_000;
  let term: { adapter: ChannelAdapter; stop: AbortController } | undefined;
  let stopped = false;
  let started = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let failures = 0;

  const endTerm = () => {
    term?.stop.abort(new Error("leadership ended"));
    term = undefined;
    clearTimeout(restartTimer);
  };

  const begin = async (onMessage: OnMessage, lifetime: AbortSignal) => {
    if (term || stopped || !leadership.isLeader()) return;
    const stop = new AbortController();
    const adapter = options.create();
    const current = { adapter, stop };
    term = current;
    await adapter.start(onMessage, AbortSignal.any([lifetime, stop.signal]));
    if (options.replaceFailed) watch(onMessage, lifetime, current);
  };

  /** Replaces a failed receiver while this process still leads. */
  const watch = (onMessage: OnMessage, lifetime: AbortSignal, current: NonNullable<typeof term>) => {
    const check = () => {
      if (term !== current || stopped) return;
      if (current.adapter.status().state !== "failed") {
        failures = 0;
        restartTimer = setTimeout(check, restartMs).unref();
        return;
      }
      const delay = Math.min(60_000, restartMs * 2 ** failures++);
      log.warn({ channel: name, detail: current.adapter.status().detail, retryInMs: delay }, "receiving failed while leading; restarting");
      restartTimer = setTimeout(() => {
        if (term !== current || stopped) return;
        endTerm();
        begin(onMessage, lifetime).catch((error: unknown) => log.error({ err: error, channel: name }, "could not restart receiving"));
      }, delay).unref();
    };
    restartTimer = setTimeout(check, restartMs).unref();
  };

  return {
    async start(onMessage, signal) {
      if (started) throw new Error(`the ${name} channel was already started`);
      started = true;
      const unsubscribe = leadership.onChange((leader) => {
        if (leader) {
          begin(onMessage, signal).catch((error: unknown) =>
            log.error({ err: error, channel: name }, "could not start the channel as leader"),
          );
        } else {
          if (term) log.info({ channel: name }, "leadership ended; stopping the channel in this process");
          endTerm();
        }
      });
      signal.addEventListener(
        "abort",
        () => {
          stopped = true;
          unsubscribe();
          clearTimeout(restartTimer);
        },
        { once: true },
      );
      await leadership.ready;
      await begin(onMessage, signal);
    },
    current: () => (stopped ? undefined : term?.adapter),
    status(standbyDetail) {
      if (stopped) return term?.adapter.status() ?? { state: "stopped" };
      if (term) return term.adapter.status();
      if (!started) return { state: "starting" };
      return { state: "running", detail: standbyDetail };
    },
  };
}
