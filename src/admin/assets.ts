import { readFileSync } from "node:fs";
import type { Request, Response } from "express";
import { repoPath } from "../core/package-root.ts";

/**
 * The admin page's style sheet and script, read once from ./public. They are files, not inline code, so the
 * Content-Security-Policy can forbid inline script and style entirely. They hold no data and need no session.
 */

const FILES: Record<string, { type: string; name: string }> = {
  "admin.css": { type: "text/css; charset=utf-8", name: "admin.css" },
  "admin.js": { type: "text/javascript; charset=utf-8", name: "admin.js" },
};

export function assetsHandler() {
  const contents = new Map(
    Object.entries(FILES).map(([key, file]) => [key, readFileSync(repoPath("src/admin/public", file.name), "utf8")]),
  );
  return (req: Request, res: Response): void => {
    const name = req.params.name;
    const file = typeof name === "string" ? FILES[name] : undefined;
    const body = typeof name === "string" ? contents.get(name) : undefined;
    if (!file || body === undefined) {
      res.status(404).type("text/plain").send("Not found");
      return;
    }
    res.set("Cache-Control", "no-cache").type(file.type).send(body);
  };
}
