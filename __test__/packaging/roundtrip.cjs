'use strict'
// Smoke test through `require('sabpool')`: the main thread acquires a slot, fills it, hands it
// to a worker with a ticket; the worker adopts it, checks and inverts the bytes in place and
// hands it back through a Channel; the main thread adopts it, checks, releases. Prints one JSON
// line. Used by __test__/esm.test.js (in the repo) and __test__/package.test.js (installed).

const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool, Channel, Lease, AbortError } = require('sabpool')

async function main() {
  const pool = new SharedPool({ slotSize: 4096, slots: 4 })
  const back = new Channel(pool, { capacity: 4 })
  const worker = new Worker(path.join(__dirname, 'roundtrip-worker.cjs'), { workerData: { back: back.handle } })
  // Listen for 'exit' from the start: the worker may exit before the main thread gets there.
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const ready = new Promise((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  await ready

  const lease = pool.acquireSync()
  for (let i = 0; i < 1000; i++) lease.bytes[i] = i & 0xff
  lease.length = 1000
  worker.postMessage(lease.handoff())

  const got = await back.recv({ timeout: 10_000 })
  if (!(got instanceof Lease)) throw new Error('no lease came back')
  for (let i = 0; i < got.length; i++) {
    if (got.bytes[i] !== (~i & 0xff)) throw new Error(`byte ${i} is ${got.bytes[i]}`)
  }
  got.release()
  const exitCode = await exited
  const stats = pool.stats()
  if (stats.inUse !== 0) throw new Error(`${stats.inUse} slots still in use`)
  const viaImport = await import('sabpool')
  console.log(JSON.stringify({
    ok: true,
    kind: 'cjs',
    length: got.length,
    exitCode,
    acquired: stats.acquired,
    sameClassViaImport: viaImport.SharedPool === SharedPool && viaImport.AbortError === AbortError,
    resolved: require.resolve('sabpool'),
    // Where the addon came from: the built file in a checkout, the platform package when installed.
    bindingSource: require(path.join(path.dirname(require.resolve('sabpool')), 'lib', 'native.js')).BINDING_SOURCE,
  }))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
