import { DeliveryError, RefusedInputError } from "../../src/core/errors.ts";
import type { Attachment } from "../../src/core/types.ts";
import type { WhatsAppClientPort } from "./client-port.ts";
import { toWhatsAppError } from "./errors.ts";
import { settleWithin, type Timers } from "./timers.ts";

/**
 * Fetches an attachment through WhatsApp Web: the message is looked up by id (the attachment's `ref`) and its
 * media downloaded by the page, which hands the whole file over as base64 — the library cannot stream. So the size
 * is checked at every point it is known: the size WhatsApp declared with the message, the size the download
 * reports, and the decoded length of the base64 text, before anything is decoded.
 */
export async function downloadWhatsAppMedia(
  deps: { client: () => WhatsAppClientPort; timers: Timers; timeoutMs: number },
  attachment: Attachment,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  if (attachment.sizeBytes !== undefined && attachment.sizeBytes > maxBytes) throw tooLarge(maxBytes, attachment.sizeBytes);

  const client = deps.client();
  const message = await step(deps, signal, "media lookup", () => client.getMessageById(attachment.ref));
  if (!message || !message.downloadMedia) {
    throw new DeliveryError("WhatsApp no longer has the message this attachment came with", false);
  }
  const declared = message._data?.size;
  if (typeof declared === "number" && declared > maxBytes) throw tooLarge(maxBytes, declared);

  const media = await step(deps, signal, "media download", () => message.downloadMedia!());
  if (!media || typeof media.data !== "string") {
    throw new DeliveryError("WhatsApp could not download the media (it may have expired on the sender's phone)", true);
  }
  if (typeof media.filesize === "number" && media.filesize > maxBytes) throw tooLarge(maxBytes, media.filesize);
  const size = decodedLength(media.data);
  if (size > maxBytes) throw tooLarge(maxBytes, size);
  const bytes = Buffer.from(media.data, "base64");
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function step<T>(
  deps: { timers: Timers; timeoutMs: number },
  signal: AbortSignal,
  what: string,
  call: () => Promise<T>,
): Promise<T> {
  if (signal.aborted) throw signal.reason;
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    const outcome = await Promise.race([settleWithin(deps.timers, Promise.resolve().then(call), deps.timeoutMs), aborted]);
    if (outcome.kind === "timeout") throw new DeliveryError(`WhatsApp ${what} took longer than ${deps.timeoutMs / 1000} s`, true);
    if (outcome.kind === "error") throw toWhatsAppError(outcome.error, what);
    return outcome.value;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** Bytes a base64 text (without line breaks, as WhatsApp Web gives it) decodes to, without decoding or copying it. */
export function decodedLength(base64: string): number {
  let end = base64.length;
  while (end > 0 && base64[end - 1] === "=") end--;
  return Math.floor((end * 3) / 4);
}

function tooLarge(cap: number, size: number): RefusedInputError {
  return new RefusedInputError(`That file is too large for me (${megabytes(size)}): the limit is ${megabytes(cap)}.`);
}

function megabytes(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10} MB`;
}
