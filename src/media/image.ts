import { createHash } from "node:crypto";
import type { Metadata, OutputInfo, Sharp, SharpOptions } from "sharp";
import { RefusedInputError } from "../core/errors.ts";
import { IMAGE_MAX_FRAMES_DEFAULT, IMAGE_MAX_PIXELS_DEFAULT, IMAGE_MAX_SIDE_DEFAULT } from "./limits.ts";
import { describeSniffed, sniff, type Sniffed } from "./sniff.ts";

/**
 * One image the user sent, made safe and small for a model: the type is sniffed from the bytes, the pixel count is
 * read from the header and refused above a cap before anything is decoded (a decompression bomb costs nothing), only
 * the first frame of an animation is decoded, and the result is re-encoded, which applies the EXIF orientation and
 * drops all metadata (location, camera, embedded thumbnails), with its longest side at most `maxSide`.
 */

export interface ImageLimits {
  /** width × height above which an image is refused. */
  maxPixels: number;
  /** The longest side of the result; smaller images are not enlarged. */
  maxSide: number;
  /** Frames an animation may declare. */
  maxFrames: number;
}

export interface PreparedImage {
  bytes: Uint8Array;
  /** PNG when the image has transparency, JPEG otherwise. */
  mimeType: "image/jpeg" | "image/png";
  width: number;
  height: number;
  /** Hex sha256 of `bytes`: the id the image is stored and referenced by. */
  sha256: string;
}

const DEFAULT_LIMITS: ImageLimits = {
  maxPixels: IMAGE_MAX_PIXELS_DEFAULT,
  maxSide: IMAGE_MAX_SIDE_DEFAULT,
  maxFrames: IMAGE_MAX_FRAMES_DEFAULT,
};
/** The formats libvips must agree it found: a second check behind the magic numbers. */
const DECODABLE = new Set(["jpeg", "png", "webp", "gif", "heif"]);
const JPEG_QUALITY = 85;

/** sharp (libvips, ~20 MB resident) is loaded with the first image, not at start: many deployments never get one. */
let loadedSharp: Promise<(input: Buffer, options: SharpOptions) => Sharp> | undefined;
const sharpLib = () => (loadedSharp ??= import("sharp").then((m) => m.default));

export async function prepareImage(bytes: Uint8Array, limits: Partial<ImageLimits> = {}): Promise<PreparedImage> {
  const { maxPixels, maxSide, maxFrames } = { ...DEFAULT_LIMITS, ...limits };
  const sniffed = sniff(bytes);
  if (sniffed.kind !== "image") throw notAnImage(sniffed);
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  const sharp = await sharpLib();
  let meta: Metadata;
  try {
    // Header only: no pixel is decoded here, so the declared size can be checked before it costs memory.
    meta = await sharp(input, { limitInputPixels: false, pages: 1 }).metadata();
  } catch (error) {
    throw unreadable(sniffed.mimeType, error);
  }
  if (!DECODABLE.has(meta.format ?? "")) throw notAnImage({ kind: "unknown" });
  const { width, height } = meta;
  if (!width || !height) throw unreadable(sniffed.mimeType);
  if (width * height > maxPixels) {
    throw new RefusedInputError(
      `That image is too large for me (${width}×${height} pixels): the limit is ${Math.floor(maxPixels / 1_000_000)} megapixels.`,
    );
  }
  if ((meta.pages ?? 1) > maxFrames) {
    throw new RefusedInputError(`That animation has too many frames for me (${meta.pages}): the limit is ${maxFrames}.`);
  }

  // limitInputPixels again, in case the decoder finds a size the header did not declare.
  const pipeline = sharp(input, { limitInputPixels: maxPixels, pages: 1, animated: false, failOn: "error", sequentialRead: true })
    .rotate()
    .resize({ width: maxSide, height: maxSide, fit: "inside", withoutEnlargement: true });
  const alpha = meta.hasAlpha === true;
  let output: { data: Buffer; info: OutputInfo };
  try {
    output = await (alpha ? pipeline.png() : pipeline.jpeg({ quality: JPEG_QUALITY })).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw unreadable(sniffed.mimeType, error);
  }
  return {
    bytes: output.data,
    mimeType: alpha ? "image/png" : "image/jpeg",
    width: output.info.width,
    height: output.info.height,
    sha256: createHash("sha256").update(output.data).digest("hex"),
  };
}

function notAnImage(sniffed: Sniffed): RefusedInputError {
  const looksLike = describeSniffed(sniffed);
  return new RefusedInputError(
    looksLike ? `That file isn't an image I can read (it looks like ${looksLike}).` : "That file isn't an image I can read.",
  );
}

function unreadable(mimeType: string, cause?: unknown): RefusedInputError {
  // Prebuilt libvips decodes AVIF but not HEVC-coded HEIC (patents): say what helps.
  if (mimeType === "image/heic") {
    return new RefusedInputError("I can't read HEIC photos here: please send it as a regular photo (JPEG).", { cause });
  }
  return new RefusedInputError("I couldn't read that image: it may be damaged.", { cause });
}
