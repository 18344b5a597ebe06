'use strict'
// Cluster example: the primary process fills slots of a file-backed pool and sends them through a
// channel in shared memory; cluster workers (separate processes) open both by name, compute a
// checksum of each slot in place and send the slot back with the result in its first 4 bytes.
// No payload crosses the IPC pipe: only the pool and channel names do, once.
//
//   node examples/cluster/main.js [--workers 2] [--jobs 2000] [--kib 256]

const cluster = require('node:cluster')
const path = require('node:path')
const { SharedPool, Channel } = require('../..')

/** FNV-1a over `bytes[4..length]`, skipping the result word at the front. */
function checksum(bytes, length) {
  let h = 0x811c9dc5
  for (let i = 4; i < length; i++) h = Math.imul(h ^ bytes[i], 0x01000193)
  return h >>> 0
}

async function primary({ workers = 2, jobs = 2000, kib = 256 } = {}) {
  const name = `cluster-example-${process.pid}`
  const slotSize = kib * 1024
  const pool = SharedPool.create({ name, slotSize, slots: 16 })
  const todo = Channel.create(pool, { name: `${name}-todo`, capacity: 16 })
  const done = Channel.create(pool, { name: `${name}-done`, capacity: 16 })
  cluster.setupPrimary({ exec: __filename, args: ['--worker', name] })
  const procs = Array.from({ length: workers }, () => cluster.fork())
  const perWorker = new Map()
  for (const w of procs) w.on('message', (m) => perWorker.set(w.process.pid, m.handled))
  const started = performance.now()
  try {
    const expected = new Map()
    let sent = 0
    let verified = 0
    const producer = (async () => {
      for (; sent < jobs; sent++) {
        const lease = await pool.acquire({ timeout: 30_000 })
        const bytes = lease.bytes
        for (let i = 4; i < slotSize; i += 97) bytes[i] = (sent + i) & 255
        bytes[4] = sent & 255
        expected.set(lease.slot, checksum(bytes, slotSize))
        await todo.send(lease, slotSize, { timeout: 30_000 })
      }
      todo.close() // workers drain what is queued, then see null and exit
    })()
    while (verified < jobs) {
      const lease = await done.recv({ timeout: 30_000 })
      const result = new DataView(lease.bytes.buffer, lease.bytes.byteOffset, 4).getUint32(0, true)
      if (result !== expected.get(lease.slot)) throw new Error(`slot ${lease.slot}: checksum mismatch`)
      lease.release()
      verified++
    }
    await producer
    await Promise.all(procs.map((w) => new Promise((resolve) => (w.isDead() ? resolve() : w.once('exit', resolve)))))
    const ms = performance.now() - started
    return { jobs: verified, workers, kib, ms, perWorker: [...perWorker.values()], stats: pool.stats() }
  } finally {
    for (const w of procs) if (!w.isDead()) w.kill()
    done.unlink()
    todo.unlink()
    pool.unlink()
  }
}

async function worker(name) {
  const pool = SharedPool.open(name)
  const todo = Channel.open(`${name}-todo`, pool)
  const done = Channel.open(`${name}-done`, pool)
  let handled = 0
  for await (const lease of todo) {
    const bytes = lease.bytes
    new DataView(bytes.buffer, bytes.byteOffset, 4).setUint32(0, checksum(bytes, lease.length), true)
    await done.send(lease)
    handled++
  }
  process.send({ handled }, () => process.exit(0))
}

function option(flag, fallback) {
  const i = process.argv.indexOf(flag)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

if (cluster.isPrimary && require.main === module) {
  primary({ workers: option('--workers', 2), jobs: option('--jobs', 2000), kib: option('--kib', 256) })
    .then((r) => {
      console.log(`cluster: ${r.jobs} jobs of ${r.kib} KiB through ${r.workers} worker processes in ${r.ms.toFixed(0)} ms ` +
        `(${r.perWorker.join(' + ')}): all checksums verified, ${r.stats.inUse} slots in use`)
    })
    .catch((err) => {
      console.error(err)
      process.exitCode = 1
    })
} else if (cluster.isWorker) {
  worker(process.argv[process.argv.indexOf('--worker') + 1]).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { primary, checksum, file: path.basename(__filename) }
