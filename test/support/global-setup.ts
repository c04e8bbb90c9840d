import { buildParley } from "../../scripts/build.ts";
import { ensureTemplate } from "./pglite-template.ts";

export default async function setup(): Promise<void> {
  // The multi-process tests run Parley as `npm start` does: the bundle, built here once per run.
  await Promise.all([ensureTemplate(), buildParley()]);
}
