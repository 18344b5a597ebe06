'use strict'
// Cluster example: the primary process fills slots of a file-backed pool and calls a service in
// shared memory with them; cluster workers (separate processes) open both by name and serve: they
// compute a checksum of each slot in place and reply with the same slot, the result in its first
// 4 bytes. No payload crosses the IPC pipe: only the pool's name does, once.
//
//   node examples/cluster/main.js [--workers 2] [--jobs 2000] [--kib 256]

const cluster = require('node:cluster')
const path = require('node:path')
const { SharedPool, Service } = require('../..')

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
  const svc = Service.create(pool, { name, capacity: 16 })
  cluster.setupPrimary({ exec: __filename, args: ['--worker', name] })
  const procs = Array.from({ length: workers }, () => cluster.fork())
  const perWorker = new Map()
  for (const w of procs) w.on('message', (m) => perWorker.set(w.process.pid, m.handled))
  const started = performance.now()
  try {
    let next = 0
    let verified = 0
    // Eight calls in flight keep both workers busy while this process fills and checks slots.
    const lane = async () => {
      while (next < jobs) {
        const job = next++
        const lease = await pool.acquire({ timeout: 30_000 })
        const bytes = lease.bytes
        for (let i = 4; i < slotSize; i += 97) bytes[i] = (job + i) & 255
        bytes[4] = job & 255
        const expected = checksum(bytes, slotSize)
        const reply = await svc.call(lease, slotSize, { timeout: 30_000 }) // the same slot, checksummed
        const result = new DataView(reply.bytes.buffer, reply.bytes.byteOffset, 4).getUint32(0, true)
        reply.release()
        if (result !== expected) throw new Error(`job ${job}: checksum mismatch`)
        verified++
      }
    }
    await Promise.all(Array.from({ length: 8 }, lane))
    svc.close() // workers' serve loops return once the queue is drained
    await Promise.all(procs.map((w) => new Promise((resolve) => (w.isDead() ? resolve() : w.once('exit', resolve)))))
    const ms = performance.now() - started
    return { jobs: verified, workers, kib, ms, perWorker: [...perWorker.values()], stats: pool.stats() }
  } finally {
    for (const w of procs) if (!w.isDead()) w.kill()
    svc.unlink()
    pool.unlink()
  }
}

function worker(name) {
  const pool = SharedPool.open(name)
  const svc = Service.open(name, pool)
  const handled = svc.serveSync((lease) => {
    const bytes = lease.bytes
    new DataView(bytes.buffer, bytes.byteOffset, 4).setUint32(0, checksum(bytes, lease.length), true)
    return lease.length // reply in place
  })
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
  try {
    worker(process.argv[process.argv.indexOf('--worker') + 1])
  } catch (err) {
    console.error(err)
    process.exit(1)
  }
}

module.exports = { primary, checksum, file: path.basename(__filename) }
