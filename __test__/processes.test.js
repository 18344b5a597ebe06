'use strict'
// Pools and channels in memory-mapped files, shared by real processes: SharedPool.create/open,
// Channel.create/open, names and modes, refusal of files that are not pools, stale and live
// regions of the same name, unlink, futex waits across processes, processes killed with SIGKILL,
// node:cluster, worker_threads attaching by handle, and how the mapping is exposed to JS.
// Child processes run __test__/fixtures/process-child.js (one role per test) and
// process-cluster.js; the payload format is in fixtures/process-common.js.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const { fork, spawn, spawnSync } = require('node:child_process')
const { Worker } = require('node:worker_threads')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Channel, Lease, AbortError } = require('..')
/** The layout version of regions and handles, as the native side defines it. */
const LAYOUT_VERSION = require('../binding.js').protocol().layoutVersion
const { throwsCode, rejectsCode, waitFor, assertConsistent, assertAllFreeOnce, trackChannel, closeChannels } = require('./helpers.js')
const { REPLY, writeMessage, checkMessage } = require('./fixtures/process-common.js')

const FIXTURES = path.join(__dirname, 'fixtures')
const CHILD = path.join(FIXTURES, 'process-child.js')
/** Where regions go without a `dir` option (as index.js decides). */
const DEFAULT_DIR = fs.existsSync('/dev/shm') && fs.statSync('/dev/shm').isDirectory() ? '/dev/shm' : os.tmpdir()
/**
 * Whether this Node exports node_api_create_external_sharedarraybuffer (looked up at run time by
 * the addon): true from Node 26.1 on, false on Node 20; in between it depends on backports (22.23.3
 * and 24.21.0 have it), so undefined: either, as long as every process of this Node agrees.
 */
const HAS_EXTERNAL_SAB = (() => {
  const [major, minor] = process.versions.node.split('.').map(Number)
  if (major > 26 || (major === 26 && minor >= 1)) return true
  if (major <= 20) return false
  return undefined
})()

// ---- per-test resources --------------------------------------------------------------------------

const dirs = new Set()
const extraFiles = new Set()
const children = new Set()

/** A fresh directory for this test's region files, removed after it. */
function tmpDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-test-'))
  dirs.add(dir)
  return dir
}

/** Channel.create, closed after the test (a pending recv() of a failed test would keep the
 * runner alive). */
function createChannel(pool, options) {
  return trackChannel(Channel.create(pool, options))
}

/**
 * Starts process-child.js with `opts` (see its header): forked with IPC, or with `ipc: false`
 * spawned plainly, its stdout JSON lines taken as messages. Messages are queued so that none is
 * missed; `next(type)` waits for one, failing when the child exits first or after `timeout`.
 */
function child(opts, { env, ipc = true, file = CHILD } = {}) {
  const args = [file, JSON.stringify(opts)]
  const options = { stdio: ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'], env: env ?? process.env }
  const proc = ipc ? fork(args[0], args.slice(1), options) : spawn(process.execPath, args, options)
  const queue = []
  const waiting = []
  let stderr = ''
  let exit
  let isClosed = false
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (d) => { stderr += d })
  proc.on('error', (err) => { stderr += `\n[child_process error: ${err.message}]` })
  const onMessage = (msg) => {
    const i = waiting.findIndex((w) => w.type === msg.type)
    if (i >= 0) waiting.splice(i, 1)[0].resolve(msg)
    else queue.push(msg)
  }
  if (ipc) {
    proc.on('message', onMessage)
    proc.stdout.resume()
  } else {
    let buffered = ''
    proc.stdout.setEncoding('utf8')
    proc.stdout.on('data', (d) => {
      buffered += d
      for (let nl; (nl = buffered.indexOf('\n')) >= 0;) {
        onMessage(JSON.parse(buffered.slice(0, nl)))
        buffered = buffered.slice(nl + 1)
      }
    })
  }
  const what = `${path.basename(file)} ${opts.role ?? ''}`
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal }
      resolve(exit)
    })
  })
  // 'close': exited and every stdio stream drained, so every message has been seen.
  const closed = new Promise((resolve) => proc.once('close', () => {
    isClosed = true
    children.delete(handle)
    for (const w of waiting.splice(0)) w.reject(new Error(`${what} exited (${JSON.stringify(exit)}) before '${w.type}'; stderr: ${stderr}`))
    resolve(exit)
  }))
  const handle = {
    proc,
    pid: proc.pid,
    exited,
    closed,
    queue,
    get stderr() { return stderr },
    get alive() { return exit === undefined },
    send: (msg) => proc.send(msg),
    kill: (signal = 'SIGKILL') => proc.kill(signal),
    next(type, timeout = 15000) {
      const i = queue.findIndex((m) => m.type === type)
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0])
      if (isClosed) {
        return Promise.reject(new Error(`${what} already exited (${JSON.stringify(exit)}); stderr: ${stderr}`))
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${type}' from ${what} within ${timeout} ms; stderr: ${stderr}`)), timeout)
        waiting.push({ type, resolve: (m) => { clearTimeout(timer); resolve(m) }, reject: (e) => { clearTimeout(timer); reject(e) } })
      })
    },
    /** Waits until the child exits normally and checks it exited with `code`. */
    async ended(code = 0, timeout = 15000) {
      let timer
      const result = await Promise.race([
        closed,
        new Promise((resolve) => { timer = setTimeout(resolve, timeout, 'timeout') }),
      ])
      clearTimeout(timer)
      assert.notEqual(result, 'timeout', `${what} did not exit within ${timeout} ms; stderr: ${stderr}`)
      assert.deepEqual(result, { code, signal: null }, `${what} exit; stderr: ${stderr}`)
    },
    /** SIGKILL, then waits until it is reaped. */
    async killed() {
      proc.kill('SIGKILL')
      const result = await exited
      assert.equal(result.signal, 'SIGKILL', `${what} was killed, not ${JSON.stringify(result)}`)
    },
  }
  children.add(handle)
  return handle
}

afterEach(async () => {
  // Leftover children first (a failed test may leave them running), then every file.
  await Promise.all([...children].map((c) => {
    if (c.alive) c.proc.kill('SIGKILL')
    return Promise.race([c.closed, sleep(5000, undefined, { ref: false })])
  }))
  children.clear()
  closeChannels()
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  dirs.clear()
  for (const file of extraFiles) fs.rmSync(file, { force: true })
  extraFiles.clear()
})

// ---- assertions ------------------------------------------------------------------------------------

/** Runs `fn`, prefixing the message of what it throws with `label`. */
function labelled(label, fn) {
  try {
    fn()
  } catch (err) {
    err.message = `${label}: ${err.message}`
    throw err
  }
}

function fileMode(file) {
  return fs.statSync(file).mode & 0o777
}

function bufferType(buffer) {
  return Object.prototype.toString.call(buffer).slice(8, -1)
}

/**
 * Drives echo children (process-child.js role 'echo', or process-thread.js): sends `counts[tag]`
 * messages for each tag on `outputs[tag]` and checks every reply arriving on `replies`, in order
 * per tag. Never blocks the event loop: sends without waiting while there is a free slot and
 * room, else awaits the next reply (async recv, woken from the other process). Returns the
 * number of replies.
 */
async function exchange(pool, outputs, replies, counts, { firstSeq = 0 } = {}) {
  const slotSize = pool.slotSize
  const sent = counts.map(() => 0)
  const got = counts.map(() => 0)
  const total = counts.reduce((a, b) => a + b, 0)
  let received = 0
  const onReply = (lease) => {
    const tag = lease.bytes[4] & ~REPLY
    assert.ok(tag < counts.length, `reply with tag ${lease.bytes[4]}`)
    const seq = checkMessage(lease.bytes, lease.length, slotSize, tag | REPLY, firstSeq + got[tag])
    assert.equal(typeof seq, 'number', `reply for ${tag}: ${seq}`)
    got[tag]++
    received++
    lease.release()
  }
  while (received < total) {
    let progress = false
    for (let tag = 0; tag < counts.length; tag++) {
      while (sent[tag] < counts[tag]) {
        const lease = pool.tryAcquire()
        if (lease === null) break
        const length = writeMessage(lease.bytes, slotSize, firstSeq + sent[tag], tag)
        if (!outputs[tag].trySend(lease, length)) {
          lease.release()
          break
        }
        sent[tag]++
        progress = true
      }
    }
    for (let lease; (lease = replies.tryRecv()) !== null;) {
      onReply(lease)
      progress = true
    }
    if (!progress) onReply(await replies.recv({ timeout: 15000 }))
  }
  assert.deepEqual(got, counts)
  return received
}

// ---- tests -------------------------------------------------------------------------------------------

describe('processes: exchange', () => {
  it('fork: two children open the pool and channels by name and echo 100 000 checksummed messages (parent async waits, one child recvSync/sendSync, one child recv/send)', { timeout: 60000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'xchg', slotSize: 64, slots: 128, dir })
    const outputs = [0, 1].map((tag) => createChannel(pool, { name: `fwd${tag}`, capacity: 32, dir }))
    // Smaller than the slots in flight: the children's sends also wait (backpressure).
    const replies = createChannel(pool, { name: 'back', capacity: 16, dir })
    const kids = [0, 1].map((tag) => child({ role: 'echo', dir, pool: 'xchg', in: `fwd${tag}`, out: 'back', tag, sync: tag === 0 }))
    await Promise.all(kids.map((k) => k.next('ready')))

    const N = 50_000 // per child: 100 000 messages out, 100 000 replies back
    assert.equal(await exchange(pool, outputs, replies, [N, N]), 2 * N)
    outputs.forEach((c) => c.close())
    for (const kid of kids) {
      const done = await kid.next('done')
      assert.deepEqual(done.errors, [])
      assert.equal(done.received, N)
      await kid.ended(0)
    }
    for (const c of outputs) {
      const s = c.stats()
      assert.equal(s.sent, N)
      assert.equal(s.received, N)
      assert.equal(s.queued, 0)
    }
    assert.equal(replies.stats().sent, 2 * N)
    assert.equal(replies.stats().received, 2 * N)
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.reclaimed, 0)
    // (The parent also acquires, and releases unsent, a slot whenever a channel turns out full.)
    assert.ok(s.acquired >= 2 * N)
    assertConsistent(s)
    assertAllFreeOnce(pool)
  })

  it('cluster: a cluster primary (itself a child process) creates pool and channel; two cluster workers open them by name, receive and checksum every message, and report over cluster IPC', { timeout: 30000 }, async () => {
    const dir = tmpDir()
    const count = 4000
    const primary = child({ dir, pool: 'cl', channel: 'clch', count, workers: 2 }, { file: path.join(FIXTURES, 'process-cluster.js') })
    const result = await primary.next('result', 25000)
    await primary.ended(0)
    assert.deepEqual(result.exitCodes, [0, 0])
    assert.equal(result.reports.length, 2)
    const seen = new Uint8Array(count)
    let received = 0
    for (const report of result.reports) {
      assert.deepEqual(report.errors, [], `worker ${report.pid}`)
      assert.equal(report.seqs.length, report.received)
      received += report.received
      // One producer: what each consumer gets is in order.
      for (let i = 1; i < report.seqs.length; i++) assert.ok(report.seqs[i] > report.seqs[i - 1], 'in order')
      for (const seq of report.seqs) seen[seq]++
    }
    assert.equal(received, count)
    assert.ok(seen.every((n) => n === 1), 'every message received exactly once')
    assert.equal(result.stats.inUse, 0)
    assert.equal(result.stats.acquired, count)
    assert.equal(result.stats.released, count)
    assertConsistent(result.stats)
    assert.deepEqual(result.unlinked, [true, true])
    assert.deepEqual(fs.readdirSync(dir), [])
  })

  it('worker_threads attach a file-backed pool and channels through their handles and exchange with the main thread', { timeout: 30000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'wt', slotSize: 48, slots: 32, dir })
    const outputs = [0, 1].map((tag) => createChannel(pool, { name: `wt-in${tag}`, capacity: 8, dir }))
    const replies = createChannel(pool, { name: 'wt-out', capacity: 8, dir })
    assert.deepEqual(pool.handle, { kind: 'sabpool.pool', version: LAYOUT_VERSION, name: 'wt', dir })
    assert.deepEqual(outputs[0].handle, { kind: 'sabpool.channel', version: LAYOUT_VERSION, name: 'wt-in0', dir, pool: pool.handle })
    const workers = [0, 1].map((tag) => new Worker(path.join(FIXTURES, 'process-thread.js'), {
      workerData: { pool: pool.handle, in: outputs[tag].handle, out: replies.handle, tag },
    }))
    try {
      const messages = workers.map((w) => {
        const queue = []
        w.on('message', (m) => queue.push(m))
        return queue
      })
      const errors = []
      workers.forEach((w) => w.on('error', (e) => errors.push(e)))
      const exits = workers.map((w) => new Promise((resolve) => w.once('exit', resolve)))
      await waitFor(() => messages.every((q) => q.some((m) => m.type === 'ready')) || errors.length, 'the workers to attach', 10000)
      assert.deepEqual(errors, [])
      for (const q of messages) assert.deepEqual(q[0], { type: 'ready', path: pool.path, name: q === messages[0] ? 'wt-in0' : 'wt-in1' })

      const N = 5000
      assert.equal(await exchange(pool, outputs, replies, [N, N]), 2 * N)
      outputs.forEach((c) => c.close())
      assert.deepEqual(await Promise.all(exits), [0, 0])
      assert.deepEqual(errors, [])
      for (const q of messages) assert.deepEqual(q.find((m) => m.type === 'done'), { type: 'done', received: N, errors: [] })
      assertAllFreeOnce(pool)
      assert.equal(pool.stats().reclaimed, 0)
    } finally {
      await Promise.all(workers.map((w) => w.terminate()))
    }
  })

  it('the default directory: a pool and a channel with a unique random name, opened by a child by name alone, unlinked at the end', { timeout: 30000 }, async () => {
    const name = `sabpool-test-${crypto.randomUUID()}`
    const poolPath = path.join(DEFAULT_DIR, `sabpool.${name}.pool`)
    extraFiles.add(poolPath)
    for (const ch of ['in', 'out']) extraFiles.add(path.join(DEFAULT_DIR, `sabpool.${name}-${ch}.channel`))
    const pool = SharedPool.create({ name, slotSize: 64, slots: 16 })
    assert.equal(pool.name, name)
    assert.equal(pool.path, poolPath)
    assert.deepEqual(pool.handle, { kind: 'sabpool.pool', version: LAYOUT_VERSION, name, dir: DEFAULT_DIR })
    assert.equal(fileMode(poolPath), 0o600)
    const input = createChannel(pool, { name: `${name}-in`, capacity: 8 })
    const output = createChannel(pool, { name: `${name}-out`, capacity: 8 })
    assert.equal(input.path, path.join(DEFAULT_DIR, `sabpool.${name}-in.channel`))
    assert.equal(fileMode(input.path), 0o600)
    const kid = child({ role: 'echo', pool: name, in: `${name}-in`, out: `${name}-out`, tag: 0, sync: false })
    await kid.next('ready')
    assert.equal(await exchange(pool, [input], output, [1000]), 1000)
    input.close()
    assert.equal((await kid.next('done')).received, 1000)
    await kid.ended(0)
    assert.equal(input.unlink(), true)
    assert.equal(output.unlink(), true)
    assert.equal(pool.unlink(), true)
    assert.equal(fs.existsSync(poolPath), false)
    assert.equal(fs.existsSync(input.path), false)
    assertAllFreeOnce(pool)
  })
})

describe('processes: exiting without detaching', () => {
  for (const [how, ending] of [['process.exit()', 'process.exit(0)'], ['an uncaught exception', "throw new Error('boom')"], ['the end of the program', '']]) {
    it(`a child that ends with ${how} while holding leases gives them back at once (no dead-process check needed)`, { timeout: 20000 }, () => {
      const dir = tmpDir()
      const pool = SharedPool.create({ name: 'exit', slotSize: 64, slots: 4, dir })
      const script = `
        const { SharedPool } = require(${JSON.stringify(path.join(__dirname, '..'))})
        const pool = SharedPool.open('exit', { dir: ${JSON.stringify(dir)} })
        pool.tryAcquire(); pool.tryAcquire()
        ${ending}
      `
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 15000 })
      assert.equal(r.error, undefined)
      assert.equal(r.status, ending === '' ? 0 : ending.startsWith('throw') ? 1 : 0, r.stderr)
      const s = pool.stats()
      assert.equal(s.inUse, 0)
      assert.equal(s.acquired, 2)
      assert.equal(s.reclaimed, 2, 'returned by the exiting process itself')
      assert.deepEqual(pool.reclaimDead(), { participants: 0, slots: 0 })
    })
  }
})

describe('processes: killed with SIGKILL', () => {
  it('a child holding k leases is killed -9: reclaimDead() returns { participants: 1, slots: k }, and every slot is acquirable exactly once', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'k9', slotSize: 32, slots: 8, dir })
    const victim = child({ role: 'hold', dir, pool: 'k9', k: 3 })
    const { slots } = await victim.next('held')
    assert.equal(slots.length, 3)
    assert.equal(pool.stats().inUse, 3)
    assert.deepEqual(pool.reclaimDead(), { participants: 0, slots: 0 }, 'a live holder is not reclaimed')
    await victim.killed()

    assert.equal(pool.stats().inUse, 3, 'nothing reclaims before someone looks')
    assert.deepEqual(pool.reclaimDead(), { participants: 1, slots: 3 })
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.acquired, 3)
    assert.equal(s.reclaimed, 3)
    assert.equal(s.released, 0)
    assertConsistent(s)
    assert.deepEqual(pool.reclaimDead(), { participants: 0, slots: 0 }, 'only once')
    assertAllFreeOnce(pool)
  })

  it('(a) another process opening the pool reclaims what a killed child held', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'k9a', slotSize: 32, slots: 8, dir })
    const victim = child({ role: 'hold', dir, pool: 'k9a', k: 5 })
    assert.equal((await victim.next('held')).slots.length, 5)
    await victim.killed()
    assert.equal(pool.stats().inUse, 5)

    const opener = child({ role: 'open', dir, pool: 'k9a' })
    const { stats } = await opener.next('opened')
    await opener.ended(0)
    assert.equal(stats.inUse, 0)
    assert.equal(stats.reclaimed, 5)
    const s = pool.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.reclaimed, 5)
    assertConsistent(s)
    assert.deepEqual(pool.reclaimDead(), { participants: 0, slots: 0 })
    assertAllFreeOnce(pool)
  })

  it('(b) the parent parked in await pool.acquire() while a killed child held every slot gets one (reclaimed on a wait slice)', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'k9b', slotSize: 32, slots: 4, dir })
    const victim = child({ role: 'hold', dir, pool: 'k9b', k: 'all' })
    const { slots } = await victim.next('held')
    assert.deepEqual([...slots].sort(), [0, 1, 2, 3])
    assert.equal(pool.tryAcquire(), null)
    let settled = false
    const pending = pool.acquire({ timeout: 5000 })
    pending.then(() => { settled = true }, () => { settled = true })
    await waitFor(() => pool.stats().waiting === 1, 'the acquire to park')
    await sleep(100)
    assert.equal(settled, false, 'no slot while the holder lives')
    await victim.killed()

    const lease = await pending
    assert.ok(lease instanceof Lease)
    assert.ok(slots.includes(lease.slot))
    const s = pool.stats()
    assert.equal(s.reclaimed, 4)
    assert.equal(s.inUse, 1)
    assert.equal(s.waiting, 0)
    assertConsistent(s)
    assert.deepEqual(pool.reclaimDead(), { participants: 0, slots: 0 }, 'the wait already reclaimed it')
    lease.release()
    assertAllFreeOnce(pool)
  })

  it('(c) a child killed while parked in recvSync does not break later sends and receives; another child parked alongside receives them all', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'k9c', slotSize: 64, slots: 16, dir })
    const input = createChannel(pool, { name: 'k9c-in', capacity: 4, dir })
    const output = createChannel(pool, { name: 'k9c-out', capacity: 4, dir })
    const victim = child({ role: 'park', dir, pool: 'k9c', channel: 'k9c-in', k: 1 })
    await victim.next('parking')
    await waitFor(() => input.stats().recvWaits >= 1, 'the victim to park')
    // A survivor parked in recvSync on the same channel (it opens before the kill, so the kill is
    // found by reclaimDead below, not by its open).
    const survivor = child({ role: 'echo', dir, pool: 'k9c', in: 'k9c-in', out: 'k9c-out', tag: 0, sync: true })
    await survivor.next('ready')
    await sleep(100) // most likely parked by now (the outcome must not depend on it)
    await victim.killed()
    assert.deepEqual(victim.queue.filter((m) => m.type === 'returned'), [])

    assert.deepEqual(pool.reclaimDead(), { participants: 1, slots: 1 })
    assert.equal(await exchange(pool, [input], output, [500]), 500)
    input.close()
    assert.deepEqual(await survivor.next('done'), { type: 'done', received: 500, errors: [] })
    await survivor.ended(0)
    assert.equal(input.stats().queued, 0)
    assertAllFreeOnce(pool)
    assert.equal(pool.stats().reclaimed, 1)
  })
})

describe('processes: killed with SIGKILL while waiting', () => {
  it('(d) children killed while parked in acquireSync and in a pending acquire(): reclaim withdraws their waits, and releases still wake live waiters (this process async, a child blocking)', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'k9d', slotSize: 32, slots: 4, dir })
    const mine = []
    for (let lease; (lease = pool.tryAcquire()) !== null;) mine.push(lease)
    assert.equal(mine.length, 4)
    const victims = ['acquireSync', 'acquire'].map((block) => child({ role: 'park', dir, pool: 'k9d', k: 0, block }))
    await Promise.all(victims.map((v) => v.next('parking')))
    await waitFor(() => pool.stats().waiting === 2, 'both victims to wait')
    await Promise.all(victims.map((v) => v.killed()))
    for (const v of victims) assert.deepEqual(v.queue.filter((m) => m.type === 'returned'), [])
    assert.equal(pool.stats().waiting, 2, 'still registered until someone reclaims')
    assert.deepEqual(pool.reclaimDead(), { participants: 2, slots: 0 })
    assert.equal(pool.stats().waiting, 0, 'their waits were withdrawn')

    // Live waiters are served by releases: this thread (async), then a child parked in acquireSync.
    const pending = pool.acquire({ timeout: 10000 })
    await waitFor(() => pool.stats().waiting === 1, 'the acquire to park')
    const freed = mine.pop()
    freed.release()
    const lease = await pending
    assert.equal(lease.slot, freed.slot)
    const waiter = child({ role: 'park', dir, pool: 'k9d', k: 0, block: 'acquireSync' })
    await waiter.next('parking')
    await waitFor(() => pool.stats().waiting === 1, 'the child to park')
    lease.release()
    assert.deepEqual(await waiter.next('returned'), { type: 'returned', slot: lease.slot })
    await waiter.ended(0)
    mine.forEach((l) => l.release())
    assert.equal(pool.stats().waiting, 0)
    assertAllFreeOnce(pool)
  })

  it('SharedPool.open succeeds on a pool whose participant table is full of killed processes (it reclaims them first)', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    // Room for this process and one more.
    const pool = SharedPool.create({ name: 'full', slotSize: 32, slots: 4, maxParticipants: 2, dir })
    const victim = child({ role: 'hold', dir, pool: 'full', k: 1 })
    await victim.next('held')
    await victim.killed()
    const opener = child({ role: 'open', dir, pool: 'full' })
    const { stats } = await opener.next('opened')
    await opener.ended(0)
    assert.equal(stats.reclaimed, 1)
    assert.equal(stats.inUse, 0)
    assertAllFreeOnce(pool)
  })
})

describe('processes: files that are not pools', () => {
  /** A valid pool file's bytes, and helpers to plant other files next to it. */
  function setup() {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'good', slotSize: 64, slots: 4, dir })
    const bytes = fs.readFileSync(pool.path)
    const plant = (name, data, ext = 'pool') => {
      const file = path.join(dir, `sabpool.${name}.${ext}`)
      fs.writeFileSync(file, data, { mode: 0o600 })
      return file
    }
    return { dir, pool, bytes, plant }
  }

  const BAD = (name, dir, Ctor = Error) => throwsCode(() => SharedPool.open(name, { dir }), Ctor, 'ERR_SABPOOL_BAD_HANDLE')

  it('truncated, empty, short, random, wrong-magic, wrong-version and inconsistent files are refused with ERR_SABPOOL_BAD_HANDLE; create refuses to replace them (ERR_SABPOOL_EXISTS) and leaves them alone', () => {
    const { dir, pool, bytes, plant } = setup()
    const files = new Map()
    files.set('trunc', plant('trunc', bytes.subarray(0, bytes.length - 64)))
    files.set('trunc-header', plant('trunc-header', bytes.subarray(0, 100))) // shorter than a pool header
    files.set('tiny', plant('tiny', bytes.subarray(0, 16))) // shorter than any header
    files.set('empty', plant('empty', Buffer.alloc(0)))
    files.set('random', plant('random', crypto.randomBytes(4096)))
    files.set('zeros', plant('zeros', Buffer.alloc(bytes.length)))
    const version = Buffer.from(bytes)
    version[4] = LAYOUT_VERSION + 1
    files.set('version', plant('version', version))
    const magic = Buffer.from(bytes)
    magic[0] ^= 0xff
    files.set('magic', plant('magic', magic))
    // Slot count raised alone: the header no longer adds up.
    const slotCount = Buffer.from(bytes)
    slotCount.writeUInt32LE(1000, 28)
    files.set('slotcount', plant('slotcount', slotCount))
    // A consistent header of a bigger pool over a file of the small pool's length.
    const big = SharedPool.create({ name: 'big', slotSize: 64, slots: 64, dir })
    const bigBytes = fs.readFileSync(big.path)
    big.unlink()
    assert.ok(bigBytes.length > bytes.length)
    files.set('more-slots', plant('more-slots', bigBytes.subarray(0, bytes.length)))

    for (const [name, file] of files) {
      const before = fs.readFileSync(file)
      assert.throws(() => SharedPool.open(name, { dir }), (err) => {
        assert.equal(err.code, 'ERR_SABPOOL_BAD_HANDLE', `${name}: ${err.message}`)
        assert.ok(err instanceof Error)
        return true
      })
      throwsCode(() => SharedPool.create({ name, dir, slotSize: 64, slots: 4 }), Error, 'ERR_SABPOOL_EXISTS')
      assert.deepEqual(fs.readFileSync(file), before, `${name} untouched`)
    }
    // Nothing was left behind (no temporary files), and the good pool still works.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['sabpool.good.pool', ...[...files.keys()].map((n) => `sabpool.${n}.pool`)].sort())
    const other = SharedPool.open('good', { dir })
    const lease = other.tryAcquire()
    assert.equal(pool.stats().inUse, 1)
    lease.release()
    assertAllFreeOnce(pool)
  })

  it('a symbolic link to a valid pool file and a FIFO are refused with ERR_SABPOOL_BAD_HANDLE', () => {
    const { dir, pool } = setup()
    fs.symlinkSync(pool.path, path.join(dir, 'sabpool.link.pool'))
    BAD('link', dir)
    throwsCode(() => SharedPool.create({ name: 'link', dir, slotSize: 64, slots: 4 }), Error, 'ERR_SABPOOL_EXISTS')
    assert.ok(fs.lstatSync(path.join(dir, 'sabpool.link.pool')).isSymbolicLink(), 'the link is left alone')
    // A symlink to a channel file as a channel, too.
    const channel = createChannel(pool, { name: 'ch', capacity: 4, dir })
    fs.symlinkSync(channel.path, path.join(dir, 'sabpool.chlink.channel'))
    throwsCode(() => Channel.open('chlink', pool, { dir }), Error, 'ERR_SABPOOL_BAD_HANDLE')
    // A FIFO (opening it must not block).
    const fifo = path.join(dir, 'sabpool.fifo.pool')
    const made = spawnSync('mkfifo', [fifo])
    if (made.status === 0) BAD('fifo', dir)
    assertAllFreeOnce(pool)
  })

  it('a directory with the pool\'s file name is refused with ERR_SABPOOL_BAD_HANDLE', () => {
    const { dir } = setup()
    fs.mkdirSync(path.join(dir, 'sabpool.adir.pool'))
    throwsCode(() => SharedPool.create({ name: 'adir', dir, slotSize: 64, slots: 4 }), Error, 'ERR_SABPOOL_EXISTS')
    assert.ok(fs.statSync(path.join(dir, 'sabpool.adir.pool')).isDirectory())
    BAD('adir', dir)
  })

  it('a channel file opened as a pool, a pool file opened as a channel, and a channel of another pool are refused with ERR_SABPOOL_BAD_HANDLE', () => {
    const { dir, pool, bytes, plant } = setup()
    const channel = createChannel(pool, { name: 'ch', capacity: 4, dir })
    plant('chaspool', fs.readFileSync(channel.path))
    BAD('chaspool', dir)
    plant('poolasch', bytes, 'channel')
    throwsCode(() => Channel.open('poolasch', pool, { dir }), Error, 'ERR_SABPOOL_BAD_HANDLE')
    const other = SharedPool.create({ name: 'other', slotSize: 64, slots: 4, dir })
    throwsCode(() => Channel.open('ch', other, { dir }), Error, 'ERR_SABPOOL_BAD_HANDLE')
    // Creating a channel over a pool file (of another kind) is refused too.
    throwsCode(() => createChannel(pool, { name: 'poolasch', capacity: 4, dir }), Error, 'ERR_SABPOOL_EXISTS')
    assert.deepEqual(fs.readFileSync(path.join(dir, 'sabpool.poolasch.channel')), bytes)
    // In-process pools and channels have no file.
    const inProcess = new SharedPool({ slotSize: 16, slots: 2 })
    throwsCode(() => Channel.create(inProcess, { name: 'x', capacity: 4, dir }), TypeError, 'ERR_SABPOOL_NOT_FILE')
    throwsCode(() => Channel.open('ch', inProcess, { dir }), TypeError, 'ERR_SABPOOL_NOT_FILE')
    throwsCode(() => inProcess.unlink(), Error, 'ERR_SABPOOL_NOT_FILE')
    throwsCode(() => new Channel(inProcess, { capacity: 4 }).unlink(), Error, 'ERR_SABPOOL_NOT_FILE')
    assert.equal(inProcess.path, undefined)
    assert.equal(inProcess.name, undefined)
    assert.equal(fs.existsSync(path.join(dir, 'sabpool.x.channel')), false)
  })

  it('SharedPool.open and Channel.open of a missing name fail with ERR_SABPOOL_NOT_FOUND', () => {
    const { dir, pool } = setup()
    throwsCode(() => SharedPool.open('missing', { dir }), Error, 'ERR_SABPOOL_NOT_FOUND')
    throwsCode(() => Channel.open('missing', pool, { dir }), Error, 'ERR_SABPOOL_NOT_FOUND')
    throwsCode(() => SharedPool.attach({ kind: 'sabpool.pool', version: LAYOUT_VERSION, name: 'missing', dir }), Error, 'ERR_SABPOOL_NOT_FOUND')
  })
})

describe('processes: names and modes', () => {
  const BAD_NAMES = ['', '.', '..', '../x', 'a/b', '/abs', '.hidden', 'a b', 'a\0b', 'é', 'x'.repeat(201)]
  const NOT_STRINGS = [42, null, {}, ['a'], Symbol('s')]

  it('bad names are refused with TypeError ERR_SABPOOL_BAD_NAME (non-strings: ERR_INVALID_ARG_TYPE) by create, open and Channel.create/open, and nothing is created', () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'ok', slotSize: 16, slots: 2, dir })
    for (const name of BAD_NAMES) {
      labelled(JSON.stringify(name.slice(0, 12)), () => {
        throwsCode(() => SharedPool.create({ name, dir, slotSize: 16, slots: 2 }), TypeError, 'ERR_SABPOOL_BAD_NAME')
        throwsCode(() => SharedPool.open(name, { dir }), TypeError, 'ERR_SABPOOL_BAD_NAME')
        throwsCode(() => Channel.create(pool, { name, capacity: 4, dir }), TypeError, 'ERR_SABPOOL_BAD_NAME')
        throwsCode(() => Channel.open(name, pool, { dir }), TypeError, 'ERR_SABPOOL_BAD_NAME')
      })
    }
    for (const name of NOT_STRINGS) {
      throwsCode(() => SharedPool.create({ name, dir, slotSize: 16, slots: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => SharedPool.open(name, { dir }), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => Channel.create(pool, { name, capacity: 4, dir }), TypeError, 'ERR_INVALID_ARG_TYPE')
      throwsCode(() => Channel.open(name, pool, { dir }), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    throwsCode(() => SharedPool.create({ dir, slotSize: 16, slots: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    assert.deepEqual(fs.readdirSync(dir), ['sabpool.ok.pool'])

    // Odd but valid names work.
    for (const name of ['a.b-c_D9', '-', 'x..y', 'x'.repeat(150)]) {
      const p = SharedPool.create({ name, dir, slotSize: 16, slots: 2 })
      assert.equal(p.path, path.join(dir, `sabpool.${name}.pool`))
      assert.equal(SharedPool.open(name, { dir }).id, p.id)
      assert.equal(p.unlink(), true)
    }
    assert.deepEqual(fs.readdirSync(dir), ['sabpool.ok.pool'])
  })

  it('the longest allowed name (200 characters) works for SharedPool.create/open and Channel.create/open', () => {
    const dir = tmpDir()
    const name = 'x'.repeat(200)
    const pool = SharedPool.create({ name, dir, slotSize: 16, slots: 2 })
    assert.equal(pool.path, path.join(dir, `sabpool.${name}.pool`))
    assert.equal(SharedPool.open(name, { dir }).id, pool.id)
    const channel = createChannel(pool, { name, capacity: 2, dir })
    assert.equal(channel.path, path.join(dir, `sabpool.${name}.channel`))
    assert.equal(Channel.open(name, pool, { dir }).stats().capacity, 2)
    assert.equal(channel.unlink(), true)
    assert.equal(pool.unlink(), true)
    assert.deepEqual(fs.readdirSync(dir), [])
  })

  it('file modes: exactly 0o600 by default whatever the umask, exactly the mode asked for otherwise; modes without owner read+write or out of range are RangeError ERR_OUT_OF_RANGE', () => {
    const dir = tmpDir()
    const old = process.umask(0o077)
    try {
      const pool = SharedPool.create({ name: 'm-default', slotSize: 16, slots: 2, dir })
      assert.equal(fileMode(pool.path), 0o600)
      const channel = createChannel(pool, { name: 'm-default', capacity: 2, dir })
      assert.equal(fileMode(channel.path), 0o600)
      const shared = SharedPool.create({ name: 'm-640', slotSize: 16, slots: 2, dir, mode: 0o640 })
      assert.equal(fileMode(shared.path), 0o640, 'not reduced by the umask')
      assert.equal(fileMode(createChannel(shared, { name: 'm-666', capacity: 2, dir, mode: 0o666 }).path), 0o666)
      assert.equal(fileMode(SharedPool.create({ name: 'm-777', slotSize: 16, slots: 2, dir, mode: 0o777 }).path), 0o777)
    } finally {
      process.umask(old)
    }
    const before = fs.readdirSync(dir).sort()
    const pool = SharedPool.open('m-default', { dir })
    for (const mode of [0o400, 0o200, 0o000, 0o1600, 0o4777, -1, 1.5, 0o700 + 0.5, Infinity, NaN]) {
      throwsCode(() => SharedPool.create({ name: 'm-bad', slotSize: 16, slots: 2, dir, mode }), RangeError, 'ERR_OUT_OF_RANGE')
      throwsCode(() => Channel.create(pool, { name: 'm-bad', capacity: 2, dir, mode }), RangeError, 'ERR_OUT_OF_RANGE')
    }
    for (const mode of ['0o600', null, 600n]) {
      throwsCode(() => SharedPool.create({ name: 'm-bad', slotSize: 16, slots: 2, dir, mode }), TypeError, 'ERR_INVALID_ARG_TYPE')
    }
    assert.deepEqual(fs.readdirSync(dir).sort(), before, 'nothing created')
  })
})

describe('processes: existing and stale names', () => {
  it('creating a name in use by a live process fails with ERR_SABPOOL_EXISTS (this process, or a live child); a pool or channel whose processes were all killed -9 is opened, then replaced by create', { timeout: 30000 }, async () => {
    const dir = tmpDir()
    const mine = SharedPool.create({ name: 'live', slotSize: 32, slots: 4, dir })
    throwsCode(() => SharedPool.create({ name: 'live', slotSize: 32, slots: 4, dir }), Error, 'ERR_SABPOOL_EXISTS')
    createChannel(mine, { name: 'live', capacity: 4, dir })
    throwsCode(() => Channel.create(mine, { name: 'live', capacity: 4, dir }), Error, 'ERR_SABPOOL_EXISTS')

    // A live child's pool.
    const creator = child({ role: 'hold', dir, pool: 'kid', create: { slotSize: 32, slots: 4 }, k: 1 })
    const { id: kidId } = await creator.next('held')
    throwsCode(() => SharedPool.create({ name: 'kid', slotSize: 32, slots: 4, dir }), Error, 'ERR_SABPOOL_EXISTS')
    const opened = SharedPool.open('kid', { dir })
    assert.equal(opened.id, kidId)
    assert.equal(opened.stats().inUse, 1)
    opened.detach()

    // Killed -9: open works on the stale file (and reclaims), create refuses while this process
    // has it open, and replaces it once it does not.
    await creator.killed()
    const stale = SharedPool.open('kid', { dir })
    assert.equal(stale.id, kidId)
    let s = stale.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.reclaimed, 1)
    stale.tryAcquire().release()
    throwsCode(() => SharedPool.create({ name: 'kid', slotSize: 32, slots: 4, dir }), Error, 'ERR_SABPOOL_EXISTS')
    stale.detach()
    const fresh = SharedPool.create({ name: 'kid', slotSize: 16, slots: 3, dir })
    assert.notEqual(fresh.id, kidId)
    assert.equal(fresh.slots, 3)
    assert.deepEqual(fresh.stats(), { slots: 3, inUse: 0, free: 3, highWater: 0, acquired: 0, released: 0, reclaimed: 0, waits: 0, waiting: 0 })
    assert.equal(SharedPool.open('kid', { dir }).id, fresh.id)

    // Killed -9 and replaced directly by create, without opening first; its channel too.
    const creator2 = child({ role: 'hold', dir, pool: 'kid2', create: { slotSize: 32, slots: 4 }, k: 2 })
    const { id: kid2Id } = await creator2.next('held')
    await creator2.killed()
    const fresh2 = SharedPool.create({ name: 'kid2', slotSize: 32, slots: 4, dir })
    assert.notEqual(fresh2.id, kid2Id)
    s = fresh2.stats()
    assert.equal(s.inUse, 0)
    assert.equal(s.acquired, 0)
    assert.equal(s.reclaimed, 0)
    assertAllFreeOnce(fresh2)

    // Creators that exited without unlinking, with leases unreleased: normally (it detached) and
    // with process.exit() (its participant entry is left to a dead process). Both are replaced.
    for (const exit of ['natural', 'process.exit']) {
      const maker = child({ role: 'make', dir, pool: `made-${exit}`, slotSize: 32, slots: 4, k: 2, exit })
      const { id } = await maker.next('made')
      await maker.ended(0)
      assert.ok(fs.existsSync(path.join(dir, `sabpool.made-${exit}.pool`)))
      const replacing = SharedPool.create({ name: `made-${exit}`, slotSize: 32, slots: 4, dir })
      assert.notEqual(replacing.id, id, exit)
      assert.equal(replacing.stats().acquired, 0, exit)
      assertAllFreeOnce(replacing)
    }

    // A channel file left over from an earlier pool is replaced by create for the new one.
    const leftover = createChannel(mine, { name: 'shared-name', capacity: 4, dir })
    const replaced = createChannel(fresh2, { name: 'shared-name', capacity: 8, dir })
    assert.equal(replaced.stats().capacity, 8)
    assert.equal(Channel.open('shared-name', fresh2, { dir }).stats().capacity, 8)
    throwsCode(() => Channel.open('shared-name', mine, { dir }), Error, 'ERR_SABPOOL_BAD_HANDLE')
    // The replaced channel keeps working for whoever has it open.
    const lease = mine.tryAcquire()
    assert.ok(leftover.trySend(lease, 3))
    const back = leftover.tryRecv()
    assert.equal(back.length, 3)
    back.release()
  })
})

describe('processes: unlink', () => {
  it('unlink() is true then false; the files are gone; a child keeps exchanging; open fails with ERR_SABPOOL_NOT_FOUND; create anew works while the old one is in use and the two are distinct', { timeout: 30000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'u', slotSize: 64, slots: 16, dir })
    const input = createChannel(pool, { name: 'u-in', capacity: 4, dir })
    const output = createChannel(pool, { name: 'u-out', capacity: 4, dir })
    const kid = child({ role: 'echo', dir, pool: 'u', in: 'u-in', out: 'u-out', tag: 0, sync: false })
    await kid.next('ready')
    assert.equal(await exchange(pool, [input], output, [200]), 200)

    const poolPath = pool.path
    assert.equal(pool.unlink(), true)
    assert.equal(pool.unlink(), false)
    assert.equal(input.unlink(), true)
    assert.equal(input.unlink(), false)
    assert.equal(output.unlink(), true)
    assert.equal(fs.existsSync(poolPath), false)
    assert.deepEqual(fs.readdirSync(dir), [])
    assert.equal(pool.path, poolPath)
    assert.equal(pool.name, 'u')

    // Still exchanging through the unlinked mapping.
    assert.equal(await exchange(pool, [input], output, [200], { firstSeq: 200 }), 200)
    throwsCode(() => SharedPool.open('u', { dir }), Error, 'ERR_SABPOOL_NOT_FOUND')
    throwsCode(() => Channel.open('u-in', pool, { dir }), Error, 'ERR_SABPOOL_NOT_FOUND')

    // The name is free: a new, distinct pool.
    const again = SharedPool.create({ name: 'u', slotSize: 32, slots: 4, dir })
    assert.notEqual(again.id, pool.id)
    assert.equal(again.path, poolPath)
    const held = [again.tryAcquire(), again.tryAcquire()]
    assert.equal(again.stats().inUse, 2)
    assert.equal(pool.stats().inUse, 0, 'the old pool does not see the new one\'s leases')
    const opener = child({ role: 'open', dir, pool: 'u' })
    const { stats } = await opener.next('opened')
    await opener.ended(0)
    assert.equal(stats.slots, 4, 'the name now opens the new pool')
    assert.equal(stats.inUse, 2)
    const newChannel = createChannel(again, { name: 'u-in', capacity: 2, dir })
    assert.equal(newChannel.stats().capacity, 2)
    // The old pool cannot unlink the new one's name.
    assert.equal(pool.unlink(), false)
    assert.equal(input.unlink(), false)
    assert.equal(fs.existsSync(poolPath), true)

    // The old pair still works.
    assert.equal(await exchange(pool, [input], output, [200], { firstSeq: 400 }), 200)
    input.close()
    assert.deepEqual(await kid.next('done'), { type: 'done', received: 600, errors: [] })
    await kid.ended(0)
    assertAllFreeOnce(pool)
    held.forEach((l) => l.release())
    assertAllFreeOnce(again)
    assert.equal(newChannel.unlink(), true)
    assert.equal(again.unlink(), true)
    assert.deepEqual(fs.readdirSync(dir), [])
  })
})

describe('processes: async waits on the main thread', () => {
  it('pending async waits do not occupy libuv pool threads: with UV_THREADPOOL_SIZE=1 and 8 pending recv() plus a pending acquire(), fs and crypto still complete', { timeout: 30000 }, () => {
    const dir = tmpDir()
    const script = `
      const { SharedPool, Channel } = require(${JSON.stringify(path.join(__dirname, '..'))})
      const fs = require('node:fs'), crypto = require('node:crypto'), util = require('node:util')
      const pool = SharedPool.create({ name: 'uv', slotSize: 64, slots: 1, dir: ${JSON.stringify(dir)} })
      const held = pool.tryAcquire()
      const channels = Array.from({ length: 8 }, (_, i) => Channel.create(pool, { name: 'uv' + i, capacity: 2, dir: ${JSON.stringify(dir)} }))
      const pending = channels.map((c) => c.recv({ timeout: 20000 }))
      const acquired = pool.acquire({ timeout: 20000 })
      ;(async () => {
        await new Promise((r) => setTimeout(r, 100)) // let every wait park
        const text = await fs.promises.readFile(__filename, 'utf8').catch(() => 'read')
        await util.promisify(crypto.pbkdf2)('a', 'b', 1, 16, 'sha256')
        channels.forEach((c) => c.close())
        const got = await Promise.all(pending)
        held.release()
        ;(await acquired).release()
        console.log('threadpool free', text.length > 0, got.every((l) => l === null))
      })().catch((e) => { console.error(e); process.exit(1) })
    `
    const r = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
      encoding: 'utf8',
      timeout: 25000,
    })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /threadpool free true true/)
  })

  it('await channel.recv() does not block the event loop and is woken by a send from another process', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'a', slotSize: 64, slots: 4, dir })
    const channel = createChannel(pool, { name: 'a', capacity: 2, dir })
    const sender = child({ role: 'send', dir, pool: 'a', channel: 'a', count: 1, tag: 3, delay: 100 })
    await sender.next('ready')
    const pending = channel.recv({ timeout: 15000 })
    // The sender only starts once this thread has run a timer three times while recv() is pending.
    let ticks = 0
    const interval = setInterval(() => {
      if (++ticks === 3) sender.send('go')
    }, 5)
    try {
      const lease = await pending
      assert.ok(ticks >= 3)
      assert.equal(checkMessage(lease.bytes, lease.length, pool.slotSize, 3, 0), 0)
      lease.release()
    } finally {
      clearInterval(interval)
    }
    await sender.next('sent')
    await sender.ended(0)
    assert.equal(pool.stats().waiting, 0)
    assertAllFreeOnce(pool)
  })

  it('timeouts and AbortSignals reject pending recv/acquire/send with ERR_SABPOOL_TIMEOUT and AbortError; the pool and channel work afterwards', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 't', slotSize: 64, slots: 4, dir })
    const channel = createChannel(pool, { name: 't', capacity: 2, dir })
    await rejectsCode(channel.recv({ timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const ac = new AbortController()
    const aborted = channel.recv({ signal: ac.signal, timeout: 10000 })
    setTimeout(() => ac.abort(), 30)
    await rejectsCode(aborted, AbortError, 'ABORT_ERR')
    await rejectsCode(channel.recv({ signal: AbortSignal.abort() }), AbortError, 'ABORT_ERR')

    // A child holds every slot: acquire() waits, then times out or is aborted.
    const holder = child({ role: 'hold', dir, pool: 't', k: 'all' })
    assert.equal((await holder.next('held')).slots.length, 4)
    await rejectsCode(pool.acquire({ timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const ac2 = new AbortController()
    const abortedAcquire = pool.acquire({ signal: ac2.signal, timeout: 10000 })
    await waitFor(() => pool.stats().waiting === 1, 'the acquire to park')
    ac2.abort()
    await rejectsCode(abortedAcquire, AbortError, 'ABORT_ERR')
    assert.equal(pool.stats().waiting, 0)
    await holder.killed()
    assert.deepEqual(pool.reclaimDead(), { participants: 1, slots: 4 })

    // A full channel: send() waits, then times out or is aborted; the lease stays ours.
    const queued = [pool.tryAcquire(), pool.tryAcquire()]
    queued.forEach((l) => assert.ok(channel.trySend(l, 1)))
    const lease = pool.tryAcquire()
    await rejectsCode(channel.send(lease, 1, { timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT')
    const ac3 = new AbortController()
    const abortedSend = channel.send(lease, 1, { signal: ac3.signal })
    setTimeout(() => ac3.abort(), 30)
    await rejectsCode(abortedSend, AbortError, 'ABORT_ERR')
    assert.equal(lease.owned, true)

    // Both still work: drain, and a send from another process wakes a recv.
    for (let l; (l = channel.tryRecv()) !== null;) l.release()
    lease.release()
    const sender = child({ role: 'send', dir, pool: 't', channel: 't', count: 2, tag: 1, delay: 0 })
    await sender.next('ready')
    const first = channel.recv({ timeout: 15000 })
    sender.send('go')
    for (const [i, p] of [first, channel.recv({ timeout: 15000 })].entries()) {
      const got = await p
      assert.equal(checkMessage(got.bytes, got.length, pool.slotSize, 1, i), i)
      got.release()
    }
    await sender.ended(0)
    assertAllFreeOnce(pool)
  })

  it('a pending recv() alone keeps a child process alive until the parent sends; then it exits 0', { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'ka', slotSize: 64, slots: 2, dir })
    const channel = createChannel(pool, { name: 'ka', capacity: 2, dir })
    const kid = child({ role: 'keepalive', dir, pool: 'ka', channel: 'ka', tag: 7 }, { ipc: false })
    await kid.next('pending')
    await sleep(200)
    assert.equal(kid.alive, true, `exited with nothing but a pending recv(); stderr: ${kid.stderr}`)
    const lease = pool.tryAcquire()
    assert.ok(channel.trySend(lease, writeMessage(lease.bytes, pool.slotSize, 0, 7)))
    assert.deepEqual(await kid.next('received'), { type: 'received', seq: 0 })
    await kid.ended(0)
    assert.equal(channel.stats().received, 1)
    assertAllFreeOnce(pool)
  })
})

describe('processes: the mapping as seen from JS', () => {
  it(`lease.bytes.buffer is a SharedArrayBuffer on Node >= 26.1 and an ArrayBuffer on Node 20 or with SABPOOL_NO_EXTERNAL_SAB=1 (this is Node ${process.versions.node}); both work across processes`, { timeout: 20000 }, async () => {
    const dir = tmpDir()
    const pool = SharedPool.create({ name: 'buf', slotSize: 64, slots: 4, dir })
    const channel = createChannel(pool, { name: 'buf', capacity: 4, dir })
    const mine = pool.tryAcquire()
    const here = bufferType(mine.bytes.buffer)
    mine.release()
    const forcedHere = process.env.SABPOOL_NO_EXTERNAL_SAB !== undefined
    if (forcedHere) assert.equal(here, 'ArrayBuffer')
    else if (HAS_EXTERNAL_SAB !== undefined) assert.equal(here, HAS_EXTERNAL_SAB ? 'SharedArrayBuffer' : 'ArrayBuffer')
    else assert.ok(here === 'SharedArrayBuffer' || here === 'ArrayBuffer', here)

    const withSab = { ...process.env }
    delete withSab.SABPOOL_NO_EXTERNAL_SAB
    // Without the variable: as HAS_EXTERNAL_SAB says, or (in between) as this process found.
    const native = HAS_EXTERNAL_SAB === undefined
      ? (forcedHere ? undefined : here)
      : (HAS_EXTERNAL_SAB ? 'SharedArrayBuffer' : 'ArrayBuffer')
    const runs = [
      { env: withSab, tag: 1, expected: native },
      { env: { ...process.env, SABPOOL_NO_EXTERNAL_SAB: '1' }, tag: 2, expected: 'ArrayBuffer' },
    ]
    for (const { env, tag, expected } of runs) {
      const kid = child({ role: 'buftype', dir, pool: 'buf', channel: 'buf', tag }, { env })
      const report = await kid.next('buftype')
      await kid.ended(0)
      assert.equal(report.node, process.versions.node)
      if (expected === undefined) assert.ok(report.buffer === 'SharedArrayBuffer' || report.buffer === 'ArrayBuffer', report.buffer)
      else assert.equal(report.buffer, expected, `SABPOOL_NO_EXTERNAL_SAB=${env.SABPOOL_NO_EXTERNAL_SAB}`)
      assert.equal(report.byteLength, fs.statSync(pool.path).size, 'the buffer spans the whole mapping')
      // What the child wrote through its buffer is what this process reads through its own.
      const lease = channel.tryRecv()
      assert.ok(lease !== null)
      assert.equal(checkMessage(lease.bytes, lease.length, pool.slotSize, tag, 0), 0)
      lease.release()
    }
    assertAllFreeOnce(pool)
  })
})
