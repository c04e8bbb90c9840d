import { DeliveryError } from "../../src/core/errors.ts";
import { truncate } from "../../src/core/split-text.ts";
import type { OutboundFile } from "../../src/core/types.ts";

/**
 * What both Meta channels do to a file before uploading it: refuse (final) what Graph would refuse anyway, so no
 * upload is wasted, and turn the bytes into the multipart part Graph reads. Pure.
 */

/** The checks; throws a final DeliveryError naming the platform's limit. */
export function assertSendableFile(file: OutboundFile, platform: string, maxBytes: number): void {
  if (file.bytes.byteLength === 0) throw new DeliveryError(`${platform} send file: the file is empty`, false);
  if (file.bytes.byteLength > maxBytes) {
    throw new DeliveryError(`${platform} send file: ${file.bytes.byteLength} bytes exceed ${platform}'s limit of ${maxBytes / (1024 * 1024)} MB`, false);
  }
  if (!/^[\w.+-]+\/[\w.+-]+$/.test(file.mimeType)) throw new DeliveryError(`${platform} send file: "${file.mimeType}" is not a MIME type`, false);
}

/** The bytes as a multipart file part with its type. */
export function fileBlob(file: OutboundFile): Blob {
  // A copy: a Blob takes an ArrayBuffer-backed view, and the caller's buffer may be shared or resized.
  return new Blob([file.bytes.slice()], { type: file.mimeType });
}

/** The name shown to the user: control characters (which cannot travel in a multipart header) replaced. */
export function displayName(name: string): string {
  const safe = name.replace(/[\u0000-\u001f\u007f]/g, "_").trim();
  return safe === "" ? "file" : safe;
}

/** The caption, at most `max` UTF-16 code units, ending in "…" when cut, never splitting a surrogate pair. */
export function captionOf(file: OutboundFile, max: number): string | undefined {
  const text = file.caption?.trim();
  return text ? truncate(text, max) : undefined;
}
