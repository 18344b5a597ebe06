'use strict'
// Leak tracking (leases garbage-collected without release) and the 'sabpool:wait' diagnostics
// channel. Runs the leak scenarios in a child process started with --expose-gc.
const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const diagnostics = require('node:diagnostics_channel')
const { SharedPool, Channel } = require('..')

function runChild(script, env = {}) {
  const run = spawnSync(process.execPath, ['--expose-gc', '-e', script], {
    cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env },
  })
  assert.equal(run.status, 0, `child failed:\n${run.stdout}\n${run.stderr}`)
  return JSON.parse(run.stdout.trim().split('\n').pop())
}

// Leaks two leases from a function whose frame is gone, forces GC, and reports what happened.
const LEAK_SCRIPT = (poolOptions) => `
  const { SharedPool } = require('.')
  const warnings = []
  process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }))
  const pool = new SharedPool({ slotSize: 16, slots: 4${poolOptions} })
  function leakTwo() { pool.tryAcquire(); pool.tryAcquire().handoff() }
  leakTwo()
  const kept = pool.tryAcquire()
  const released = pool.tryAcquire(); released.release()
  ;(async () => {
    for (let i = 0; i < 20 && warnings.length < 1; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)) }
    await new Promise((r) => setTimeout(r, 50))
    const stats = pool.stats()
    kept.release()
    console.log(JSON.stringify({ warnings, stats, after: pool.stats() }))
  })()
`

describe('leak tracking', () => {
  it('reclaims a lease garbage-collected while owned and warns with where it was acquired', () => {
    const { warnings, stats, after } = runChild(LEAK_SCRIPT(', trackLeaks: true'))
    assert.equal(warnings.length, 1, `exactly the one leaked lease is reported: ${JSON.stringify(warnings)}`)
    assert.equal(warnings[0].code, 'SABPOOL_LEAKED_LEASE')
    assert.match(warnings[0].message, /garbage-collected without release/)
    assert.match(warnings[0].message, /leakTwo/, 'the warning says where the lease was acquired')
    assert.equal(stats.reclaimed, 1)
    // One slot is still held (kept), one is in flight (handed off: not leaked, the ticket owns it).
    assert.equal(stats.inUse, 2)
    assert.equal(after.inUse, 1)
    assert.equal(after.acquired, after.released + after.reclaimed + after.inUse)
  })

  it('is on for every pool with SABPOOL_TRACK_LEAKS=1', () => {
    const { warnings, stats } = runChild(LEAK_SCRIPT(''), { SABPOOL_TRACK_LEAKS: '1' })
    assert.equal(warnings.length, 1)
    assert.equal(stats.reclaimed, 1)
  })

  it('is off by default: nothing is reported or reclaimed until the thread detaches', () => {
    const { warnings, stats } = runChild(LEAK_SCRIPT(''), { SABPOOL_TRACK_LEAKS: '' })
    assert.equal(warnings.length, 0)
    assert.equal(stats.reclaimed, 0)
    assert.equal(stats.inUse, 3)
  })

  it('rejects a non-boolean trackLeaks', () => {
    assert.throws(() => new SharedPool({ slotSize: 8, slots: 1, trackLeaks: 'yes' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    const pool = new SharedPool({ slotSize: 8, slots: 1 })
    assert.throws(() => SharedPool.attach(pool.handle, { trackLeaks: 1 }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  })

  it('does not report leases that were released, handed off, sent or re-armed', () => {
    const { warnings, stats } = runChild(`
      const { SharedPool, Channel } = require('.')
      const warnings = []
      process.on('warning', (w) => warnings.push(w.code))
      const pool = new SharedPool({ slotSize: 16, slots: 4, trackLeaks: true })
      const channel = new Channel(pool, { capacity: 4 })
      function churn() {
        for (let i = 0; i < 1000; i++) pool.tryAcquire().release()
        const t = pool.tryAcquire().handoff(); pool.adopt(t).release()
        channel.trySend(pool.tryAcquire()); channel.tryRecv().release()
        const l = pool.tryAcquire(); l.release(); pool.tryAcquire({ reuse: l }).release()
      }
      churn()
      ;(async () => {
        for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setTimeout(r, 10)) }
        console.log(JSON.stringify({ warnings, stats: pool.stats() }))
      })()
    `)
    assert.deepEqual(warnings, [])
    assert.equal(stats.reclaimed, 0)
    assert.equal(stats.inUse, 0)
  })
})

describe("diagnostics_channel 'sabpool:wait'", () => {
  it('reports each wait that parked, with its outcome and duration', async () => {
    const seen = []
    const onWait = (message) => seen.push(message)
    diagnostics.subscribe('sabpool:wait', onWait)
    try {
      const pool = new SharedPool({ slotSize: 8, slots: 1 })
      const channel = new Channel(pool, { capacity: 2 })
      const held = pool.tryAcquire()
      await assert.rejects(pool.acquire({ timeout: 10 }), { code: 'ERR_SABPOOL_TIMEOUT' })
      assert.throws(() => channel.recvSync({ timeout: 5, spin: 0 }), { code: 'ERR_SABPOOL_TIMEOUT' })
      const waiting = pool.acquire()
      setTimeout(() => held.release(), 5)
      ;(await waiting).release()
      const controller = new AbortController()
      const aborted = channel.recv({ signal: controller.signal })
      setTimeout(() => controller.abort(), 5)
      await assert.rejects(aborted, { name: 'AbortError' })
      assert.deepEqual(seen.map((m) => [m.kind, m.op, m.outcome]), [
        ['pool', 'acquire', 'timeout'],
        ['channel', 'recvSync', 'timeout'],
        ['pool', 'acquire', 'ok'],
        ['channel', 'recv', 'abort'],
      ])
      assert.equal(seen[0].id, pool.id)
      for (const m of seen) assert.ok(m.ms >= 0 && m.ms < 10_000, `duration ${m.ms}`)
      assert.ok(seen[0].ms >= 9, 'the timed-out wait lasted its timeout')
    } finally {
      diagnostics.unsubscribe('sabpool:wait', onWait)
    }
  })
})
