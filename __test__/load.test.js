'use strict'
// How sabpool loads (lib/load.js): the addon straight from its file, not through the generated
// loader; lib/ from the code caches the addon keeps for the process, so that a fresh worker does
// not parse the source again; and the file store behind those caches (binding.codeCacheLoad and
// codeCacheStore). Each case runs in a fresh process, where nothing is loaded or cached yet.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { throwsCode } = require('./helpers.js')

const ROOT = path.join(__dirname, '..')
const LIB_FILES = ['channel.js', 'codec.js', 'errors.js', 'lease.js', 'native.js', 'options.js', 'pool.js', 'region.js', 'wait.js']

/** Runs `code` in a fresh Node with ROOT as cwd; returns the JSON its last stdout line holds. */
function run(code, env = {}) {
  const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  assert.equal(r.status, 0, `child failed (status ${r.status}, signal ${r.signal}):\n${r.stdout}\n${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

/** A worker (source `WORKER`) that loads sabpool, attaches the pool, fills a slot, hands it back. */
const WORKER = `
  const { workerData, parentPort } = require('node:worker_threads')
  const { SharedPool } = require(${JSON.stringify(ROOT)})
  const load = require(${JSON.stringify(path.join(ROOT, 'lib', 'load.js'))})
  const pool = SharedPool.attach(workerData)
  const lease = pool.acquireSync({ timeout: 5000 })
  lease.bytes.fill(7, 0, 16)
  let stack = ''
  try { SharedPool.attach({}) } catch (e) { stack = e.stack }
  parentPort.postMessage({ ticket: lease.handoff(), cached: load.cachedFiles.map((f) => require('node:path').basename(f)).sort(), stack })
`

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

describe('lib/ from code caches', () => {
  it('a fresh worker loads every lib file from the caches the first thread stored, attaches and works', () => {
    const r = run(`
      const { Worker } = require('node:worker_threads')
      const s = require('.')
      const load = require('./lib/load.js')
      const pool = new s.SharedPool({ slotSize: 64, slots: 2 })
      let mainStack = ''
      try { s.SharedPool.attach({}) } catch (e) { mainStack = e.stack }
      const w = new Worker(${JSON.stringify(WORKER)}, { eval: true, workerData: pool.handle })
      w.once('error', (e) => { console.error(e); process.exit(1) })
      w.once('message', (m) => {
        const lease = pool.adopt(m.ticket)
        const filled = Array.from(lease.bytes.subarray(0, 16)).every((b) => b === 7)
        lease.release()
        const frame = (stack) => stack.split('\\n').find((l) => l.includes('pool.js:'))
        console.log(JSON.stringify({ mainCached: load.cachedFiles.length, workerCached: m.cached, filled, frames: [frame(mainStack), frame(m.stack)] }))
        w.terminate()
      })`)
    assert.equal(r.mainCached, 0, 'the first thread compiles from source')
    assert.deepEqual(r.workerCached, LIB_FILES)
    assert.ok(r.filled, 'the worker wrote the slot the main thread adopted')
    // Stack traces still name the lib file and line, the same from bytecode as from source.
    assert.match(r.frames[0], /lib[\\/]pool\.js:\d+:\d+/)
    assert.equal(r.frames[1], r.frames[0])
  })

  it('a cache V8 rejects is not used: the file compiles from its text and a good cache replaces it', () => {
    const errors = path.join(ROOT, 'lib', 'errors.js')
    const r = run(`
      const { Worker } = require('node:worker_threads')
      const { binding } = require('./lib/load.js')
      const { generation } = binding.codeCacheLoad(${JSON.stringify(errors)})
      const stored = binding.codeCacheStore(${JSON.stringify(errors)}, generation, Buffer.from('not a V8 code cache'))
      const s = require('.')
      const pool = new s.SharedPool({ slotSize: 64, slots: 1 })
      const w = new Worker(${JSON.stringify(WORKER)}, { eval: true, workerData: pool.handle })
      w.once('error', (e) => { console.error(e); process.exit(1) })
      w.once('message', (m) => {
        pool.adopt(m.ticket).release()
        console.log(JSON.stringify({ stored, mainCached: require('./lib/load.js').cachedFiles.length, workerCached: m.cached }))
        w.terminate()
      })`)
    assert.deepEqual(r, { stored: true, mainCached: 0, workerCached: LIB_FILES })
  })
})

describe('the file store (codeCacheLoad, codeCacheStore)', () => {
  const { binding } = require('../lib/load.js')

  it('hands out the text it read while the file is unchanged, with the cache stored for that text', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-store-'))
    try {
      const file = path.join(dir, 'a.js')
      fs.writeFileSync(file, '\uFEFFmodule.exports = 1\n')
      const first = binding.codeCacheLoad(file)
      assert.equal(first.text, 'module.exports = 1\n', 'read as UTF-8, without the byte-order mark')
      assert.equal(first.cache ?? null, null)
      assert.equal(binding.codeCacheStore(file, first.generation, Buffer.from([1, 2, 3])), true)
      const second = binding.codeCacheLoad(file)
      assert.equal(second.generation, first.generation)
      assert.deepEqual([...second.cache], [1, 2, 3])

      // Edited: read again, a new generation, no cache; a cache made from the old text is refused.
      fs.writeFileSync(file, 'module.exports = 22\n')
      const third = binding.codeCacheLoad(file)
      assert.equal(third.text, 'module.exports = 22\n')
      assert.equal(third.cache ?? null, null)
      assert.notEqual(third.generation, first.generation)
      assert.equal(binding.codeCacheStore(file, first.generation, Buffer.from([4])), false)
      assert.equal(binding.codeCacheLoad(file).cache ?? null, null)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a file that cannot be read, or is not UTF-8, is ERR_SABPOOL_IO (the loader then falls back to require)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-store-'))
    try {
      throwsCode(() => binding.codeCacheLoad(path.join(dir, 'missing.js')), Error, 'ERR_SABPOOL_IO', /cannot read/)
      const bad = path.join(dir, 'bad.js')
      fs.writeFileSync(bad, Buffer.from([0x2f, 0x2f, 0xff, 0xfe, 0x0a]))
      throwsCode(() => binding.codeCacheLoad(bad), Error, 'ERR_SABPOOL_IO', /not UTF-8/)
      throwsCode(() => binding.codeCacheLoad(dir), Error, 'ERR_SABPOOL_IO', /cannot read/)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
