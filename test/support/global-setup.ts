import { ensureTemplate } from "./pglite-template.ts";

export default async function setup(): Promise<void> {
  await ensureTemplate();
}
