#!/usr/bin/env node
/**
 * Keeps the package picture of docs/architecture.md true: every arrow in its mermaid block
 * (the one after `<!-- package-imports -->`) must be an import of `@changeq/<name>` in that
 * workspace's src/, and every such import must be drawn; and every source file the document
 * names (`reader/thread.ts`, `packages/store/src/enqueuer.ts`…) must exist. One line per
 * difference; exit 1.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const doc = join(root, 'docs/architecture.md');
const text = readFileSync(doc, 'utf8');
const marker = text.indexOf('<!-- package-imports -->');
const block = marker < 0 ? null : /```mermaid\n([\s\S]*?)```/.exec(text.slice(marker));
if (block === null) {
  console.error(
    `${relative(root, doc)}: no mermaid block after <!-- package-imports -->; put the package picture back`,
  );
  process.exit(1);
}

// Drawn: `id[label] --> a & b`, a node id being the workspace's folder name.
const drawn = new Map();
for (const line of block[1].split('\n')) {
  const match = /^\s*([\w-]+)(?:\[[^\]]*\])?\s*(?:-->\s*(.+))?$/.exec(line);
  if (match === null || match[1] === 'flowchart') continue;
  const targets = drawn.get(match[1]) ?? new Set();
  for (const target of (match[2] ?? '')
    .split('&')
    .map((t) => t.trim())
    .filter(Boolean)) {
    targets.add(target);
  }
  drawn.set(match[1], targets);
}

function sources(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name === 'dist') return [];
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|mts|js|mjs|lua)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const actual = new Map();
for (const group of ['apps', 'packages']) {
  for (const name of readdirSync(join(root, group))) {
    const src = join(root, group, name, 'src');
    let files;
    try {
      files = sources(src);
    } catch {
      continue;
    }
    const imports = new Set();
    for (const file of files) {
      for (const m of readFileSync(file, 'utf8').matchAll(/from '@changeq\/([\w-]+)/g)) {
        if (m[1] !== name) imports.add(m[1]);
      }
    }
    actual.set(name, imports);
  }
}

const problems = [];
for (const [name, imports] of actual) {
  const arrows = drawn.get(name);
  if (arrows === undefined) {
    problems.push(`${name} is not in the picture; draw it`);
    continue;
  }
  for (const target of imports) {
    if (!arrows.has(target))
      problems.push(`${name} imports @changeq/${target}; draw ${name} --> ${target}`);
  }
  for (const target of arrows) {
    if (!imports.has(target))
      problems.push(
        `${name} --> ${target} is drawn, but ${name}'s src does not import @changeq/${target}; remove the arrow`,
      );
  }
}
for (const name of drawn.keys()) {
  if (!actual.has(name))
    problems.push(`${name} is drawn but is no workspace with a src/; remove it`);
}
// Files named in the document: each must end the path of a file of the repository.
const files = [...sources(join(root, 'scripts')).map((file) => relative(root, file))].concat(
  ['apps', 'packages', 'tests'].flatMap((group) =>
    readdirSync(join(root, group)).flatMap((name) => {
      try {
        return sources(join(root, group, name)).map((file) => relative(root, file));
      } catch {
        return [];
      }
    }),
  ),
);
for (const [named] of text.matchAll(/[\w./-]+\.(?:ts|lua|mjs)\b/g)) {
  if (!files.some((file) => file === named || file.endsWith(`/${named}`))) {
    problems.push(`names ${named}, which no file of the repository is; correct the name`);
  }
}
for (const problem of problems) console.error(`docs/architecture.md package picture: ${problem}`);
if (problems.length > 0) process.exit(1);
console.log(
  `docs/architecture.md package picture matches the imports of ${actual.size} workspaces`,
);
