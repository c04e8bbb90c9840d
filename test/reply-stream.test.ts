import { describe, expect, it } from "vitest";
import { createReplyStream, type Clock, type ReplyStream } from "../src/conversation/reply-stream.ts";
import { DeliveryError, RateLimitedError } from "../src/core/errors.ts";
import { splitText } from "../src/core/split-text.ts";
import type { ChannelAdapter, ChannelName, ChatKey } from "../src/core/types.ts";

/** Virtual time: sleeps resolve only when a test advances the clock, in order of their due time. */
class FakeClock implements Clock {
  private time = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fire: () => void }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fire: () => void): () => void {
    const timer = { at: this.time + Math.max(0, ms), seq: this.seq++, fire };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(ms, resolve));
  }

  async advance(ms: number): Promise<void> {
    const target = this.time + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.fire();
    }
    this.time = target;
    await settle();
  }

  /** Advances time until `promise` settles (at most `maxMs`), then returns its outcome. */
  async run<T>(promise: Promise<T>, maxMs = 120_000): Promise<T> {
    let settled = false;
    promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (let spent = 0; !settled && spent < maxMs; spent += 50) await this.advance(50);
    return promise;
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

type Method = "send" | "edit" | "draft" | "typing";
interface Call {
  method: Method;
  at: number;
  end?: number;
  text?: string;
  id?: string;
  draftId?: number;
  replyTo?: string;
}

/** A ChannelAdapter that records each call with its start and end on the fake clock. */
function recordingAdapter(
  clock: FakeClock,
  options: {
    name: ChannelName;
    maxText: number;
    canEdit: boolean;
    canDraft: boolean;
    latencyMs?: (call: Call) => number;
    fail?: (call: Call) => Error | undefined;
  },
) {
  const calls: Call[] = [];
  let active = 0;
  let maxActive = 0;
  let nextId = 1;
  const record = async (call: Call) => {
    calls.push(call);
    active++;
    maxActive = Math.max(maxActive, active);
    try {
      const latency = options.latencyMs?.(call) ?? 0;
      if (latency > 0) await clock.sleep(latency);
      const error = options.fail?.(call);
      if (error) throw error;
    } finally {
      active--;
      call.end = clock.now();
    }
  };
  const adapter: ChannelAdapter = {
    name: options.name,
    limits: { maxText: options.maxText, canEdit: options.canEdit, canDraft: options.canDraft },
    start: async () => {},
    async send(_chat, text, opts) {
      const id = `m${nextId++}`;
      await record({ method: "send", at: clock.now(), text, id, ...(opts?.replyTo ? { replyTo: opts.replyTo } : {}) });
      return { id };
    },
    ...(options.canEdit
      ? { edit: (_chat: ChatKey, id: string, text: string) => record({ method: "edit", at: clock.now(), id, text }) }
      : {}),
    ...(options.canDraft
      ? {
          draft: (_chat: ChatKey, draftId: number, text: string) =>
            record({ method: "draft", at: clock.now(), draftId, text }),
        }
      : {}),
    typing: () => record({ method: "typing", at: clock.now() }),
    status: () => ({ state: "running" }),
  };
  return {
    adapter,
    calls,
    of: (...methods: Method[]) => calls.filter((c) => methods.includes(c.method)),
    maxActive: () => maxActive,
  };
}

const telegram = (clock: FakeClock, extra: Partial<Parameters<typeof recordingAdapter>[1]> = {}) =>
  recordingAdapter(clock, { name: "telegram", maxText: 4096, canEdit: true, canDraft: true, ...extra });

/** Pushes `text` the way a model streams it: a few code points every `everyMs`. */
async function write(clock: FakeClock, reply: ReplyStream, text: string, everyMs = 50, piece = 12) {
  const points = Array.from(text);
  for (let i = 0; i < points.length; i += piece) {
    reply.push(points.slice(i, i + piece).join(""));
    await clock.advance(everyMs);
  }
}

const paragraph = (i: number) =>
  `Paragraph ${i} 😀 explains one more thing with **some emphasis**, a family 👨‍👩‍👧‍👦 and 東京. ` +
  "It goes on for a while so that the whole answer is long enough to need several messages on every platform.";
const LONG = Array.from({ length: 52 }, (_, i) => paragraph(i)).join("\n\n");

/** Start times of consecutive calls are at least `ms` apart. */
function expectSpaced(calls: Call[], ms: number) {
  for (let i = 1; i < calls.length; i++) expect(calls[i]!.at - calls[i - 1]!.at).toBeGreaterThanOrEqual(ms);
}

/** A preview is the reply so far, or its first maxText - 1 characters and "…". */
function expectPreviewOf(text: string, preview: string, maxText: number) {
  expect(preview.length).toBeLessThanOrEqual(maxText);
  if (preview.endsWith("…") && preview.length === maxText) expect(text.startsWith(preview.slice(0, -1))).toBe(true);
  else expect(text.startsWith(preview)).toBe(true);
}

describe("createReplyStream", () => {
  it("previews with drafts in a private chat, then sends the reply in chunks", async () => {
    expect(LONG.length).toBeGreaterThan(10_000);
    const clock = new FakeClock();
    const tg = telegram(clock);
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, replyTo: "7", clock, status: "Thinking…" });
    await clock.advance(1_000);
    await write(clock, reply, LONG);
    const { messageIds } = await clock.run(reply.finish());

    expect(tg.calls[0]).toMatchObject({ method: "typing", at: 0 });
    expect(tg.of("typing")).toHaveLength(1); // a draft was visible from the start
    const drafts = tg.of("draft");
    expect(drafts[0]).toMatchObject({ at: 0, text: "Thinking…" });
    expect(drafts.length).toBeGreaterThan(10);
    expectSpaced(drafts, 400);
    const draftId = drafts[0]!.draftId!;
    expect(Number.isInteger(draftId) && draftId >= 1 && draftId < 2 ** 31).toBe(true);
    for (const draft of drafts) expect(draft.draftId).toBe(draftId);
    for (const draft of drafts.slice(1)) expectPreviewOf(LONG, draft.text!, 4096);
    expect(drafts.at(-1)!.text).toHaveLength(4096); // the preview of a long reply keeps its beginning
    expect(tg.of("edit")).toEqual([]);

    const chunks = splitText(LONG, 4096);
    expect(chunks.length).toBe(3);
    const sends = tg.of("send");
    expect(sends.map((s) => s.text)).toEqual(chunks);
    expect(sends.map((s) => s.replyTo)).toEqual(["7", undefined, undefined]);
    expect(messageIds).toEqual(sends.map((s) => s.id));
  });

  it.each([
    ["a group", true, 3_100, true],
    ["a private chat without drafts", false, 1_100, false],
  ])("previews by editing one message in %s", async (_name, isGroup, interval, canDraft) => {
    const clock = new FakeClock();
    const tg = telegram(clock, { canDraft });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:-100", isGroup, replyTo: "5", clock, status: "Thinking…" });
    await clock.advance(2_000);
    await write(clock, reply, LONG);
    const finishing = reply.finish();
    const { messageIds } = await clock.run(finishing);

    const chunks = splitText(LONG, 4096);
    const previewId = tg.of("send")[0]!.id!;
    const previews = tg.calls.filter((c) => c.method === "edit" || (c.method === "send" && c.id === previewId));
    expect(previews[0]).toMatchObject({ method: "send", text: "Thinking…", replyTo: "5" });
    expect(previews.length).toBeGreaterThan(3);
    expectSpaced(previews, interval); // the final edit too
    for (const edit of tg.of("edit")) expect(edit.id).toBe(previewId);
    for (let i = 1; i < previews.length; i++) expect(previews[i]!.text).not.toBe(previews[i - 1]!.text);
    for (const edit of tg.of("edit").slice(0, -1)) expectPreviewOf(LONG, edit.text!, 4096);
    expect(tg.of("edit").at(-1)!.text).toBe(chunks[0]);
    expect(tg.of("draft")).toEqual([]);

    const extra = tg.of("send").slice(1);
    expect(extra.map((s) => s.text)).toEqual(chunks.slice(1));
    expect(extra.every((s) => s.replyTo === undefined)).toBe(true);
    expect(messageIds).toEqual([previewId, ...extra.map((s) => s.id)]);
    expect(tg.maxActive()).toBe(1);
  });

  it("shows only typing where nothing can be previewed, then sends chunks of the channel's size", async () => {
    const clock = new FakeClock();
    const messenger = recordingAdapter(clock, { name: "messenger", maxText: 2000, canEdit: false, canDraft: false });
    const reply = createReplyStream({ adapter: messenger.adapter, chat: "messenger:1", isGroup: false, clock });
    await write(clock, reply, LONG);
    expect(messenger.of("send")).toEqual([]);
    const typing = messenger.of("typing");
    expect(typing.length).toBeGreaterThanOrEqual(3);
    expect(typing[0]!.at).toBe(0);
    for (let i = 1; i < typing.length; i++) expect(typing[i]!.at - typing[i - 1]!.at).toBe(4_000);

    const { messageIds } = await clock.run(reply.finish());
    const sends = messenger.of("send");
    expect(sends.map((s) => s.text)).toEqual(splitText(LONG, 2000));
    expect(sends.length).toBeGreaterThanOrEqual(6);
    for (const send of sends) expect(send.text!.length).toBeLessThanOrEqual(2000);
    expect(messageIds).toEqual(sends.map((s) => s.id));

    const callsAtFinish = messenger.calls.length;
    await clock.advance(20_000);
    expect(messenger.calls.length).toBe(callsAtFinish); // typing stopped with the reply
  });

  it("sends nothing but the reply when it is done within the quiet time, and shows progress after it", async () => {
    const clock = new FakeClock();
    const fast = telegram(clock);
    const quick = createReplyStream({ adapter: fast.adapter, chat: "telegram:42", isGroup: false, clock, quietMs: 300 });
    await clock.advance(100);
    quick.push("Done already.");
    await clock.advance(150);
    await clock.run(quick.finish());
    expect(fast.calls.map((c) => c.method)).toEqual(["send"]);

    const slow = telegram(clock);
    const started = clock.now();
    const reply = createReplyStream({ adapter: slow.adapter, chat: "telegram:42", isGroup: false, clock, quietMs: 300 });
    await clock.advance(100);
    reply.push("Still writing");
    await clock.advance(400);
    expect(slow.calls.map((c) => [c.method, c.at - started])).toEqual([
      ["typing", 300],
      ["draft", 300],
    ]);
    await clock.run(reply.finish());
    expect(slow.of("send").map((c) => c.text)).toEqual(["Still writing"]);
  });

  it("keeps typing while a preview channel has nothing to show yet", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock);
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    await clock.advance(9_000); // a reasoning model, silent for a while
    expect(tg.of("typing").map((c) => c.at)).toEqual([0, 4_000, 8_000]);
    reply.push("Here it is.");
    await clock.advance(9_000);
    expect(tg.of("typing")).toHaveLength(3);
    expect(tg.of("draft").map((c) => c.text)).toEqual(["Here it is."]);
    await clock.run(reply.finish());
    expect(tg.of("send").map((c) => c.text)).toEqual(["Here it is."]);
  });

  it("replaces the status while there is no text, and only then", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock);
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock, status: "Thinking…" });
    await clock.advance(100);
    reply.setStatus("1 of 3 agents done…");
    await clock.advance(100);
    reply.setStatus("2 of 3 agents done…");
    await clock.advance(1_000);
    reply.push("The answer.");
    await clock.advance(1_000);
    reply.setStatus("3 of 3 agents done…");
    await clock.advance(1_000);
    expect(tg.of("draft").map((c) => [c.at, c.text])).toEqual([
      [0, "Thinking…"],
      [400, "2 of 3 agents done…"], // the intermediate status was coalesced away
      [1_200, "The answer."],
    ]);
    await clock.run(reply.abort());
  });

  it("survives a rate-limited preview and waits it out before the next call", async () => {
    const clock = new FakeClock();
    let limited = false;
    const tg = telegram(clock, {
      canDraft: false,
      fail: (call) => {
        if (call.method !== "edit" || limited) return undefined;
        limited = true;
        return new RateLimitedError("Too Many Requests: retry after 10", 10_000);
      },
    });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    await write(clock, reply, LONG.slice(0, 3_000), 50, 10);
    const { messageIds } = await clock.run(reply.finish());

    const failed = tg.of("edit")[0]!;
    const after = tg.calls.filter((c) => c.at > failed.at);
    expect(after.length).toBeGreaterThan(1);
    expect(after[0]!.at - failed.at).toBeGreaterThanOrEqual(10_000);
    expectSpaced(tg.of("edit", "send"), 1_100);
    expect(tg.of("edit").at(-1)!.text).toBe(LONG.slice(0, 3_000).trim());
    expect(messageIds).toEqual([tg.of("send")[0]!.id]);
  });

  it("survives failing drafts and delivers the reply anyway", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock, { fail: (call) => (call.method === "draft" ? new DeliveryError("draft failed", true) : undefined) });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    await write(clock, reply, "Some text that streams in a few pieces.");
    const { messageIds } = await clock.run(reply.finish());
    expect(tg.of("draft").length).toBeGreaterThan(0);
    expect(tg.of("send").map((c) => c.text)).toEqual(["Some text that streams in a few pieces."]);
    expect(messageIds).toHaveLength(1);
  });

  it("waits out a rate limit from a preview before delivering the final reply", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock, {
      fail: (call) => (call.method === "draft" ? new RateLimitedError("Too Many Requests", 5_000) : undefined),
    });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    reply.push("Short answer.");
    await clock.advance(100);
    await clock.run(reply.finish());
    expect(tg.of("draft").map((c) => c.at)).toEqual([0]);
    expect(tg.of("send")[0]!.at).toBeGreaterThanOrEqual(5_000);
  });

  it.each([
    ["edits the same message", false, ["send", "edit"]],
    ["restarts the draft", true, ["draft", "draft"]],
  ])("after reset, forgets the text so far and %s", async (_name, canDraft, methods) => {
    const clock = new FakeClock();
    const tg = telegram(clock, { canDraft });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    reply.push("A first attempt that ");
    reply.push("breaks off");
    await clock.advance(2_000);
    reply.reset();
    reply.push("The second model's answer.");
    await clock.advance(2_000);
    const { messageIds } = await clock.run(reply.finish());

    const previews = tg.of("draft", "edit", "send").slice(0, 2);
    expect(previews.map((c) => [c.method, c.text])).toEqual([
      [methods[0], "A first attempt that breaks off"],
      [methods[1], "The second model's answer."],
    ]);
    if (canDraft) {
      expect(tg.of("send").map((c) => c.text)).toEqual(["The second model's answer."]);
    } else {
      expect(tg.of("edit")[0]!.id).toBe(tg.of("send")[0]!.id);
      expect(tg.of("send")).toHaveLength(1);
      expect(tg.of("edit")).toHaveLength(1); // the preview already holds the final text
      expect(messageIds).toEqual([tg.of("send")[0]!.id]);
    }
    expect(tg.calls.some((c) => c.text?.includes("breaks off") && c.text.includes("second"))).toBe(false);
  });

  it("propagates a failed send from finish", async () => {
    const clock = new FakeClock();
    const failure = new DeliveryError("network down", true);
    const wa = recordingAdapter(clock, {
      name: "whatsapp",
      maxText: 4096,
      canEdit: false,
      canDraft: false,
      fail: (call) => (call.method === "send" ? failure : undefined),
    });
    const reply = createReplyStream({ adapter: wa.adapter, chat: "whatsapp:1@c.us", isGroup: false, clock });
    reply.push("An answer.");
    await expect(clock.run(reply.finish())).rejects.toBe(failure);
    expect(wa.of("send")).toHaveLength(1);
  });

  it("sends the reply anew when the preview message can no longer be edited", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock, {
      canDraft: false,
      fail: (call) =>
        call.method === "edit" && call.text === "Final." ? new DeliveryError("message to edit not found", false) : undefined,
    });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:-100", isGroup: true, replyTo: "9", clock });
    reply.push("Draft text");
    await clock.advance(100);
    const { messageIds } = await clock.run(reply.finish("Final."));
    const sends = tg.of("send");
    expect(sends.map((c) => [c.text, c.replyTo])).toEqual([
      ["Draft text", "9"],
      ["Final.", "9"],
    ]);
    expect(messageIds).toEqual([sends[1]!.id]);
  });

  it("propagates a final edit that may succeed later", async () => {
    const clock = new FakeClock();
    const failure = new DeliveryError("bad gateway", true);
    const tg = telegram(clock, { canDraft: false, fail: (call) => (call.method === "edit" ? failure : undefined) });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:-100", isGroup: true, clock });
    reply.push("Draft text");
    await clock.advance(100);
    await expect(clock.run(reply.finish("Final."))).rejects.toBe(failure);
    expect(tg.of("send")).toHaveLength(1);
  });

  it("never overlaps a slow edit, not even with finish", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock, { canDraft: false, latencyMs: (call) => (call.method === "edit" ? 5_000 : 300) });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:-100", isGroup: true, clock });
    await write(clock, reply, LONG.slice(0, 4_000), 40, 12);
    const inFlight = tg.calls.at(-1)!;
    expect(inFlight.method).toBe("edit");
    expect(inFlight.end).toBeUndefined(); // finish arrives while this edit is running
    const { messageIds } = await clock.run(reply.finish());

    expect(tg.maxActive()).toBe(1);
    for (let i = 1; i < tg.calls.length; i++) expect(tg.calls[i]!.at).toBeGreaterThanOrEqual(tg.calls[i - 1]!.end!);
    expect(tg.of("edit").length).toBeGreaterThanOrEqual(3); // two slow previews, then the final text
    expect(tg.of("edit").at(-1)!.at).toBeGreaterThanOrEqual(inFlight.end!);
    expect(messageIds).toEqual([tg.of("send")[0]!.id]);
    expect(tg.of("edit").at(-1)!.text).toBe(LONG.slice(0, 4_000).trim());
  });

  it("refuses an empty reply and stops its previews", async () => {
    const clock = new FakeClock();
    const messenger = recordingAdapter(clock, { name: "messenger", maxText: 2000, canEdit: false, canDraft: false });
    const reply = createReplyStream({ adapter: messenger.adapter, chat: "messenger:1", isGroup: false, clock });
    reply.push(" \n ");
    await expect(clock.run(reply.finish())).rejects.toThrow(/empty/);
    const calls = messenger.calls.length;
    await clock.advance(20_000);
    expect(messenger.calls.length).toBe(calls);
    expect(messenger.of("send")).toEqual([]);
  });

  it("stops previews on abort without delivering", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock, { canDraft: false });
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    reply.push("Partial");
    await clock.advance(2_000);
    await clock.run(reply.abort());
    reply.push(" and more");
    await clock.advance(10_000);
    expect(tg.calls.map((c) => [c.method, c.text])).toEqual([
      ["typing", undefined],
      ["send", "Partial"],
    ]);
    await expect(reply.finish()).rejects.toThrow(/abort/);
  });

  it("returns the same delivery when finish is called twice", async () => {
    const clock = new FakeClock();
    const tg = telegram(clock);
    const reply = createReplyStream({ adapter: tg.adapter, chat: "telegram:42", isGroup: false, clock });
    const first = reply.finish("Once.");
    const second = reply.finish("Once.");
    expect(second).toBe(first);
    await clock.run(first);
    expect(tg.of("send").map((c) => c.text)).toEqual(["Once."]);
  });
});
