'use strict'
// CommonJS and ES module entry points, resolved by the package's own name through the `exports`
// map (Node's package self-reference), in this source tree. __test__/package.test.js does the
// same from an installed tarball.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { pathToFileURL } = require('node:url')

const ROOT = path.join(__dirname, '..')
const PACKAGING = path.join(__dirname, 'packaging')

function runScript(file) {
  const r = spawnSync(process.execPath, [path.join(PACKAGING, file)], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, `${file} failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`)
  const line = r.stdout.trim().split('\n').pop()
  assert.ok(line, `${file} printed nothing (stderr: ${r.stderr})`)
  return JSON.parse(line)
}

describe('entry points', () => {
  it("require('sabpool') resolves to index.js with the public classes", () => {
    const cjs = require('sabpool')
    assert.equal(require.resolve('sabpool'), path.join(ROOT, 'index.js'))
    for (const name of ['SharedPool', 'Channel', 'Service', 'Topic', 'Lease', 'AbortError']) assert.equal(typeof cjs[name], 'function', name)
  })

  it("import('sabpool') resolves to index.mjs and exports the same objects as require", async () => {
    const esm = await import('sabpool')
    const cjs = require('sabpool')
    assert.deepEqual(Object.keys(esm).sort(), ['AbortError', 'Channel', 'Lease', 'Service', 'SharedPool', 'Topic', 'default'])
    for (const name of ['SharedPool', 'Channel', 'Service', 'Topic', 'Lease', 'AbortError']) {
      assert.equal(esm[name], cjs[name], `${name} differs between import and require`)
      assert.equal(esm.default[name], cjs[name], `default.${name}`)
    }
    assert.deepEqual(Object.keys(esm.default).sort(), ['AbortError', 'Channel', 'Lease', 'Service', 'SharedPool', 'Topic'])
    const pool = new esm.SharedPool({ slotSize: 64, slots: 2 })
    const lease = pool.tryAcquire()
    assert.ok(lease instanceof cjs.Lease)
    lease.release()
    pool.detach()
  })

  it("'sabpool/package.json' is exported, internals are not", () => {
    assert.equal(require('sabpool/package.json').name, 'sabpool')
    assert.throws(() => require('sabpool/binding.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' })
    assert.throws(() => require('sabpool/index.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' })
  })

  it('a worker round trip with require (main and worker CommonJS)', () => {
    const out = runScript('roundtrip.cjs')
    assert.equal(out.ok, true)
    assert.equal(out.length, 1000)
    assert.equal(out.exitCode, 0)
    assert.equal(out.sameClassViaImport, true)
    assert.equal(out.resolved, path.join(ROOT, 'index.js'))
    assert.equal(out.bindingSource, 'file', 'the addon loads straight from sabpool.<platform>.node here')
  })

  it('a worker round trip with import (main and worker ES modules)', () => {
    const out = runScript('roundtrip.mjs')
    assert.equal(out.ok, true)
    assert.equal(out.length, 1000)
    assert.equal(out.exitCode, 0)
    assert.equal(out.sameClassViaRequire, true)
    assert.equal(out.defaultExport, true)
    assert.equal(out.resolved, pathToFileURL(path.join(ROOT, 'index.mjs')).href)
  })
})
