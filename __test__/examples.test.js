'use strict'
// examples/pipeline runs end to end (it verifies every chunk itself) with each transform, from
// generated data and from a file; examples/cluster across worker processes. examples/piscina is
// tested in piscina.test.js.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')
const { run } = require('../examples/pipeline/main.js')

const ROOT = path.join(__dirname, '..')

describe('pipeline example', () => {
  for (const op of ['invert', 'blur']) {
    it(`${op}: every chunk comes back transformed, every slot is released`, async () => {
      const r = await run({ workers: 2, sizeMiB: 3, chunkKiB: 64, op })
      assert.equal(r.chunks, 48)
      assert.equal(r.perWorker.reduce((a, b) => a + b, 0), 48)
      assert.equal(r.stats.inUse, 0)
      assert.equal(r.stats.acquired, 48)
      assert.equal(r.stats.released, 48)
    })
  }

  it('reads a file straight into the slots (size not a multiple of the chunk)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-pipeline-'))
    try {
      const file = path.join(dir, 'input.bin')
      fs.writeFileSync(file, crypto.randomBytes(1_000_003))
      const r = await run({ workers: 3, chunkKiB: 100, op: 'blur', file })
      assert.equal(r.bytes, 1_000_003)
      assert.equal(r.chunks, Math.ceil(1_000_003 / 102_400))
      assert.equal(r.stats.inUse, 0)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('the CLI runs and reports', () => {
    const r = spawnSync(process.execPath, ['examples/pipeline/main.js', '--size', '2', '--chunk', '128', '--workers', '2'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /pipeline: 2\.0 MiB in 16 chunks through 2 workers \(invert\): all chunks verified/)
  })
})

describe('cluster example', () => {
  it('worker processes checksum every slot in place; nothing left in use or on disk', () => {
    const before = new Set(fs.readdirSync('/dev/shm'))
    const r = spawnSync(process.execPath, ['examples/cluster/main.js', '--workers', '2', '--jobs', '300', '--kib', '16'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /cluster: 300 jobs of 16 KiB through 2 worker processes in \d+ ms \(\d+ \+ \d+\): all checksums verified, 0 slots in use/)
    const [, a, b] = r.stdout.match(/\((\d+) \+ (\d+)\)/)
    assert.equal(Number(a) + Number(b), 300)
    const left = fs.readdirSync('/dev/shm').filter((f) => !before.has(f) && f.includes('cluster-example'))
    assert.deepEqual(left, [])
  })
})

describe('topic example', () => {
  const { run } = require('../examples/topic/main.js')

  it('every worker analyses every frame in order, in place; every slot comes back', async () => {
    const r = await run({ frames: 60, width: 160, height: 120 })
    assert.equal(r.stats.published, 60)
    assert.equal(r.stats.delivered, 180)
    assert.equal(r.verified, 6)
    assert.equal(r.pool.inUse, 0)
  })

  it('the CLI runs and reports', () => {
    const r = spawnSync(process.execPath, ['examples/topic/main.js', '--frames', '40', '--width', '64', '--height', '64'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /topic: 40 frames to 3 workers .* 120 deliveries, 6 results verified, 0 slots in use at the end/)
  })
})

describe('arrow example', () => {
  const { run } = require('../examples/arrow/main.js')
  const { tableFromArrays, tableToIPC, tableFromIPC } = require('apache-arrow')
  const { SharedPool } = require('..')

  it('a worker sums a column written by another thread, reading it in place; every slot comes back', async () => {
    const r = await run({ rows: 20_000, batches: 3 })
    assert.equal(r.results.length, 3)
    for (const x of r.results) assert.equal(x.inPlace, true, 'the column was a view of the slot')
    assert.equal(r.stats.inUse, 0)
  })

  it('Arrow reads a slot in place at an 8-byte aligned offset and copies at any other', () => {
    const pool = new SharedPool({ slotSize: 1 << 16, slots: 1 })
    const lease = pool.acquireSync()
    const ipc = tableToIPC(tableFromArrays({ x: Float64Array.from([1, 2, 3]) }), 'stream')
    for (const [offset, inPlace] of [[0, true], [64, true], [8, true], [3, false]]) {
      lease.bytes.set(ipc, offset)
      const values = tableFromIPC(lease.bytes.subarray(offset, offset + ipc.length)).getChild('x').data[0].values
      assert.equal(values.buffer === pool.handle.buffer, inPlace, `offset ${offset}`)
      assert.deepEqual([...values], [1, 2, 3])
    }
    lease.release()
  })
})
