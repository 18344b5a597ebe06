'use strict'
// A file-backed channel whose senders and receivers are killed with SIGKILL over and over, each
// time at a random moment when one of the victim's threads is in the middle of trySend or
// tryRecv. With nobody else alive afterwards, a parked receive must get past what they left in
// the ring, reclaimDead() must make every slot free exactly once, the channel must accept and
// deliver 2 × capacity leases in order, and after close() receivers must drain to null. (A ring
// whose positions are claimed before their cells are written fails here: a sender killed
// between the claim and the write leaves a hole receivers never get past, a receiver killed
// between its claim and giving the cell back leaves a cell senders never get past, and slots
// killed between their transitions are lost.)
// The children are __test__/fixtures/ch-death-child.js.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool, Channel } = require('..')

const CHILD = path.join(__dirname, 'fixtures', 'ch-death-child.js')
const KILLS = 30
/** How long a child loops before it may be killed. */
const WARM_MS = 40
const NAME = 'death'
/** The threads of a child of each kind: senders spin on a mostly full ring, receivers are slower. */
const ROLES = {
  mixed: ['sender', 'sender', 'receiver'],
  senders: ['sender', 'sender', 'sender'],
}
const SLOTS = 16
const CAPACITY = 8

const dirs = new Set()
const children = new Set()

afterEach(async () => {
  for (const c of children) c.kill('SIGKILL')
  await Promise.all([...children].map((c) => c.gone))
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  dirs.clear()
})

/** Starts a child of `kind` (see ROLES); `ready` resolves once all its threads loop. */
function start(dir, kind, seat, board) {
  const opts = { dir, pool: NAME, channel: NAME, roles: ROLES[kind], seat, board }
  const proc = spawn(process.execPath, [CHILD, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  proc.stderr.setEncoding('utf8')
  proc.stderr.on('data', (d) => { stderr += d })
  let exited = false
  const gone = new Promise((resolve) => proc.once('exit', (code, signal) => { exited = true; resolve({ code, signal }) }))
  // Signals go by pid, not proc.kill(): Deno's proc.kill() sends only the first signal of a child
  // (denoland/deno#36643), so after a SIGSTOP neither SIGCONT nor SIGKILL reached it and the test
  // waited forever for its exit. Nothing is sent once it has exited (its pid may be reused).
  const kill = (signal) => {
    if (exited) return
    try {
      process.kill(proc.pid, signal)
    } catch (error) {
      if (error.code !== 'ESRCH') throw error // exited, not yet reaped
    }
  }
  const handle = { kind, seat, proc, gone, readyAt: undefined, kill, get stderr() { return stderr } }
  children.add(handle)
  gone.then(() => children.delete(handle))
  handle.ready = new Promise((resolve, reject) => {
    proc.stdout.setEncoding('utf8')
    proc.stdout.on('data', (d) => {
      if (d.includes('ready') && handle.readyAt === undefined) {
        handle.readyAt = performance.now()
        resolve(handle)
      }
    })
    gone.then((exit) => reject(new Error(`child ${kind} exited ${JSON.stringify(exit)} before looping: ${stderr}`)))
  })
  handle.ready.catch(() => {})
  return handle
}

/** Whether every thread of process `pid` is stopped (Linux: /proc; elsewhere assume so). */
function stopped(pid) {
  let tasks
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`)
  } catch {
    return true
  }
  return tasks.every((t) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8')
      return /^[tTXZ]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))
    } catch {
      return true
    }
  })
}

/**
 * Kills `victim` with SIGKILL at a moment when one of its threads is inside trySend or tryRecv:
 * stops it (SIGSTOP) at a random moment, looks at its threads' flags in the scoreboard, and
 * either kills it there or lets it go on (SIGCONT) and tries again a little later (after 40 tries
 * it is killed wherever it is).
 */
async function killMidCall(victim, board, random) {
  for (let tries = 0; tries < 40; tries++) {
    victim.kill('SIGSTOP')
    for (let i = 0; i < 200 && !stopped(victim.proc.pid); i++) await sleep(0)
    let inside = false
    for (let t = 0; t < 4; t++) inside ||= Atomics.load(board, victim.seat * 4 + t) === 1
    if (inside) break
    victim.kill('SIGCONT')
    await sleep(random(3))
  }
  victim.kill('SIGKILL')
  const exit = await victim.gone
  for (let t = 0; t < 4; t++) Atomics.store(board, victim.seat * 4 + t, 0)
  return exit
}

/** Every slot free exactly once: tryAcquire hands out `slots` distinct slots, then null. */
function assertAllFreeOnce(pool, what) {
  const leases = []
  for (let lease; (lease = pool.tryAcquire()) !== null;) leases.push(lease)
  const slots = leases.map((l) => l.slot).sort((a, b) => a - b)
  leases.forEach((l) => l.release())
  assert.deepEqual(slots, [...Array(pool.slots).keys()], `${what}: every slot free exactly once`)
  const s = pool.stats()
  assert.equal(s.inUse, 0, `${what}: nothing in use`)
}

describe('channel: participants killed in the middle of sends and receives', () => {
  it(`survives ${KILLS} SIGKILLs of senders and receivers in the middle of trySend and tryRecv: afterwards every slot is free exactly once, 2 × capacity leases go through in order and close() drains to null`, { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-chdeath-'))
    dirs.add(dir)
    const pool = SharedPool.create({ name: NAME, dir, slotSize: 64, slots: SLOTS, maxParticipants: 64 })
    const channel = Channel.create(pool, { name: NAME, dir, capacity: CAPACITY })

    // Children of two kinds (see ROLES), each a few threads looping over the ring. Each victim
    // is replaced by a new child of its kind (in its seat of the scoreboard) while the others go
    // on; a child is only killed once it has looped for a while (its code is warm).
    const boardLease = pool.tryAcquire()
    const board = new Int32Array(boardLease.bytes.buffer, boardLease.bytes.byteOffset, 16)
    const boardOffset = boardLease.bytes.byteOffset
    const live = ['mixed', 'mixed', 'senders'].map((kind, seat) => start(dir, kind, seat, boardOffset))
    await Promise.all(live.map((c) => c.ready))
    let seed = 0x2545f491
    const random = (n) => {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5
      return (seed >>> 0) % n
    }
    for (let kill = 0; kill < KILLS; kill++) {
      await sleep(1 + random(10))
      let ready
      while ((ready = live.filter((c) => c.readyAt !== undefined && performance.now() - c.readyAt > WARM_MS)).length === 0) {
        await sleep(5)
      }
      const victim = ready[random(ready.length)]
      const exit = await killMidCall(victim, board, random)
      assert.equal(exit.signal, 'SIGKILL', `a child failed on its own: ${JSON.stringify(exit)} ${victim.stderr}`)
      live[victim.seat] = start(dir, victim.kind, victim.seat, boardOffset)
    }
    for (const c of live) c.kill('SIGKILL')
    await Promise.all(live.map((c) => c.gone))
    boardLease.release()

    // Nobody else is alive now. Drain what was sent without reclaiming first: a receive parked
    // behind the cell of a process killed in the middle of a send (or receive) must get past it
    // by itself (its wait slices look for dead processes), then time out on the empty ring.
    const drained = []
    for (;;) {
      let lease
      try {
        lease = await channel.recv({ timeout: 500 })
      } catch (err) {
        assert.equal(err.code, 'ERR_SABPOOL_TIMEOUT')
        break
      }
      assert.notEqual(lease, null, 'not closed')
      assert.equal(lease.bytes[0], 0x5a, 'a drained lease carries what its sender wrote')
      drained.push(lease.slot)
      lease.release()
    }
    assert.equal(new Set(drained).size, drained.length, 'no slot is delivered twice')
    assert.ok(drained.length <= CAPACITY)
    // Then reclaim what the dead held: every slot is free exactly once.
    pool.reclaimDead()
    assert.equal(channel.tryRecv(), null)
    assertAllFreeOnce(pool, 'after draining and reclaimDead')

    // The channel accepts and delivers 2 × capacity leases, in order.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < CAPACITY; i++) {
        const lease = pool.tryAcquire()
        assert.notEqual(lease, null, 'a free slot')
        lease.bytes[0] = round * CAPACITY + i
        assert.equal(channel.trySend(lease, 1), true, `send ${i} of round ${round} fits`)
      }
      for (let i = 0; i < CAPACITY; i++) {
        const lease = await channel.recv({ timeout: 2000 })
        assert.notEqual(lease, null)
        assert.equal(lease.bytes[0], round * CAPACITY + i, 'delivered in order')
        lease.release()
      }
    }
    assertAllFreeOnce(pool, 'after 2 × capacity round trips')

    // One more queued lease, then close: it is drained, then null.
    const last = pool.tryAcquire()
    last.bytes[0] = 0xee
    assert.equal(channel.trySend(last, 1), true)
    channel.close()
    const got = await channel.recv({ timeout: 2000 })
    assert.equal(got.bytes[0], 0xee)
    got.release()
    assert.equal(await channel.recv({ timeout: 2000 }), null, 'closed and drained')
    assert.equal(channel.tryRecv(), null)
    assertAllFreeOnce(pool, 'after close')
    channel.detach()
    pool.detach()
  })
})
