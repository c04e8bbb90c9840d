/**
 * The defaults of every media limit, in one place, so src/config.ts can name them as the defaults of its variables
 * and the rest of src/media can fall back to them. Values are bytes, pixels, seconds or milliseconds as named.
 */

/** MEDIA_MAX_BYTES: the largest image or file fetched from a platform. */
export const MEDIA_MAX_BYTES_DEFAULT = 10 * 1024 * 1024;
/** IMAGE_MAX_PIXELS: width × height above which an image is refused, read from its header before decoding. */
export const IMAGE_MAX_PIXELS_DEFAULT = 40_000_000;
/** IMAGE_MAX_SIDE: the longest side of the image a model is shown (Anthropic's sweet spot; fine for the others). */
export const IMAGE_MAX_SIDE_DEFAULT = 1568;
/** Frames an animated GIF or WebP may declare; only the first is ever decoded. */
export const IMAGE_MAX_FRAMES_DEFAULT = 1000;
/** IMAGES_IN_HISTORY_TURNS: earlier user turns whose images are sent again; older ones become a text placeholder. */
export const IMAGES_IN_HISTORY_TURNS_DEFAULT = 2;
/** TRANSCRIBE_MAX_BYTES: the largest voice message fetched (OpenAI's transcription endpoint takes up to 25 MB). */
export const TRANSCRIBE_MAX_BYTES_DEFAULT = 20 * 1024 * 1024;
/** TRANSCRIBE_MAX_SECONDS: the longest voice message transcribed. */
export const TRANSCRIBE_MAX_SECONDS_DEFAULT = 300;
/** How long an album waits for its next part after the last one arrived. */
export const ALBUM_WINDOW_MS_DEFAULT = 1500;

/** "8.5 MB", "25 MB", "600 KB": sizes as people read them in a refusal. */
export function formatMegabytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KB`;
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10} MB`;
}

/** "45 s", "5 min", "7 min 30 s". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const rest = s % 60;
  return rest === 0 ? `${Math.floor(s / 60)} min` : `${Math.floor(s / 60)} min ${rest} s`;
}
