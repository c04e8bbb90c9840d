import { describe, expect, it } from "vitest";
import { createCheckQueue, type QueueOutcome } from "../src/admin/check-queue.ts";

/**
 * The global bound on admin password checks: a token bucket, one attempt per address, addresses in good standing
 * first, a bounded queue where a better-standing newcomer displaces the worst waiting one, and nothing checked for a
 * client that went away.
 */

const open = () => new AbortController().signal;

describe("admin sign-in check queue", () => {
  it("runs a burst at once, then one check per token, lowest standing first", async () => {
    const queue = createCheckQueue({ perSecond: 20, burst: 1, maxWaiting: 10 });
    const order: string[] = [];
    const run = (key: string, standing: number) =>
      queue.run(key, standing, open(), async () => {
        order.push(key);
        return key;
      });
    const first = run("first", 9);
    const rest = [run("worst", 3), run("best", 0), run("middle", 1), run("best-later", 0)];
    expect(await first).toEqual({ type: "checked", value: "first" });
    const started = performance.now();
    await Promise.all(rest);
    expect(order).toEqual(["first", "best", "best-later", "middle", "worst"]);
    // Four checks after the burst at 20 per second: at least 150 ms (the first token may be partly refilled).
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it("holds one attempt per address; a full queue takes a better-standing newcomer in place of the worst", async () => {
    const queue = createCheckQueue({ perSecond: 10, burst: 1, maxWaiting: 2 });
    let release!: () => void;
    const held = queue.run("a", 0, open(), () => new Promise<string>((resolve) => (release = () => resolve("a"))));
    expect(await queue.run("a", 0, open(), async () => "again")).toEqual({ type: "busy" });
    const checked: string[] = [];
    const check = (key: string) => async () => {
      checked.push(key);
      return key;
    };
    const bad = queue.run("bad", 5, open(), check("bad"));
    const good = queue.run("good", 0, open(), check("good"));
    const better = queue.run("better", 1, open(), check("better"));
    const worse = queue.run("worse", 7, open(), check("worse"));
    expect(await bad).toEqual({ type: "full" });
    expect(await worse).toEqual({ type: "full" });
    release();
    const outcomes: QueueOutcome<string>[] = await Promise.all([held, good, better]);
    expect(outcomes.map((o) => o.type)).toEqual(["checked", "checked", "checked"]);
    expect(checked).toEqual(["good", "better"]);
    // Done with, an address may try again.
    expect(await queue.run("a", 0, open(), async () => "a again")).toEqual({ type: "checked", value: "a again" });
  });

  it("drops a waiting attempt whose client went away, without checking it", async () => {
    const queue = createCheckQueue({ perSecond: 5, burst: 1, maxWaiting: 10 });
    const checked: string[] = [];
    await queue.run("first", 0, open(), async () => checked.push("first"));
    const leaving = new AbortController();
    const gone = queue.run("leaving", 0, leaving.signal, async () => checked.push("leaving"));
    const staying = queue.run("staying", 1, open(), async () => checked.push("staying"));
    leaving.abort();
    expect(await gone).toEqual({ type: "gone" });
    expect((await staying).type).toBe("checked");
    expect(checked).toEqual(["first", "staying"]);
    const failing = await queue.run("thrower", 0, open(), async () => Promise.reject(new Error("scrypt failed"))).catch((e: Error) => e.message);
    expect(failing).toBe("scrypt failed");
    expect((await queue.run("thrower", 0, open(), async () => "ok")).type).toBe("checked");
  });
});
