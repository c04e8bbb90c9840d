import { DrizzleQueryError } from "drizzle-orm/errors";
import { describe, expect, it } from "vitest";
import { cleanDeep, cleanText } from "../src/core/clean-text.ts";
import { safeErrorFields, safeMessage } from "../src/core/safe-error.ts";
import { storageFailure } from "../src/db/failures.ts";
import { captureLogs } from "./support/logs.ts";

describe("cleanText", () => {
  it.each([
    ["plain text", "plain text"],
    ["a\u0000b", "ab"],
    ["bell\u0007 escape\u001b[31m del\u007f", "bell escape[31m del"],
    ["tab\tand\nnewline stay", "tab\tand\nnewline stay"],
    ["windows\r\nline\rends", "windows\nline\nends"],
    ["lone high \ud800 here", "lone high \ufffd here"],
    ["lone low \udc00 here", "lone low \ufffd here"],
    ["reversed pair \udc00\ud800", "reversed pair \ufffd\ufffd"],
    ["emoji 😀 and ü stay", "emoji 😀 and ü stay"],
    ["\ud83d", "\ufffd"],
    ["", ""],
  ])("%j → %j", (input, expected) => {
    expect(cleanText(input)).toBe(expected);
  });

  it("cleans every string of a message, keys and nested fields included, and keeps Dates and numbers", () => {
    const at = new Date(1_700_000_000_000);
    const message = {
      text: "hi\u0000",
      displayName: "Ada\ud800",
      attachments: [{ kind: "file", ref: "r\u0001", fileName: "a\u0000.pdf", sizeBytes: 12 }],
      receivedAt: at,
      future: { deep: ["x\u0000"], "k\u0000ey": true },
    };
    const cleaned = cleanDeep(message);
    expect(cleaned).toEqual({
      text: "hi",
      displayName: "Ada\ufffd",
      attachments: [{ kind: "file", ref: "r", fileName: "a.pdf", sizeBytes: 12 }],
      receivedAt: at,
      future: { deep: ["x"], key: true },
    });
    expect(cleaned.receivedAt).toBeInstanceOf(Date);
    expect(message.text).toBe("hi\u0000");
  });
});

const serverError = (code: string, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(`server says ${code}`), { code, severity: "ERROR", ...extra });

describe("storageFailure: which failed writes set a message aside", () => {
  it.each([
    ["22021 invalid byte sequence (NUL)", serverError("22021"), "data"],
    ["22P05 untranslatable character (jsonb \\u0000)", serverError("22P05"), "data"],
    ["22001 value too long", serverError("22001"), "data"],
    ["23514 check violation", serverError("23514", { constraint: "c" }), "data"],
    ["23505 unique violation", serverError("23505", { constraint: "u" }), "data"],
    ["54000 index row too large", serverError("54000"), "data"],
    ["wrapped by drizzle", new DrizzleQueryError("insert into x", ["v"], serverError("22021")), "data"],
    ["08006 connection failure", serverError("08006"), "outage"],
    ["57P01 admin shutdown", serverError("57P01"), "outage"],
    ["53300 too many connections", serverError("53300"), "outage"],
    ["40001 serialization failure", serverError("40001"), "outage"],
    ["42P01 undefined table (migrations missing)", serverError("42P01"), "outage"],
    ["ECONNREFUSED", Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), "outage"],
    ["EPIPE (five letters, not a SQLSTATE class of data)", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }), "outage"],
    ["pg's Connection terminated (no code)", new Error("Connection terminated unexpectedly"), "outage"],
    ["a pool timeout wrapped by drizzle", new DrizzleQueryError("select 1", [], new Error("timeout exceeded when trying to connect")), "outage"],
    ["not an error at all", "boom", "outage"],
  ])("%s → %s", (_name, error, kind) => {
    expect(storageFailure(error).kind).toBe(kind);
  });

  it("keeps the SQLSTATE and constraint of a data failure", () => {
    expect(storageFailure(serverError("23514", { constraint: "inbox_check" }))).toEqual({ kind: "data", code: "23514", constraint: "inbox_check" });
  });
});

describe("safe error text: no values, no prompts", () => {
  const CANARY = "canary-7f3a";
  it.each([
    [
      "drizzle's failed query with its params and PostgreSQL's detail",
      new DrizzleQueryError(`insert into "inbox" ("payload") values ($1)`, [`{"text":"${CANARY}"}`], serverError("23505", {
        detail: `Key (x)=(${CANARY}) already exists.`,
        constraint: "inbox_channel_message_uq",
        table: "inbox",
      })),
      `database query failed (insert into "inbox"): SQLSTATE 23505 (table inbox, constraint inbox_channel_message_uq)`,
    ],
    ["a server message quoting the value", serverError("22P02", { message: `invalid input syntax for type integer: "${CANARY}"` }), "database query failed: SQLSTATE 22P02"],
    [
      "a failed query whose connection was lost",
      new DrizzleQueryError(`update "users" set "display_name" = $1`, [CANARY], new Error("Connection terminated unexpectedly")),
      `database query failed (update "users"): Connection terminated unexpectedly`,
    ],
    [
      "an AI SDK type validation error quoting the model's output",
      Object.assign(new Error(`Type validation failed: Value: {"x":"${CANARY}"}`), { name: "AI_TypeValidationError", value: { x: CANARY } }),
      "AI_TypeValidationError (its details may quote a message and are not shown)",
    ],
    [
      "an AI SDK API call error (its message is the provider's)",
      Object.assign(new Error("model not found"), { name: "AI_APICallError", url: "http://x/v1", requestBodyValues: { input: CANARY }, responseBody: CANARY, statusCode: 404 }),
      "model not found",
    ],
  ])("%s", (_name, error, expected) => {
    expect(safeMessage(error)).toBe(expected);
    const fields = JSON.stringify(safeErrorFields(error));
    expect(fields).not.toContain(CANARY);
  });

  it("describes a retry error by its last error, safely", () => {
    const last = Object.assign(new Error(`JSON parsing failed: Text: ${CANARY}`), { name: "AI_JSONParseError", text: CANARY });
    const retry = Object.assign(new Error(`Failed after 3 attempts. Last error: ${last.message}`), { name: "AI_RetryError", reason: "maxRetriesExceeded", lastError: last, errors: [last] });
    expect(safeMessage(retry)).not.toContain(CANARY);
    expect(JSON.stringify(safeErrorFields(retry))).not.toContain(CANARY);
  });
});

describe("the logger writes every error it is given by its safe fields", () => {
  const CANARY = "canary-logger-91b2";
  const failed = () =>
    new DrizzleQueryError(`insert into "users" ("display_name") values ($1)`, [CANARY], serverError("23514", {
      detail: `Failing row contains (${CANARY}).`,
      constraint: "users_check",
      table: "users",
    }));

  it.each([
    ["under err", (log: ReturnType<typeof captureLogs>["log"]) => log.error({ err: failed() }, "failed")],
    ["as the only argument", (log: ReturnType<typeof captureLogs>["log"]) => log.error(failed())],
    ["under another field, nested", (log: ReturnType<typeof captureLogs>["log"]) => log.warn({ outcome: { error: failed() } }, "nested")],
    ["as a cause", (log: ReturnType<typeof captureLogs>["log"]) => log.warn({ err: new Error("delivery failed", { cause: failed() }) }, "cause")],
  ])("%s", (name, write) => {
    const logs = captureLogs();
    write(logs.log);
    if (name === "as a cause") expect(logs.text()).toContain("delivery failed");
    expect(logs.text()).toContain("SQLSTATE 23514 (table users, constraint users_check)");
    expect(logs.text()).not.toContain(CANARY);
  });
});
