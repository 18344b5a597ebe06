'use strict'
// Fault injection, short version (the long one: npm run stress -- --kill): child processes
// working on a file-backed pool and channels are killed with SIGKILL at random points of acquire,
// release, send, receive, adopt, reclaim and create; then, with only this process alive, every
// slot must be free exactly once, every channel must accept and deliver 2 × capacity leases, and
// close() must drain to null. See scripts/faults.js for the run and every check.
//
// `npm run stress -- --kill` is the long run (1 000 kills). SABPOOL_FAULT_SEED=<n> replays a
// plan (the kill moments, not the exact interleavings).

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { runFaults } = require('../scripts/faults.js')

const SEED = process.env.SABPOOL_FAULT_SEED === undefined ? undefined : Number(process.env.SABPOOL_FAULT_SEED)

describe('fault injection: SIGKILL at random points', { skip: process.platform === 'win32' && 'no file-backed pools on Windows' }, () => {
  it('after ~40 kills, with nobody else alive: every slot free exactly once, every channel delivers 2 × capacity and drains to null after close()', { timeout: 60_000 }, async (t) => {
    const report = await runFaults({ kills: 40, seconds: 15, checkTimeout: 3000, ...(SEED === undefined ? {} : { seed: SEED }) })
    t.diagnostic(`seed ${report.seed}: ${report.kills} kills in ${report.seconds.toFixed(1)} s (${Object.entries(report.byFocus).map(([k, v]) => `${k} ${v}`).join(', ')})`)
    assert.ok(report.kills > 0, `no child was killed (seed ${report.seed})`)
    assert.ok(report.ok, `fault injection, seed ${report.seed} (replay: SABPOOL_FAULT_SEED=${report.seed}), ${report.kills} kills: ` +
      `${report.violations.length} violation(s); first: ${report.violations[0]}${report.violations.length > 1 ? `\nthen:\n  ${report.violations.slice(1).join('\n  ')}` : ''}`)
  })
})
