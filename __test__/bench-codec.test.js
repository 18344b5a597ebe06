'use strict'
// The bench's object-graph rows (sabpool + writeValue / writeJSON against the clone of the same
// graph): their pools fit every graph the bench sends, the rows run end to end with every payload
// checked, their ratios are taken only against the clone of the same graph, and check-json
// notices a missing one. Timings are never asserted.
const { it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const os = require('node:os')
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')
const { SharedPool } = require('..')
const { KINDS } = require('../bench/payload.js')
const { poolShape } = require('../bench/mechanisms/codec.js')

const root = path.join(__dirname, '..')
const CODEC_ROWS = ['codec-value-matrix', 'codec-value-spin-matrix', 'codec-json-matrix', 'codec-value-objects', 'codec-value-spin-objects', 'codec-json-objects']

it('an object-graph row sizes its slots to fit the graph, stamped or not, and caps its pool at 256 MiB', () => {
  for (const kind of ['matrix', 'objects']) {
    for (const size of [64, 1024, 64 << 10, 1 << 20]) {
      for (const codec of ['value', 'json']) {
        const payload = KINDS[kind].make(size)
        const { slotSize, slots } = poolShape(codec, payload, 64)
        assert.ok(slots >= 2 && slots <= 64 && slotSize * slots <= Math.max(256 << 20, 2 * slotSize), `${kind} ${size} ${codec}`)
        assert.equal(slotSize % 64, 0)
        const pool = new SharedPool({ slotSize, slots: 1 })
        const lease = pool.acquireSync()
        // The worker writes back the graph it read, into the same slot.
        for (const tag of [0, 255]) {
          const value = KINDS[kind].stamp(payload, tag)
          const written = codec === 'value' ? lease.writeValue(value) : lease.writeJSON(value)
          assert.ok(written <= slotSize)
          const back = codec === 'value' ? lease.readValue() : lease.readJSON()
          assert.equal(KINDS[kind].read(back), tag)
          // (V8 may choose another element encoding for the copy; it must fit all the same.)
          assert.ok((codec === 'value' ? lease.writeValue(back) : lease.writeJSON(back)) <= slotSize)
        }
        lease.release()
        pool.detach()
      }
    }
  }
  // 16 MiB of {matrix} as JSON is about 2× its bytes: fewer slots, never more than the budget.
  const big = poolShape('json', KINDS.matrix.make(16 << 20), 16)
  assert.ok(big.slotSize > 16 << 20)
  assert.ok(big.slots >= 2 && big.slots * big.slotSize <= 256 << 20, JSON.stringify(big))
})

it('bench --only objects runs the codec rows against the clones of the same graphs', { timeout: 120_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-bench-'))
  const json = path.join(dir, 'bench.json')
  const run = spawnSync(process.execPath, ['bench/index.js', '--quick', '--only', 'objects', '--sizes', '1k,64k', '--json', json], {
    cwd: root, encoding: 'utf8', timeout: 110_000,
  })
  assert.equal(run.status, 0, `bench failed:\n${run.stderr.slice(-2000)}`)
  assert.match(run.stdout, /OBJECT GRAPHS/)
  assert.doesNotMatch(run.stdout, /PIPELINE OF WORKERS/) // no byte rows were selected
  const report = JSON.parse(fs.readFileSync(json, 'utf8'))
  assert.deepEqual(report.config.mechanisms, ['clone-matrix', 'clone-objects', ...CODEC_ROWS])
  for (const id of CODEC_ROWS) {
    for (const size of report.config.sizes) {
      const c = report.cells.find((x) => x.mechanism === id && x.size === size)
      assert.ok(c, `${id} @ ${size}`)
      assert.deepEqual(c.verify, { main: 0, worker: 0 })
      assert.equal(c.payloadKind, id.endsWith('matrix') ? 'matrix' : 'objects')
      const peer = report.cells.find((x) => x.mechanism === `clone-${c.payloadKind}` && x.size === size)
      assert.deepEqual(Object.keys(c.ratios).sort(), ['sendVsGraph', 'vsGraph'])
      assert.equal(c.ratios.vsGraph, peer.rt.p50 / c.rt.p50)
      assert.equal(c.ratios.sendVsGraph, peer.send.p50 / c.send.p50)
    }
  }
  for (const codec of ['writeValue/readValue', 'writeJSON/readJSON']) {
    for (const what of ['round trip', 'sender blocked']) {
      assert.ok(report.targets.some((t) => t.name.startsWith(`objects: sabpool + ${codec} ${what}`)), `${codec} ${what}`)
    }
  }
  const { validate } = require('../bench/check-json.js')
  assert.deepEqual(Object.keys(validate(report)), ['cells', 'metrics', 'eventLoopCells', 'processCells'])
  delete report.cells.find((c) => c.mechanism === 'codec-json-objects').ratios.sendVsGraph
  const problems = validate(report)
  assert.ok(Array.isArray(problems) && problems.some((p) => p.startsWith('codec-json-objects') && p.includes('ratios.sendVsGraph')), JSON.stringify(problems))
  fs.rmSync(dir, { recursive: true, force: true })
})
