#!/usr/bin/env node
'use strict'
// Fault injection: processes killed with SIGKILL at random points (npm run stress -- --kill).
//
//   node scripts/faults.js [--kills N] [--seconds S] [--concurrency C] [--threads T]
//                          [--min-delay MS] [--max-delay MS] [--focus OP] [--slots N]
//                          [--capacity K] [--seed X] [--check-timeout MS] [--json]
//   (also: node scripts/stress.js --kill [the same options])
//
// A file-backed pool and two channels (capacities K and 2K) are created in a private temporary
// directory. C child processes at a time (default 1) are forked running scripts/fault-child.js:
// in each, the main thread and T worker threads (default 6) open the pool and the channels and
// loop over acquire, release, send, receive, handoff/adopt, reclaim (reclaimDead, open) and
// create (of a second, spare pool), one of them (the child's "focus", cycled, or always OP with
// --focus) chosen most of the time. Several threads per child make one kill interrupt several
// operations: the threads not on a CPU are frozen wherever the scheduler preempted them. Each
// child is killed with SIGKILL --min-delay (default 0) plus a random 0..--max-delay (default 30)
// ms after all its threads are attached (half of the 'reclaim' children instead 20..420 ms after
// the fork, while their opens reclaim the participants of the child killed before them); then
// the next one is forked, until N kills (default 1000) or S seconds (default 1200), whichever
// comes first. The plan (foci, delays, the children's RNG seeds) comes from a seeded RNG: --seed
// reproduces it (the interleavings themselves are up to the scheduler).
//
// Then, with every child gone, it checks (each check bounded by a timeout, so a wedged region
// gives a violation, never a hang):
//   - no child failed with an unexpected error (only full/empty answers, ERR_SABPOOL_TIMEOUT of
//     short blocking waits and ERR_SABPOOL_EXISTS of a live spare pool are expected);
//   - reclaimDead() recovers the dead, and every participant entry is free again (maxParticipants
//     attachments can be opened);
//   - every channel drains: tryRecv() until empty leaves nothing queued;
//   - tickets of handoffs interrupted by a kill (journaled before the handoff) can be adopted;
//   - every slot is free exactly once: stats() inUse 0, free === slots, nobody waiting, and
//     acquiring every slot gives each slot index once;
//   - every channel accepts and delivers 2 × capacity leases, in order, full at capacity;
//   - after close() every channel answers null (tryRecv and recv) instead of waiting;
//   - the spare pool's name can be created again (a stale file is replaced) and works.
// It prints the seed, what ran, and every violation (the first one first); exit code 1 on any.
//
// `runFaults(options)` is the same run as a function (used by __test__/faults.test.js).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')
const { randomInt } = require('node:crypto')
const { SharedPool, Channel, _internal } = require('..')
const { parseFlags, n, verdictLines, main } = require('./cli-common.js')

const CHILD = path.join(__dirname, 'fault-child.js')
const OPS = ['acquire', 'release', 'send', 'receive', 'adopt', 'reclaim', 'create']

const DEFAULTS = {
  kills: 1000,
  seconds: 1200,
  concurrency: 1,
  threads: 6,
  minDelay: 0,
  maxDelay: 30,
  /** Only this operation as every child's focus (default: cycle through all of them). */
  focus: null,
  slots: 32,
  capacity: 4,
  seed: null,
  /** How long one end check may take before it counts as wedged, in ms. */
  checkTimeout: 5000,
  progress: false,
}

function parseArgs(argv) {
  const parsed = parseFlags(argv, {
    '--kills': 'kills', '--seconds': 'seconds', '--concurrency': 'concurrency', '--threads': 'threads', '--min-delay': 'minDelay', '--max-delay': 'maxDelay', '--focus': 'focus',
    '--slots': 'slots', '--capacity': 'capacity', '--seed': 'seed', '--check-timeout': 'checkTimeout',
  }, { strings: ['focus'] })
  return { ...DEFAULTS, ...parsed }
}

function check(options) {
  const o = { ...DEFAULTS, ...options }
  const int = (name, min, max) => {
    if (!Number.isInteger(o[name]) || o[name] < min || o[name] > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${o[name]}`)
  }
  int('kills', 1, 1e7)
  int('concurrency', 1, 32)
  int('threads', 0, 16)
  int('minDelay', 0, 60_000)
  int('maxDelay', 0, 60_000)
  if (o.focus !== null && !OPS.includes(o.focus)) throw new RangeError(`focus must be one of ${OPS.join(', ')}, got ${o.focus}`)
  int('slots', 4, 1024)
  int('capacity', 2, 1 << 12)
  int('checkTimeout', 100, 600_000)
  if ((o.capacity & (o.capacity - 1)) !== 0) throw new RangeError(`capacity must be a power of two, got ${o.capacity}`)
  if (o.slots < 2 * o.capacity) throw new RangeError(`slots (${o.slots}) must be at least twice the capacity (${o.capacity}): the end check fills the larger channel`)
  if (!(o.seconds > 0)) throw new RangeError(`seconds must be positive, got ${o.seconds}`)
  if (o.seed === null) o.seed = randomInt(1, 0x7fffffff)
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) throw new RangeError(`seed must be a 32-bit unsigned integer, got ${o.seed}`)
  return o
}

/** mulberry32: the parent's plan RNG. */
function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const hex = (x) => `0x${(x >>> 0).toString(16)}`

const STATES = ['invalid', 'free', 'leased', 'in flight', 'queued']

/**
 * A slot's [generation, owner, state], white-box, for diagnostics only: through the binding's
 * poolSlotState where it has one, else from the slot's state word in the pool's memory
 * (generation << 32 | owner << 8 | state, at OFFSETS.metaWord of the slot's metadata).
 */
function slotState(pool, slot) {
  const state = pool._state
  let binding
  try {
    binding = require('../lib/native.js').binding
  } catch {
    binding = _internal.binding
  }
  if (binding !== undefined && typeof binding.poolSlotState === 'function') return binding.poolSlotState(state.ref ?? state.id, slot)
  const { OFFSETS } = _internal
  const word = (state.metaOffset + slot * OFFSETS.metaSize + OFFSETS.metaWord) >>> 2
  const low = state.u32[word]
  return [state.u32[word + 1], (low >>> 8) & 0xffffff, low & 0xff]
}

/** White-box diagnosis for a failed slot check: the state of every slot that could not be
 * acquired (empty if it cannot be read). */
function census(pool, acquirable) {
  try {
    const lost = []
    for (let slot = 0; slot < pool.slots; slot++) {
      if (acquirable.has(slot)) continue
      const [generation, owner, state] = slotState(pool, slot)
      lost.push(`slot ${slot}: ${STATES[state] ?? state}${owner ? ` by participant ${owner - 1}` : ''}, generation ${generation}`)
    }
    return lost.length === 0 ? '' : `; not acquirable: ${lost.join('; ')}`
  } catch {
    return ''
  }
}

/** Resolves with fn()'s value, or rejects when it throws or takes longer than `ms`. */
function bounded(fn, ms, what) {
  let timer
  return Promise.race([
    Promise.resolve().then(fn),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms (wedged?)`)), ms) }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * Runs the kill loop and the end checks. Resolves with a report { ok, seed, violations[], kills,
 * children, seconds, byFocus, reclaimed, ... }; never rejects for a violation, only for bad options.
 */
async function runFaults(options = {}) {
  const o = check(options)
  const random = rng(o.seed)
  const violations = []
  const fail = (message) => { if (violations.length < 100) violations.push(message) }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-faults-'))
  const names = { pool: 'faults', channels: ['faults-a', 'faults-b'], spare: 'faults-spare' }
  // Each thread of a child is a participant, twice while it reopens the pool; dead ones are
  // reclaimed by the next open, so this leaves room for a few generations of dead children.
  const maxParticipants = Math.min(1000, 4 * o.concurrency * (o.threads + 1) + 8)
  const pool = SharedPool.create({ name: names.pool, dir, slotSize: 64, slots: o.slots, maxParticipants })
  const capacities = [o.capacity, 2 * o.capacity]
  const channels = names.channels.map((name, k) => Channel.create(pool, { name, dir, capacity: capacities[k] }))

  const started = performance.now()
  const deadline = started + o.seconds * 1000
  const live = new Set()
  const byFocus = Object.fromEntries(OPS.map((op) => [op, 0]))
  let spawned = 0
  let kills = 0
  let stopping = false
  let wakeLoop = () => {}

  function spawnChild() {
    const index = spawned++
    const focus = o.focus ?? OPS[index % OPS.length]
    const plan = { index, focus, seed: Math.floor(random() * 0xffffffff) >>> 0, delay: o.minDelay + Math.floor(random() * (o.maxDelay + 1)) }
    // Half of the 'reclaim' children are killed while they start: the open of their main thread
    // and workers reclaims the participants of the child killed before them.
    plan.early = focus === 'reclaim' && random() < 0.5 ? 20 + Math.floor(random() * 400) : undefined
    const journal = path.join(dir, `journal.${index}`)
    const args = { dir, pool: names.pool, channels: names.channels, spare: names.spare, focus, seed: plan.seed, journal, threads: o.threads }
    const proc = fork(CHILD, [JSON.stringify(args)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    const child = { proc, plan, journal, killed: false, stderr: '', exited: null }
    live.add(child)
    proc.stderr.setEncoding('utf8')
    proc.stderr.on('data', (d) => { if (child.stderr.length < 4000) child.stderr += d })
    let readyTimer = setTimeout(() => {
      readyTimer = undefined
      fail(`child #${index} (focus ${focus}, seed ${hex(plan.seed)}) did not attach within 15 s${child.stderr ? `: ${child.stderr.trim()}` : ''}`)
      child.killed = true
      proc.kill('SIGKILL')
    }, 15_000)
    const kill = () => {
      if (child.exited !== null) return
      child.killed = true
      proc.kill('SIGKILL')
    }
    if (plan.early !== undefined) setTimeout(kill, plan.early)
    proc.on('message', (msg) => {
      if (msg.type === 'ready') {
        clearTimeout(readyTimer)
        readyTimer = undefined
        if (plan.early === undefined) setTimeout(kill, plan.delay)
      } else if (msg.type === 'error') {
        fail(`child #${index} (focus ${focus}, seed ${hex(plan.seed)}), thread ${msg.thread}, failed in ${msg.op}: ${msg.message}`)
      }
    })
    child.done = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        if (readyTimer !== undefined) clearTimeout(readyTimer)
        child.exited = { code, signal }
        live.delete(child)
        if (signal === 'SIGKILL' && child.killed) {
          kills++
          byFocus[focus]++
        } else if (code !== 1) {
          // (code 1 is a child that reported an error, already a violation)
          fail(`child #${index} (focus ${focus}, seed ${hex(plan.seed)}) exited by itself (code ${code}, signal ${signal})${child.stderr ? `: ${child.stderr.trim()}` : ''}`)
        }
        resolve()
        wakeLoop()
      })
    })
    return child
  }

  // ---- the kill loop ---------------------------------------------------------------------------
  const progress = o.progress ? setInterval(() => process.stderr.write(`\r${n(kills)} kills, ${((performance.now() - started) / 1000).toFixed(1)} s `), 250) : undefined
  try {
    while (!stopping) {
      while (live.size < o.concurrency && spawned < o.kills + o.concurrency && kills + live.size < o.kills) spawnChild()
      if (live.size === 0) break
      await new Promise((resolve) => {
        wakeLoop = resolve
        setTimeout(resolve, 1000).unref()
      })
      // Stop early on a child failure (the first violation is what matters) or when time is up.
      if (violations.length > 0 || performance.now() > deadline || kills >= o.kills) stopping = true
    }
  } finally {
    for (const child of live) {
      child.killed = true
      child.proc.kill('SIGKILL')
    }
    await Promise.all([...live].map((c) => c.done))
    if (progress !== undefined) {
      clearInterval(progress)
      process.stderr.write('\n')
    }
  }
  const elapsed = (performance.now() - started) / 1000

  // ---- end checks: nobody but this process is alive --------------------------------------------
  const ended = {}
  const step = async (what, fn) => {
    try {
      return await bounded(fn, o.checkTimeout, what)
    } catch (error) {
      fail(`${what}: ${error && error.code ? `[${error.code}] ` : ''}${error && error.message}`)
      return undefined
    }
  }

  ended.reclaimed = await step('reclaimDead() after the kills', () => {
    let participants = 0
    let slots = 0
    for (let round = 0; round < 4; round++) {
      const r = pool.reclaimDead()
      participants += r.participants
      slots += r.slots
      if (r.participants === 0) break
    }
    return { participants, slots }
  })

  await step(`every participant entry free again (${maxParticipants - 1} more attachments besides this one)`, () => {
    const extra = []
    try {
      for (let i = 0; i < maxParticipants - 1; i++) {
        try {
          extra.push(SharedPool.open(names.pool, { dir }))
        } catch (error) {
          if (error.code === 'ERR_SABPOOL_TOO_MANY_PARTICIPANTS') {
            throw new Error(`participant entries lost: only ${extra.length + 1} of ${maxParticipants} could be attached with nobody else alive`, { cause: error })
          }
          throw error
        }
      }
    } finally {
      for (const p of extra) p.detach()
    }
  })

  // Not an invariant either (README, Limits: a dead process's registered channel waits are not
  // withdrawn), but worth reporting: receive and send waits still registered after the kills.
  ended.channelWaiters = channels.map((c) => {
    const s = c.stats()
    return s.recvWaiting === undefined ? null : { recv: s.recvWaiting, send: s.sendWaiting }
  })
  ended.drained = []
  for (const [k, channel] of channels.entries()) {
    await step(`channel ${names.channels[k]}: drain after the kills`, () => {
      let count = 0
      for (let lease; count <= 4 * capacities[k] && (lease = channel.tryRecv()) !== null; count++) lease.release()
      ended.drained[k] = count
      const queued = channel.stats().queued
      if (queued !== 0) throw new Error(`tryRecv() answers empty after ${count} leases, but ${queued} are still queued (a position claimed by a killed process is never published or freed: the ring is wedged)`)
    })
  }

  ended.orphanTickets = await step('adopt the tickets of handoffs interrupted by a kill', () => {
    let adopted = 0
    for (const file of fs.readdirSync(dir).filter((f) => f.startsWith('journal.'))) {
      for (const line of fs.readFileSync(path.join(dir, file), 'utf8').split('\n')) {
        if (line === '') continue
        const [slot, generation] = line.split(' ').map(Number)
        try {
          pool.adopt({ pool: pool.id, slot, generation }).release()
          adopted++
        } catch (error) {
          if (error.code !== 'ERR_SABPOOL_STALE_LEASE') throw error
        }
      }
    }
    return adopted
  })

  ended.pool = await step('every slot free exactly once', () => {
    const s = pool.stats()
    const problems = []
    if (s.inUse !== 0) problems.push(`inUse ${s.inUse}`)
    if (s.free !== s.slots) problems.push(`free ${s.free} of ${s.slots}`)
    if (s.waiting !== 0) problems.push(`${s.waiting} waiters still registered`)
    const leases = []
    for (let lease; leases.length <= o.slots && (lease = pool.tryAcquire()) !== null;) leases.push(lease)
    const distinct = new Set(leases.map((l) => l.slot))
    for (const lease of leases) lease.release()
    if (leases.length !== o.slots || distinct.size !== o.slots) {
      problems.push(`acquiring every slot gave ${leases.length} leases (${distinct.size} distinct slots), expected each of the ${o.slots} slots once`)
    }
    if (problems.length > 0) throw new Error(`${problems.join('; ')} (stats ${JSON.stringify(s)}${census(pool, distinct)})`)
    return s
  })

  for (const [k, channel] of channels.entries()) {
    const capacity = capacities[k]
    await step(`channel ${names.channels[k]} (capacity ${capacity}): accepts and delivers 2 × capacity leases`, () => {
      for (let round = 0; round < 2; round++) {
        const sent = []
        try {
          for (let i = 0; i < capacity; i++) {
            const lease = pool.tryAcquire()
            if (lease === null) throw new Error(`round ${round}: no free slot for send ${i}`)
            lease.bytes[0] = i
            if (!channel.trySend(lease, 1)) {
              lease.release()
              throw new Error(`round ${round}: trySend ${i} of ${capacity} answered full`)
            }
            sent.push(lease.slot)
          }
          const extra = pool.tryAcquire()
          const full = extra !== null && !channel.trySend(extra, 1)
          if (extra !== null && full) extra.release()
          if (!full) throw new Error(`round ${round}: accepted more than its capacity`)
          for (let i = 0; i < capacity; i++) {
            const lease = channel.tryRecv()
            if (lease === null) throw new Error(`round ${round}: tryRecv ${i} of ${capacity} answered empty`)
            const got = [lease.slot, lease.bytes[0], lease.length]
            lease.release()
            if (got[0] !== sent[i] || got[1] !== i || got[2] !== 1) throw new Error(`round ${round}: receive ${i} got slot ${got[0]} stamp ${got[1]} length ${got[2]}, sent slot ${sent[i]} stamp ${i} length 1`)
          }
        } finally {
          // Whatever is left goes back to the pool, so later checks are not confused.
          for (let lease; (lease = channel.tryRecv()) !== null;) lease.release()
        }
      }
    })
  }

  for (const [k, channel] of channels.entries()) {
    await step(`channel ${names.channels[k]}: close() drains to null`, async () => {
      channel.close()
      const first = channel.tryRecv()
      if (first !== null) {
        first.release()
        throw new Error('tryRecv() after close() returned a lease, though the channel was drained')
      }
      const got = await channel.recv({ timeout: Math.max(100, o.checkTimeout - 500) })
      if (got !== null) throw new Error('recv() after close() returned a lease, not null')
    })
  }

  ended.spare = await step(`the spare pool's name can be created again (${names.spare})`, () => {
    const spare = SharedPool.create({ name: names.spare, dir, slotSize: 64, slots: 4, maxParticipants: 8 })
    try {
      const leases = []
      for (let lease; (lease = spare.tryAcquire()) !== null;) leases.push(lease)
      if (new Set(leases.map((l) => l.slot)).size !== 4) throw new Error(`a fresh spare pool gave ${leases.length} slots, expected 4`)
      for (const l of leases) l.release()
    } finally {
      spare.unlink()
      spare.detach()
    }
    return true
  })
  // Not an invariant (a process killed inside create cannot remove its temporary file, and nobody
  // else knows it is dead), but worth reporting.
  ended.leftoverTempFiles = fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).length

  for (const c of channels) {
    c.unlink()
    c.detach()
  }
  pool.unlink()
  pool.detach()
  fs.rmSync(dir, { recursive: true, force: true })

  return {
    ok: violations.length === 0,
    seed: o.seed,
    violations,
    kills,
    children: spawned,
    seconds: elapsed,
    stoppedEarly: kills < o.kills,
    byFocus,
    ended,
    options: o,
  }
}

/** The command-line flags of the options that differ from the defaults (seed aside). */
function replayFlags(o) {
  const flags = { kills: '--kills', seconds: '--seconds', concurrency: '--concurrency', threads: '--threads', minDelay: '--min-delay', maxDelay: '--max-delay', focus: '--focus', slots: '--slots', capacity: '--capacity' }
  return Object.entries(flags).filter(([k]) => o[k] !== DEFAULTS[k]).map(([k, flag]) => ` ${flag} ${o[k]}`).join('')
}

function format(report) {
  const lines = []
  lines.push(`sabpool fault injection (seed ${report.seed}): ${n(report.kills)} SIGKILLs of ${n(report.children)} children in ${report.seconds.toFixed(1)} s${report.stoppedEarly ? ` (stopped before ${n(report.options.kills)})` : ''}`)
  lines.push(`  kills by focus: ${Object.entries(report.byFocus).map(([k, v]) => `${k} ${n(v)}`).join(', ')}`)
  const e = report.ended
  if (e.reclaimed !== undefined) lines.push(`  at the end: reclaimDead() recovered ${e.reclaimed.participants} participants, ${e.reclaimed.slots} slots; drained ${(e.drained ?? []).join(' + ')} queued leases; adopted ${e.orphanTickets ?? '?'} orphaned tickets`)
  lines.push(`  not checked: temporary files left by killed creates: ${e.leftoverTempFiles}; channel waits left registered by the dead: ${(e.channelWaiters ?? []).map((w) => (w === null ? '?' : `${w.recv} receive, ${w.send} send`)).join(' / ')}`)
  lines.push(...verdictLines(report))
  if (!report.ok) lines.push(`  reproduce the plan with: npm run stress -- --kill --seed ${report.seed}${replayFlags(report.options)}`)
  return lines.join('\n')
}

module.exports = { runFaults, format, parseArgs, DEFAULTS }

if (require.main === module) {
  main({
    file: __filename,
    parseArgs,
    run: (options) => runFaults({ ...options, progress: process.stderr.isTTY }),
    format,
  })
}
