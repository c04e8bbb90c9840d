import { createRequire } from "node:module";
import type QRCodeModule from "qrcode";
import { html, trusted, type Html } from "./html.ts";

const require = createRequire(import.meta.url);
/** Loaded with the first QR code drawn (~10 MB resident; most deployments never link WhatsApp Web). */
let qrcode: typeof QRCodeModule | undefined;

/**
 * A login QR code (WhatsApp Web's pairing string) drawn as an inline SVG, one path of dark modules. The SVG is built
 * here from the encoder's module grid, never from the input text, so it is safe to embed as markup.
 */
export function qrSvg(text: string): Html {
  qrcode ??= require("qrcode") as typeof QRCodeModule;
  const { size, data } = qrcode.create(text, { errorCorrectionLevel: "M" }).modules;
  const margin = 4;
  let path = "";
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) if (data[y * size + x]) path += `M${x + margin} ${y + margin}h1v1h-1z`;
  }
  const side = size + 2 * margin;
  return html`<svg class="login-qr" role="img" aria-label="QR code to scan with WhatsApp" viewBox="0 0 ${side} ${side}" width="264" height="264" shape-rendering="crispEdges"><rect width="${side}" height="${side}" fill="#fff"/>${trusted(`<path d="${path}" fill="#000"/>`)}</svg>`;
}

/** Splits a needs-login detail of the form "… QR: <code>" into its sentence and the code. */
export function loginQr(detail: string): { text: string; qr?: string } {
  const at = detail.lastIndexOf("QR: ");
  if (at < 0) return { text: detail };
  return { text: detail.slice(0, at).trim(), qr: detail.slice(at + 4).trim() };
}
