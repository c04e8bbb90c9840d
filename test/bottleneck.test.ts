import { describe, expect, it } from "vitest";
import Bottleneck from "../src/core/bottleneck.ts";

/**
 * src/core/bottleneck.ts replaces two of Bottleneck's internal setTimeout(0) yields with setImmediate. These check
 * that the patch found the internals it expects and that Bottleneck still limits what it should.
 */
describe("Bottleneck with immediate yields", () => {
  it("is patched once, on the copy every user of bottleneck shares", async () => {
    const proto = (Bottleneck as unknown as { prototype: Record<symbol, unknown> }).prototype;
    expect(proto[Symbol.for("parley.bottleneck.immediate")]).toBe(true);
    const throttlerCopy = (await import("@grammyjs/transformer-throttler/dist/deps.node.js")) as { Bottleneck: unknown };
    expect(throttlerCopy.Bottleneck).toBe(Bottleneck);
  });

  it("still runs one job at a time with maxConcurrent 1, in order", async () => {
    const limiter = new Bottleneck({ maxConcurrent: 1 });
    let running = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        limiter.schedule(async () => {
          most = Math.max(most, ++running);
          await new Promise((resolve) => setImmediate(resolve));
          order.push(i);
          running--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it("still keeps minTime between starts and runs a job's retries", async () => {
    const spaced = new Bottleneck({ minTime: 30 });
    const starts: number[] = [];
    const scheduledAt = performance.now();
    await Promise.all(Array.from({ length: 5 }, () => spaced.schedule(async () => void starts.push(performance.now()))));
    // minTime spaces the slots (a late timer may start one job closer to the next): the fifth slot is 4 × 30 ms on.
    expect(starts).toHaveLength(5);
    expect(starts[4]! - scheduledAt).toBeGreaterThanOrEqual(4 * 30 - 2);

    const retrying = new Bottleneck({ maxConcurrent: 1 });
    retrying.on("failed", (_error, info) => (info.retryCount < 2 ? 5 : undefined));
    let tries = 0;
    await expect(
      retrying.schedule(async () => {
        if (++tries < 3) throw new Error("not yet");
        return "third time";
      }),
    ).resolves.toBe("third time");
    expect(tries).toBe(3);
  });

  it("still keeps a group's keys apart and drops a job that expires", async () => {
    const group = new Bottleneck.Group({ maxConcurrent: 1 });
    const events: string[] = [];
    const slow = (key: string, ms: number) =>
      group.key(key).schedule(async () => {
        events.push(`${key} start`);
        await new Promise((resolve) => setTimeout(resolve, ms));
        events.push(`${key} end`);
      });
    await Promise.all([slow("a", 30), slow("b", 5), slow("a", 5)]);
    expect(events.indexOf("b end")).toBeLessThan(events.indexOf("a end"));
    expect(events.filter((e) => e.startsWith("a"))).toEqual(["a start", "a end", "a start", "a end"]);

    const limiter = new Bottleneck();
    await expect(limiter.schedule({ expiration: 20 }, () => new Promise(() => undefined))).rejects.toThrow(/timed out after 20 ms/);
  });
});
