import type { Api } from "grammy";
import { GrammyError } from "grammy";
import { DeliveryError, RefusedInputError, errorMessage } from "../../src/core/errors.ts";
import type { Attachment } from "../../src/core/types.ts";
import { redact, toChannelError } from "./errors.ts";
import { toGrammySignal } from "./signal.ts";

/** Telegram lets bots download files up to 20 MB (getFile). */
export const TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024;

export interface DownloadDeps {
  api: Api;
  apiRoot: string;
  token: string;
  fetch: typeof fetch;
}

/**
 * Fetches an attachment's bytes. Refuses before downloading when the size Telegram declares is over the cap, and
 * stops reading as soon as more than the cap arrived (the declared size may be missing or wrong). The file URL
 * contains the bot token: it never appears in an error.
 */
export async function downloadTelegramFile(
  deps: DownloadDeps,
  attachment: Attachment,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const cap = Math.min(maxBytes, TELEGRAM_DOWNLOAD_LIMIT);
  if (attachment.sizeBytes !== undefined && attachment.sizeBytes > cap) throw tooLarge(cap, attachment.sizeBytes);

  let filePath: string | undefined;
  try {
    const file = await deps.api.getFile(attachment.ref, toGrammySignal(signal));
    if (file.file_size !== undefined && file.file_size > cap) throw tooLarge(cap, file.file_size);
    filePath = file.file_path;
  } catch (error) {
    if (error instanceof GrammyError && /file is too big/i.test(error.description)) throw tooLarge(cap);
    throw toChannelError(error, deps.token);
  }
  if (!filePath) throw new DeliveryError("Telegram returned no file path for the attachment", false);

  let response: Response;
  try {
    response = await deps.fetch(`${deps.apiRoot}/file/bot${deps.token}/${filePath}`, { signal });
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw new DeliveryError(redact(`downloading the Telegram file failed: ${causeText(error)}`, deps.token), true);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel().catch(() => {});
    throw new DeliveryError(`downloading the Telegram file failed with HTTP ${response.status}`, response.status >= 500);
  }
  const declared = Number(response.headers.get("content-length") ?? NaN);
  if (declared > cap) {
    await response.body.cancel().catch(() => {});
    throw tooLarge(cap, declared);
  }
  return readCapped(response.body, cap, deps.token);
}

async function readCapped(body: ReadableStream<Uint8Array>, cap: number, token: string): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > cap) {
        await reader.cancel().catch(() => {});
        throw tooLarge(cap);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof RefusedInputError || (error instanceof Error && error.name === "AbortError")) throw error;
    throw new DeliveryError(redact(`downloading the Telegram file failed: ${causeText(error)}`, token), true);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

function tooLarge(cap: number, size?: number): RefusedInputError {
  const limit = formatMegabytes(cap);
  return new RefusedInputError(
    size === undefined
      ? `That file is too large for me: the limit is ${limit}.`
      : `That file is too large for me (${formatMegabytes(size)}): the limit is ${limit}.`,
  );
}

function formatMegabytes(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10} MB`;
}

/** fetch's errors say "fetch failed" and keep the reason in `cause`; neither quotes the URL, but both are redacted. */
function causeText(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? `: ${errorMessage(error.cause)}` : "";
  return `${errorMessage(error)}${cause}`;
}
