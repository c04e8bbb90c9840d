import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Attachment, InboundMessage } from "../src/core/types.ts";
import { ALBUM_DEFAULTS, createAlbumCoalescer, decideAlbum, mergeAlbum } from "../src/media/album.ts";

function part(n: number, text = "", over: Partial<InboundMessage> = {}): InboundMessage {
  const photo: Attachment = { kind: "image", ref: `file-${n}`, mimeType: "image/jpeg" };
  return {
    channel: "telegram",
    platformMessageId: `-100:${n}`,
    chat: "telegram:-100",
    user: "telegram:7",
    isGroup: true,
    mentionsBot: false,
    replyToBot: false,
    text,
    attachments: [photo],
    receivedAt: new Date(Date.UTC(2026, 10, 1, 10, 0, n)),
    ...over,
  };
}

describe("decideAlbum", () => {
  const opts = { windowMs: 1500, maxItems: 10, maxWaitMs: 10_000 };
  it.each([
    ["waits for more after the first part", [0], 100, { kind: "wait", untilMs: 1500 }],
    ["waits from the newest part", [0, 1000], 1200, { kind: "wait", untilMs: 2500 }],
    ["is ready after the quiet window", [0, 1000], 2500, { kind: "ready" }],
    ["is ready when full", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10, { kind: "ready" }],
    ["never waits longer than maxWaitMs in all", [0, 1400, 2800, 4200, 5600, 7000, 8400, 9800], 9900, { kind: "wait", untilMs: 10_000 }],
    ["a trickle is cut at maxWaitMs", [0, 1400, 2800, 4200, 5600, 7000, 8400, 9800], 10_000, { kind: "ready" }],
    ["nothing to wait for", [], 0, { kind: "ready" }],
  ] as const)("%s", (_name, arrivals, now, expected) => {
    expect(decideAlbum(arrivals, now, opts)).toEqual(expected);
  });

  it("defaults to a 1.5 s window", () => {
    expect(ALBUM_DEFAULTS.windowMs).toBe(1500);
  });
});

describe("mergeAlbum", () => {
  it("makes one message of the parts: first ids, all attachments in order, the caption, addressed if any part was", () => {
    const merged = mergeAlbum([part(2), part(1, "@bot which is nicest?", { mentionsBot: true }), part(3)]);
    expect(merged.platformMessageId).toBe("-100:1");
    expect(merged.attachments.map((a) => a.ref)).toEqual(["file-1", "file-2", "file-3"]);
    expect(merged.text).toBe("@bot which is nicest?");
    expect(merged.mentionsBot).toBe(true);
    expect(merged.receivedAt).toEqual(part(1).receivedAt);
  });

  it("refuses to merge nothing", () => {
    expect(() => mergeAlbum([])).toThrow(/at least one part/);
  });
});

describe("createAlbumCoalescer", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("emits one message per album after the window, and settles every part's promise then", async () => {
    const emitted: InboundMessage[] = [];
    const coalescer = createAlbumCoalescer({ merge: mergeAlbum, emit: async (m) => void emitted.push(m) });
    const settled: number[] = [];
    const adds = [1, 2, 3].map((n) => coalescer.add("telegram:-100:album-A", part(n, n === 1 ? "caption" : "")).then(() => settled.push(n)));
    const other = coalescer.add("telegram:-100:album-B", part(9));

    await vi.advanceTimersByTimeAsync(1400);
    expect(emitted).toHaveLength(0);
    expect(coalescer.open).toBe(2);

    const late = coalescer.add("telegram:-100:album-A", part(4));
    await vi.advanceTimersByTimeAsync(1400);
    expect(emitted.map((m) => m.platformMessageId)).toEqual(["-100:9"]);
    await vi.advanceTimersByTimeAsync(200);
    await Promise.all([...adds, other, late]);
    expect(emitted).toHaveLength(2);
    expect(emitted[1]!.attachments.map((a) => a.ref)).toEqual(["file-1", "file-2", "file-3", "file-4"]);
    expect(emitted[1]!.text).toBe("caption");
    expect(settled.sort()).toEqual([1, 2, 3]);
    expect(coalescer.open).toBe(0);
  });

  it("emits a full album at once and rejects every part when storing it fails", async () => {
    const failure = new Error("database down");
    const emit = vi.fn(async () => {
      throw failure;
    });
    const coalescer = createAlbumCoalescer({ merge: mergeAlbum, emit, options: { maxItems: 2 } });
    const first = coalescer.add("g", part(1));
    const second = coalescer.add("g", part(2));
    await expect(first).rejects.toBe(failure);
    await expect(second).rejects.toBe(failure);
    expect(emit).toHaveBeenCalledTimes(1);
  });

  it("flushes open albums on shutdown", async () => {
    const emitted: InboundMessage[] = [];
    const coalescer = createAlbumCoalescer({ merge: mergeAlbum, emit: async (m) => void emitted.push(m) });
    const pending = coalescer.add("g", part(1));
    await coalescer.flush();
    await pending;
    expect(emitted).toHaveLength(1);
    expect(coalescer.open).toBe(0);
  });
});
