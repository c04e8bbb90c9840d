import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { RefusedInputError } from "../src/core/errors.ts";
import { readCapped, readResponseCapped, tooLargeError } from "../src/core/read-capped.ts";

const MB = 1024 * 1024;

/** An endless source of 64 KB chunks that counts what was pulled from it and whether it was told to stop. */
function countingSource(chunkBytes = 64 * 1024, totalChunks = Number.POSITIVE_INFINITY) {
  const state = { pulled: 0, closed: false };
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      while (state.pulled < totalChunks) {
        state.pulled++;
        yield new Uint8Array(chunkBytes).fill(state.pulled % 256);
      }
    } finally {
      state.closed = true;
    }
  }
  return { state, body: chunks() };
}

describe("readCapped", () => {
  it("reads a body under the cap whole", async () => {
    const { body, state } = countingSource(1000, 5);
    const bytes = await readCapped(body, 10_000, new AbortController().signal);
    expect(bytes.byteLength).toBe(5000);
    expect(bytes[0]).toBe(1);
    expect(bytes[4999]).toBe(5);
    expect(state.closed).toBe(true);
  });

  it("accepts exactly the cap", async () => {
    const { body } = countingSource(1000, 10);
    await expect(readCapped(body, 10_000, new AbortController().signal)).resolves.toHaveLength(10_000);
  });

  it("stops pulling an endless body at the cap and closes it", async () => {
    const { body, state } = countingSource(64 * 1024);
    const error = await readCapped(body, 10 * MB, new AbortController().signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RefusedInputError);
    expect((error as RefusedInputError).userMessage).toBe("That file is too large for me: the limit is 10 MB.");
    // 10 MB is 160 chunks of 64 KB: the 161st crosses the cap and nothing more is pulled.
    expect(state.pulled).toBe(161);
    expect(state.closed).toBe(true);
  });

  it("cancels a web stream at the cap", async () => {
    let pulled = 0;
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024));
      },
      cancel() {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
    await expect(readCapped(stream, 4096, new AbortController().signal)).rejects.toBeInstanceOf(RefusedInputError);
    expect(pulled).toBeLessThanOrEqual(6);
    expect(cancelled).toBe(true);
  });

  it("aborts a chunked HTTP response without Content-Length at the cap, with memory bounded by the cap", async () => {
    let written = 0;
    let finished = false;
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "image/jpeg" }); // chunked: no Content-Length
      const chunk = Buffer.alloc(256 * 1024, 7);
      const write = () => {
        while (!res.destroyed && written < 500 * MB) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", write);
        }
        finished = written >= 500 * MB;
        res.end();
      };
      write();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const before = process.memoryUsage().rss;
      const response = await fetch(`http://127.0.0.1:${port}/big.jpg`);
      expect(response.headers.get("content-length")).toBeNull();
      await expect(readCapped(response.body!, 10 * MB, new AbortController().signal)).rejects.toBeInstanceOf(RefusedInputError);
      const grown = process.memoryUsage().rss - before;
      expect(finished).toBe(false);
      expect(written).toBeLessThan(100 * MB);
      expect(grown).toBeLessThan(10 * MB + 40 * MB);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("ends when the signal aborts, even while the source hangs", async () => {
    async function* hanging(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array(10);
      await new Promise(() => {});
    }
    const controller = new AbortController();
    const reading = readCapped(hanging(), 1000, controller.signal);
    setTimeout(() => controller.abort(new Error("job cancelled")), 20);
    await expect(reading).rejects.toThrow("job cancelled");
  });

  it("words a refusal with the declared size", () => {
    expect(tooLargeError(10 * MB, 30 * MB).userMessage).toBe("That file is too large for me (30 MB): the limit is 10 MB.");
    expect(tooLargeError(5 * MB, 8.4 * MB).userMessage).toBe("That file is too large for me (8.4 MB): the limit is 5 MB.");
  });
});

describe("readResponseCapped", () => {
  it("refuses a declared Content-Length over the cap before reading, and cancels the body", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull: () => expect.fail("nothing should be read"),
      cancel() {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
    const response = new Response(body, { headers: { "content-length": String(30 * MB) } });
    const error = await readResponseCapped(response, 10 * MB, new AbortController().signal).catch((e: unknown) => e);
    expect((error as RefusedInputError).userMessage).toBe("That file is too large for me (30 MB): the limit is 10 MB.");
    expect(cancelled).toBe(true);
  });

  it("reads a body within the cap", async () => {
    const response = new Response(new Uint8Array([1, 2, 3]));
    await expect(readResponseCapped(response, 3, new AbortController().signal)).resolves.toEqual(new Uint8Array([1, 2, 3]));
  });
});
