import { RefusedInputError } from "../core/errors.ts";
import { formatMegabytes } from "./limits.ts";

/**
 * The download guard every channel's `download` can share: reads a body to its end, but stops pulling and cancels
 * the source as soon as more than `maxBytes` arrived, whatever size the platform declared (or didn't). Nothing
 * beyond the cap plus one chunk is ever held. Depends on src/core only, so channels/ may import it.
 */
export async function readCapped(
  body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  maxBytes: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const source = chunksOf(body);
  const chunks: Uint8Array[] = [];
  let total = 0;
  let finished = false;
  try {
    for (;;) {
      const next = await untilAborted(source.next(), signal);
      if (next.done) {
        finished = true;
        break;
      }
      total += next.value.byteLength;
      if (total > maxBytes) throw tooLargeError(maxBytes);
      chunks.push(next.value);
    }
  } finally {
    if (!finished) {
      const stopping = source.stop();
      // After an abort the producer may be stuck inside a pull: ask it to stop, but don't wait for it.
      if (!signal.aborted) await stopping;
    }
  }
  return concat(chunks, total);
}

/** The refusal for a file over the cap, worded the same for a declared size and a counted one. */
export function tooLargeError(maxBytes: number, sizeBytes?: number): RefusedInputError {
  const limit = formatMegabytes(maxBytes);
  return new RefusedInputError(
    sizeBytes === undefined
      ? `That file is too large for me: the limit is ${limit}.`
      : `That file is too large for me (${formatMegabytes(sizeBytes)}): the limit is ${limit}.`,
  );
}

interface ChunkSource {
  next(): Promise<IteratorResult<Uint8Array>>;
  /** Tells the producer no more will be read (cancels the stream, ends the generator). */
  stop(): Promise<void>;
}

function chunksOf(body: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>): ChunkSource {
  if (body instanceof ReadableStream) {
    const reader = body.getReader();
    return {
      next: () => reader.read() as Promise<IteratorResult<Uint8Array>>,
      stop: () => reader.cancel().catch(() => {}),
    };
  }
  const iterator = body[Symbol.asyncIterator]();
  return {
    next: () => iterator.next(),
    stop: async () => {
      await iterator.return?.().catch(() => {});
    },
  };
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
