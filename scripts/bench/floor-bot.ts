import { run } from "@grammyjs/runner";
import { Bot } from "grammy";

/**
 * The benchmark's floor: the least a Telegram AI bot can do. grammY long polling (the runner, so chats are
 * answered concurrently), each text message forwarded to an OpenAI-compatible model (one non-streamed chat
 * completion, no history, no storage, no rate limiting) and the answer sent back. Parley's figures are given as
 * ratios to this one's, measured in the same run against the same fakes.
 *
 * Configured by FLOOR_TELEGRAM_TOKEN, FLOOR_TELEGRAM_API_ROOT, FLOOR_MODEL_URL (…/v1) and FLOOR_MODEL.
 */

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const modelUrl = env("FLOOR_MODEL_URL").replace(/\/+$/, "");
const model = env("FLOOR_MODEL");

const bot = new Bot(env("FLOOR_TELEGRAM_TOKEN"), { client: { apiRoot: env("FLOOR_TELEGRAM_API_ROOT") } });
bot.on("message:text", async (ctx) => {
  const response = await fetch(`${modelUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer floor" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: ctx.message.text }] }),
  });
  const body = (await response.json()) as { choices?: Array<{ message?: { content?: string } }> };
  await ctx.reply(body.choices?.[0]?.message?.content ?? "(no answer)");
});
bot.catch((error) => process.stderr.write(`floor bot: ${String(error.error)}\n`));

await bot.init();
const runner = run(bot, { runner: { fetch: { timeout: 30 } } });
process.stdout.write(`${JSON.stringify({ msg: "floor bot running" })}\n`);
const stop = () => void runner.stop().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
