import type { Server } from "node:http";
import express, { type Express, type RequestHandler, type Router } from "express";

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
}

export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
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
