import { sql, type SQL } from "drizzle-orm";

/** Parameters that node-postgres and PGlite both take the same way in raw SQL. */

/** A time as a timestamptz parameter (ISO text, cast). */
export function at(date: Date): SQL {
  return sql`${date.toISOString()}::timestamptz`;
}

/** `(a, b, c)` for `x in …`; callers make sure the list is not empty. */
export function list(values: ReadonlyArray<string | number>): SQL {
  return sql`(${sql.join(values.map((v) => sql`${v}`), sql`, `)})`;
}

/** Milliseconds since the epoch of a timestamptz expression, as float8 (drivers return timestamps as text). */
export function epochMs(column: SQL): SQL {
  return sql`(extract(epoch from ${column}) * 1000)::float8`;
}
