import type { Logger } from "pino";
import { errorMessage } from "../../src/core/errors.ts";
import type { ChannelState, ChannelStatus } from "../../src/core/types.ts";
import type {
  CreateWhatsAppClient,
  WhatsAppClientEvents,
  WhatsAppClientOptions,
  WhatsAppClientPort,
  WhatsAppMessage,
} from "./client-port.ts";
import type { BotIdentity } from "./normalize.ts";
import { clearStaleProfileLock } from "./profile-lock.ts";
import type { QrOutput } from "./qr-output.ts";
import { backoffDelay, pause, settleWithin, type Backoff, type Timers } from "./timers.ts";

/**
 * Keeps one whatsapp-web.js client alive, and replaces it when it is not.
 *
 * The library's failure modes (see the reliability notes) decide the shape: WhatsApp Web can log in and never
 * become ready (version drift), the browser can die without any event while `getState()` hangs, `destroy()` can
 * hang on a dead browser, and a `LOGOUT` means the phone unlinked the device. So:
 * - a launch that shows neither a QR code nor a login nor any loading progress for `startupTimeoutMs`, or a
 *   login without `ready` within `readyTimeoutMs`, is replaced;
 * - a watchdog races `getState()` against `stateTimeoutMs` every `watchdogIntervalMs`; no answer or an error
 *   replaces the client, and so does a ready client that is not CONNECTED for `unhealthyChecks` checks in a row;
 * - replacing destroys the old client within `destroyTimeoutMs` (then kills its browser), and launches a new one
 *   after a capped exponential backoff with jitter — attempts are unlimited, the backoff resets on `ready`;
 * - `LOGOUT` is not retried: the status says a new link is needed, and one fresh client is started (after the
 *   first backoff delay) so that it shows a new QR code. A second LOGOUT before the account is linked again
 *   leaves the channel waiting for the operator.
 * Events of a client that was replaced are ignored, except messages; every handler has its own error boundary.
 */

export interface SupervisorTuning {
  watchdogIntervalMs: number;
  stateTimeoutMs: number;
  destroyTimeoutMs: number;
  startupTimeoutMs: number;
  readyTimeoutMs: number;
  unhealthyChecks: number;
  restartBackoff: Backoff;
}

export interface SupervisorDeps {
  createClient: CreateWhatsAppClient;
  clientOptions: WhatsAppClientOptions;
  /** The Chromium profile directory whose stale lock is cleared before each launch. */
  profileDir: string;
  procRoot: string;
  killProcess: (pid: number) => void;
  qr: QrOutput;
  timers: Timers;
  random: () => number;
  log: Logger;
  tuning: SupervisorTuning;
  onMessage: (message: WhatsAppMessage, bot: BotIdentity) => void;
}

export interface LiveClient {
  client: WhatsAppClientPort;
  bot: BotIdentity;
}

export interface Supervisor {
  start(): void;
  stop(): void;
  status(): ChannelStatus;
  /** The client while WhatsApp Web is ready, else undefined. */
  live(): LiveClient | undefined;
  /** Something suggested the page is gone (a send timed out): check its health now instead of at the next tick. */
  checkNow(): void;
}

type Phase = "initializing" | "qr" | "authenticated" | "ready";

interface Session {
  generation: number;
  client: WhatsAppClientPort;
  phase: Phase;
  bot: BotIdentity;
  phaseTimer?: unknown;
  watchdogTimer?: unknown;
  checking: boolean;
  unhealthy: number;
}

/** backoff: after the growing delay; fresh: after the first delay, not counted as a failure; never: wait for the operator. */
type Relaunch = "backoff" | "fresh" | "never";

export function createSupervisor(deps: SupervisorDeps): Supervisor {
  const { timers, tuning, log } = deps;
  const stopping = new AbortController();
  let session: Session | undefined;
  let generation = 0;
  let failures = 0;
  let relaunchedAfterLogout = false;
  /** Why a new link is needed, shown with the QR code until the account is linked. */
  let loginReason: string | undefined;
  let lastProblem: string | undefined;
  let stopped = true;
  let status: ChannelStatus = { state: "stopped", detail: "not started" };

  const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

  function setStatus(state: ChannelState, detail?: string): void {
    status = detail === undefined ? { state } : { state, detail };
  }

  function launch(): void {
    if (stopped) return;
    clearProfileLock();
    const generationNo = ++generation;
    let client: WhatsAppClientPort;
    try {
      client = deps.createClient(deps.clientOptions);
    } catch (error) {
      const problem = `could not create the WhatsApp client: ${errorMessage(error)}`;
      log.error({ err: errorMessage(error) }, problem);
      relaunch(Promise.resolve(), problem, "failed", "backoff");
      return;
    }
    const s: Session = { generation: generationNo, client, phase: "initializing", bot: { ids: [] }, checking: false, unhealthy: 0 };
    session = s;
    try {
      attach(s);
    } catch (error) {
      replace(s, `could not listen to the WhatsApp client: ${errorMessage(error)}`, "failed", "backoff");
      return;
    }
    if (loginReason !== undefined) setStatus("needs-login", `${loginReason}; opening WhatsApp Web for a new QR code`);
    else setStatus("starting", lastProblem === undefined ? "launching Chromium" : `launching Chromium (last problem: ${lastProblem})`);
    log.info({ generation: generationNo }, "starting WhatsApp Web");

    armStartupTimer(s);
    Promise.resolve()
      .then(() => client.initialize())
      .then(
        () => log.debug({ generation: generationNo }, "WhatsApp Web initialized"),
        (error: unknown) => {
          const message = errorMessage(error);
          const hint = /ENOENT|no such file|executable/i.test(message)
            ? ` (is Chromium installed at ${deps.clientOptions.chromiumPath}? set CHROMIUM_PATH)`
            : /profile.*in use|SingletonLock/i.test(message)
              ? " (another Chromium uses the WhatsApp profile)"
              : "";
          replace(s, `WhatsApp Web could not start: ${message}${hint}`, "failed", "backoff");
        },
      );
  }

  /** Until a QR code or a login shows up; any sign of progress (a loading percentage, a state change) re-arms it. */
  function armStartupTimer(s: Session): void {
    clearPhaseTimer(s);
    s.phaseTimer = timers.setTimeout(() => {
      replace(s, `WhatsApp Web did not load within ${seconds(tuning.startupTimeoutMs)}`, "failed", "backoff");
    }, tuning.startupTimeoutMs);
  }

  function clearProfileLock(): void {
    try {
      const outcome = clearStaleProfileLock(deps.profileDir, deps.procRoot);
      if (outcome.kind === "cleared") log.warn({ files: outcome.files }, "removed a stale Chromium profile lock left by an unclean stop");
      if (outcome.kind === "in-use") log.warn({ pid: outcome.pid }, "another process uses the WhatsApp Chromium profile; its lock is kept");
    } catch (error) {
      log.warn({ err: errorMessage(error) }, "could not check the Chromium profile lock");
    }
  }

  function attach(s: Session): void {
    const on = <E extends keyof WhatsAppClientEvents>(event: E, handler: (...args: Parameters<WhatsAppClientEvents[E]>) => void) => {
      const guarded = (...args: Parameters<WhatsAppClientEvents[E]>) => {
        if (event !== "message" && session !== s) return; // a replaced client
        try {
          handler(...args);
        } catch (error) {
          log.error({ event, err: errorMessage(error) }, "handling a WhatsApp Web event failed");
        }
      };
      s.client.on(event, guarded as unknown as WhatsAppClientEvents[E]);
    };

    on("qr", (qr) => {
      s.phase = "qr";
      clearPhaseTimer(s);
      startWatchdog(s);
      const prefix = loginReason === undefined ? "" : `${loginReason}; `;
      setStatus("needs-login", `${prefix}scan the QR code with WhatsApp (Settings → Linked devices → Link a device). QR: ${qr}`);
      deps.qr.show(qr).catch((error: unknown) => log.error({ err: errorMessage(error) }, "could not show the WhatsApp QR code"));
    });

    on("authenticated", () => {
      s.phase = "authenticated";
      clearPhaseTimer(s);
      startWatchdog(s);
      setStatus("starting", "logged in; loading WhatsApp Web");
      log.info("WhatsApp Web logged in");
      s.phaseTimer = timers.setTimeout(() => {
        replace(
          s,
          `WhatsApp Web logged in but did not become ready within ${seconds(tuning.readyTimeoutMs)} ` +
            "(WhatsApp Web may have changed; update whatsapp-web.js if this repeats)",
          "failed",
          "backoff",
        );
      }, tuning.readyTimeoutMs);
      clearQr();
    });

    on("ready", () => {
      s.phase = "ready";
      clearPhaseTimer(s);
      startWatchdog(s);
      failures = 0;
      relaunchedAfterLogout = false;
      loginReason = undefined;
      lastProblem = undefined;
      const wid = s.client.info?.wid?._serialized;
      s.bot = { ids: wid ? [wid] : [] };
      if (!wid) log.warn("WhatsApp Web is ready but did not say which account it is; mentions of the bot will not be recognised");
      setStatus("running", wid ? `connected as ${wid}` : "connected");
      log.info({ account: wid }, "WhatsApp Web is ready");
      void learnLid(s);
      clearQr();
    });

    on("disconnected", (reason) => {
      if (reason === "LOGOUT") {
        loggedOut(s);
        return;
      }
      replace(s, `WhatsApp Web disconnected (${describeReason(String(reason))})`, "starting", "backoff");
    });

    on("auth_failure", (message) => {
      loginReason = "WhatsApp refused the saved session";
      replace(s, `WhatsApp refused the saved session (${String(message)}); a new QR code will be shown`, "needs-login", "backoff");
    });

    on("change_state", (state) => {
      log.info({ state }, "WhatsApp Web connection state changed");
      if (state === "CONNECTED") s.unhealthy = 0;
      if (s.phase === "initializing") armStartupTimer(s);
    });

    on("loading_screen", (percent) => {
      log.debug({ percent }, "WhatsApp Web is loading");
      if (s.phase === "initializing") {
        armStartupTimer(s);
        setStatus(status.state, `loading WhatsApp Web (${Number(percent)} %)`);
      }
    });

    on("message", (message) => {
      if (stopped) return;
      deps.onMessage(message, s.bot);
    });
  }

  function loggedOut(s: Session): void {
    loginReason = "WhatsApp logged this device out (unlinked on the phone, or offline too long)";
    if (!relaunchedAfterLogout) {
      relaunchedAfterLogout = true;
      // Not at once: on LOGOUT the library deletes the session directory, which the fresh client is about to reuse.
      replace(s, `${loginReason}; a new QR code will be shown to link it again`, "needs-login", "fresh");
    } else {
      replace(s, `${loginReason} again before it was linked; restart Parley to show a new QR code`, "needs-login", "never");
    }
  }

  /** Retires `s` (if it is still the current client) and decides what comes next. */
  function replace(s: Session, problem: string, state: ChannelState, next: Relaunch): void {
    if (session !== s || stopped) return;
    session = undefined;
    disarm(s);
    const retired = retire(s);
    relaunch(retired, problem, state, next);
  }

  function relaunch(retired: Promise<void>, problem: string, state: ChannelState, next: Relaunch): void {
    lastProblem = problem;
    if (next === "never") {
      setStatus(state, problem);
      log.error({ problem }, "WhatsApp Web stopped; it will not be restarted automatically");
      return;
    }
    const delay = next === "fresh" ? tuning.restartBackoff.initialMs : backoffDelay(failures++, tuning.restartBackoff, deps.random);
    setStatus(state, next === "fresh" ? problem : `${problem}; restarting WhatsApp Web in ${seconds(delay)} (attempt ${failures})`);
    log.warn({ problem, restartInMs: delay, attempt: failures }, "restarting WhatsApp Web");
    void Promise.all([retired, pause(timers, delay, stopping.signal)]).then(() => launch());
  }

  /** Destroys a client within `destroyTimeoutMs`; a browser that does not close is killed. Never rejects. */
  async function retire(s: Session): Promise<void> {
    const outcome = await settleWithin(timers, Promise.resolve().then(() => s.client.destroy()), tuning.destroyTimeoutMs);
    if (outcome.kind === "value") return;
    const pid = s.client.browserPid?.();
    log.warn(
      { generation: s.generation, pid, err: outcome.kind === "error" ? errorMessage(outcome.error) : undefined },
      outcome.kind === "timeout"
        ? `closing WhatsApp Web did not finish within ${seconds(tuning.destroyTimeoutMs)}; carrying on`
        : "closing WhatsApp Web failed; carrying on",
    );
    if (pid !== undefined) {
      try {
        deps.killProcess(pid);
        log.warn({ pid }, "killed the WhatsApp Chromium process");
      } catch (error) {
        log.warn({ pid, err: errorMessage(error) }, "could not kill the WhatsApp Chromium process");
      }
    }
  }

  function startWatchdog(s: Session): void {
    if (s.watchdogTimer === undefined && !s.checking) scheduleCheck(s);
  }

  function scheduleCheck(s: Session): void {
    s.watchdogTimer = timers.setTimeout(() => {
      s.watchdogTimer = undefined;
      void check(s);
    }, tuning.watchdogIntervalMs);
  }

  async function check(s: Session): Promise<void> {
    if (session !== s || s.checking) return;
    s.checking = true;
    const outcome = await settleWithin(timers, Promise.resolve().then(() => s.client.getState()), tuning.stateTimeoutMs);
    s.checking = false;
    if (session !== s) return;
    if (outcome.kind === "timeout") {
      replace(s, `WhatsApp Web stopped answering (no state within ${seconds(tuning.stateTimeoutMs)}); the browser probably died`, "failed", "backoff");
      return;
    }
    if (outcome.kind === "error") {
      replace(s, `WhatsApp Web health check failed: ${errorMessage(outcome.error)}`, "failed", "backoff");
      return;
    }
    if (s.phase === "ready") {
      const state = outcome.value;
      if (state === "CONNECTED") {
        if (s.unhealthy > 0) setStatus("running", s.bot.ids[0] ? `connected as ${s.bot.ids[0]}` : "connected");
        s.unhealthy = 0;
      } else if (++s.unhealthy >= tuning.unhealthyChecks) {
        replace(s, `WhatsApp Web stayed ${state ?? "without a connection state"} for ${s.unhealthy} checks`, "failed", "backoff");
        return;
      } else {
        log.warn({ state, checks: s.unhealthy }, "WhatsApp Web is not connected");
        setStatus("running", `WhatsApp Web reports ${state ?? "no connection state"}`);
      }
    }
    if (s.watchdogTimer === undefined) scheduleCheck(s);
  }

  async function learnLid(s: Session): Promise<void> {
    const wid = s.bot.ids[0];
    const lookup = s.client.getContactLidAndPhone?.bind(s.client);
    if (wid === undefined || lookup === undefined) return;
    const outcome = await settleWithin(timers, Promise.resolve().then(() => lookup([wid])), tuning.stateTimeoutMs);
    const lid = outcome.kind === "value" ? outcome.value[0]?.lid : undefined;
    if (lid && !s.bot.ids.includes(lid)) s.bot = { ids: [...s.bot.ids, lid] };
    else if (outcome.kind !== "value") log.debug("could not look up the account's LID; mentions by LID will not be recognised");
  }

  function clearPhaseTimer(s: Session): void {
    timers.clearTimeout(s.phaseTimer);
    s.phaseTimer = undefined;
  }

  function disarm(s: Session): void {
    clearPhaseTimer(s);
    timers.clearTimeout(s.watchdogTimer);
    s.watchdogTimer = undefined;
  }

  function clearQr(): void {
    deps.qr.clear().catch((error: unknown) => log.warn({ err: errorMessage(error) }, "could not remove the QR code file"));
  }

  return {
    start() {
      if (!stopped || stopping.signal.aborted) throw new Error("the WhatsApp channel was already started");
      stopped = false;
      launch();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      stopping.abort();
      const s = session;
      session = undefined;
      setStatus("stopped");
      if (s) {
        disarm(s);
        void retire(s).then(() => log.info("WhatsApp Web stopped"));
      }
    },
    status: () => ({ ...status }),
    live: () => (session?.phase === "ready" ? { client: session.client, bot: session.bot } : undefined),
    checkNow() {
      const s = session;
      if (s === undefined || s.checking || s.phase === "initializing") return;
      timers.clearTimeout(s.watchdogTimer);
      s.watchdogTimer = undefined;
      void check(s);
    },
  };
}

function describeReason(reason: string): string {
  switch (reason) {
    case "CONFLICT":
      return "CONFLICT: WhatsApp Web was opened on another computer";
    case "UNPAIRED":
    case "UNPAIRED_IDLE":
      return `${reason}: the device is no longer linked`;
    case "TOS_BLOCK":
    case "SMB_TOS_BLOCK":
      return `${reason}: WhatsApp blocked this account`;
    case "DEPRECATED_VERSION":
      return `${reason}: WhatsApp rejected this WhatsApp Web version; update whatsapp-web.js`;
    default:
      return reason;
  }
}
