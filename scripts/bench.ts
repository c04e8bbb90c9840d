import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "../test/fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "../test/fakes/telegram-api.ts";
import { createBenchDatabase, type BenchDatabase } from "./bench/database.ts";
import { seedHistories, timePromptAssembly, type AssemblyTiming } from "./bench/history.ts";
import { createReplyWatcher, driveUsers, percentile, type ReplyWatcher } from "./bench/load.ts";
import { bundle, buildParley } from "./build.ts";
import { ROOT, startParleyProcess, startProcess, type ChildApp } from "./bench/processes.ts";
import { FIGURE_LABELS, figuresOf, markdownTable, ratio, round, type LoadFigures } from "./bench/report.ts";

/**
 * `npm run bench [-- --quick] [-- --profile]`: Parley's speed, measured end to end against fakes on 127.0.0.1.
 *
 * Parley runs as a separate process, as `npm start` runs it (the bundle dist/parley.js, built at the start of the run),
 * on PostgreSQL when DATABASE_URL is set (a
 * database created for the run and dropped after it) and PGlite otherwise, talking to a fake Telegram Bot API and a
 * fake OpenAI-compatible model with a set latency, both in this process. Simulated users write, wait for the reply,
 * think for a second (Telegram allows a bot about one message a second per chat), and write again. The same users
 * then talk to a minimal grammY bot (scripts/bench/floor-bot.ts: model call and reply, nothing else; bundled the same
 * way), and every figure is also given as a ratio to that floor.
 *
 * Results: a table on stdout and test-results/bench-results.json. Speed is compared as ratios within one run: the
 * machine may be busy with other work, so no absolute figure here is a pass or fail on its own.
 */

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    profile: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string", default: path.join(ROOT, "test-results", "bench-results.json") },
  },
});
const quick = flags.quick!;
const MODEL = "bench-model";
const THINK_MS = 1_100;
const only = flags.only?.split(",").map((s) => s.trim());
const enabled = (name: string) => !only || only.includes(name);
const profileDir = path.join(ROOT, "test-results", "bench-profiles");

interface LoadScenario {
  key: string;
  title: string;
  users: number;
  messagesPerUser: number;
  warmupUsers: number;
  modelMs: number;
  workerConcurrency: number;
  /** Answers a process runs at once per provider (PROVIDER_CONCURRENCY). */
  providerConcurrency?: number;
}

const loadScenarios: LoadScenario[] = [
  { key: "latency", title: "1 user, 100 ms model", users: 1, messagesPerUser: quick ? 5 : 12, warmupUsers: 1, modelMs: 100, workerConcurrency: 8 },
  { key: "cost", title: "20 users, 0 ms model", users: 20, messagesPerUser: quick ? 4 : 12, warmupUsers: 20, modelMs: 0, workerConcurrency: 8 },
  {
    key: "concurrency",
    title: "200 users, 2 s model",
    users: 200,
    messagesPerUser: quick ? 1 : 2,
    warmupUsers: 20,
    modelMs: 2_000,
    workerConcurrency: 200,
    providerConcurrency: 200,
  },
];

const FLOOR_BUNDLE = path.join(ROOT, "dist", "bench-floor-bot.js");

async function main() {
  const startedAt = new Date();
  await Promise.all([buildParley(), bundle("scripts/bench/floor-bot.ts", FLOOR_BUNDLE)]);
  const database = await createBenchDatabase(process.env.DATABASE_URL);
  const watcher = createReplyWatcher();
  const telegram = await startFakeTelegram({ onCall: watcher.onCall });
  const model = await startFakeOpenAIServer();
  const log = (text: string) => process.stdout.write(`${text}\n`);
  log(`Parley benchmark${quick ? " (quick)" : ""}: ${database.describe}, ${os.cpus().length} cores, Node ${process.version}`);

  const results: Record<string, unknown> = {
    date: startedAt.toISOString(),
    command: `npm run bench${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGb: round(os.totalmem() / 2 ** 30, 1), node: process.version },
    database: database.describe,
    quick,
    method: `users wait for each reply, then ${THINK_MS} ms, before writing again; added latency = reply time − the model's configured latency`,
  };
  const tables: string[] = [];
  const targets: Array<{ target: string; measured: string; met: boolean }> = [];
  let nextUserId = 1_000_000;
  const ctx = { database, telegram, model, watcher, log, users: () => (nextUserId += 10_000) };

  try {
    if (enabled("history")) {
      const history = await historyScenario(ctx);
      results.history = history;
      const [small, full, large] = history.assembly;
      tables.push(
        `Prompt assembly (conversation row with recent turns + buildPrompt), ${quick ? 100 : 300} runs each: the next ` +
          `message of a conversation this process has seen (its turns cached), and the first message after a start\n\n` +
          markdownTable(
            ["stored messages", "p50 (ms)", "p95 (ms)", "first after start p50 (ms)", "first after start p95 (ms)", "turns in prompt"],
            history.assembly.map((a) => [a.messages.toLocaleString("en"), a.p50Ms, a.p95Ms, a.coldP50Ms, a.coldP95Ms, a.turnsInPrompt]),
          ),
      );
      if (small && full && large) {
        const r = ratio(large.p50Ms, small.p50Ms);
        targets.push({ target: "prompt assembly (next message), 100,000 messages ≤ 2× 10 messages", measured: `${r}×`, met: r <= 2 });
        const f = ratio(large.p50Ms, full.p50Ms);
        targets.push({ target: "(context) prompt assembly, 100,000 vs 1,000 messages", measured: `${f}×`, met: f <= 2 });
      }
    }

    const load: Record<string, unknown> = {};
    for (const scenario of loadScenarios) {
      if (!enabled(scenario.key)) continue;
      log(`\n== ${scenario.title}`);
      const parley = await runLoad(ctx, scenario, "parley");
      const floor = await runLoad(ctx, scenario, "floor");
      load[scenario.key] = { ...scenario, parley, floor, ratios: ratios(parley, floor) };
      const settings = `WORKER_CONCURRENCY=${scenario.workerConcurrency}${scenario.providerConcurrency ? `, PROVIDER_CONCURRENCY=openai-compatible=${scenario.providerConcurrency}` : ""}`;
      tables.push(`${scenario.title} (${settings})\n\n${loadTable(parley, floor)}`);
      if (scenario.key === "cost") {
        const cpu = ratio(parley.cpuMsPerMessage, floor.cpuMsPerMessage);
        targets.push({ target: "CPU per message ≤ 3× floor (20 users)", measured: `${cpu}×`, met: cpu <= 3 });
        targets.push({ target: "added latency p50 < 15 ms (20 users)", measured: `${parley.addedP50Ms} ms`, met: parley.addedP50Ms < 15 });
        targets.push({ target: "added latency p99 < 50 ms (20 users)", measured: `${parley.addedP99Ms} ms`, met: parley.addedP99Ms < 50 });
      }
      if (scenario.key === "concurrency") {
        targets.push({ target: "peak RSS < 250 MB (200 users, 2 s model)", measured: `${parley.peakRssMb} MB`, met: parley.peakRssMb < 250 });
      }
    }
    results.load = load;

    if (enabled("contemplate")) {
      const contemplate = await contemplateScenario(ctx);
      results.contemplate = contemplate;
      tables.push(
        contemplate.available
          ? `Contemplating, ${contemplate.agents} agents, ${contemplate.modelMs} ms model\n\n` +
              markdownTable(
                ["figure", "value"],
                [
                  ["single call, reply time (ms)", contemplate.singleMs!],
                  ["contemplate, reply time (ms)", contemplate.contemplateMs!],
                  ["ratio", contemplate.ratio!],
                  ["model requests for one /contemplate", contemplate.modelRequests!],
                ],
              )
          : `Contemplating: not available (${contemplate.reason})`,
      );
    }
  } finally {
    await Promise.all([telegram.close(), model.close()]);
    await database.drop().catch((error: unknown) => log(`could not drop the benchmark database: ${String(error)}`));
  }

  results.targets = targets;
  const summary = markdownTable(["target", "measured", "met"], targets.map((t) => [t.target, t.measured, t.met ? "yes" : "NO"]));
  log(`\n${tables.join("\n\n")}\n\nTargets\n\n${summary}\n`);
  mkdirSync(path.dirname(flags.out!), { recursive: true });
  writeFileSync(flags.out!, `${JSON.stringify(results, null, 2)}\n`);
  log(`Written to ${path.relative(process.cwd(), flags.out!)} in ${round((Date.now() - startedAt.getTime()) / 1000, 0)} s`);
}

interface Context {
  database: BenchDatabase;
  telegram: FakeTelegram;
  model: FakeOpenAIServer;
  watcher: ReplyWatcher;
  log: (text: string) => void;
  /** A fresh range of Telegram user ids. */
  users: () => number;
}

function parleyEnv(ctx: Context, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...ctx.database.env,
    TELEGRAM_BOT_TOKEN: ctx.telegram.token,
    TELEGRAM_API_ROOT: ctx.telegram.url,
    MODELS_INSTANT: `openai-compatible:${MODEL}`,
    OPENAI_COMPATIBLE_BASE_URL: `${ctx.model.url}/v1`,
    OPENAI_COMPATIBLE_API_KEY: "sk-bench-0123456789",
    ACCESS_POLICY: "open",
    LOG_LEVEL: "info",
    // Simulated users write far more than a person: per-user quotas stay checked, but never bite.
    QUOTA_MESSAGES_PER_MINUTE: "1000000",
    QUOTA_CONTEMPLATIONS_PER_HOUR: "1000000",
    QUOTA_TOKENS_PER_DAY: "1000000000",
    ...extra,
  };
}

async function startApp(ctx: Context, kind: "parley" | "floor", extra: Record<string, string> = {}, label: string = kind): Promise<ChildApp> {
  if (kind === "parley") {
    const nodeFlags = flags.profile ? ["--cpu-prof", `--cpu-prof-dir=${path.join(profileDir, label)}`] : [];
    return startParleyProcess(parleyEnv(ctx, extra), { name: label, nodeFlags });
  }
  return startProcess({
    script: path.relative(ROOT, FLOOR_BUNDLE),
    name: "floor",
    ready: /floor bot running/,
    env: {
      FLOOR_TELEGRAM_TOKEN: ctx.telegram.token,
      FLOOR_TELEGRAM_API_ROOT: ctx.telegram.url,
      FLOOR_MODEL_URL: `${ctx.model.url}/v1`,
      FLOOR_MODEL: MODEL,
    },
  });
}

async function runLoad(ctx: Context, scenario: LoadScenario, kind: "parley" | "floor"): Promise<LoadFigures> {
  ctx.model.reply(MODEL, scenario.modelMs > 0 ? { delayMs: scenario.modelMs } : {});
  const app = await startApp(
    ctx,
    kind,
    {
      WORKER_CONCURRENCY: String(scenario.workerConcurrency),
      ...(scenario.providerConcurrency ? { PROVIDER_CONCURRENCY: `openai-compatible=${scenario.providerConcurrency}` } : {}),
    },
    `${kind}-${scenario.key}`,
  );
  try {
    const firstUserId = ctx.users();
    const base = { telegram: ctx.telegram, watcher: ctx.watcher, firstUserId, thinkMs: THINK_MS };
    // Warm-up: the JIT, connections, and a first message of each user (user and conversation rows) are not measured.
    await driveUsers({ ...base, users: scenario.warmupUsers, messagesPerUser: 1, tag: "warm-up" });
    await sleepMs(THINK_MS);
    const lifetimePeakMb = round(app.peakRssBytes() / 2 ** 20, 1);
    // The peak of the measured phase only: start-up (migrations, first connections) has a peak of its own.
    app.resetPeakRss();
    const cpuBefore = app.cpuMs();
    const run = await driveUsers({ ...base, users: scenario.users, messagesPerUser: scenario.messagesPerUser, timeoutMs: 120_000 });
    const cpuMs = app.cpuMs() - cpuBefore;
    const figures = figuresOf({ ...run, modelMs: scenario.modelMs, cpuMs, peakRssBytes: app.peakRssBytes() });
    ctx.log(`${kind.padEnd(6)} ${JSON.stringify({ ...figures, peakRssBeforeMb: lifetimePeakMb })}`);
    return { ...figures, peakRssStartupMb: lifetimePeakMb };
  } catch (error) {
    ctx.log(`${kind} failed; its last lines:\n${app.output()}`);
    throw error;
  } finally {
    await app.stop();
  }
}

function ratios(parley: LoadFigures, floor: LoadFigures): Partial<Record<keyof LoadFigures, number>> {
  const out: Partial<Record<keyof LoadFigures, number>> = {};
  for (const key of Object.keys(parley) as Array<keyof LoadFigures>) if (key !== "messages") out[key] = ratio(parley[key] ?? NaN, floor[key] ?? NaN);
  return out;
}

function loadTable(parley: LoadFigures, floor: LoadFigures): string {
  const keys = (Object.keys(parley) as Array<keyof LoadFigures>).filter((k) => k !== "messages");
  return markdownTable(
    ["figure", "Parley", "floor", "Parley / floor"],
    [
      ["messages measured", parley.messages, floor.messages, ""],
      ...keys.map((k) => [FIGURE_LABELS[k], parley[k] ?? NaN, floor[k] ?? NaN, `${ratio(parley[k] ?? NaN, floor[k] ?? NaN)}×`]),
    ],
  );
}

interface HistoryResult {
  assembly: AssemblyTiming[];
  /** Reply times through a whole Parley for the same users (full run only). */
  endToEnd?: Array<{ messages: number; addedP50Ms: number }>;
}

async function historyScenario(ctx: Context): Promise<HistoryResult> {
  ctx.log("\n== long history: 10 vs 100,000 stored messages");
  const firstId = ctx.users();
  // 10 messages, a full prompt's worth (1,000: more than the token budget holds) and 100,000.
  const seeded = await seedHistories(ctx.database.target, [
    { telegramId: firstId, messages: 10 },
    { telegramId: firstId + 1, messages: 1_000 },
    { telegramId: firstId + 2, messages: 100_000 },
  ]);
  const assembly = await timePromptAssembly(ctx.database.target, seeded, quick ? 100 : 300);
  ctx.log(JSON.stringify(assembly));
  if (quick) return { assembly };

  // The same two users through a whole Parley: the reply time must not grow with the stored history either.
  ctx.model.reply(MODEL, {});
  const app = await startApp(ctx, "parley", {}, "parley-history");
  try {
    const endToEnd: Array<{ messages: number; addedP50Ms: number }> = [];
    for (const [i, user] of seeded.entries()) {
      if (user.messages === 1_000) continue;
      const run = await driveUsers({
        telegram: ctx.telegram,
        watcher: ctx.watcher,
        firstUserId: user.telegramId,
        users: 1,
        messagesPerUser: 6,
        thinkMs: THINK_MS,
        tag: `h${i}`,
      });
      const replies = run.samples.slice(1).map((s) => s.replyMs);
      endToEnd.push({ messages: user.messages, addedP50Ms: round(percentile(replies, 50), 1) });
    }
    ctx.log(JSON.stringify(endToEnd));
    return { assembly, endToEnd };
  } catch (error) {
    ctx.log(`the long-history run failed; Parley's last lines:\n${app.output()}`);
    throw error;
  } finally {
    await app.stop();
  }
}

interface ContemplateResult {
  available: boolean;
  reason?: string;
  agents?: number;
  modelMs?: number;
  singleMs?: number;
  contemplateMs?: number;
  ratio?: number;
  modelRequests?: number;
}

async function contemplateScenario(ctx: Context): Promise<ContemplateResult> {
  ctx.log("\n== contemplating with 3 agents");
  const modelMs = 500;
  const agents = 3;
  ctx.model.reply(MODEL, { delayMs: modelMs });
  const app = await startApp(
    ctx,
    "parley",
    { MODELS_CONTEMPLATING: `openai-compatible:${MODEL}`, CONTEMPLATE_AGENTS: String(agents) },
    "parley-contemplate",
  );
  try {
    const userId = ctx.users();
    const base = { telegram: ctx.telegram, watcher: ctx.watcher, firstUserId: userId, users: 1, thinkMs: THINK_MS, timeoutMs: 60_000 };
    const single = await driveUsers({ ...base, messagesPerUser: 3, tag: "single" });
    const singleMs = percentile(single.samples.slice(1).map((s) => s.replyMs), 50);
    await sleepMs(THINK_MS);
    const before = ctx.model.requests.length;
    const times: number[] = [];
    for (let k = 0; k < 3; k++) {
      const run = await driveUsers({
        ...base,
        messagesPerUser: 1,
        text: () => `/contemplate What would you weigh before choosing a database, question ${k}?`,
        isReply: () => true,
      });
      const sample = run.samples[0]!;
      if (/don.t know the command|unknown command/i.test(sample.text)) {
        return { available: false, reason: "this Parley does not understand /contemplate yet" };
      }
      times.push(sample.replyMs);
      await sleepMs(THINK_MS);
    }
    const contemplateMs = percentile(times, 50);
    const result = {
      available: true,
      agents,
      modelMs,
      singleMs: round(singleMs, 0),
      contemplateMs: round(contemplateMs, 0),
      ratio: ratio(contemplateMs, singleMs),
      modelRequests: round((ctx.model.requests.length - before) / times.length, 1),
    };
    ctx.log(JSON.stringify(result));
    return result;
  } catch (error) {
    ctx.log(`contemplating failed; Parley's last lines:\n${app.output()}`);
    throw error;
  } finally {
    await app.stop();
  }
}

const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
