#!/usr/bin/env node
'use strict'
// Multi-threaded stress of one Topic (npm run stress:topic).
//
//   node scripts/stress-topic.js [--samples N] [--publishers P] [--subscribers S] [--churners C]
//                                [--slots N] [--slot-size B] [--capacity K] [--history H]
//                                [--on-full block|drop-oldest] [--seed X] [--json]
//
// P publisher threads (default 2; publishSync and await publish) publish N samples in total
// (default 200 000), each in its own stream numbered from 0; S subscriber threads (default 4:
// recvSync and await recv, some keeping a few samples before releasing them in random order) read
// the whole time; C churner threads (default 2) subscribe, take a few samples and unsubscribe, over
// and over (the subscribe/publish race and unsubscribe with samples held). Everyone sleeps at
// random moments. Payloads carry their stream, sequence number, length and a checksum.
//
// At the end, with every thread gone, it checks that:
//   - block: every subscriber saw every sample of every stream exactly once, in order, intact;
//     drop-oldest: in order, intact, none twice, and what it missed is what it was told it dropped;
//   - churners saw intact samples, in order and none twice within each subscription;
//   - the topic's stats add up (published, delivered, dropped, no stray, no live subscriber);
//   - the pool: inUse 0, and every slot free exactly once.
// It exits 1 on any violation. `runTopicStress(options)` is the same run as a function (used by
// __test__/stress.test.js).

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool, Topic } = require('..')
const { parseFlags, n, verdictLines, main } = require('./cli-common.js')

const DEFAULTS = {
  samples: 200_000, publishers: 2, subscribers: 4, churners: 2, slots: 48, slotSize: 256,
  capacity: 8, history: 2, onFull: 'block', seed: 0x70b1c, sabotage: null,
}

function parseArgs(argv) {
  return {
    ...DEFAULTS,
    ...parseFlags(argv, {
      '--samples': 'samples', '--publishers': 'publishers', '--subscribers': 'subscribers', '--churners': 'churners',
      '--slots': 'slots', '--slot-size': 'slotSize', '--capacity': 'capacity', '--history': 'history',
      '--on-full': 'onFull', '--seed': 'seed', '--sabotage': 'sabotage',
    }, { strings: ['onFull', 'sabotage'] }),
  }
}

async function runTopicStress(options = {}) {
  const o = { ...DEFAULTS, ...options }
  const started = performance.now()
  const pool = new SharedPool({ slotSize: o.slotSize, slots: o.slots })
  const topic = new Topic(pool, { capacity: o.capacity, history: o.history, onFull: o.onFull, maxSubscribers: o.subscribers + o.churners })
  const file = path.join(__dirname, 'stress-topic-worker.js')
  const threads = []
  const start = (workerData) => {
    const worker = new Worker(file, { workerData: { topic: topic.handle, ...workerData } })
    const ready = new Promise((resolve) => worker.once('message', resolve))
    const exited = new Promise((resolve) => worker.once('exit', resolve))
    const done = new Promise((resolve, reject) => {
      worker.on('message', (m) => { if (m.type === 'done') resolve(m) })
      worker.once('error', reject)
      worker.once('exit', (code) => reject(new Error(`a stress thread exited (${code}) before reporting`)))
    })
    const thread = { worker, ready, done, exited }
    threads.push(thread)
    return thread
  }
  const perPublisher = Math.floor(o.samples / o.publishers)
  const subs = []
  for (let i = 0; i < o.subscribers; i++) {
    subs.push(start({ role: 'subscriber', how: i % 2 ? 'async' : 'sync', hold: i % 3 === 2 ? 3 : 0, seed: o.seed + 100 + i, sabotage: i === 0 ? o.sabotage : null }))
  }
  const churners = []
  for (let i = 0; i < o.churners; i++) churners.push(start({ role: 'churner', rounds: 1e9, seed: o.seed + 200 + i }))
  const pubs = []
  for (let i = 0; i < o.publishers; i++) pubs.push(start({ role: 'publisher', stream: i, count: perPublisher, how: i % 2 ? 'async' : 'sync', seed: o.seed + i }))
  await Promise.all(threads.map((t) => t.ready))
  for (const t of threads) t.worker.postMessage('go')
  const published = await Promise.all(pubs.map((t) => t.done))
  topic.close()
  const subResults = await Promise.all(subs.map((t) => t.done))
  const churnResults = await Promise.all(churners.map((t) => t.done))
  await Promise.all(threads.map((t) => t.exited))

  const violations = []
  const total = perPublisher * o.publishers
  subResults.forEach((r, i) => {
    const t = r.tally
    const where = `subscriber ${i}`
    if (t.bad > 0) violations.push(`${where}: ${t.bad} corrupt samples`)
    if (t.duplicates > 0) violations.push(`${where}: ${t.duplicates} samples twice`)
    if (t.backwards > 0) violations.push(`${where}: ${t.backwards} samples out of order`)
    const firsts = Object.values(t.first)
    const lead = firsts.reduce((a, f) => a + f, 0) // samples of a stream before the first seen
    if (o.onFull === 'block') {
      if (t.got !== total) violations.push(`${where}: got ${t.got} samples, expected ${total}`)
      if (t.missing + lead !== 0) violations.push(`${where}: ${t.missing + lead} samples missing`)
      if (r.dropped !== 0) violations.push(`${where}: ${r.dropped} dropped in block mode`)
    } else if (t.got + r.dropped !== total) {
      violations.push(`${where}: got ${t.got} + dropped ${r.dropped} !== published ${total}`)
    }
  })
  churnResults.forEach((r, i) => {
    const t = r.tally
    if (t.bad + t.duplicates + t.backwards > 0) violations.push(`churner ${i}: ${t.bad} corrupt, ${t.duplicates} twice, ${t.backwards} out of order`)
  })
  const reached = published.reduce((a, p) => a + p.reached, 0)
  const s = topic.stats()
  if (s.published !== total) violations.push(`stats.published ${s.published}, expected ${total}`)
  const taken = subResults.reduce((a, r) => a + r.tally.got, 0) + churnResults.reduce((a, r) => a + r.tally.got, 0)
  if (s.delivered !== taken) violations.push(`stats.delivered ${s.delivered}, the threads took ${taken}`)
  const droppedSeen = subResults.reduce((a, r) => a + r.dropped, 0)
  if (s.dropped < droppedSeen) violations.push(`stats.dropped ${s.dropped} < the subscribers' ${droppedSeen}`)
  if (s.stray !== 0) violations.push(`stats.stray ${s.stray}`)
  if (s.subscribers !== 0) violations.push(`${s.subscribers} subscribers still live`)
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
    samples: total,
    deliveries: taken,
    reached,
    subscriptions: churnResults.reduce((a, r) => a + r.subscriptions, 0),
    dropped: s.dropped,
    samplesPerSecond: total / seconds,
    seconds,
    options: o,
  }
}

function format(r) {
  return [
    `topic stress (${r.options.onFull}): ${n(r.samples)} samples by ${r.options.publishers} publishers to ${r.options.subscribers} subscribers ` +
    `and ${r.options.churners} churners (${n(r.subscriptions)} short subscriptions), ${n(r.deliveries)} deliveries, ${n(r.dropped)} dropped, ` +
    `in ${r.seconds.toFixed(1)} s (${n(r.samplesPerSecond)} samples/s)`,
    ...verdictLines(r),
  ].join('\n')
}

module.exports = { runTopicStress, format }

if (require.main === module) main({ file: __filename, parseArgs, run: runTopicStress, format })
