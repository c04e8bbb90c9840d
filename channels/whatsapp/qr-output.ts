import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";

/**
 * Shows a login QR code to the operator. Parley ships no QR encoder, so it uses the common packages when they are
 * installed next to it — `qrcode-terminal` draws the code in the terminal, `qrcode` saves it as a PNG — and
 * otherwise logs the QR string and saves it to `<dataDir>/whatsapp-qr.txt`, to be turned into a code by any QR tool
 * (e.g. `qrencode -t ansiutf8 < whatsapp-qr.txt`). The admin page can show it from the channel status as well.
 * The files are removed once the account is linked: a pairing code is no use to anyone afterwards.
 */

export interface QrOutputDeps {
  dataDir: string;
  log: Logger;
  /** Loads an optional package, or rejects when it is not installed; default: a dynamic import. */
  loadModule?: (name: string) => Promise<unknown>;
  /** Where the terminal drawing goes; default stderr, beside (not inside) the JSON log lines. */
  terminal?: (text: string) => void;
}

export interface QrOutput {
  show(qr: string): Promise<void>;
  clear(): Promise<void>;
}

interface QrcodeTerminal {
  generate(text: string, options: { small: boolean }, callback: (drawing: string) => void): void;
}
interface Qrcode {
  toFile(path: string, text: string, options?: { type?: "png"; margin?: number; width?: number }): Promise<void>;
}

export const QR_PNG = "whatsapp-qr.png";
export const QR_TEXT = "whatsapp-qr.txt";

export function createQrOutput(deps: QrOutputDeps): QrOutput {
  const load = deps.loadModule ?? ((name: string) => import(name) as Promise<unknown>);
  const terminal = deps.terminal ?? ((text: string) => void process.stderr.write(text));
  const png = join(deps.dataDir, QR_PNG);
  const txt = join(deps.dataDir, QR_TEXT);
  let drawer: Promise<QrcodeTerminal | undefined> | undefined;
  let encoder: Promise<Qrcode | undefined> | undefined;
  let explained = false;
  // One operation at a time, in order: a QR file written late must not outlive the clear() that followed it.
  let queue: Promise<void> = Promise.resolve();
  const enqueue = (operation: () => Promise<void>): Promise<void> => {
    const run = queue.then(operation);
    queue = run.catch(() => {});
    return run;
  };

  async function show(qr: string): Promise<void> {
    drawer ??= optional(load, "qrcode-terminal", (m): m is QrcodeTerminal => typeof (m as QrcodeTerminal).generate === "function");
    encoder ??= optional(load, "qrcode", (m): m is Qrcode => typeof (m as Qrcode).toFile === "function");
    const [draw, encode] = await Promise.all([drawer, encoder]);
    await mkdir(deps.dataDir, { recursive: true, mode: 0o700 });

    let savedAs: string;
    if (encode) {
      await encode.toFile(png, qr, { type: "png", margin: 2, width: 400 });
      // qrcode writes with the default mode; the code logs this WhatsApp account in, so it is the operator's alone.
      await chmod(png, 0o600);
      await rm(txt, { force: true });
      savedAs = png;
    } else {
      await writeFile(txt, `${qr}\n`, { mode: 0o600 });
      savedAs = txt;
    }

    if (draw) {
      draw.generate(qr, { small: true }, (drawing) => terminal(`\nScan this with WhatsApp (Settings → Linked devices → Link a device):\n${drawing}\n`));
      deps.log.warn({ file: savedAs }, "WhatsApp needs to be linked: scan the QR code shown in the terminal");
    } else {
      deps.log.warn(
        { qr, file: savedAs },
        explained
          ? "WhatsApp login QR code refreshed"
          : `WhatsApp needs to be linked: no QR renderer is installed (qrcode-terminal, qrcode), so the QR code is the ` +
              `text in "qr", also saved to ${savedAs}; turn it into a code with any QR tool (e.g. qrencode -t ansiutf8 < ${savedAs}) ` +
              `and scan it with WhatsApp → Settings → Linked devices → Link a device`,
      );
      explained = true;
    }
  }

  return {
    show: (qr) => enqueue(() => show(qr)),
    clear: () => enqueue(async () => void (await Promise.all([rm(png, { force: true }), rm(txt, { force: true })]))),
  };
}

async function optional<T>(load: (name: string) => Promise<unknown>, name: string, accept: (m: unknown) => m is T): Promise<T | undefined> {
  try {
    const loaded = await load(name);
    const candidate = (loaded as { default?: unknown }).default ?? loaded;
    return accept(candidate) ? candidate : accept(loaded) ? loaded : undefined;
  } catch {
    return undefined; // not installed (or broken): the text fallback is used
  }
}
