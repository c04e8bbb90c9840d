import { RefusedInputError } from "./errors.ts";

/**
 * The download guard every channel's `download` shares: reads a body to its end, but stops pulling and cancels the
 * source as soon as more than `maxBytes` arrived, whatever size the platform declared (or didn't). Nothing beyond
 * the cap plus one chunk is ever held. Over the cap it throws the RefusedInputError of `tooLargeError`; when
 * `signal` aborts it rejects with the signal's reason at once, even while the source hangs; any other failure of
 * the source is thrown as it is, for the channel to map.
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

/**
 * A fetch response's body, refused before reading when its Content-Length is over the cap (the body is then
 * cancelled), else read with `readCapped`. The caller has already checked the status; a missing body is empty.
 */
export async function readResponseCapped(response: Response, maxBytes: number, signal: AbortSignal): Promise<Uint8Array> {
  if (!response.body) return new Uint8Array(0);
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body.cancel().catch(() => {});
    throw tooLargeError(maxBytes, declared);
  }
  return readCapped(response.body, maxBytes, signal);
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

/** "8.5 MB", "25 MB", "600 KB": sizes as people read them in a refusal. */
export function formatMegabytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KB`;
  const mb = bytes / (1024 * 1024);
  return `${mb >= 10 ? Math.round(mb) : Math.round(mb * 10) / 10} MB`;
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
