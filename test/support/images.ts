import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import type { RecordedRequest } from "../fakes/openai-server.ts";

/**
 * Real image bytes for the media tests, made with sharp, and a few hostile files crafted byte by byte: a PNG whose
 * header declares a huge canvas, a GIF with thousands of frames, a PDF and an SVG with a script under image names.
 * At the end, voice messages whose containers declare their length (Ogg Opus, WAV).
 */

const RED = { r: 255, g: 0, b: 0 };
const BLUE = { r: 0, g: 0, b: 255 };

/**
 * A JPEG stored sideways: `width`×`height` pixels, left half red and right half blue, with EXIF orientation 6
 * ("rotate 90° clockwise to view") and a camera-identifying EXIF field. Viewed upright it is `height`×`width`,
 * red on top.
 */
export async function sidewaysJpeg(width = 200, height = 100): Promise<Buffer> {
  const half = Math.floor(width / 2);
  return sharp({ create: { width, height, channels: 3, background: BLUE } })
    .composite([{ input: { create: { width: half, height, channels: 3, background: RED } }, left: 0, top: 0 }])
    .jpeg()
    .withMetadata({ orientation: 6 })
    .withExif({ IFD0: { Make: "CanaryCam", Copyright: "canary-exif" } })
    .toBuffer();
}

export function solidJpeg(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 30, g: 120, b: 60 } } }).jpeg().toBuffer();
}

/** A PNG whose alpha is really used: half transparent. */
export function translucentPng(width = 64, height = 48): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 4, background: { r: 10, g: 200, b: 10, alpha: 0.5 } } }).png().toBuffer();
}

export function opaqueWebp(width = 80, height = 60): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: BLUE } }).webp().toBuffer();
}

/** An animated GIF of `colors.length` frames, each one colour. */
export async function animatedGif(colors: Array<{ r: number; g: number; b: number }>, width = 40, height = 30): Promise<Buffer> {
  const frames = await Promise.all(colors.map((background) => sharp({ create: { width, height, channels: 3, background } }).png().toBuffer()));
  return sharp(frames, { join: { animated: true } }).gif().toBuffer();
}

/** A few hundred bytes of valid PNG whose IHDR declares `width`×`height` RGB pixels (a decompression bomb's header). */
export function pngBomb(width = 20_000, height = 20_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", deflateSync(Buffer.alloc(4096))),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A 1×1 GIF with `frames` frames, crafted by hand: about 15 bytes a frame. */
export function manyFrameGif(frames: number): Buffer {
  const header = Buffer.concat([
    Buffer.from("GIF89a", "latin1"),
    Buffer.from([1, 0, 1, 0, 0x80, 0, 0]), // 1×1 canvas, global colour table of 2 entries
    Buffer.from([0, 0, 0, 255, 255, 255]),
  ]);
  const frame = Buffer.from([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0x02, 0x02, 0x44, 0x01, 0x00]);
  return Buffer.concat([header, ...Array.from({ length: frames }, () => frame), Buffer.from([0x3b])]);
}

export function fakePdf(): Buffer {
  return Buffer.from("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n", "latin1");
}

export function svgWithScript(): Buffer {
  return Buffer.from(
    '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">' +
      '<script>alert(document.cookie)</script><rect width="100" height="100" fill="red"/></svg>',
    "utf8",
  );
}

/** The RGB of the pixel at (x, y). */
export async function pixelAt(image: Uint8Array, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

/*
 * Voice messages, for the transcription tests: containers crafted by hand whose headers tell their length. The
 * fake transcription endpoint never decodes audio, so the sound itself is filler.
 */

/** An Ogg Opus voice note of `seconds` (what Telegram and WhatsApp send), padded to about `bytes`. */
export function oggOpusVoice(seconds: number, bytes = 20_000): Buffer {
  const preSkip = 312;
  const head = Buffer.alloc(19);
  head.write("OpusHead", 0, "latin1");
  head[8] = 1; // version
  head[9] = 1; // channels
  head.writeUInt16LE(preSkip, 10);
  head.writeUInt32LE(48_000, 12);
  const first = oggPage(0n, 0, head, 0x02);
  const last = oggPage(BigInt(Math.round(seconds * 48_000) + preSkip), 1, Buffer.alloc(100, 0x55), 0x04);
  const filler = Buffer.alloc(Math.max(0, bytes - first.length - last.length), 0x33);
  return Buffer.concat([first, filler, last]);
}

function oggPage(granule: bigint, sequence: number, packet: Buffer, headerType: number): Buffer {
  const header = Buffer.alloc(27);
  header.write("OggS", 0, "latin1");
  header[5] = headerType;
  header.writeBigInt64LE(granule, 6);
  header.writeUInt32LE(0x5041524c, 14); // serial
  header.writeUInt32LE(sequence, 18);
  header[26] = 1; // one segment
  return Buffer.concat([header, Buffer.from([packet.length]), packet]);
}

/** A 16 kHz mono 16-bit PCM WAV of `seconds` of silence. */
export function pcmWav(seconds: number): Buffer {
  const data = Math.round(seconds * 16_000) * 2;
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(36 + data, 4);
  header.write("WAVEfmt ", 8, "latin1");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(16_000, 24);
  header.writeUInt32LE(32_000, 28); // byte rate
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "latin1");
  header.writeUInt32LE(data, 40);
  return Buffer.concat([header, Buffer.alloc(data)]);
}

/** The image parts of a chat-completions request the fake model received, decoded from their data: URLs. */
export function imagesOf(request: RecordedRequest | undefined): Buffer[] {
  const body = request?.body as { messages?: Array<{ content: unknown }> } | undefined;
  const parts = (body?.messages ?? []).flatMap((m) => (Array.isArray(m.content) ? m.content : [])) as Array<{
    type: string;
    image_url?: { url: string };
  }>;
  return parts
    .filter((p) => p.type === "image_url")
    .map((p) => Buffer.from(p.image_url!.url.slice(p.image_url!.url.indexOf(",") + 1), "base64"));
}
