import QRCode from "qrcode";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { loginQr, qrSvg } from "../src/admin/qr.ts";

const CODE = "2@Abc123+/=,xyz<script>alert(1)</script>,Q2VydA==,1";

describe("the login QR code on the admin page", () => {
  it("splits a needs-login detail into its sentence and its code", () => {
    expect(loginQr("scan the QR code with WhatsApp. QR: 2@abc,def")).toEqual({ text: "scan the QR code with WhatsApp.", qr: "2@abc,def" });
    expect(loginQr("waiting for WhatsApp")).toEqual({ text: "waiting for WhatsApp" });
  });

  it("draws every dark module of the code and never echoes the input text", async () => {
    const svg = qrSvg(CODE).value;
    const { size, data } = QRCode.create(CODE, { errorCorrectionLevel: "M" }).modules;
    const dark = Array.from(data).filter(Boolean).length;
    expect(svg.match(/h1v1h-1z/g)).toHaveLength(dark);
    expect(svg).toContain(`viewBox="0 0 ${size + 8} ${size + 8}"`);
    expect(svg).not.toContain("<script>");
    // It renders: the top-left finder pattern is dark where the grid says so.
    const png = await sharp(Buffer.from(svg)).resize(size + 8, size + 8, { kernel: "nearest" }).raw().toBuffer({ resolveWithObject: true });
    const pixel = (x: number, y: number) => png.data[(y * png.info.width + x) * png.info.channels]!;
    expect(pixel(4, 4)).toBeLessThan(64);
    expect(pixel(1, 1)).toBeGreaterThan(192);
  });
});
