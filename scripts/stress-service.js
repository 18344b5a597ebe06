#!/usr/bin/env node
'use strict'
// Multi-threaded stress of one Service (npm run stress:service).
//
//   node scripts/stress-service.js [--calls N] [--callers C] [--servers S] [--slots N]
//                                  [--slot-size B] [--capacity K] [--seed X] [--json]
//
// S server threads (default 3) serve one service, half of them with serveSync and half with
// serve({ concurrency: 4 }); C caller threads (default 4) make N calls in total (default 10^6)
// with callSync, and the main thread makes calls with `await call()` at the same time (8 in
// flight). Each request carries its caller, a per-caller sequence number, a random payload and a
// checksum; the handler answers in place, with another lease, or with an error whose code names
// the call, chosen by the request. Every reply is checked against its own request.
//
// At the end, with every thread gone, it checks that:
//   - every call got its own reply (or its own error), none twice, none corrupted;
//   - the service's stats add up: calls === replies + errors, nothing in flight, lost, late or
//     stray, no server counted;
//   - the pool: inUse 0, and every slot free exactly once.
// It exits 1 on any violation. `runServiceStress(options)` is the same run as a function (used by
// __test__/stress.test.js).

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool, Service } = require('..')
const { parseFlags, n, verdictLines, main } = require('./cli-common.js')
const W = require('./stress-service-worker.js')

const DEFAULTS = { calls: 1e6, callers: 4, servers: 3, slots: 32, slotSize: 512, capacity: 16, seed: 0x5eed, sabotage: null }

function parseArgs(argv) {
  return {
    ...DEFAULTS,
    ...parseFlags(argv, {
      '--calls': 'calls', '--callers': 'callers', '--servers': 'servers', '--slots': 'slots',
      '--slot-size': 'slotSize', '--capacity': 'capacity', '--seed': 'seed', '--sabotage': 'sabotage',
    }, { strings: ['sabotage'] }),
  }
}

async function runServiceStress(options = {}) {
  const o = { ...DEFAULTS, ...options }
  if (o.slotSize < W.HEADER + 8) throw new RangeError(`slot-size must be at least ${W.HEADER + 8}`)
  const started = performance.now()
  const pool = new SharedPool({ slotSize: o.slotSize, slots: o.slots })
  const svc = new Service(pool, { capacity: o.capacity })
  const file = path.join(__dirname, 'stress-service-worker.js')
  const start = (workerData) => {
    const worker = new Worker(file, { workerData: { pool: pool.handle, svc: svc.handle, sabotage: o.sabotage, ...workerData } })
    const done = new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
      worker.once('exit', (code) => reject(new Error(`a stress thread exited (${code}) before reporting`)))
    })
    return done
  }
  const servers = []
  for (let i = 0; i < o.servers; i++) servers.push(start({ role: i % 2 === 0 ? 'serveSync' : 'serve' }))
  const mainShare = Math.floor(o.calls / (o.callers + 1))
  const perCaller = Math.floor((o.calls - mainShare) / o.callers)
  const callers = []
  for (let i = 0; i < o.callers; i++) callers.push(start({ role: 'call', caller: i + 1, calls: perCaller, seed: o.seed + i }))
  // The main thread: 8 lanes of `await call()`.
  const mine = W.newTally()
  let next = 0
  const lane = async () => {
    while (next < mainShare) {
      const seq = next++
      const lease = await pool.acquire()
      const op = W.stamp(lease, 0, seq, o.seed)
      let reply
      let error
      try {
        reply = await svc.call(lease)
      } catch (e) {
        error = e
      }
      W.checkAnswer(mine, 0, seq, op, o.seed, reply, error)
    }
  }
  await Promise.all(Array.from({ length: 8 }, lane))
  const callerTallies = await Promise.all(callers)
  svc.close()
  const served = await Promise.all(servers)
  const violations = []
  const all = [mine, ...callerTallies]
  const total = all.reduce((a, t) => a + t.ok + t.errors, 0)
  const bad = all.reduce((a, t) => a + t.bad, 0)
  for (const t of all) violations.push(...t.problems.slice(0, 5))
  if (bad > 0) violations.push(`${bad} replies did not answer their own request`)
  const expected = mainShare + perCaller * o.callers
  if (total !== expected) violations.push(`${total} calls answered, expected ${expected}`)
  const s = svc.stats()
  if (s.calls !== expected) violations.push(`stats.calls ${s.calls}, expected ${expected}`)
  if (s.calls !== s.replies + s.errors) violations.push(`stats: calls ${s.calls} !== replies ${s.replies} + errors ${s.errors}`)
  for (const k of ['inFlight', 'lost', 'late', 'stray', 'servers', 'timeouts', 'aborts']) if (s[k] !== 0) violations.push(`stats.${k} is ${s[k]}`)
  const servedTotal = served.reduce((a, x) => a + x.served, 0)
  if (servedTotal !== expected) violations.push(`servers served ${servedTotal}, expected ${expected}`)
  const ps = pool.stats()
  if (ps.inUse !== 0) violations.push(`pool inUse ${ps.inUse}`)
  const leases = []
  for (let l; (l = pool.tryAcquire()) !== null;) leases.push(l)
  if (new Set(leases.map((l) => l.slot)).size !== o.slots || leases.length !== o.slots) violations.push(`draining the pool gave ${leases.length} slots, expected ${o.slots} distinct`)
  for (const l of leases) l.release()
  const seconds = (performance.now() - started) / 1000
  return {
    ok: violations.length === 0,
    violations,
    calls: expected,
    callsPerSecond: expected / seconds,
    seconds,
    errors: all.reduce((a, t) => a + t.errors, 0),
    stats: s,
    options: o,
  }
}

function format(r) {
  return [
    `service stress: ${n(r.calls)} calls (${n(r.errors)} answered with errors) by ${r.options.callers} caller threads + the main thread, ${r.options.servers} servers, in ${r.seconds.toFixed(1)} s (${n(r.callsPerSecond)} calls/s)`,
    ...verdictLines(r),
  ].join('\n')
}

module.exports = { runServiceStress, format }

if (require.main === module) main({ file: __filename, parseArgs, run: runServiceStress, format })
