'use strict'
// A short run of the multi-threaded stress (scripts/stress.js, `npm run stress` for the long one):
// 8 worker threads on one pool and three channels, every lease-moving call mixed, every payload
// stamped and verified, and the pool and channel accounting checked at the end.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { runStress, format } = require('../scripts/stress.js')
const { runServiceStress, format: formatService } = require('../scripts/stress-service.js')
const { runTopicStress, format: formatTopic } = require('../scripts/stress-topic.js')

describe('stress (scripts/stress.js)', () => {
  it('8 threads × 200,000 operations: no corrupted, lost, duplicated or reordered payload; stats add up; every slot free once', { timeout: 60_000 }, async () => {
    const report = await runStress({ threads: 8, ops: 8 * 200_000 })
    console.log(format(report))
    assert.deepEqual(report.violations, [])
    assert.equal(report.ok, true)
    assert.ok(report.ops >= 8 * 200_000, `ran ${report.ops} operations`)
    // Every kind of call was made, many times, and the waits really parked.
    for (const [kind, count] of Object.entries(report.calls)) assert.ok(count >= 1000, `${kind}: only ${count} calls`)
    assert.ok(report.transfers.adopted > 1000 && report.transfers.received > 10_000, JSON.stringify(report.transfers))
    assert.ok(report.pool.waits > 0, 'some acquireSync parked')
    assert.ok(report.channels.some((c) => c.sendWaits > 0) && report.channels.some((c) => c.recvWaits > 0), 'some sends and receives parked')
  })

  // The checks must be able to fail: the same run with a planted fault reports it.
  for (const [sabotage, expected] of [
    ['corrupt', /checksum mismatch/],
    ['lose-ticket', /never consumed[\s\S]*inUse 1/],
  ]) {
    it(`reports a planted fault (${sabotage})`, { timeout: 30_000 }, async () => {
      const report = await runStress({ threads: 4, ops: 40_000, sabotage })
      assert.equal(report.ok, false, 'the planted fault went unnoticed')
      assert.match(report.violations.join('\n'), expected)
    })
  }
})

describe('service stress (scripts/stress-service.js)', () => {
  it('4 caller threads + the main thread, 3 servers (sync and async), 20,000 calls: every call answered by its own reply or error; stats add up; every slot free once', { timeout: 120_000 }, async () => {
    const report = await runServiceStress({ calls: 20_000 })
    console.log(formatService(report))
    assert.deepEqual(report.violations, [])
    assert.ok(report.errors > 1000, 'handler errors were part of the mix')
  })

  it('reports a planted fault (a server answers with another call\'s header)', { timeout: 60_000 }, async () => {
    const report = await runServiceStress({ calls: 4000, sabotage: 'misroute' })
    assert.equal(report.ok, false, 'the planted fault went unnoticed')
    assert.match(report.violations.join('\n'), /answers another request/)
  })
})

describe('topic stress (scripts/stress-topic.js)', () => {
  for (const onFull of ['block', 'drop-oldest']) {
    it(`${onFull}: 2 publishers, 4 subscribers and 2 churners, 20,000 samples: every sample seen as it must be, stats add up, every slot free once`, { timeout: 120_000 }, async () => {
      const report = await runTopicStress({ samples: 20_000, onFull })
      console.log(formatTopic(report))
      assert.deepEqual(report.violations, [])
      assert.ok(report.subscriptions > 10, 'churners subscribed while samples flowed')
      if (onFull === 'drop-oldest') assert.ok(report.dropped > 0, 'drops were part of the run')
    })
  }

  it('reports a planted fault (a subscriber writes into the samples it shares)', { timeout: 60_000 }, async () => {
    const report = await runTopicStress({ samples: 4000, sabotage: 'write' })
    assert.equal(report.ok, false, 'the planted fault went unnoticed')
    assert.match(report.violations.join('\n'), /corrupt samples/)
  })
})
