import type { Api } from "grammy";
import { GrammyError } from "grammy";
import { DeliveryError, RefusedInputError, errorMessage } from "../../src/core/errors.ts";
import { readResponseCapped, tooLargeError } from "../../src/core/read-capped.ts";
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
 * stops reading as soon as more than the cap arrived (src/core/read-capped.ts: the declared size may be missing or
 * wrong). The file URL contains the bot token: it never appears in an error.
 */
export async function downloadTelegramFile(
  deps: DownloadDeps,
  attachment: Attachment,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const cap = Math.min(maxBytes, TELEGRAM_DOWNLOAD_LIMIT);
  if (attachment.sizeBytes !== undefined && attachment.sizeBytes > cap) throw tooLargeError(cap, attachment.sizeBytes);

  let filePath: string | undefined;
  try {
    const file = await deps.api.getFile(attachment.ref, toGrammySignal(signal));
    if (file.file_size !== undefined && file.file_size > cap) throw tooLargeError(cap, file.file_size);
    filePath = file.file_path;
  } catch (error) {
    if (error instanceof GrammyError && /file is too big/i.test(error.description)) throw tooLargeError(cap);
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
  try {
    return await readResponseCapped(response, cap, signal);
  } catch (error) {
    if (error instanceof RefusedInputError || (error instanceof Error && error.name === "AbortError")) throw error;
    if (signal.aborted) throw signal.reason;
    throw new DeliveryError(redact(`downloading the Telegram file failed: ${causeText(error)}`, deps.token), true);
  }
}

/** fetch's errors say "fetch failed" and keep the reason in `cause`; neither quotes the URL, but both are redacted. */
function causeText(error: unknown): string {
  const cause = error instanceof Error && error.cause !== undefined ? `: ${errorMessage(error.cause)}` : "";
  return `${errorMessage(error)}${cause}`;
}
