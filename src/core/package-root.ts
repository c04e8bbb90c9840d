import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Files Parley reads at run time (migrations, the web pages' scripts and styles) are found from the repository's
 * root, not from the module that reads them: `npm start` runs one bundled file (dist/parley.js), tests and tsx run
 * the sources, and the root is the same for both: the nearest folder above with a package.json.
 */
function findRoot(from: string): string {
  for (let dir = path.dirname(from); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PACKAGE_ROOT = findRoot(fileURLToPath(import.meta.url));

/** A file of the repository, by its path from the root, e.g. repoPath("migrations"). */
export const repoPath = (...parts: string[]): string => path.join(PACKAGE_ROOT, ...parts);
