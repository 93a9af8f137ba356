// The import rules `npm test` enforces (scripts/check-imports.mjs runs this over apps/ and
// packages/): apps import only packages, and no module reaches itself through its imports.
import { readdirSync } from 'node:fs';

// An app imported by its package name (@changeq/<dir>) resolves into apps/<dir>/dist/ once built;
// before a build it does not resolve at all, so the rule names those imports too.
const apps = readdirSync(new URL('apps/', import.meta.url)).join('|');

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-app-imports-another-app',
      comment:
        'An app (apps/<name>) imports packages only: what two apps share belongs in packages/. ' +
        'An import of @changeq/<app> resolves into apps/<app>/ and is caught here too.',
      severity: 'error',
      from: { path: '^apps/([^/]+)/' },
      to: { path: ['^apps/', `^@changeq/(${apps})$`], pathNot: ['^apps/$1/', '^@changeq/$1$'] },
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
    // Built output and dependencies are endpoints, not sources: an import of @changeq/<app>
    // resolves to apps/<app>/dist/, which the first rule then sees.
    doNotFollow: { path: ['node_modules', '/dist/', '/dist-bench/'] },
    exclude: { path: ['/test-results/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default', 'types'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
