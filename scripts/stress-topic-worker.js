'use strict'
// The threads of scripts/stress-topic.js: publishers, subscribers and churners of one topic.
// Payloads: [u32 stream][u32 seq][u32 length][u32 checksum of the rest][bytes from (stream, seq)].
const { parentPort, workerData, isMainThread } = require('node:worker_threads')

const HEADER = 16

function fillByte(stream, seq, i) {
  return (stream * 131 + seq * 31 + i * 7) & 0xff
}

function stamp(bytes, stream, seq, length) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER)
  let sum = 0
  for (let i = HEADER; i < length; i++) {
    const b = fillByte(stream, seq, i)
    bytes[i] = b
    sum = (sum + b) | 0
  }
  dv.setUint32(0, stream, true)
  dv.setUint32(4, seq, true)
  dv.setUint32(8, length, true)
  dv.setUint32(12, sum, true)
}

/** `{ stream, seq }` of an intact payload, or undefined. */
function read(bytes, length) {
  if (length < HEADER) return undefined
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER)
  const stream = dv.getUint32(0, true)
  const seq = dv.getUint32(4, true)
  if (dv.getUint32(8, true) !== length) return undefined
  let sum = 0
  for (let i = HEADER; i < length; i++) {
    if (bytes[i] !== fillByte(stream, seq, i)) return undefined
    sum = (sum + bytes[i]) | 0
  }
  return sum === dv.getUint32(12, true) ? { stream, seq } : undefined
}

/** Small xorshift PRNG, so runs repeat for a seed. */
function rng(seed) {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    return x / 2 ** 32
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4))
function nap(random, p, maxMs) {
  if (random() < p) Atomics.wait(sleeper, 0, 0, random() * maxMs)
}

/** Per subscription: what it saw of each stream. */
function newTally() {
  return { got: 0, bad: 0, duplicates: 0, missing: 0, backwards: 0, last: new Map(), first: new Map() }
}

function see(tally, sample) {
  const id = read(sample.bytes, sample.length)
  if (id === undefined) {
    tally.bad++
    return
  }
  tally.got++
  const last = tally.last.get(id.stream)
  if (last === undefined) tally.first.set(id.stream, id.seq)
  else if (id.seq === last) tally.duplicates++
  else if (id.seq < last) tally.backwards++
  else tally.missing += id.seq - last - 1
  tally.last.set(id.stream, id.seq)
}

function plain(tally) {
  return { ...tally, last: Object.fromEntries(tally.last), first: Object.fromEntries(tally.first) }
}

async function publisher({ topic, pool, stream, count, how, random, slotSize }) {
  let reached = 0
  for (let seq = 0; seq < count; seq++) {
    const lease = how === 'async' ? await pool.acquire({ timeout: 60_000 }) : pool.acquireSync({ timeout: 60_000 })
    const length = HEADER + Math.floor(random() * (slotSize - HEADER + 1))
    stamp(lease.bytes, stream, seq, length)
    reached += how === 'async' ? await topic.publish(lease, length, { timeout: 60_000 }) : topic.publishSync(lease, length, { timeout: 60_000 })
    nap(random, 0.001, 2)
  }
  return { reached }
}

async function subscriber({ how, hold, random, sabotage, sub }) {
  const tally = newTally()
  const held = []
  const next = how === 'sync' ? () => sub.recvSync({ timeout: 60_000 }) : () => sub.recv({ timeout: 60_000 })
  for (let s = await next(); s !== null; s = await next()) {
    see(tally, s)
    if (hold > 0) {
      held.push(s)
      if (held.length > hold) held.splice(Math.floor(random() * held.length), 1)[0].release()
    } else {
      // The planted fault: a subscriber that writes into what it reads (other readers share it).
      if (sabotage === 'write' && tally.got % 100 === 0) s.bytes[HEADER] ^= 0xff
      s.release()
    }
    nap(random, 0.002, 1)
  }
  for (const s of held) s.release()
  const own = sub.stats()
  sub.unsubscribe()
  return { tally: plain(tally), dropped: own.dropped }
}

/** Subscribes and unsubscribes again and again while samples flow: the subscribe/publish race. */
async function churner({ topic, random, rounds }) {
  const tally = newTally()
  let subscriptions = 0
  for (let r = 0; r < rounds && !topic.closed; r++) {
    let sub
    try {
      sub = topic.subscribe()
    } catch (error) {
      if (error.code === 'ERR_SABPOOL_CLOSED') break
      throw error
    }
    subscriptions++
    const per = newTally()
    const take = Math.floor(random() * 20)
    for (let i = 0; i < take; i++) {
      let s
      try {
        s = sub.recvSync({ timeout: 2000 })
      } catch (error) {
        if (error.code !== 'ERR_SABPOOL_TIMEOUT') throw error
        break
      }
      if (s === null) break
      see(per, s)
      if (random() < 0.5) s.release() // the rest go with unsubscribe()
    }
    sub.unsubscribe()
    tally.got += per.got
    tally.bad += per.bad
    tally.duplicates += per.duplicates
    tally.backwards += per.backwards
    nap(random, 0.3, 1)
  }
  return { tally: plain(tally), subscriptions }
}

async function run() {
  const { Topic } = require('..')
  const d = workerData
  const topic = Topic.attach(d.topic)
  const pool = topic.pool
  const random = rng(d.seed)
  // Subscribe before reporting ready: the driver starts the publishers once every subscriber is in.
  const sub = d.role === 'subscriber' ? topic.subscribe() : undefined
  parentPort.postMessage({ type: 'ready' })
  await new Promise((resolve) => parentPort.once('message', resolve))
  let result
  if (d.role === 'publisher') result = await publisher({ topic, pool, stream: d.stream, count: d.count, how: d.how, random, slotSize: pool.slotSize })
  else if (d.role === 'subscriber') result = await subscriber({ how: d.how, hold: d.hold, random, sabotage: d.sabotage, sub })
  else result = await churner({ topic, random, rounds: d.rounds })
  parentPort.postMessage({ type: 'done', ...result })
}

if (!isMainThread) run()

module.exports = { HEADER, stamp, read }
