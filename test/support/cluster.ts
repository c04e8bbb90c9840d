import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";

/**
 * What the cluster tests put between processes: a proxy in front of the fake Bot API per Parley process (to see
 * which process made which call, and to hold calls back), and a round-robin forwarder in front of several Parley
 * processes' webhooks, as a load balancer would be.
 */

export interface ProxiedCall {
  method: string;
  at: number;
}

export interface BotApiProxy {
  url: string;
  calls: ProxiedCall[];
  count(method: string): number;
  /** Holds back calls of `method` from now on: they reach the Bot API only after release(). */
  hold(method: string): void;
  release(): void;
  /** Ends the hold, and the held calls with it: they never reach the Bot API (their caller was killed). */
  discard(): void;
  close(): Promise<void>;
}

/** An HTTP proxy to `target` (the fake Bot API) that records the method of every call passing through. */
export async function startBotApiProxy(target: string): Promise<BotApiProxy> {
  const calls: ProxiedCall[] = [];
  const held = new Set<string>();
  let waiting: Array<{ go: () => void; drop: () => void }> = [];
  const upstream = new URL(target);

  const forward = (req: IncomingMessage, res: ServerResponse) => {
    if (req.destroyed || res.destroyed || req.socket.destroyed) return; // the caller is gone: the call never happens
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", () => res.destroy());
    // A caller that goes away (a killed process) ends its call upstream too, as a closed connection would.
    res.on("close", () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  };

  const server = createServer((req, res) => {
    const method = /\/bot[^/]+\/([A-Za-z]+)$/.exec(req.url ?? "")?.[1] ?? "";
    calls.push({ method, at: Date.now() });
    if (held.has(method.toLowerCase())) waiting.push({ go: () => forward(req, res), drop: () => res.destroy() });
    else forward(req, res);
  });
  const { url, close } = await listenOn(server);
  return {
    url,
    calls,
    count: (method) => calls.filter((c) => c.method.toLowerCase() === method.toLowerCase()).length,
    hold: (method) => void held.add(method.toLowerCase()),
    release() {
      held.clear();
      const ready = waiting;
      waiting = [];
      for (const call of ready) call.go();
    },
    discard() {
      held.clear();
      const dropped = waiting;
      waiting = [];
      for (const call of dropped) call.drop();
    },
    close,
  };
}

export interface RoundRobin {
  url: string;
  /** Replaces the backends (e.g. after a process restarted on another port). */
  setTargets(targets: string[]): void;
  close(): Promise<void>;
}

/** Forwards each request to the next backend in turn; a backend that refuses the connection is skipped. */
export async function startRoundRobin(initial: string[]): Promise<RoundRobin> {
  let targets = [...initial];
  let next = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const tried = new Set<string>();
      const attempt = () => {
        const target = targets[next++ % Math.max(1, targets.length)];
        if (target === undefined || tried.has(target)) {
          res.writeHead(502).end("no backend");
          return;
        }
        tried.add(target);
        const to = new URL(target);
        const out = request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        out.on("error", () => {
          if (!res.headersSent) attempt();
          else res.destroy();
        });
        out.end(body);
      };
      attempt();
    });
  });
  const { url, close } = await listenOn(server);
  return { url, setTargets: (t) => void (targets = [...t]), close };
}

async function listenOn(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Whether something listens on host:port (Redis, for the tests that need it). */
export function reachable(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
