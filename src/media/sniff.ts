/**
 * What a file really is, from its first bytes (magic numbers). The platform's mime type and the file name are the
 * sender's claim and are never trusted to accept a file; this is. Pure.
 */

export type ImageMimeType = "image/jpeg" | "image/png" | "image/webp" | "image/gif" | "image/heic" | "image/avif";

export type Sniffed =
  | { kind: "image"; mimeType: ImageMimeType }
  | { kind: "audio"; mimeType: string }
  /** A container that may hold sound, picture or both (MP4, WebM): usable as a voice message, not as an image. */
  | { kind: "video"; mimeType: string }
  /** Recognised, and not something Parley reads; `label` completes "it looks like …". */
  | { kind: "other"; label: string }
  | { kind: "unknown" };

const HEIF_BRANDS = new Set(["heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1", "mif2"]);
const AVIF_BRANDS = new Set(["avif", "avis"]);
const AUDIO_MP4_BRANDS = new Set(["M4A ", "M4B ", "M4P ", "F4A ", "F4B "]);

export function sniff(bytes: Uint8Array): Sniffed {
  const at = (offset: number, ...expected: number[]) => expected.every((b, i) => bytes[offset + i] === b);
  const ascii = (offset: number, text: string) => at(offset, ...[...text].map((c) => c.charCodeAt(0)));

  if (at(0, 0xff, 0xd8, 0xff)) return { kind: "image", mimeType: "image/jpeg" };
  if (at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return { kind: "image", mimeType: "image/png" };
  if (ascii(0, "GIF87a") || ascii(0, "GIF89a")) return { kind: "image", mimeType: "image/gif" };
  if (ascii(0, "RIFF") && ascii(8, "WEBP")) return { kind: "image", mimeType: "image/webp" };
  if (ascii(0, "RIFF") && ascii(8, "WAVE")) return { kind: "audio", mimeType: "audio/wav" };
  if (ascii(4, "ftyp")) return isoMedia(bytes);

  if (ascii(0, "OggS")) return { kind: "audio", mimeType: "audio/ogg" };
  if (ascii(0, "fLaC")) return { kind: "audio", mimeType: "audio/flac" };
  if (ascii(0, "#!AMR")) return { kind: "audio", mimeType: "audio/amr" };
  if (ascii(0, "ID3")) return { kind: "audio", mimeType: "audio/mpeg" };
  if (bytes[0] === 0xff && bytes[1] !== undefined) {
    // ADTS AAC: sync 0xFFF, layer 00; MPEG audio: sync 0xFFE, layer ≠ 00.
    if ((bytes[1] & 0xf6) === 0xf0) return { kind: "audio", mimeType: "audio/aac" };
    if ((bytes[1] & 0xe0) === 0xe0 && (bytes[1] & 0x06) !== 0) return { kind: "audio", mimeType: "audio/mpeg" };
  }
  if (at(0, 0x1a, 0x45, 0xdf, 0xa3)) return { kind: "video", mimeType: "video/webm" };

  if (ascii(0, "%PDF-")) return { kind: "other", label: "a PDF" };
  if (ascii(0, "PK") && (at(2, 3, 4) || at(2, 5, 6) || at(2, 7, 8))) return { kind: "other", label: "a ZIP archive" };
  if (at(0, 0x1f, 0x8b)) return { kind: "other", label: "a compressed archive" };
  if (ascii(0, "Rar!") || at(0, 0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c)) return { kind: "other", label: "a compressed archive" };
  if (ascii(0, "II*\0") || ascii(0, "MM\0*")) return { kind: "other", label: "a TIFF image" };
  if (ascii(0, "MZ") || at(0, 0x7f, 0x45, 0x4c, 0x46)) return { kind: "other", label: "a program" };
  return markup(bytes) ?? { kind: "unknown" };
}

/** ISO base media (ftyp box): HEIC/AVIF photos, M4A audio, MP4/MOV/3GP video. */
function isoMedia(bytes: Uint8Array): Sniffed {
  const brand = (offset: number) => String.fromCharCode(...bytes.subarray(offset, offset + 4));
  const boxSize = ((bytes[0] ?? 0) << 24) | ((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0);
  const brands = [brand(8)];
  for (let offset = 16; offset + 4 <= Math.min(boxSize, 64, bytes.length); offset += 4) brands.push(brand(offset));
  if (brands.some((b) => AVIF_BRANDS.has(b))) return { kind: "image", mimeType: "image/avif" };
  if (HEIF_BRANDS.has(brands[0]!)) return { kind: "image", mimeType: "image/heic" };
  if (AUDIO_MP4_BRANDS.has(brands[0]!)) return { kind: "audio", mimeType: "audio/mp4" };
  if (brands[0]!.startsWith("qt")) return { kind: "video", mimeType: "video/quicktime" };
  return { kind: "video", mimeType: "video/mp4" };
}

/** Text that starts like markup: SVG (which can carry script), HTML, other XML. */
function markup(bytes: Uint8Array): Sniffed | null {
  let head = new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 1024)).replace(/^\uFEFF/, "").trimStart();
  if (!head.startsWith("<")) return null;
  head = head.toLowerCase();
  if (head.includes("<svg")) return { kind: "other", label: "an SVG drawing" };
  if (head.startsWith("<!doctype html") || head.includes("<html") || head.includes("<script")) return { kind: "other", label: "a web page" };
  return { kind: "other", label: "an XML document" };
}

/** What a sniffed file looks like, for "it looks like …" in a refusal. */
export function describeSniffed(sniffed: Sniffed): string | undefined {
  switch (sniffed.kind) {
    case "image":
      return `a ${sniffed.mimeType.slice("image/".length).toUpperCase()} image`;
    case "audio":
      return "an audio file";
    case "video":
      return "a video";
    case "other":
      return sniffed.label;
    case "unknown":
      return undefined;
  }
}
