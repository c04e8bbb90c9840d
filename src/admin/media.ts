import { eq } from "drizzle-orm";
import type { Request, Response } from "express";
import type { Db } from "../db/client.ts";
import { media } from "../db/schema.ts";

/**
 * Stored media for signed-in admins. Only raster images the browser cannot run (PNG, JPEG, WebP, GIF) are served
 * with their type; anything else — SVG above all, which can carry script — is sent as an opaque download. The
 * response may not load or run anything (CSP default-src 'none' with sandbox) and is never type-sniffed.
 */

const INLINE_TYPES = new Set(["image/png", "image/jpeg", "image/webp", "image/gif"]);

export function isInlineImage(mimeType: string): boolean {
  return INLINE_TYPES.has(baseType(mimeType));
}

function baseType(mimeType: string): string {
  return mimeType.split(";")[0]!.trim().toLowerCase();
}

export function mediaHandler(db: Db) {
  return async (req: Request, res: Response): Promise<void> => {
    const sha = req.params.sha256;
    if (typeof sha !== "string" || !/^[0-9a-f]{64}$/.test(sha)) {
      res.status(404).type("text/plain").send("Not found");
      return;
    }
    const [row] = await db.select({ mimeType: media.mimeType, data: media.data }).from(media).where(eq(media.sha256, sha)).limit(1);
    if (!row) {
      res.status(404).type("text/plain").send("Not found");
      return;
    }
    res.set({
      "Content-Security-Policy": "default-src 'none'; sandbox",
      "X-Content-Type-Options": "nosniff",
      "Cache-Control": "private, no-store",
      "Cross-Origin-Resource-Policy": "same-origin",
    });
    if (isInlineImage(row.mimeType)) {
      res.set("Content-Type", baseType(row.mimeType));
      res.set("Content-Disposition", "inline");
    } else {
      res.set("Content-Type", "application/octet-stream");
      res.set("Content-Disposition", `attachment; filename="${sha.slice(0, 16)}.bin"`);
    }
    res.end(Buffer.from(row.data));
  };
}
