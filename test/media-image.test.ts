import { createHash } from "node:crypto";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { RefusedInputError } from "../src/core/errors.ts";
import { prepareImage } from "../src/media/image.ts";
import { sniff } from "../src/media/sniff.ts";
import {
  animatedGif,
  fakePdf,
  manyFrameGif,
  opaqueWebp,
  pixelAt,
  pngBomb,
  sidewaysJpeg,
  solidJpeg,
  svgWithScript,
  translucentPng,
} from "./support/images.ts";

async function refusal(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RefusedInputError);
  return (error as RefusedInputError).userMessage;
}

describe("sniff", () => {
  it.each([
    ["JPEG", [0xff, 0xd8, 0xff, 0xe0], { kind: "image", mimeType: "image/jpeg" }],
    ["PNG", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], { kind: "image", mimeType: "image/png" }],
    ["GIF", "GIF89a", { kind: "image", mimeType: "image/gif" }],
    ["WebP", "RIFF\0\0\0\0WEBPVP8 ", { kind: "image", mimeType: "image/webp" }],
    ["HEIC", "\0\0\0\x18ftypheic\0\0\0\0mif1heic", { kind: "image", mimeType: "image/heic" }],
    ["AVIF", "\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf", { kind: "image", mimeType: "image/avif" }],
    ["M4A", "\0\0\0\x18ftypM4A \0\0\0\0M4A isom", { kind: "audio", mimeType: "audio/mp4" }],
    ["MP4", "\0\0\0\x18ftypisom\0\0\0\0isommp42", { kind: "video", mimeType: "video/mp4" }],
    ["Ogg", "OggS\0\x02", { kind: "audio", mimeType: "audio/ogg" }],
    ["WAV", "RIFF\0\0\0\0WAVEfmt ", { kind: "audio", mimeType: "audio/wav" }],
    ["MP3 with ID3", "ID3\x04", { kind: "audio", mimeType: "audio/mpeg" }],
    ["MP3 frame", [0xff, 0xfb, 0x90, 0x00], { kind: "audio", mimeType: "audio/mpeg" }],
    ["ADTS AAC", [0xff, 0xf1, 0x50, 0x80], { kind: "audio", mimeType: "audio/aac" }],
    ["AMR", "#!AMR\n", { kind: "audio", mimeType: "audio/amr" }],
    ["WebM", [0x1a, 0x45, 0xdf, 0xa3], { kind: "video", mimeType: "video/webm" }],
    ["PDF", "%PDF-1.4", { kind: "other", label: "a PDF" }],
    ["ZIP", "PK\x03\x04", { kind: "other", label: "a ZIP archive" }],
    ["SVG", "\xEF\xBB\xBF  <?xml version='1.0'?><svg>", { kind: "other", label: "an SVG drawing" }],
    ["HTML", "<!DOCTYPE html><html>", { kind: "other", label: "a web page" }],
    ["plain text", "hello", { kind: "unknown" }],
    ["empty", "", { kind: "unknown" }],
  ] as const)("recognises %s", (_name, head, expected) => {
    const bytes = typeof head === "string" ? Buffer.from(head, "latin1") : Uint8Array.from(head);
    expect(sniff(bytes)).toEqual(expected);
  });
});

describe("prepareImage", () => {
  it("applies the EXIF orientation and strips all metadata", async () => {
    const input = await sidewaysJpeg(200, 100);
    const before = await sharp(input).metadata();
    expect([before.width, before.height, before.orientation]).toEqual([200, 100, 6]);
    expect(before.exif).toBeDefined();

    const out = await prepareImage(input);
    expect(out).toMatchObject({ mimeType: "image/jpeg", width: 100, height: 200 });
    const after = await sharp(out.bytes).metadata();
    expect([after.format, after.width, after.height]).toEqual(["jpeg", 100, 200]);
    expect(after.exif).toBeUndefined();
    expect(after.orientation).toBeUndefined();
    expect(after.icc).toBeUndefined();
    expect(Buffer.from(out.bytes).includes("canary-exif")).toBe(false);
    // The left (red) half of the stored pixels is the top once upright.
    const [topR, , topB] = await pixelAt(out.bytes, 50, 20);
    const [bottomR, , bottomB] = await pixelAt(out.bytes, 50, 180);
    expect(topR).toBeGreaterThan(200);
    expect(topB).toBeLessThan(60);
    expect(bottomB).toBeGreaterThan(200);
    expect(bottomR).toBeLessThan(60);
    expect(out.sha256).toBe(createHash("sha256").update(out.bytes).digest("hex"));
  });

  it("keeps a PNG with transparency a PNG with alpha", async () => {
    const out = await prepareImage(await translucentPng(64, 48));
    expect(out).toMatchObject({ mimeType: "image/png", width: 64, height: 48 });
    const meta = await sharp(out.bytes).metadata();
    expect([meta.format, meta.hasAlpha]).toEqual(["png", true]);
  });

  it("re-encodes a WebP as JPEG", async () => {
    const out = await prepareImage(await opaqueWebp(80, 60));
    expect(out).toMatchObject({ mimeType: "image/jpeg", width: 80, height: 60 });
    expect((await sharp(out.bytes).metadata()).format).toBe("jpeg");
  });

  it("takes the first frame of an animated GIF", async () => {
    const gif = await animatedGif([{ r: 255, g: 0, b: 0 }, { r: 0, g: 255, b: 0 }, { r: 0, g: 0, b: 255 }], 40, 30);
    expect((await sharp(gif).metadata()).pages).toBe(3);
    const out = await prepareImage(gif);
    expect([out.width, out.height]).toEqual([40, 30]);
    const meta = await sharp(out.bytes).metadata();
    expect(meta.pages ?? 1).toBe(1);
    const [r, g, b] = await pixelAt(out.bytes, 20, 15);
    expect(r).toBeGreaterThan(200);
    expect(g + b).toBeLessThan(80);
  });

  it("refuses an animation that declares more frames than the cap, without decoding them", async () => {
    const gif = manyFrameGif(40_000);
    expect(gif.byteLength).toBeLessThan(700_000);
    const message = await refusal(prepareImage(gif));
    expect(message).toMatch(/too many frames for me \(40000\)/);
    // A short one is fine.
    await expect(prepareImage(manyFrameGif(3))).resolves.toMatchObject({ width: 1, height: 1 });
  });

  it("resizes an image larger than 1568 px on its longest side", async () => {
    const out = await prepareImage(await solidJpeg(3000, 2000));
    expect([out.width, out.height]).toEqual([1568, 1045]);
    const small = await prepareImage(await solidJpeg(3000, 2000), { maxSide: 512 });
    expect([small.width, small.height]).toEqual([512, 341]);
    // Never enlarged.
    const tiny = await prepareImage(await solidJpeg(30, 20));
    expect([tiny.width, tiny.height]).toEqual([30, 20]);
  });

  it("refuses a PDF named .jpg and says it looks like a PDF", async () => {
    expect(await refusal(prepareImage(fakePdf()))).toBe("That file isn't an image I can read (it looks like a PDF).");
  });

  it("refuses an SVG carrying a script without handing it to the renderer", async () => {
    expect(await refusal(prepareImage(svgWithScript()))).toBe("That file isn't an image I can read (it looks like an SVG drawing).");
  });

  it("refuses a ZIP and bytes that are nothing known", async () => {
    expect(await refusal(prepareImage(Buffer.from("PK\x03\x04rest-of-zip", "latin1")))).toMatch(/looks like a ZIP archive/);
    expect(await refusal(prepareImage(Buffer.from("just some text")))).toBe("That file isn't an image I can read.");
  });

  it("refuses a truncated image as damaged", async () => {
    const jpeg = await solidJpeg(200, 200);
    expect(await refusal(prepareImage(jpeg.subarray(0, 300)))).toMatch(/couldn't read that image/);
  });

  it("refuses a decompression bomb from its header, using little memory", async () => {
    const bomb = pngBomb(20_000, 20_000);
    expect(bomb.byteLength).toBeLessThan(200);
    global.gc?.();
    const before = process.memoryUsage().rss;
    const message = await refusal(prepareImage(bomb));
    const grown = process.memoryUsage().rss - before;
    expect(message).toBe("That image is too large for me (20000×20000 pixels): the limit is 40 megapixels.");
    // Decoding would need 20000 × 20000 × 3 bytes = 1.2 GB.
    expect(grown).toBeLessThan(100 * 1024 * 1024);
  });

  it("takes the pixel cap from the options", async () => {
    const message = await refusal(prepareImage(await solidJpeg(300, 200), { maxPixels: 50_000 }));
    expect(message).toMatch(/300×200 pixels/);
  });

  it("says what helps when a HEIC photo cannot be decoded", async () => {
    const heic = Buffer.concat([Buffer.from("\0\0\0\x18ftypheic\0\0\0\0mif1heic", "latin1"), Buffer.alloc(200)]);
    expect(await refusal(prepareImage(heic))).toBe("I can't read HEIC photos here: please send it as a regular photo (JPEG).");
  });

  it("reads AVIF", async () => {
    const avif = await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 0, g: 0, b: 255 } } }).avif().toBuffer();
    await expect(prepareImage(avif)).resolves.toMatchObject({ mimeType: "image/jpeg", width: 40, height: 30 });
  });
});
