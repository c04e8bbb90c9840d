import { defineConfig } from "drizzle-kit";

// Generates migrations/ from src/db/schema.ts (`npm run db:generate`). No database connection is needed for that;
// the same folder is applied at start-up to PostgreSQL and to the embedded PGlite.
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema.ts",
  out: "./migrations",
});
