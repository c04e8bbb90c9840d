import type { Server } from "node:http";
import express, { type Express, type RequestHandler, type Router } from "express";
import type { Logger } from "../observability/logger.ts";
import type { Clients } from "./client.ts";

/**
 * The one express app: health endpoints plus whatever routers the channels (and later the admin page) bring.
 * Routes are mounted by the composition root; this file knows no channel.
 */

export interface Readiness {
  ok: boolean;
  [detail: string]: unknown;
}

export interface HttpAppOptions {
  readiness: () => Promise<Readiness>;
  routers: Array<{ path: string; router: Router | RequestHandler; method?: "get" | "post" | "use" }>;
  /** Which hops are believed about the client (TRUST_PROXY); without it none is, and req.ip is the socket's peer. */
  clients?: Clients;
  /** Says once that forwarding headers arrive from a hop TRUST_PROXY does not name. */
  log?: Logger;
}

export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable("x-powered-by");
  // Every router mounted below sees the same req.ip, req.ips, req.protocol and req.secure.
  app.set("trust proxy", options.clients ? options.clients.trust : false);
  const clients = options.clients;
  const log = options.log;
  if (clients && log) {
    let warned = false;
    app.use((req, _res, next) => {
      if (!warned && clients.of(req).via === "untrusted-proxy") {
        warned = true;
        log.warn(
          { peer: req.socket.remoteAddress },
          "a request came with forwarding headers (X-Forwarded-For and the like) from a hop TRUST_PROXY does not name: " +
            "they are ignored and the peer is taken as the client; if your reverse proxy runs there, add it to TRUST_PROXY",
        );
      }
      next();
    });
  }
  app.use((_req, res, next) => {
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("Referrer-Policy", "no-referrer");
    next();
  });
  app.get("/healthz", (_req, res) => {
    res.json({ ok: true });
  });
  app.get("/readyz", async (_req, res) => {
    const readiness = await options.readiness();
    res.status(readiness.ok ? 200 : 503).json(readiness);
  });
  app.get("/", (_req, res) => {
    res.redirect(302, "/chat");
  });
  for (const { path, router, method } of options.routers) {
    if (method === "post") app.post(path, router);
    else if (method === "get") app.get(path, router);
    else app.use(path, router);
  }
  return app;
}

export function listen(app: Express, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once("listening", () => resolve(server));
    server.once("error", reject);
  });
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
