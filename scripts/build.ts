import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { PACKAGE_ROOT } from "../src/core/package-root.ts";

/**
 * `npm run build`: Parley as one JavaScript file, dist/parley.js (with a source map), which `npm start` runs with
 * plain node. Running the TypeScript sources through tsx costs a process about 60 MB more memory (tsx's loader
 * thread keeps a second V8 heap) and an esbuild helper process; the bundle costs neither. npm packages stay
 * outside the bundle (they load from node_modules as usual); this takes well under a second.
 */
export const BUNDLE = path.join(PACKAGE_ROOT, "dist", "parley.js");

export function buildParley(): Promise<string> {
  return bundle("src/main.ts", BUNDLE);
}

/** Bundles one entry point of this repository (a path from the root) into `outfile`. */
export async function bundle(entry: string, outfile: string): Promise<string> {
  await build({
    entryPoints: [path.join(PACKAGE_ROOT, entry)],
    outfile,
    bundle: true,
    packages: "external",
    platform: "node",
    format: "esm",
    target: "node20",
    sourcemap: true,
    logLevel: "warning",
  });
  return outfile;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildParley();
}
