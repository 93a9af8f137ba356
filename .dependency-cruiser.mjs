// The import rules `npm test` enforces (`npm run check:imports`, over apps/, packages/ and
// tests/): apps import only packages, and no module reaches itself through its imports.
import { readdirSync } from 'node:fs';

// An app imported by its package name (@changeq/<dir>) is matched by that name (see options).
const apps = readdirSync(new URL('apps/', import.meta.url)).join('|');

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-app-imports-another-app',
      comment:
        'An app (apps/<name>) imports packages only: what two apps share belongs in packages/. ' +
        'Relative paths into another app and @changeq/<app> imports are both caught.',
      severity: 'error',
      from: { path: '^apps/([^/]+)/' },
      to: { path: ['^apps/', `^@changeq/(${apps})$`], pathNot: ['^apps/$1/', '^@changeq/$1$'] },
    },
    {
      name: 'reader-thread-loads-no-bullmq',
      comment:
        "The ingest's stream reader thread loads the store's key schema only (@changeq/store/keys, " +
        '/watermark), never its index: that loads BullMQ and ioredis into the thread, about 25 MB ' +
        'more resident memory for nothing. (Not even a type import: the rule cannot tell them apart.)',
      severity: 'error',
      from: { path: '^apps/ingest/src/reader/thread\\.ts$' },
      to: { path: '^@changeq/store$' },
    },
    {
      name: 'no-import-cycle',
      comment:
        'A cycle ties its modules into one: none can be read, tested or moved alone. Type-only ' +
        'imports count. Break it by moving what both sides need into a module of its own.',
      severity: 'error',
      from: { path: '^(apps|packages|tests)/' },
      to: { circular: true },
    },
  ],
  options: {
    // Packages are endpoints, not sources, and none is resolved (no exports, no main fields):
    // a workspace package points into its dist/, which exists only after a build, and the
    // result must be the same before and after one. Apps imported by name are caught by name.
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['/dist/', '/dist-bench/', '/test-results/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: { exportsFields: [], mainFields: [] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
