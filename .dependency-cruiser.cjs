// Import-layer rules, checked by `npm run lint` (and so by `npm test`).
// The .ts files are parsed with swc: dependency-cruiser reads TypeScript through the `typescript`
// package's JS API, which TypeScript 7 (the project's compiler) no longer has.

/** Folders holding use cases: what src/db must never reach into. */
const USE_CASES =
  '^src/(orders|inbox|partner-calls|tiers|operations|analytics|api|workers|event-kinds|console|integrations)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'An import cycle makes load order matter and hides which module owns what.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'api-not-to-workers',
      severity: 'error',
      comment: 'The web and worker processes share src/queues and the use cases, never each other.',
      from: { path: '^src/api/' },
      to: { path: '^src/workers/' },
    },
    {
      name: 'workers-not-to-api',
      severity: 'error',
      comment: 'The web and worker processes share src/queues and the use cases, never each other.',
      from: { path: '^src/workers/' },
      to: { path: '^src/api/' },
    },
    {
      name: 'machines-import-nothing-of-the-project',
      severity: 'error',
      comment: 'The status model is pure: it depends on libraries only, so it can be tested alone.',
      from: { path: '^src/machines/' },
      to: { path: '^src/', pathNot: '^src/machines/' },
    },
    {
      name: 'db-imports-no-use-case',
      severity: 'error',
      comment: 'The database layer (client, schema, queries) sits below the use cases.',
      from: { path: '^src/db/' },
      to: { path: USE_CASES },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing is a typo or a missing dependency.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    parser: 'swc',
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|drizzle)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
  },
};
