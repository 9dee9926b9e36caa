// Lint rules for the whole tree, plus the rules that keep workflow code replayable.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((name) => [name, `node:${name}`]);

export default tseslint.config(
  { ignores: ['node_modules/**', '.oms/**', 'dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Fastify hooks and Temporal activities are async by contract, whether or not they await.
      '@typescript-eslint/require-await': 'off',
      'no-console': 'off',
    },
  },
  {
    // Workflow code is replayed: it must not do I/O, read clocks or randomness except through
    // @temporalio/workflow, and may only see activities as types (proxyActivities does the calls).
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code runs in a deterministic sandbox: no Node built-ins.' })),
          patterns: [
            {
              group: ['**/activities/**', '**/services/**', '**/lib/**', '**/db/**', '**/workers/**', 'pg', 'kysely', 'kafkajs', 'ioredis', 'fastify*', '@temporalio/client', '@temporalio/worker', '@temporalio/activity'],
              allowTypeImports: true,
              message: 'Workflows may import these only as types; do I/O in activities.',
            },
          ],
        },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use workflow time (Date in the sandbox is replay-safe, but say so explicitly via workflowInfo() or sleep()).' },
        { object: 'Math', property: 'random', message: 'Use uuid4() from @temporalio/workflow.' },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Use sleep() or condition() from @temporalio/workflow (durable timers).' },
        { name: 'setInterval', message: 'Use a loop with sleep() from @temporalio/workflow.' },
        { name: 'fetch', message: 'Workflows do no I/O: call an activity.' },
        { name: 'process', message: 'Workflows read no environment: pass configuration as workflow input.' },
      ],
    },
  },
  {
    // The folders are levels: lib/ (what every process shares) at the bottom, db/ on it, and above
    // them services/, activities/, workflows/, workers/. No import runs back up.
    files: ['lib/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/db/**', '**/services/**', '**/activities/**', '**/workflows/**', '**/workers/**'], message: 'lib/ is the bottom level: it imports nothing of the project above it.' }] },
      ],
    },
  },
  {
    files: ['db/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/services/**', '**/activities/**', '**/workflows/**', '**/workers/**'], message: 'db/ stands on lib/ only: it imports nothing of the levels above it.' }] },
      ],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
