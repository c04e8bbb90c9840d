import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { BUNDLE } from "../build.ts";

/**
 * Parley (or another script of this repository) as a separate operating-system process, the way an operator runs
 * it: `node --enable-source-maps dist/parley.js` (the bundle `npm start` builds and runs; scripts/build.ts), or
 * `node --import tsx <script>.ts` for another script, configured by environment variables only. Used by the benchmark and by the
 * cluster tests. The process runs in an empty working directory, so a developer's `.env` never leaks in, and sees
 * only the variables given here (plus PATH, HOME and the like).
 *
 * It also reads what the kernel knows about the process: CPU time (utime + stime of /proc/<pid>/stat, all threads)
 * and peak resident memory (VmHWM of /proc/<pid>/status, summed over the process and its children; under tsx an
 * esbuild service is a child).
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const TSX = pathToFileURL(path.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href;
const PASSED_THROUGH = ["PATH", "HOME", "TMPDIR", "LANG", "TZ"];

export interface ChildApp {
  readonly name: string;
  readonly pid: number;
  /** The HTTP base URL: Parley's from its "Parley is running" line, else the ready line's first group, if any. */
  readonly url: string | undefined;
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** The last lines the process wrote (stdout and stderr), for a failure's message. */
  output(): string;
  /** Resolves with the first line matching `pattern` that is written from now on (or was among the last lines). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** CPU time used so far, user + system, in milliseconds. */
  cpuMs(): number;
  /** Peak resident memory so far, in bytes, of the process and its children (since the last resetPeakRss). */
  peakRssBytes(): number;
  /** Starts the peak over from the current resident memory (writes 5 to /proc/<pid>/clear_refs). */
  resetPeakRss(): void;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** A file of this repository: TypeScript is run through tsx, JavaScript (dist/parley.js) by node itself. */
  script: string;
  env: Record<string, string>;
  name?: string;
  /** A line that says the process is ready; the match's first group (if any) is taken as its URL. */
  ready: RegExp;
  readyTimeoutMs?: number;
  /** Extra node flags, e.g. ["--cpu-prof", "--cpu-prof-dir=…"]. */
  nodeFlags?: string[];
}

export async function startProcess(options: StartOptions): Promise<ChildApp> {
  const cwd = mkdtempSync(path.join(tmpdir(), "parley-proc-"));
  const env: Record<string, string> = {};
  for (const name of PASSED_THROUGH) if (process.env[name] !== undefined) env[name] = process.env[name]!;
  const runner = options.script.endsWith(".ts") ? ["--import", TSX] : ["--enable-source-maps"];
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeFlags ?? []), ...runner, path.join(ROOT, options.script)], {
    cwd,
    env: { ...env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const name = options.name ?? path.basename(options.script);
  const lines: string[] = [];
  const watchers = new Set<(line: string) => void>();
  const take = (stream: NodeJS.ReadableStream | null) => {
    let rest = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 300) lines.shift();
        for (const watcher of watchers) watcher(line);
      }
    });
  };
  take(child.stdout);
  take(child.stderr);
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      rmSync(cwd, { recursive: true, force: true });
      resolve(code ?? signal ?? "unknown");
    });
  });
  const pid = child.pid!;

  const waitForLine = (pattern: RegExp, timeoutMs = 60_000) =>
    new Promise<string>((resolve, reject) => {
      const found = lines.find((line) => pattern.test(line));
      if (found !== undefined) return resolve(found);
      const timer = setTimeout(() => done(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms\n${tail()}`)), timeoutMs);
      const watcher = (line: string) => {
        if (pattern.test(line)) done(line);
      };
      const onExit = (code: number | string) => done(new Error(`${name} exited (${code}) before writing ${pattern}\n${tail()}`));
      watchers.add(watcher);
      void exited.then(onExit);
      function done(result: string | Error) {
        clearTimeout(timer);
        watchers.delete(watcher);
        if (result instanceof Error) reject(result);
        else resolve(result);
      }
    });
  const tail = () => lines.slice(-40).join("\n");

  let readyLine: string;
  try {
    readyLine = await waitForLine(options.ready, options.readyTimeoutMs ?? 90_000);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const url = options.ready.exec(readyLine)?.[1];

  return {
    name,
    pid,
    url,
    exited,
    output: tail,
    waitForLine,
    cpuMs: () => cpuMsOf(pid),
    peakRssBytes: () => treeOf(pid).reduce((sum, p) => sum + peakRssOf(p), 0),
    resetPeakRss: () => {
      for (const p of treeOf(pid)) {
        try {
          writeFileSync(`/proc/${p}/clear_refs`, "5");
        } catch {
          // not allowed or gone: the peak then covers the whole lifetime
        }
      }
    },
    kill: (signal = "SIGKILL") => void child.kill(signal),
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Parley itself, from the bundle (`npm run build`; the test suite's global setup and the benchmark build it); resolves
 * once it logged "Parley is running" (its URL is then known).
 */
export async function startParleyProcess(env: Record<string, string>, options: { name?: string; nodeFlags?: string[] } = {}): Promise<ChildApp> {
  if (!existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing: run npm run build`);
  const app = await startProcess({
    script: path.relative(ROOT, BUNDLE),
    env: { HOST: "127.0.0.1", PORT: "0", ...env },
    name: options.name ?? "parley",
    ready: /"msg":"Parley is running"/,
    nodeFlags: options.nodeFlags,
  });
  const line = await app.waitForLine(/"msg":"Parley is running"/);
  return Object.assign(app, { url: (JSON.parse(line) as { url: string }).url });
}

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

function cpuMsOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command name: state is field 3 of the man page, utime 14 and stime 15.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks();
  } catch {
    return Number.NaN;
  }
}

function peakRssOf(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The process and its descendants, from /proc/<pid>/task/<tid>/children. */
function treeOf(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${all[i]}/task`)) {
        const children = readFileSync(`/proc/${all[i]}/task/${tid}/children`, "utf8").trim();
        if (children) all.push(...children.split(/\s+/).map(Number));
      }
    } catch {
      // gone meanwhile
    }
  }
  return all;
}
