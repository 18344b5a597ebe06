'use strict'
// An image-style pipeline on a sabpool: the main thread reads chunks of an "image" straight into
// leased slots of shared memory, N workers transform them in place, the results come back
// through a channel, and the main thread verifies each chunk and releases its slot.
//
//   node examples/pipeline/main.js [--workers N] [--size MiB] [--chunk KiB] [--op invert|blur] [file]
//
// Without a file, a generated 32 MiB grey-scale gradient is the input. With a file, chunks are
// read from it with fs.readSync directly into the slots (no intermediate buffer).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
const { SharedPool, Channel } = require('sabpool')
const transforms = require('./transforms.js')

const HEADER = 4 // u32 chunk index, little-endian, in front of each chunk's pixels

function parseArgs(argv) {
  const o = { workers: Math.max(2, Math.min(4, os.availableParallelism())), sizeMiB: 32, chunkKiB: 256, op: 'invert', file: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--workers') o.workers = Number(argv[++i])
    else if (a === '--size') o.sizeMiB = Number(argv[++i])
    else if (a === '--chunk') o.chunkKiB = Number(argv[++i])
    else if (a === '--op') o.op = argv[++i]
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`)
    else o.file = a
  }
  if (!transforms[o.op]) throw new Error(`--op must be one of ${Object.keys(transforms).join(', ')}`)
  return o
}

/** A deterministic grey-scale "image": a diagonal gradient with a little noise. */
function generateImage(bytes) {
  const width = 4096
  const img = Buffer.allocUnsafe(bytes)
  let seed = 12345
  for (let i = 0; i < bytes; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    img[i] = (((i % width) + Math.floor(i / width)) + (seed >>> 29)) & 0xff
  }
  return img
}

async function run(options) {
  const o = { ...parseArgs([]), ...options }
  const chunkSize = Math.round(o.chunkKiB * 1024)
  let size
  let readChunk // (index, target, offset, length) → bytes of chunk `index` read into target[offset..]
  let fd = null
  if (o.file) {
    fd = fs.openSync(o.file, 'r')
    size = fs.fstatSync(fd).size
    readChunk = (index, target, offset, length) => fs.readSync(fd, target, offset, length, index * chunkSize)
  } else {
    size = Math.round(o.sizeMiB * 1024 * 1024)
    const image = generateImage(size)
    readChunk = (index, target, offset, length) => image.copy(target, offset, index * chunkSize, index * chunkSize + length)
  }
  if (size === 0) throw new Error('nothing to process: the input is empty')
  const chunks = Math.ceil(size / chunkSize)

  // Slots in flight: enough to keep every worker busy with one queued behind it, both ways.
  const slots = o.workers * 4
  const capacity = 2 ** Math.ceil(Math.log2(slots))
  const pool = new SharedPool({ slotSize: HEADER + chunkSize, slots })
  const work = new Channel(pool, { capacity })
  const done = new Channel(pool, { capacity })

  const workers = []
  for (let w = 0; w < o.workers; w++) {
    const worker = new Worker(path.join(__dirname, 'worker.js'), {
      workerData: { pool: pool.handle, work: work.handle, done: done.handle, op: o.op, header: HEADER },
    })
    workers.push(new Promise((resolve, reject) => {
      let chunksDone = 0
      worker.on('message', (m) => (chunksDone = m.chunks))
      worker.on('error', reject)
      worker.on('exit', (code) => (code === 0 ? resolve(chunksDone) : reject(new Error(`worker ${w} exited with code ${code}`))))
    }))
  }

  const started = process.hrtime.bigint()

  // Producer: lease a slot (waits, without blocking the event loop, while all are in flight),
  // read the chunk into it, send it to the workers.
  async function produce() {
    for (let index = 0; index < chunks; index++) {
      const lease = await pool.acquire()
      const length = Math.min(chunkSize, size - index * chunkSize)
      new DataView(lease.bytes.buffer, lease.bytes.byteOffset, HEADER).setUint32(0, index, true)
      const read = readChunk(index, lease.bytes, HEADER, length)
      if (read !== length) throw new Error(`short read at chunk ${index}: ${read} of ${length} bytes`)
      lease.length = HEADER + length
      await work.send(lease)
    }
    work.close() // workers drain what is queued, then their recvSync returns null
  }

  // Consumer: each transformed chunk comes back as a lease; check it against the expected result
  // computed from the original, then release the slot.
  async function consume() {
    const seen = new Uint8Array(chunks)
    const expected = new Uint8Array(chunkSize)
    let checksum = 0
    for (let received = 0; received < chunks; received++) {
      const lease = await done.recv()
      if (lease === null) throw new Error('results channel closed early')
      const index = new DataView(lease.bytes.buffer, lease.bytes.byteOffset, HEADER).getUint32(0, true)
      if (index >= chunks || seen[index]) throw new Error(`unexpected chunk index ${index}`)
      seen[index] = 1
      const length = lease.length - HEADER
      const want = expected.subarray(0, length)
      readChunk(index, expected, 0, length) // the original pixels, then the expected result
      transforms[o.op](want)
      const got = lease.bytes.subarray(HEADER, lease.length)
      if (Buffer.compare(got, want) !== 0) throw new Error(`chunk ${index} is wrong after ${o.op}`)
      for (let i = 0; i < got.length; i += 4093) checksum = (checksum * 31 + got[i]) >>> 0
      lease.release()
    }
    return checksum
  }

  try {
    const [, checksum, perWorker] = await Promise.all([produce(), consume(), Promise.all(workers)])
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    done.close()
    const stats = pool.stats()
    if (stats.inUse !== 0) throw new Error(`${stats.inUse} slots still in use at the end`)
    return { bytes: size, chunks, workers: o.workers, op: o.op, seconds, checksum, perWorker, stats }
  } finally {
    if (fd !== null) fs.closeSync(fd)
  }
}

module.exports = { run }

if (require.main === module) {
  run(parseArgs(process.argv.slice(2))).then(
    (r) => {
      const mib = r.bytes / (1 << 20)
      console.log(`pipeline: ${mib.toFixed(1)} MiB in ${r.chunks} chunks through ${r.workers} workers (${r.op}): all chunks verified`)
      console.log(`  ${(mib / r.seconds).toFixed(0)} MiB/s; chunks per worker: ${r.perWorker.join(', ')}; checksum ${r.checksum.toString(16)}`)
      console.log(`  pool: acquired ${r.stats.acquired}, released ${r.stats.released}, high water ${r.stats.highWater} of ${r.stats.slots} slots`)
    },
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}
