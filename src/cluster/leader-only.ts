import type { ChannelAdapter, OnMessage } from "../core/types.ts";
import type { Logger } from "../observability/logger.ts";
import type { Leadership } from "./leader.ts";

/**
 * A channel whose receiving runs in one process of a cluster at a time (Telegram long polling: two processes
 * calling getUpdates for one bot take each other's updates away with 409 Conflict), while sending works everywhere:
 * any process's workers may answer any chat.
 *
 * `sender` does the sending in every process and is never started. While this process leads, a receiver made by
 * `createReceiver` runs; it is stopped when leadership ends and a new one is made for the next term (an adapter
 * starts only once). A receiver that fails while this process still leads (e.g. a 409 while the previous leader's
 * last request was still open) is replaced after a pause.
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
  const { leadership, sender, log } = options;
  const restartMs = options.restartMs ?? 5_000;
  let term: { receiver: ChannelAdapter; stop: AbortController } | undefined;
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
    const receiver = options.createReceiver();
    const current = { receiver, stop };
    term = current;
    await receiver.start(onMessage, AbortSignal.any([lifetime, stop.signal]));
    watch(onMessage, lifetime, current);
  };

  /** Replaces a failed receiver while this process still leads. */
  const watch = (onMessage: OnMessage, lifetime: AbortSignal, current: NonNullable<typeof term>) => {
    const check = () => {
      if (term !== current || stopped) return;
      if (current.receiver.status().state !== "failed") {
        failures = 0;
        restartTimer = setTimeout(check, restartMs).unref();
        return;
      }
      const delay = Math.min(60_000, restartMs * 2 ** failures++);
      log.warn({ channel: sender.name, detail: current.receiver.status().detail, retryInMs: delay }, "receiving failed while leading; restarting");
      restartTimer = setTimeout(() => {
        if (term !== current || stopped) return;
        endTerm();
        begin(onMessage, lifetime).catch((error: unknown) => log.error({ err: error, channel: sender.name }, "could not restart receiving"));
      }, delay).unref();
    };
    restartTimer = setTimeout(check, restartMs).unref();
  };

  return {
    name: sender.name,
    limits: sender.limits,
    async start(onMessage, signal) {
      if (started) throw new Error(`the ${sender.name} channel was already started`);
      started = true;
      const unsubscribe = leadership.onChange((leader) => {
        if (leader) {
          begin(onMessage, signal).catch((error: unknown) => log.error({ err: error, channel: sender.name }, "could not start receiving as leader"));
        } else {
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
    send: (chat, text, opts) => sender.send(chat, text, opts),
    ...(sender.sendFile ? { sendFile: sender.sendFile.bind(sender) } : {}),
    ...(sender.edit ? { edit: sender.edit.bind(sender) } : {}),
    ...(sender.draft ? { draft: sender.draft.bind(sender) } : {}),
    ...(sender.typing ? { typing: sender.typing.bind(sender) } : {}),
    ...(sender.download ? { download: sender.download.bind(sender) } : {}),
    status() {
      if (stopped) return term?.receiver.status() ?? { state: "stopped" };
      if (term) return term.receiver.status();
      if (!started) return { state: "starting" };
      return { state: "running", detail: options.standbyDetail };
    },
  };
}
