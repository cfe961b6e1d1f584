// Which chapters exist, where their binaries are, and what each one is expected to do.
//
// Chapters are found on disk (chapters/NN-name), so a new chapter is picked up without editing
// anything here; what it should do follows from its number and e2e/chapters.json.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const E2E_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const REPO_ROOT = path.dirname(E2E_DIR);
export const OUTPUT_DIR = process.env.E2E_OUTPUT_DIR ?? path.join(E2E_DIR, "output");

const CHAPTER_DIR = /^(\d\d)-[a-z0-9-]+$/;

function targetDir() {
  const configured = process.env.CARGO_TARGET_DIR;
  if (!configured) return path.join(REPO_ROOT, "target");
  return path.isAbsolute(configured) ? configured : path.join(REPO_ROOT, configured);
}

/** The package name from a chapter's Cargo.toml (`name = "ch01-echo"`), or null. */
function packageName(manifest) {
  if (!existsSync(manifest)) return null;
  const inPackage = readFileSync(manifest, "utf8").split(/\[package\]/)[1] ?? "";
  const match = inPackage.match(/^\s*name\s*=\s*"([^"]+)"/m);
  return match ? match[1] : null;
}

/**
 * Every chapter, planned or found, in order:
 * `{ name, number, dir, exists, binary, behaviours }` where `exists` is false for a planned
 * chapter whose crate directory is not there yet (the tests skip it and say so).
 */
export function chapters() {
  const declared = JSON.parse(readFileSync(path.join(E2E_DIR, "chapters.json"), "utf8"));
  const chaptersRoot = path.join(REPO_ROOT, "chapters");
  const found = existsSync(chaptersRoot)
    ? readdirSync(chaptersRoot, { withFileTypes: true })
        .filter((entry) => entry.isDirectory() && CHAPTER_DIR.test(entry.name))
        .map((entry) => entry.name)
    : [];
  const names = [...new Set([...declared.planned, ...found])].sort();
  return names.map((name) => {
    const number = Number(name.slice(0, 2));
    const dir = path.join(chaptersRoot, name);
    const exists = existsSync(dir);
    const pkg = exists ? packageName(path.join(dir, "Cargo.toml")) : null;
    const behaviours = Object.fromEntries(
      Object.entries(declared.behaviours).filter(
        ([, spec]) => number >= spec.from && (spec.until === undefined || number <= spec.until),
      ),
    );
    return {
      name,
      number,
      dir,
      exists,
      package: pkg,
      binary: pkg ? path.join(targetDir(), "debug", pkg) : null,
      behaviours,
    };
  });
}
