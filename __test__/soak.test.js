'use strict'
// A short run of the soak (scripts/soak.js, `npm run soak` for the long one): leases streamed
// main ↔ 2 workers through channels and tickets; RSS and heap must not grow, payloads must come
// back intact, and the pool and channels must add up once the traffic is drained.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { runSoak, format } = require('../scripts/soak.js')

describe('soak (scripts/soak.js)', () => {
  it('4 s of main ↔ worker streaming after a 1 s warm-up: no RSS or heap growth, nothing left over', { timeout: 60_000 }, async () => {
    const report = await runSoak({ seconds: 4, warmup: 1 })
    console.log(format(report))
    assert.deepEqual(report.violations, [])
    assert.ok(report.roundTrips > 1000, `only ${report.roundTrips} round trips`)
    assert.ok(report.ticketsIn > 0 && report.ticketsOut > 0, 'tickets travelled both ways')
    assert.equal(report.pool.inUse, 0)
  })

  // 48 MiB planted in 16 KiB pieces after the start snapshot: three times the 16 MiB allowed
  // outside the JS heaps, whatever the throughput (3 072 round trips suffice; the run above needs
  // more than 1 000 in 4 s).
  it('reports a planted leak (16 KiB kept per round trip, 48 MiB in all)', { timeout: 60_000 }, async () => {
    const report = await runSoak({ seconds: 3, warmup: 1, leak: 16 * 1024, leakTotal: 48 * 2 ** 20 })
    assert.equal(report.ok, false, `the planted leak went unnoticed: ${format(report)}`)
    assert.match(report.violations.join('\n'), /(RSS outside the JS heaps|RSS|heap \(after GC\)) grew by/)
  })
})
