'use strict'
// examples/piscina against the real piscina package: tasks carry tickets, not buffers.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { Piscina } = require('piscina')
const { SharedPool } = require('sabpool')
const { run, runTask } = require('../examples/piscina/main.js')

const ROOT = path.join(__dirname, '..')
const WORKER = path.join(ROOT, 'examples', 'piscina', 'worker.js')

/** A pool and a piscina running examples/piscina/worker.js; closes both after `fn`. */
async function withPiscina(options, fn) {
  const pool = new SharedPool({ slotSize: 1024, slots: 4, ...options.pool })
  const piscina = new Piscina({ filename: WORKER, workerData: { pool: pool.handle }, minThreads: 1, maxThreads: options.threads || 2, idleTimeout: 1000 })
  try {
    await fn(pool, piscina)
  } finally {
    await piscina.destroy()
    pool.detach()
  }
}

describe('piscina example', () => {
  it('runs ticket tasks on every thread, verifies every result and gets every slot back', async () => {
    // maxParticipants = main thread + one per piscina thread: attaching per task instead of once
    // per thread would fail with ERR_SABPOOL_TOO_MANY_PARTICIPANTS.
    const r = await run({ tasks: 120, threads: 2, kib: 64, maxParticipants: 3 })
    assert.equal(r.verified, 120)
    assert.equal(r.failedTask, 'this task fails on purpose')
    assert.equal(r.stats.inUse, 0)
    assert.equal(r.stats.acquired, 121)
    assert.equal(r.stats.released, 121)
    assert.equal(r.completed, 121)
  })

  it('the CLI runs and reports', () => {
    const r = spawnSync(process.execPath, ['examples/piscina/main.js', '--tasks', '30', '--threads', '2', '--kib', '16'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /piscina: 30\/30 tasks of 16 KiB on 2 threads: all verified/)
    assert.match(r.stdout, /in use 0/)
  })

  it('a worker transforms in place and the result ticket names the same slot', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const lease = pool.acquireSync()
      lease.bytes.fill(10, 0, 100)
      lease.length = 100
      const slot = lease.slot
      const back = await runTask(piscina, pool, lease, { op: 'brighten', amount: 5 })
      assert.equal(back.slot, slot)
      assert.equal(back.length, 100)
      assert.deepEqual([...back.bytes.subarray(0, 101)], [...Array(100).fill(15), 0])
      back.release()
      assert.equal(pool.stats().inUse, 0)
    })
  })

  it('a ticket used again after its result was adopted is rejected by the worker', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const lease = pool.acquireSync()
      lease.length = 8
      const ticket = lease.handoff()
      const back = pool.adopt(await piscina.run({ ticket, op: 'invert' }))
      // Error codes do not survive piscina's postMessage (structured clone); the message does.
      await assert.rejects(piscina.run({ ticket, op: 'invert' }), /no longer owned/)
      back.release()
      assert.equal(pool.stats().inUse, 0)
    })
  })

  it('a ticket replayed while its slot is handed off again is rejected', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const lease = pool.acquireSync()
      lease.length = 8
      const ticket = lease.handoff()
      const result = await piscina.run({ ticket, op: 'invert' }) // the worker handed the slot back
      let replayed = null
      try {
        await assert.rejects(piscina.run({ ticket, op: 'invert' }).then((r) => (replayed = r)), /no longer owned/)
      } finally {
        for (const t of [replayed, result]) {
          if (!t) continue
          try {
            pool.adopt(t).release()
          } catch {
            // adopted and released by a worker already
          }
        }
      }
    })
  })

  it('a task aborted before any worker adopted it: the main thread takes the slot back', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const controller = new AbortController()
      controller.abort()
      const lease = pool.acquireSync()
      await assert.rejects(runTask(piscina, pool, lease, { op: 'invert' }, { signal: controller.signal }), { name: 'AbortError' })
      assert.equal(lease.owned, false)
      assert.equal(pool.stats().inUse, 0)
    })
  })

  it('a task that fails after adopting: the worker released the slot', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const lease = pool.acquireSync()
      await assert.rejects(runTask(piscina, pool, lease, { op: 'fail' }), /fails on purpose/)
      await assert.rejects(runTask(piscina, pool, pool.acquireSync(), { op: 'nope' }), /unknown op nope/)
      assert.equal(pool.stats().inUse, 0)
    })
  })
})
