/**
 * What of an error may be written down (logs, the inbox's error column, the admin page): what failed and why, never
 * the data it failed on. Some errors carry that data, in fields or in their very message:
 * - a database error: drizzle's "Failed query: … params: …" quotes every value, PostgreSQL's `detail` ("Key
 *   (x)=(…) already exists") and some messages ("invalid input syntax for type integer: \"…\"") quote them too. Only
 *   the SQLSTATE, the constraint, the table and column, and the statement's operation are kept.
 * - an AI SDK error: APICallError holds the whole request (`requestBodyValues`: the prompt) and the response body;
 *   others put the model's output (`value`, `text`, `data`, `toolInput`) into their message. Their message is
 *   replaced by their name, except the API call's, which is the provider's own error text.
 * Everything else keeps its message. `safeMessage` is the one way errors become text; `safeErrorFields` the one
 * way they become log fields (the logger applies it to every error it is given).
 */

const SQLSTATE = /^[0-9A-Z]{5}$/;
/** Fields in which AI SDK errors (and similar) keep the content they failed on. */
const CONTENT_FIELDS = ["value", "text", "data", "toolInput", "prompt", "originalMessage", "content", "requestBodyValues", "responseBody"];
const MAX_DEPTH = 4;

type Fields = Record<string, unknown>;

function fieldsOf(error: unknown): Fields {
  return typeof error === "object" && error !== null ? (error as Fields) : {};
}

function nameOf(error: unknown): string {
  // drizzle's DrizzleQueryError leaves `name` as "Error"; its class says what it is.
  if (error instanceof Error) return error.name === "Error" && error.constructor.name !== "" ? error.constructor.name : error.name;
  const name = fieldsOf(error).name;
  return typeof name === "string" ? name : typeof error;
}

/** A PostgreSQL error, from pg or PGlite: a SQLSTATE `code` with the server's `severity`. */
function isServerError(error: unknown): boolean {
  const { code, severity } = fieldsOf(error);
  return typeof code === "string" && SQLSTATE.test(code) && typeof severity === "string";
}

/** drizzle's wrapper around a failed statement: it keeps the query and its parameters. */
function isQueryError(error: unknown): boolean {
  const { query, params } = fieldsOf(error);
  return nameOf(error) === "DrizzleQueryError" || (typeof query === "string" && Array.isArray(params));
}

function chain(error: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e: unknown = error; e !== undefined && e !== null && out.length < MAX_DEPTH + 1; e = fieldsOf(e).cause) out.push(e);
  return out;
}

/** "insert into \"inbox\"", "update \"users\"", "select": the statement's verb and target, no values. */
function operationOf(query: unknown): string | undefined {
  if (typeof query !== "string") return undefined;
  const match = /^\s*(insert\s+into|update|delete\s+from|select|with|create|alter|drop|set|begin|commit)\b(\s+"?[\w.]+"?)?/i.exec(query);
  if (!match) return undefined;
  return `${match[1]!.toLowerCase().replace(/\s+/g, " ")}${match[1]!.toLowerCase() === "select" || !match[2] ? "" : match[2]}`;
}

interface DatabaseFacts {
  code?: string;
  constraint?: string;
  table?: string;
  column?: string;
  operation?: string;
  /** For a failure without a SQLSTATE (a lost connection): the driver's message, which quotes no values. */
  connection?: string;
}

/** The facts of a database error: `error` itself is drizzle's wrapper or the server's error (a wrapper of ours, e.g.
 * a DeliveryError with a database error as its cause, keeps its own message and has its cause described). */
function databaseFacts(error: unknown): DatabaseFacts | undefined {
  if (!isQueryError(error) && !isServerError(error)) return undefined;
  const links = chain(error);
  const server = links.find(isServerError);
  const query = links.find(isQueryError);
  if (server === undefined && query === undefined) return undefined;
  const facts: DatabaseFacts = {};
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  if (server !== undefined) {
    const s = fieldsOf(server);
    facts.code = s.code as string;
    if (str(s.constraint)) facts.constraint = str(s.constraint);
    if (str(s.table)) facts.table = str(s.table);
    if (str(s.column)) facts.column = str(s.column);
  }
  const operation = query === undefined ? undefined : operationOf(fieldsOf(query).query);
  if (operation) facts.operation = operation;
  if (server === undefined && query !== undefined) {
    const cause = fieldsOf(query).cause;
    if (cause !== undefined) facts.connection = safeMessage(cause).slice(0, 200);
  }
  return facts;
}

function databaseMessage(facts: DatabaseFacts): string {
  const where = [facts.table && `table ${facts.table}`, facts.column && `column ${facts.column}`, facts.constraint && `constraint ${facts.constraint}`]
    .filter(Boolean)
    .join(", ");
  const what = facts.operation ? `database query failed (${facts.operation})` : "database query failed";
  if (facts.code) return `${what}: SQLSTATE ${facts.code}${where ? ` (${where})` : ""}`;
  return facts.connection ? `${what}: ${facts.connection}` : what;
}

function isApiCallError(error: unknown): boolean {
  const f = fieldsOf(error);
  return nameOf(error) === "AI_APICallError" || ("requestBodyValues" in f && typeof f.url === "string");
}

/** The error as one line of text that quotes no message content and no database values. */
export function safeMessage(error: unknown, depth = 0): string {
  if (typeof error === "string") return error;
  if (typeof error !== "object" || error === null) return String(error);
  const facts = databaseFacts(error);
  if (facts) return databaseMessage(facts);
  const f = fieldsOf(error);
  const message = typeof f.message === "string" ? f.message : String(error);
  if (isApiCallError(error)) return message.slice(0, 300);
  if (nameOf(error) === "AI_RetryError" && depth < MAX_DEPTH) {
    const last = f.lastError;
    return `${nameOf(error)} (${String(f.reason)})${last === undefined ? "" : `: ${safeMessage(last, depth + 1)}`}`;
  }
  if (CONTENT_FIELDS.some((field) => field in f)) return `${nameOf(error)} (its details may quote a message and are not shown)`;
  return message;
}

/**
 * An error as log fields: type, safe message, the stack's frames (not its first line, which repeats the message),
 * the facts that help (SQLSTATE, constraint, table, column, operation; HTTP status; retryable) and its cause, in the
 * same form. Nothing else of the error is copied.
 */
export function safeErrorFields(error: unknown, depth = 0): Fields {
  const f = fieldsOf(error);
  const out: Fields = { type: nameOf(error), message: safeMessage(error) };
  const facts = databaseFacts(error);
  if (facts) {
    for (const [key, value] of Object.entries(facts)) if (value !== undefined && key !== "connection") out[key] = value;
  } else {
    if (typeof f.code === "string" || typeof f.code === "number") out.code = f.code;
    if (typeof f.statusCode === "number") out.statusCode = f.statusCode;
    if (typeof f.status === "number") out.status = f.status;
    if (typeof f.url === "string") out.url = f.url;
  }
  for (const key of ["isRetryable", "retryable", "retryAfterMs"]) {
    if (typeof f[key] === "boolean" || typeof f[key] === "number") out[key] = f[key];
  }
  if (typeof f.stack === "string") {
    const frames = f.stack.split("\n").filter((line) => /^\s+at /.test(line));
    if (frames.length > 0) out.stack = frames.slice(0, 15).join("\n");
  }
  // A database error is described whole above; other causes are described in the same way, not copied.
  if (!facts && f.cause !== undefined && depth < MAX_DEPTH) out.cause = safeErrorFields(f.cause, depth + 1);
  return out;
}
