'use strict'
// Type test: `tsc --noEmit` over __test__/types/, usage files that exercise the whole public API
// (api.ts) and 'sabpool/piscina' (piscina.ts), plus ESM (esm.mts) and `import = require` (cjs.cts)
// consumers, resolved through the package's own `exports` map by its name 'sabpool'. Two
// configurations: Node's resolution (nodenext) and bundler resolution. Needs the devDependencies
// `typescript`, `@types/node` and `piscina` (whose types piscina.ts checks runLease against).

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const TYPES = path.join(__dirname, 'types')

function tsc(config) {
  let bin
  try {
    bin = require.resolve('typescript/bin/tsc', { paths: [ROOT] })
  } catch {
    assert.fail('typescript is not installed: run `npm install` (it is a devDependency)')
  }
  const r = spawnSync(process.execPath, [bin, '-p', path.join(TYPES, config), '--pretty', 'false'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
  })
  assert.equal(r.error, undefined, `tsc did not run: ${r.error}`)
  assert.equal(r.status, 0, `tsc -p ${config} reported errors:\n${r.stdout}${r.stderr}`)
}

describe('TypeScript declarations', () => {
  it('type-check with module/moduleResolution nodenext (require → index.d.ts, import → index.d.mts)', () => {
    tsc('tsconfig.json')
  })

  it('type-check with moduleResolution bundler (import → index.d.mts)', () => {
    tsc('tsconfig.bundler.json')
  })
})
