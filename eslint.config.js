'use strict'

// ESLint flat config: `npm run lint`. The package is CommonJS (.js, .cjs) with a few ES modules
// (.mjs); all of it runs on Node (main thread, worker_threads, child processes).

const js = require('@eslint/js')
const globals = require('globals')

module.exports = [
  {
    ignores: ['binding.js', 'node_modules/', 'target/', 'npm/', 'fuzz/', 'bench/results/'],
  },
  js.configs.recommended,
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: 'module',
      globals: { ...globals.node },
    },
  },
  {
    rules: {
      // A leading underscore marks a parameter kept for the shape of an interface; a rest
      // sibling (`const { a, ...rest } = o`) is how a key is left out of a copy.
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
]
