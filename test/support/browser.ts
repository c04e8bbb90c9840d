import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

/**
 * Headless Chromium for browser tests, through playwright-core and the system's Chromium (CI installs the Debian
 * package). Each launch gets a fresh profile directory, removed on close, and no network besides what the page asks
 * for. Tests skip with `CHROMIUM_MISSING` as the reason only when the executable is not installed.
 */

export const CHROMIUM_PATH = "/usr/bin/chromium";
export const CHROMIUM_MISSING = existsSync(CHROMIUM_PATH)
  ? undefined
  : `${CHROMIUM_PATH} is missing: install it with \`apt-get update && apt-get install -y chromium\` to run the browser tests`;

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

export interface TestBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(options: { viewport?: { width: number; height: number } } = {}): Promise<TestBrowser> {
  const profile = await mkdtemp(path.join(tmpdir(), "parley-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ARGS,
    viewport: options.viewport ?? { width: 1280, height: 900 },
    colorScheme: "light",
    timeout: 20_000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/** Where screenshots go for people to look at (gitignored). */
export async function screenshotPath(name: string): Promise<string> {
  const dir = path.resolve("test-results", "admin");
  await mkdir(dir, { recursive: true });
  return path.join(dir, `${name}.png`);
}
