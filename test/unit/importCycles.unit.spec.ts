import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, expect, test } from "vitest";

// Import cycles inside a package: a module that imports, even for a type, one that imports it back
// makes both one unit to read and to change (the house style bans them). Relative imports only:
// packages reach each other through their public entry, where pnpm keeps the graph acyclic.
const root = new URL("../../", import.meta.url).pathname;
const packages = ["services", "libs", "tools"].flatMap((group) => readdirSync(join(root, group)).map((name) => join(group, name, "src"))).concat("console/src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.tsx?$/.test(entry.name) && !entry.name.includes(".spec.") ? [path] : [];
  });
}

/** The package's modules that `file` imports (`./x.js` names `./x.ts` or `./x.tsx`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/from "(\.{1,2}\/[^"]+)"/g)].flatMap(([, spec]) => {
    const base = join(dirname(file), spec!.replace(/\.js$/, ""));
    return [`${base}.ts`, `${base}.tsx`].filter((path) => existsSync(path));
  });
}

/** Every cycle found by a depth-first walk, as the chain of files that closes it. */
function cyclesIn(dir: string): string[] {
  const graph = new Map(sources(dir).map((file) => [file, importsOf(file)]));
  const state = new Map<string, "open" | "done">();
  const cycles: string[] = [];
  // Iterative, so a deep chain of imports cannot overflow the stack.
  for (const start of graph.keys()) {
    if (state.has(start)) continue;
    const path: string[] = [];
    const work: { file: string; next: number }[] = [{ file: start, next: 0 }];
    state.set(start, "open");
    path.push(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const deps = graph.get(top.file) ?? [];
      if (top.next >= deps.length) {
        state.set(top.file, "done");
        work.pop();
        path.pop();
        continue;
      }
      const dep = deps[top.next++]!;
      if (state.get(dep) === "open") cycles.push([...path.slice(path.indexOf(dep)), dep].map((f) => relative(root, f)).join(" → "));
      else if (!state.has(dep)) {
        state.set(dep, "open");
        path.push(dep);
        work.push({ file: dep, next: 0 });
      }
    }
  }
  return cycles;
}

describe("import cycles", () => {
  test.each(packages.filter((dir) => existsSync(join(root, dir))))("none in %s", (dir) => {
    expect(cyclesIn(join(root, dir))).toEqual([]);
  });
});
