'use strict'
// Single-thread cost of sabpool's hot calls, in ns per operation (median of rounds, p10–p90).
// Usage: node bench/micro.js [--rounds 15] [--ops 1000000]
const { SharedPool, Channel } = require('..')

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : fallback
}
const ROUNDS = arg('rounds', 15)
const OPS = arg('ops', 1_000_000)

function measure(label, body, ops = OPS) {
  body(ops / 10) // warm-up: let the JIT settle
  const samples = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint()
    body(ops)
    samples.push(Number(process.hrtime.bigint() - t0) / ops)
  }
  samples.sort((a, b) => a - b)
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]
  console.log(`${label.padEnd(38)} ${q(0.5).toFixed(1).padStart(7)} ns   (p10 ${q(0.1).toFixed(1)}, p90 ${q(0.9).toFixed(1)})`)
}

const pool = new SharedPool({ slotSize: 4096, slots: 64 })
const channel = new Channel(pool, { capacity: 64 })

measure('tryAcquire + release', (n) => {
  for (let i = 0; i < n; i++) pool.tryAcquire().release()
})
measure('tryAcquire + handoff + adopt + release', (n) => {
  for (let i = 0; i < n; i++) pool.adopt(pool.tryAcquire().handoff()).release()
})
measure('tryAcquire + trySend + tryRecv + release', (n) => {
  for (let i = 0; i < n; i++) {
    channel.trySend(pool.tryAcquire())
    channel.tryRecv().release()
  }
})
measure('pool.stats()', (n) => {
  for (let i = 0; i < n; i++) pool.stats()
}, OPS / 100)
