import { afterEach, describe, expect, it } from "vitest";
import { createUserLimiter, type UserLimiter } from "../src/quotas/user-limiter.ts";
import { reachable } from "./support/cluster.ts";
import { captureLogs } from "./support/logs.ts";

const REDIS_URL = "redis://127.0.0.1:6379/0";
const redisUp = await reachable("127.0.0.1", 6379);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `jobs` jobs per user through `limiters` in turn; returns the most that ran at once per user and overall. */
async function load(limiters: UserLimiter[], users: string[], jobs: number) {
  const running = new Map<string, number>();
  const most = new Map<string, number>();
  let all = 0;
  let mostAll = 0;
  await Promise.all(
    Array.from({ length: jobs }, (_, i) =>
      users.map((user) =>
        limiters[i % limiters.length]!.run(user, async () => {
          running.set(user, (running.get(user) ?? 0) + 1);
          most.set(user, Math.max(most.get(user) ?? 0, running.get(user)!));
          mostAll = Math.max(mostAll, ++all);
          await pause(40);
          running.set(user, running.get(user)! - 1);
          all--;
          return user;
        }),
      ),
    ).flat(),
  );
  return { most, mostAll };
}

describe("the per-user limiter", () => {
  const limiters: UserLimiter[] = [];
  afterEach(async () => {
    await Promise.all(limiters.splice(0).map((l) => l.stop()));
  });

  it("runs one job at a time per user and different users in parallel, passing results and errors through", async () => {
    const limiter = createUserLimiter({ log: captureLogs().log });
    limiters.push(limiter);
    const { most, mostAll } = await load([limiter], ["telegram:1", "telegram:2", "web:x"], 4);
    expect([...most.values()]).toEqual([1, 1, 1]);
    expect(mostAll).toBe(3);
    await expect(limiter.run("telegram:1", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(limiter.shared()).toBe(false);
    // In the order they came, a failed job not holding up the next ones.
    const order: number[] = [];
    const runs = [30, 0, 10].map((ms, i) =>
      limiter.run("telegram:1", async () => {
        await pause(ms);
        order.push(i);
        if (i === 0) throw new Error("first fails");
      }),
    );
    await Promise.allSettled(runs);
    expect(order).toEqual([0, 1, 2]);
  });

  it.skipIf(!redisUp)("shares the limit between processes through Redis (skipped without Redis on 127.0.0.1:6379)", async () => {
    const { log } = captureLogs();
    const a = createUserLimiter({ redisUrl: REDIS_URL, log });
    const b = createUserLimiter({ redisUrl: REDIS_URL, log });
    limiters.push(a, b);
    for (let i = 0; i < 100 && !(a.shared() && b.shared()); i++) await pause(20);
    expect(a.shared() && b.shared()).toBe(true);
    const user = `telegram:${Date.now()}`;
    const { most, mostAll } = await load([a, b], [user, `${user}0`], 4);
    expect(most.get(user)).toBe(1);
    expect(most.get(`${user}0`)).toBe(1);
    expect(mostAll).toBe(2);
  });
});
