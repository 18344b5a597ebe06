'use strict'
// piscina + sabpool: tasks carry leases instead of buffers.
//
// The pool is created here and its handle given to piscina as workerData; each piscina worker
// attaches it once (worker.js, module level). runLease hands the filled slot to a worker through
// piscina.run (only a ticket of four numbers is posted) and resolves with the reply slot, which
// this thread then owns; the payload is never structured-cloned, either way. A failing task
// rejects, and its slot goes back to the pool.
//
//   node examples/piscina/main.js [--tasks N] [--threads N] [--kib KiB]

const os = require('node:os')
const path = require('node:path')
const { Piscina } = require('piscina')
const { SharedPool } = require('sabpool')
const { runLease } = require('sabpool/piscina')

function parseArgs(argv) {
  const o = { tasks: 200, threads: Math.max(2, Math.min(4, os.availableParallelism())), kib: 256 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--tasks') o.tasks = Number(argv[++i])
    else if (a === '--threads') o.threads = Number(argv[++i])
    else if (a === '--kib') o.kib = Number(argv[++i])
    else throw new Error(`unknown option ${a}`)
  }
  return o
}

/** Fills `bytes` with a pattern that depends on `seed`. */
function fill(bytes, seed) {
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + seed * 7) & 0xff
}

async function run(options = {}) {
  const o = { ...parseArgs([]), ...options }
  const slotSize = o.kib * 1024
  // Two slots per thread keep every thread busy while the main thread fills and checks.
  // maxParticipants: the main thread and one attachment per piscina thread are all it takes.
  const pool = new SharedPool({ slotSize, slots: o.threads * 2, maxParticipants: o.maxParticipants })
  const piscina = new Piscina({
    filename: path.join(__dirname, 'worker.js'),
    workerData: { pool: pool.handle },
    minThreads: o.threads,
    maxThreads: o.threads,
    idleTimeout: 1000,
  })

  const started = process.hrtime.bigint()
  let verified = 0
  try {
    await Promise.all(Array.from({ length: o.tasks }, async (_, t) => {
      const lease = await pool.acquire() // waits while every slot is in flight
      fill(lease.bytes, t)
      const length = slotSize - (t % 7) // travels with the lease
      const back = await runLease(piscina, pool, lease, { task: { op: 'invert' }, length })
      try {
        if (back.length !== length) throw new Error(`task ${t}: length ${back.length}`)
        const bytes = back.bytes
        for (let i = 0; i < back.length; i++) {
          if (bytes[i] !== (255 - ((i * 31 + t * 7) & 0xff))) throw new Error(`task ${t}: byte ${i} is ${bytes[i]}`)
        }
        verified++
      } finally {
        back.release()
      }
    }))

    // A task that throws in the worker: the run rejects with its error and the pool has every
    // slot back.
    const lease = await pool.acquire()
    let failed = null
    await runLease(piscina, pool, lease, { task: { op: 'fail' } }).catch((err) => (failed = err))
    if (!failed) throw new Error('the failing task did not fail')

    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const stats = pool.stats()
    if (stats.inUse !== 0) throw new Error(`${stats.inUse} slots still in use`)
    return { tasks: o.tasks, verified, threads: o.threads, slotSize, seconds, failedTask: failed.message, stats, completed: piscina.completed }
  } finally {
    await piscina.destroy()
    pool.detach()
  }
}

module.exports = { run }

if (require.main === module) {
  run(parseArgs(process.argv.slice(2))).then(
    (r) => {
      console.log(`piscina: ${r.verified}/${r.tasks} tasks of ${r.slotSize >> 10} KiB on ${r.threads} threads: all verified (${(r.tasks / r.seconds).toFixed(0)} tasks/s)`)
      console.log(`  failing task rejected with "${r.failedTask}"; its slot went back to the pool`)
      console.log(`  pool: acquired ${r.stats.acquired}, released ${r.stats.released}, in use ${r.stats.inUse}`)
    },
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}
