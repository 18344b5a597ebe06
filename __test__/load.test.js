'use strict'
// How sabpool loads (lib/load.js): the addon straight from its file, not through the generated
// loader. Each case runs in a fresh process, where nothing is loaded yet.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')

/** Runs `code` in a fresh Node with ROOT as cwd; returns the JSON its last stdout line holds. */
function run(code, env = {}) {
  const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  assert.equal(r.status, 0, `child failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

describe('loading the addon', () => {
  it('in this checkout it comes straight from sabpool.<platform>.node, and binding.js is not loaded', () => {
    const local = fs.readdirSync(ROOT).filter((f) => /^sabpool\..+\.node$/.test(f))
    assert.ok(local.length > 0, 'this checkout has a built sabpool.<platform>.node')
    const r = run(`
      const s = require('.')
      const { BINDING_SOURCE } = require('./lib/native.js')
      const pool = new s.SharedPool({ slotSize: 64, slots: 2 })
      const lease = pool.tryAcquire(); lease.release()
      console.log(JSON.stringify({ from: BINDING_SOURCE, loader: Object.keys(require.cache).some((f) => f.endsWith('binding.js')), addon: Object.keys(require.cache).filter((f) => f.endsWith('.node')).map((f) => require('path').basename(f)) }))`)
    assert.deepEqual(r, { from: 'file', loader: false, addon: local })
  })

  it('NAPI_RS_NATIVE_LIBRARY_PATH is left to the generated loader, which then loads the addon', () => {
    const addon = fs.readdirSync(ROOT).find((f) => /^sabpool\..+\.node$/.test(f))
    const r = run(`
      const s = require('.')
      new s.SharedPool({ slotSize: 64, slots: 1 }).tryAcquire().release()
      console.log(JSON.stringify({ from: require('./lib/native.js').BINDING_SOURCE, loader: Object.keys(require.cache).some((f) => f.endsWith('binding.js')) }))`,
    { NAPI_RS_NATIVE_LIBRARY_PATH: path.join(ROOT, addon) })
    assert.deepEqual(r, { from: 'loader', loader: true })
  })

  it('when no addon is anywhere, require fails with the generated loader\'s error, as before', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-noaddon-'))
    try {
      for (const f of ['package.json', 'index.js', 'binding.js']) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f))
      fs.cpSync(path.join(ROOT, 'lib'), path.join(dir, 'lib'), { recursive: true })
      const r = spawnSync(process.execPath, ['-e', 'require(".")'], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
      assert.notEqual(r.status, 0)
      assert.match(r.stderr, /Cannot find native binding/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
