/**
 * How long a voice message is, without decoding it: read from the container where that is cheap and exact (Ogg,
 * WAV), otherwise estimated from the size at a generous bitrate, so an estimate errs towards accepting. The size cap
 * stays the hard bound. Pure.
 */

export interface AudioDuration {
  seconds: number;
  source: "container" | "estimate";
}

/** Bitrates (bits per second) high for their kind, so the estimate is a lower bound for ordinary files. */
const ESTIMATE_BITRATES: Record<string, number> = {
  "audio/ogg": 64_000,
  "audio/opus": 64_000,
  "audio/webm": 64_000,
  "video/webm": 64_000,
  "audio/amr": 32_000,
  "audio/wav": 256_000,
};
const DEFAULT_BITRATE = 128_000;

export function audioDuration(bytes: Uint8Array, mimeType: string): AudioDuration {
  const exact = mimeType === "audio/ogg" ? oggSeconds(bytes) : mimeType === "audio/wav" ? wavSeconds(bytes) : undefined;
  if (exact !== undefined) return { seconds: exact, source: "container" };
  const bitrate = ESTIMATE_BITRATES[mimeType] ?? DEFAULT_BITRATE;
  return { seconds: (bytes.byteLength * 8) / bitrate, source: "estimate" };
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

function indexOf(bytes: Uint8Array, text: string, from = 0, to = bytes.length): number {
  const needle = [...text].map((c) => c.charCodeAt(0));
  outer: for (let i = from; i + needle.length <= to; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function lastIndexOf(bytes: Uint8Array, text: string, from: number): number {
  for (let i = bytes.length - text.length; i >= from; i--) if (indexOf(bytes, text, i, i + text.length) === i) return i;
  return -1;
}

/** Opus or Vorbis in Ogg: the granule position of the last page counts samples (Opus: at 48 kHz, minus pre-skip). */
function oggSeconds(bytes: Uint8Array): number | undefined {
  if (bytes.length < 64) return undefined;
  const head = bytes.subarray(0, Math.min(bytes.length, 512));
  let rate: number;
  let preSkip = 0;
  const opus = indexOf(head, "OpusHead");
  const vorbis = indexOf(head, "\x01vorbis");
  if (opus >= 0 && opus + 12 <= head.length) {
    rate = 48_000;
    preSkip = view(head).getUint16(opus + 10, true);
  } else if (vorbis >= 0 && vorbis + 16 <= head.length) {
    rate = view(head).getUint32(vorbis + 12, true);
  } else return undefined;
  const last = lastIndexOf(bytes, "OggS", Math.max(0, bytes.length - 65_536));
  if (last < 0 || last + 14 > bytes.length || rate === 0) return undefined;
  const granule = view(bytes).getBigInt64(last + 6, true);
  if (granule < 0n) return undefined;
  return Math.max(0, Number(granule) - preSkip) / rate;
}

/** PCM WAV: the data chunk's size over the byte rate of the fmt chunk. */
function wavSeconds(bytes: Uint8Array): number | undefined {
  const data = view(bytes);
  let byteRate: number | undefined;
  for (let offset = 12; offset + 8 <= bytes.length; ) {
    const id = String.fromCharCode(...bytes.subarray(offset, offset + 4));
    const size = data.getUint32(offset + 4, true);
    if (id === "fmt " && offset + 16 <= bytes.length) byteRate = data.getUint32(offset + 16, true);
    if (id === "data") return byteRate ? Math.min(size, bytes.length - offset - 8) / byteRate : undefined;
    offset += 8 + size + (size % 2);
  }
  return undefined;
}
