// Smoke test through `import { ... } from 'sabpool'`: as roundtrip.cjs, with ES modules on both
// threads. Prints one JSON line.
import { Worker } from 'node:worker_threads'
import { createRequire } from 'node:module'
import { once } from 'node:events'
import sabpool, { SharedPool, Channel, Lease, AbortError } from 'sabpool'

const pool = new SharedPool({ slotSize: 4096, slots: 4 })
const back = new Channel(pool, { capacity: 4 })
const worker = new Worker(new URL('./roundtrip-worker.mjs', import.meta.url), { workerData: { back: back.handle } })
// Listen for 'exit' from the start: the worker may exit before the main thread gets there.
const exited = once(worker, 'exit')
await once(worker, 'message')

const lease = pool.acquireSync()
for (let i = 0; i < 1000; i++) lease.bytes[i] = (i * 7) & 0xff
lease.length = 1000
worker.postMessage(lease.handoff())

const got = await back.recv({ timeout: 10_000 })
if (!(got instanceof Lease)) throw new Error('no lease came back')
for (let i = 0; i < got.length; i++) {
  if (got.bytes[i] !== (~(i * 7) & 0xff)) throw new Error(`byte ${i} is ${got.bytes[i]}`)
}
got.release()
const [exitCode] = await exited
const stats = pool.stats()
if (stats.inUse !== 0) throw new Error(`${stats.inUse} slots still in use`)

const require = createRequire(import.meta.url)
const cjs = require('sabpool')
console.log(JSON.stringify({
  ok: true,
  kind: 'esm',
  length: got.length,
  exitCode,
  acquired: stats.acquired,
  sameClassViaRequire: cjs.SharedPool === SharedPool && cjs.Channel === Channel && cjs.Lease === Lease && cjs.AbortError === AbortError,
  defaultExport: sabpool.SharedPool === SharedPool,
  resolved: import.meta.resolve('sabpool'),
}))
