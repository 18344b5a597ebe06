'use strict'
// Topic: publish/subscribe over a pool — delivery to every subscriber in place, history, block and
// drop-oldest, close, unsubscribe, bad input, and subscribers that die.
const { test, describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { SharedPool, Topic } = require('..')
const { throwsCode, rejectsCode, assertAllFreeOnce, waitFor, spawnWorker, terminateWorkers } = require('./helpers.js')
const { fill, check, lengthOf } = require('./fixtures/topic-common.js')

afterEach(terminateWorkers)

function publishN(pool, topic, from, count) {
  let reached = 0
  for (let seq = from; seq < from + count; seq++) {
    const lease = pool.acquireSync({ timeout: 5000 })
    const length = lengthOf(seq, pool.slotSize)
    fill(lease.bytes, seq, length)
    reached += topic.publishSync(lease, length, { timeout: 5000 })
  }
  return reached
}

function drain(sub) {
  const seqs = []
  for (let s = sub.tryRecv(); s !== null; s = sub.tryRecv()) {
    seqs.push(check(s.bytes, s.length))
    s.release()
  }
  return seqs
}

test('one published slot is read in place by every subscriber and goes back after the last release', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 8 })
  const topic = new Topic(pool, { capacity: 4 })
  const subs = [topic.subscribe(), topic.subscribe(), topic.subscribe()]
  const lease = pool.acquireSync()
  const offset = lease.bytes.byteOffset
  fill(lease.bytes, 42, 20)
  assert.equal(topic.publishSync(lease, 20), 3)
  assert.equal(lease.owned, false)
  assert.equal(pool.stats().inUse, 1)
  const samples = subs.map((s) => s.tryRecv())
  for (const s of samples) {
    assert.equal(s.length, 20)
    assert.equal(s.bytes.byteOffset, offset, 'the same memory, not a copy')
    assert.equal(s.bytes.buffer, pool.handle.buffer)
    assert.equal(check(s.bytes, s.length), 42)
  }
  assert.deepEqual(subs.map((s) => s.tryRecv()), [null, null, null])
  samples[0].release()
  samples[2].release()
  assert.equal(pool.stats().inUse, 1, 'still held by one subscriber')
  samples[1].release()
  assert.equal(pool.stats().inUse, 0)
  throwsCode(() => samples[1].release(), Error, 'ERR_SABPOOL_STALE_LEASE')
  throwsCode(() => samples[1].bytes, Error, 'ERR_SABPOOL_STALE_LEASE')
  const stats = topic.stats()
  assert.equal(stats.subscribers, 3)
  assert.equal(stats.published, 1)
  assert.equal(stats.delivered, 3)
  assert.deepEqual(stats.subscriptions.map((s) => s.lag), [0, 0, 0])
  // A publish with nobody subscribed returns the slot at once.
  for (const s of subs) assert.equal(s.unsubscribe(), true)
  assert.equal(subs[0].unsubscribe(), false)
  const alone = pool.acquireSync()
  assert.equal(topic.publishSync(alone, 1), 0)
  assert.equal(pool.stats().inUse, 0)
  assertAllFreeOnce(pool)
})

test('subscribers see samples published after they subscribed, in order; history gives late joiners the last ones', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 16 })
  const topic = new Topic(pool, { capacity: 4, history: 2 })
  const early = topic.subscribe()
  publishN(pool, topic, 0, 3)
  const late = topic.subscribe()
  publishN(pool, topic, 3, 1)
  assert.deepEqual(drain(early), [0, 1, 2, 3])
  assert.deepEqual(drain(late), [1, 2, 3], 'history 2 (samples 1, 2), then sample 3')
  // The topic keeps the last two samples for late joiners, and nothing else.
  assert.equal(pool.stats().inUse, 2)
  const later = topic.subscribe()
  assert.deepEqual(drain(later), [2, 3])
  topic.close()
  assert.equal(pool.stats().inUse, 0, 'close lets the history go')
  assert.equal(early.tryRecv(), null)
  assertAllFreeOnce(pool)
})

test('a topic without history gives a new subscriber nothing published before', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 8 })
  const topic = new Topic(pool, { capacity: 4 })
  publishN(pool, topic, 0, 2)
  assert.equal(pool.stats().inUse, 0)
  const sub = topic.subscribe()
  assert.equal(sub.tryRecv(), null)
  publishN(pool, topic, 2, 1)
  assert.deepEqual(drain(sub), [2])
})

test("block: a full subscriber makes tryPublish return false and publish wait; a timeout or abort leaves the lease the caller's", async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 8 })
  const topic = new Topic(pool, { capacity: 2 })
  const sub = topic.subscribe()
  publishN(pool, topic, 0, 2)
  const lease = pool.acquireSync()
  fill(lease.bytes, 2, 16)
  assert.equal(topic.tryPublish(lease, 16), false)
  assert.equal(lease.owned, true)
  throwsCode(() => topic.publishSync(lease, 16, { timeout: 20 }), Error, 'ERR_SABPOOL_TIMEOUT')
  await rejectsCode(topic.publish(lease, 16, { timeout: 20 }), Error, 'ERR_SABPOOL_TIMEOUT')
  const controller = new AbortController()
  const aborted = topic.publish(lease, 16, { signal: controller.signal })
  setTimeout(() => controller.abort(), 10)
  await assert.rejects(aborted, { name: 'AbortError' })
  assert.equal(lease.owned, true)
  // Once the subscriber reads one, the waiting publish goes on.
  const waiting = topic.publish(lease, 16, { timeout: 5000 })
  setTimeout(() => sub.tryRecv().release(), 10)
  assert.equal(await waiting, 1)
  assert.equal(lease.owned, false)
  assert.deepEqual(drain(sub), [1, 2])
  assert.equal(pool.stats().inUse, 0)
})

test('drop-oldest: a full subscriber loses its oldest unread samples, counted; nothing leaks', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 16 })
  const topic = new Topic(pool, { capacity: 3, onFull: 'drop-oldest' })
  const slow = topic.subscribe()
  const fast = topic.subscribe()
  for (let seq = 0; seq < 8; seq++) {
    publishN(pool, topic, seq, 1)
    drain(fast).forEach((got) => assert.equal(got, seq))
  }
  assert.equal(pool.stats().inUse, 3, 'only the slow subscriber\'s three newest are held')
  assert.deepEqual(slow.stats(), { lag: 3, delivered: 0, dropped: 5, active: true })
  assert.deepEqual(drain(slow), [5, 6, 7])
  const stats = topic.stats()
  assert.equal(stats.dropped, 5)
  assert.equal(stats.delivered, 8 + 3)
  assert.equal(stats.published, 8)
  assert.equal(pool.stats().inUse, 0)
  // A sample the subscriber holds is never taken back: drops only touch unread ones.
  const held = []
  for (let seq = 0; seq < 3; seq++) {
    publishN(pool, topic, seq, 1)
    held.push(slow.tryRecv())
  }
  drain(fast)
  publishN(pool, topic, 3, 5)
  assert.deepEqual(held.map((s) => check(s.bytes, s.length)), [0, 1, 2])
  held.forEach((s) => s.release())
  assert.deepEqual(drain(slow), [5, 6, 7])
  drain(fast)
  assertAllFreeOnce(pool)
})

test('close: subscribers read what is queued, then null; publish and subscribe get ERR_SABPOOL_CLOSED, the lease stays yours', async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 8 })
  const topic = new Topic(pool, { capacity: 4 })
  const sub = topic.subscribe()
  const pending = topic.subscribe()
  const parked = pending.recv()
  publishN(pool, topic, 0, 2)
  const first = await parked
  assert.equal(check(first.bytes, first.length), 0)
  first.release()
  const second = await pending.recv()
  assert.equal(check(second.bytes, second.length), 1)
  second.release()
  const waiting = pending.recv()
  assert.equal(topic.close(), true)
  assert.equal(topic.close(), false)
  assert.equal(await waiting, null, 'a parked recv of a drained subscription ends with null')
  assert.equal(topic.closed, true)
  const lease = pool.acquireSync()
  throwsCode(() => topic.publishSync(lease, 1), Error, 'ERR_SABPOOL_CLOSED')
  throwsCode(() => topic.tryPublish(lease, 1), Error, 'ERR_SABPOOL_CLOSED')
  await rejectsCode(topic.publish(lease, 1), Error, 'ERR_SABPOOL_CLOSED')
  assert.equal(lease.owned, true)
  lease.release()
  throwsCode(() => topic.subscribe(), Error, 'ERR_SABPOOL_CLOSED')
  assert.deepEqual(drain(sub), [0, 1])
  assert.equal(sub.recvSync(), null)
  assert.equal(await sub.recv(), null)
  const seen = []
  for await (const s of sub) seen.push(s)
  assert.deepEqual(seen, [])
  assert.equal(pool.stats().inUse, 0)
})

test('unsubscribe lets go of queued and held samples; held Sample objects go stale; a parked recv ends with null', async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 8 })
  const topic = new Topic(pool, { capacity: 4 })
  const keep = topic.subscribe()
  const sub = topic.subscribe()
  publishN(pool, topic, 0, 3)
  const held = sub.tryRecv()
  assert.equal(sub.unsubscribe(), true)
  assert.equal(sub.active, false)
  throwsCode(() => held.bytes, Error, 'ERR_SABPOOL_STALE_LEASE')
  held.release() // a no-op: the reference went with the subscription
  assert.equal(sub.tryRecv(), null)
  assert.deepEqual(drain(keep), [0, 1, 2])
  assert.equal(pool.stats().inUse, 0)
  const parked = keep.recv()
  keep.unsubscribe()
  assert.equal(await parked, null)
  assert.equal(topic.stats().subscribers, 0)
})

test('maxSubscribers: one more subscription is refused with a code; an unsubscribed entry is reused', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 4 })
  const topic = new Topic(pool, { capacity: 2, maxSubscribers: 2 })
  const a = topic.subscribe()
  topic.subscribe()
  throwsCode(() => topic.subscribe(), Error, 'ERR_SABPOOL_TOO_MANY_SUBSCRIBERS')
  a.unsubscribe()
  const c = topic.subscribe()
  publishN(pool, topic, 0, 1)
  assert.deepEqual(drain(c), [0])
})

test('checkWrites: a subscriber that writes into a sample is caught when it releases it', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 4 })
  const topic = new Topic(pool, { capacity: 2, checkWrites: true })
  const sub = topic.subscribe()
  const other = topic.subscribe()
  publishN(pool, topic, 0, 2)
  sub.tryRecv().release()
  const sample = sub.tryRecv()
  sample.bytes[9] ^= 1
  throwsCode(() => sample.release(), Error, 'ERR_SABPOOL_SAMPLE_WRITTEN', /changed after it was published/)
  assert.equal(sample.released, true, 'released all the same')
  // The other reader of that sample sees the change too; its first sample was intact.
  other.tryRecv().release()
  throwsCode(() => other.tryRecv().release(), Error, 'ERR_SABPOOL_SAMPLE_WRITTEN')
  assert.equal(pool.stats().inUse, 0)
  assert.equal(topic.options.checkWrites, true)
})

test('bad arguments get coded errors and leave the lease usable', async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 4 })
  const other = new SharedPool({ slotSize: 64, slots: 4 })
  throwsCode(() => new Topic({}, { capacity: 2 }), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => new Topic(pool), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => new Topic(pool, { capacity: 0 }), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => new Topic(pool, { capacity: 2, maxSubscribers: 32 }), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => new Topic(pool, { capacity: 2, history: 3 }), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => new Topic(pool, { capacity: 2, onFull: 'drop' }), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => new Topic(pool, { capacity: 2, checkWrites: 1 }), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => Topic.attach({ kind: 'sabpool.pool' }), TypeError, 'ERR_SABPOOL_BAD_HANDLE')
  throwsCode(() => Topic.create(pool, { name: 'x', capacity: 2 }), TypeError, 'ERR_SABPOOL_NOT_FILE')
  const topic = new Topic(pool, { capacity: 2 })
  throwsCode(() => Topic.attach(topic.handle, other), TypeError, 'ERR_SABPOOL_BAD_HANDLE')
  const lease = pool.acquireSync()
  const foreign = other.acquireSync()
  throwsCode(() => topic.publishSync(foreign, 1), TypeError, 'ERR_SABPOOL_BAD_TICKET')
  throwsCode(() => topic.publishSync({}, 1), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => topic.publishSync(lease, 65), RangeError, 'ERR_SABPOOL_BAD_LENGTH')
  throwsCode(() => topic.publishSync(lease, 1, { timeout: -1 }), RangeError, 'ERR_OUT_OF_RANGE')
  await rejectsCode(topic.publish(lease, 1, { signal: 'no' }), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => Topic.prototype.subscribe.call({}), TypeError, 'ERR_INVALID_THIS')
  assert.equal(lease.owned, true)
  const sub = topic.subscribe()
  throwsCode(() => sub.recvSync({ timeout: 'x' }), TypeError, 'ERR_INVALID_ARG_TYPE')
  assert.equal(topic.publishSync(lease, 1), 1)
  throwsCode(() => lease.release(), Error, 'ERR_SABPOOL_STALE_LEASE')
  drain(sub)
  assert.equal(pool.stats().inUse, 0)
  foreign.release()
})

test('many subscribers in worker threads (recvSync, await recv, for await) see every sample of two publishers exactly once, in order', async () => {
  const pool = new SharedPool({ slotSize: 512, slots: 32 })
  const topic = new Topic(pool, { capacity: 8 })
  const count = 3000
  const subs = ['sync', 'async', 'iter', 'sync'].map((how, i) =>
    spawnWorker('topic-sub.js', { handle: topic.handle, how, hold: i === 3 ? 4 : 0, streamSize: count }))
  for (const s of subs) await s.next('subscribed')
  const pubs = ['sync', 'async'].map((how, k) => spawnWorker('topic-pub.js', { handle: topic.handle, how, from: k * count, count }))
  for (const p of pubs) assert.equal((await p.next('published', 60_000)).reached, 4 * count)
  topic.close()
  for (const s of subs) {
    const done = await s.next('done', 60_000)
    assert.equal(done.got, 2 * count)
    assert.equal(done.bad, 0, 'every payload intact')
    assert.equal(done.outOfOrder, 0, "each publisher's samples in the order published")
    assert.equal(done.missing, 0)
    assert.equal(done.seqGaps, 0, 'topic positions consecutive')
    assert.equal(done.dropped, 0)
  }
  await Promise.all([...subs, ...pubs].map((w) => w.exited))
  const stats = topic.stats()
  assert.equal(stats.published, 2 * count)
  assert.equal(stats.delivered, 8 * count)
  assertAllFreeOnce(pool)
})

test('drop-oldest across threads: each subscriber got or dropped every sample, and every slot comes back', async () => {
  const pool = new SharedPool({ slotSize: 256, slots: 32 })
  const topic = new Topic(pool, { capacity: 4, onFull: 'drop-oldest' })
  const count = 4000
  const subs = [{ how: 'sync' }, { how: 'async', slowMs: 0.05 }, { how: 'sync', hold: 2, slowMs: 0.02 }].map((o) =>
    spawnWorker('topic-sub.js', { handle: topic.handle, streamSize: count, ...o }))
  for (const s of subs) await s.next('subscribed')
  const pub = spawnWorker('topic-pub.js', { handle: topic.handle, how: 'sync', count })
  await pub.next('published', 60_000)
  topic.close()
  let dropped = 0
  for (const s of subs) {
    const done = await s.next('done', 60_000)
    assert.equal(done.got + done.dropped, count)
    assert.equal(done.bad, 0)
    assert.equal(done.outOfOrder, 0)
    assert.equal(done.got + done.missing, count, 'the last sample is never dropped: it is read after close')
    assert.equal(done.missing, done.dropped, 'every sample not seen was counted as dropped')
    dropped += done.dropped
  }
  assert.equal(topic.stats().dropped, dropped)
  await Promise.all([...subs, pub].map((w) => w.exited))
  assertAllFreeOnce(pool)
})

for (const how of ['exit', 'throw', 'terminate']) {
  test(`a subscriber thread that dies (${how}) holding and queuing samples never wedges a blocking publisher nor leaks`, async () => {
    const pool = new SharedPool({ slotSize: 128, slots: 16 })
    const topic = new Topic(pool, { capacity: 4 })
    const healthy = spawnWorker('topic-sub.js', { handle: topic.handle, how: 'async', streamSize: 1000 })
    const dying = spawnWorker('topic-sub.js', {
      handle: topic.handle,
      how: 'sync',
      hold: 3,
      die: { after: 5, how: how === 'terminate' ? 'hang' : how },
    })
    await healthy.next('subscribed')
    await dying.next('subscribed')
    const pub = spawnWorker('topic-pub.js', { handle: topic.handle, how: 'sync', count: 200 })
    await dying.next('dying')
    if (how === 'terminate') await dying.worker.terminate()
    await dying.exited
    await pub.next('published', 30_000)
    topic.close()
    const done = await healthy.next('done', 30_000)
    assert.equal(done.got, 200)
    assert.equal(done.bad, 0)
    await Promise.all([healthy.exited, pub.exited])
    await waitFor(() => topic.stats().subscribers === 0, 'the dead subscriber to be retired')
    assertAllFreeOnce(pool)
  })
}

test('topic.stats() totals never go backwards while other threads unsubscribe (each retirement moves its counts into the totals)', async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 16 })
  const topic = new Topic(pool, { capacity: 2, onFull: 'drop-oldest' })
  const stop = new SharedArrayBuffer(4)
  const workers = [
    spawnWorker('topic-churn.js', { handle: topic.handle, stop, role: 'pub' }),
    spawnWorker('topic-churn.js', { handle: topic.handle, stop, role: 'sub' }),
    spawnWorker('topic-churn.js', { handle: topic.handle, stop, role: 'sub' }),
  ]
  // Read the totals in a loop for 1.5 s (on this thread, so nothing else runs here) while
  // subscriptions come and go: a read that overlaps a retirement must still count each
  // subscription's deliveries and drops exactly once.
  let last = { delivered: 0, dropped: 0 }
  let reads = 0
  const backwards = []
  const end = performance.now() + 1500
  while (performance.now() < end) {
    const s = topic.stats()
    reads++
    for (const k of ['delivered', 'dropped']) if (s[k] < last[k]) backwards.push(`${k} ${last[k]} -> ${s[k]}`)
    last = s
  }
  Atomics.store(new Int32Array(stop), 0, 1)
  const rounds = []
  for (const w of workers) rounds.push((await w.next('done')).rounds)
  await Promise.all(workers.map((w) => w.exited))
  assert.ok(rounds[1] + rounds[2] > 100, `only ${rounds[1] + rounds[2]} subscriptions came and went`)
  assert.ok(last.dropped > 0 && last.delivered > 0, `the churn delivered ${last.delivered} and dropped ${last.dropped}`)
  assert.deepEqual(backwards.slice(0, 5), [], `${backwards.length} of ${reads} reads went backwards`)
  assert.equal(topic.stats().subscribers, 0)
  assertAllFreeOnce(pool)
})

test('a garbage-collected subscription is retired', { skip: typeof global.gc !== 'function' && 'needs --expose-gc' }, async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 4 })
  const topic = new Topic(pool, { capacity: 2 })
  ;(() => { topic.subscribe() })()
  assert.equal(topic.stats().subscribers, 1)
  await waitFor(() => { global.gc(); return topic.stats().subscribers === 0 }, 'the abandoned subscription to be retired')
  publishN(pool, topic, 0, 3)
  assert.equal(pool.stats().inUse, 0)
})

describe('Topic across processes (file-backed pools)', () => {
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  const { fork } = require('node:child_process')
  const FIXTURES = path.join(__dirname, 'fixtures')

  /** A forked participant running fixture `file` with `opts`; `next(type)` resolves with its next message of that type. */
  function child(file, opts, env) {
    const proc = fork(path.join(FIXTURES, file), [JSON.stringify(opts)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...env },
    })
    const queue = []
    const waiting = []
    proc.on('message', (m) => {
      const i = waiting.findIndex((w) => w.type === m.type)
      if (i >= 0) waiting.splice(i, 1)[0].resolve(m)
      else queue.push(m)
    })
    const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })))
    return {
      proc,
      exited,
      next(type) {
        const i = queue.findIndex((m) => m.type === type)
        if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0])
        return new Promise((resolve, reject) => {
          waiting.push({ type, resolve })
          exited.then(({ code, signal }) => reject(new Error(`child exited (${code ?? signal}) before '${type}'`)))
        })
      },
    }
  }

  function files(topicOptions, poolOptions = { slotSize: 256, slots: 16 }) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-topic-'))
    const poolName = `p${process.pid}`
    const pool = SharedPool.create({ name: poolName, dir, ...poolOptions })
    const topic = Topic.create(pool, { name: 't', dir, ...topicOptions })
    const names = { poolName, name: 't', dir }
    const cleanup = () => {
      try { topic.unlink() } catch { /* removed by the test */ }
      pool.unlink()
      pool.detach()
      fs.rmSync(dir, { recursive: true, force: true })
    }
    return { dir, pool, topic, names, cleanup }
  }

  /** After a dead participant: every slot is free exactly once (dead processes reclaimed first). */
  async function allBack(pool, topic) {
    await waitFor(() => {
      pool.reclaimDead()
      topic.stats()
      return pool.stats().inUse === 0
    }, 'every slot back in the pool', 10_000)
    assertAllFreeOnce(pool)
  }

  it('processes publish and subscribe by name; a subscriber process killed with SIGKILL never wedges the blocking publisher; unlink removes the file', { timeout: 60_000 }, async () => {
    const { pool, topic, names, dir, cleanup } = files({ capacity: 4 })
    try {
      const count = 1500
      const subs = ['sync', 'async', 'iter'].map((how) => child('topic-sub.js', { ...names, how, streamSize: count }))
      const victim = child('topic-sub.js', { ...names, how: 'sync', hold: 2, die: { after: 20, how: 'hang' } })
      for (const s of [...subs, victim]) await s.next('subscribed')
      const local = topic.subscribe()
      let localGot = 0
      const reading = (async () => {
        while (localGot < count) {
          const s = await local.recv({ timeout: 30_000 })
          assert.equal(check(s.bytes, s.length), localGot++)
          s.release()
        }
      })()
      const pub = child('topic-pub.js', { ...names, how: 'async', count })
      await victim.next('dying')
      victim.proc.kill('SIGKILL')
      assert.equal((await victim.exited).signal, 'SIGKILL')
      await reading
      await pub.next('published')
      topic.close()
      for (const s of subs) {
        const done = await s.next('done')
        assert.equal(done.got, count)
        assert.equal(done.bad + done.outOfOrder + done.missing + done.seqGaps, 0)
      }
      assert.equal(await local.recv(), null)
      await Promise.all([...subs, pub].map((c) => c.exited))
      await allBack(pool, topic)
      assert.ok(fs.readdirSync(dir).some((f) => f.includes('.topic')))
      assert.equal(topic.unlink(), true)
      assert.ok(!fs.readdirSync(dir).some((f) => f.includes('.topic')))
    } finally {
      cleanup()
    }
  })

  // Each step of each multi-step update, with the process doing it killed (SIGKILL) right there.
  for (const step of ['publish:journal', 'publish:record', 'publish:handoff', 'publish:commit']) {
    it(`a publisher killed at ${step}: the next participant takes the lock over and repairs; nothing is lost or duplicated`, { timeout: 30_000 }, async () => {
      const { pool, topic, names, cleanup } = files({ capacity: 8, history: 1 })
      try {
        const sub = topic.subscribe()
        const pub = child('topic-pub.js', { ...names, how: 'sync', count: 10 }, { SABPOOL_TEST_TOPIC_DIE_AT: step, SABPOOL_TEST_TOPIC_DIE_SKIP: '2' })
        assert.equal((await pub.exited).signal, 'SIGKILL')
        const committed = step === 'publish:commit' ? 3 : 2
        // The lock names the dead publisher: this publish takes it over.
        const lease = pool.acquireSync({ timeout: 5000 })
        fill(lease.bytes, 100, 20)
        assert.equal(topic.publishSync(lease, 20, { timeout: 5000 }), 1)
        assert.deepEqual(drain(sub), [...Array(committed).keys(), 100])
        const late = topic.subscribe()
        assert.deepEqual(drain(late), [100], 'history holds the newest sample only')
        topic.close()
        await allBack(pool, topic)
      } finally {
        cleanup()
      }
    })
  }

  it('a drop-oldest publisher killed between taking a sample from a subscriber and dropping its reference: the next publish finishes the drop', { timeout: 30_000 }, async () => {
    const { pool, topic, names, cleanup } = files({ capacity: 1, onFull: 'drop-oldest' })
    try {
      const sub = topic.subscribe()
      const pub = child('topic-pub.js', { ...names, how: 'sync', count: 5 }, { SABPOOL_TEST_TOPIC_DIE_AT: 'drop:cursor' })
      assert.equal((await pub.exited).signal, 'SIGKILL')
      assert.equal(sub.stats().lag, 0, 'the dead publisher had taken the only queued sample')
      const lease = pool.acquireSync({ timeout: 5000 })
      fill(lease.bytes, 7, 20)
      topic.publishSync(lease, 20, { timeout: 5000 })
      assert.deepEqual(drain(sub), [7])
      assert.equal(sub.stats().dropped, 1)
      topic.close()
      await allBack(pool, topic)
    } finally {
      cleanup()
    }
  })

  it("a subscriber killed between clearing the last reference and releasing the slot: retiring it returns the slot", { timeout: 30_000 }, async () => {
    const { pool, topic, names, cleanup } = files({ capacity: 4 })
    try {
      const taker = child('topic-proc.js', { ...names, role: 'take-release' }, { SABPOOL_TEST_TOPIC_DIE_AT: 'release:last' })
      await taker.next('subscribed')
      const lease = pool.acquireSync()
      fill(lease.bytes, 0, 20)
      assert.equal(topic.publishSync(lease, 20), 1)
      assert.equal((await taker.exited).signal, 'SIGKILL')
      await allBack(pool, topic)
      assert.equal(topic.stats().subscribers, 0)
    } finally {
      cleanup()
    }
  })

  it('a subscriber killed inside subscribe(), after marking a history sample as its own: it is retired and the history slots come back', { timeout: 30_000 }, async () => {
    const { pool, topic, names, cleanup } = files({ capacity: 4, history: 2 })
    try {
      for (let seq = 0; seq < 3; seq++) {
        const lease = pool.acquireSync()
        fill(lease.bytes, seq, 20)
        topic.publishSync(lease, 20)
      }
      assert.equal(pool.stats().inUse, 2, 'the history keeps two')
      const joiner = child('topic-proc.js', { ...names, role: 'subscribe' }, { SABPOOL_TEST_TOPIC_DIE_AT: 'subscribe:history' })
      assert.equal((await joiner.exited).signal, 'SIGKILL')
      // Its lock is taken over; then the half-made subscription is found and retired.
      const sub = topic.subscribe()
      assert.deepEqual(drain(sub), [1, 2])
      assert.equal(topic.stats().subscribers, 1)
      topic.close()
      await allBack(pool, topic)
    } finally {
      cleanup()
    }
  })

  it('a participant killed while retiring a dead subscriber: the next one finishes the retirement', { timeout: 30_000 }, async () => {
    const { pool, topic, names, cleanup } = files({ capacity: 4 })
    try {
      const dead = child('topic-sub.js', { ...names, how: 'sync', hold: 3, die: { after: 3, how: 'hang' } })
      await dead.next('subscribed')
      for (let seq = 0; seq < 4; seq++) {
        const lease = pool.acquireSync()
        fill(lease.bytes, seq, 20)
        topic.publishSync(lease, 20)
      }
      await dead.next('dying')
      dead.proc.kill('SIGKILL')
      await dead.exited
      assert.equal(pool.stats().inUse, 4)
      const retirer = child('topic-proc.js', { ...names, role: 'stats' }, { SABPOOL_TEST_TOPIC_DIE_AT: 'retire:sweep' })
      assert.equal((await retirer.exited).signal, 'SIGKILL')
      assert.ok(pool.stats().inUse >= 3, 'the retirer died after its first step')
      await allBack(pool, topic)
      assert.equal(topic.stats().subscribers, 0)
    } finally {
      cleanup()
    }
  })

  it('publishers and subscribers killed with SIGKILL at random points: the topic keeps working and every slot comes back', { timeout: 120_000 }, async () => {
    const { pool, topic, names, cleanup } = files({ capacity: 4, history: 2 }, { slotSize: 256, slots: 24 })
    try {
      const local = topic.subscribe()
      // What the local subscriber sees: intact payloads, each publisher's in order, none twice.
      let localBad = 0
      let localBackwards = 0
      let localGot = 0
      const lastOf = new Map()
      let reading = true
      const reader = (async () => {
        while (reading) {
          const s = await local.recv({ timeout: 200 }).catch((e) => { if (e.code !== 'ERR_SABPOOL_TIMEOUT') throw e; return undefined })
          if (s === null) break
          if (s === undefined) continue
          const seq = check(s.bytes, s.length)
          if (seq < 0) localBad++
          const stream = Math.floor(seq / 100_000)
          if (lastOf.has(stream) && seq <= lastOf.get(stream)) localBackwards++
          lastOf.set(stream, seq)
          localGot++
          s.release()
        }
      })()
      for (let round = 0; round < 8; round++) {
        const kids = [
          child('topic-pub.js', { ...names, how: round % 2 ? 'async' : 'sync', from: round * 100_000, count: 100_000 }),
          child('topic-sub.js', { ...names, how: 'sync', hold: round % 3 }),
          child('topic-sub.js', { ...names, how: 'async' }),
        ]
        await new Promise((resolve) => setTimeout(resolve, 40 + Math.floor(Math.random() * 150)))
        for (const k of kids) {
          k.proc.kill('SIGKILL')
          await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 20)))
        }
        await Promise.all(kids.map((k) => k.exited))
      }
      // Still works: a fresh publish reaches the local subscriber and a fresh one.
      const fresh = topic.subscribe()
      const lease = await pool.acquire({ timeout: 10_000 })
      const last = 9_000_005 // a stream of its own (90) for the local subscriber's order check
      fill(lease.bytes, last, 40)
      await topic.publish(lease, 40, { timeout: 10_000 })
      // (after the history: up to two samples of the last live publisher)
      const seen = []
      for (let got = await fresh.recv({ timeout: 5000 }); ; got = await fresh.recv({ timeout: 5000 })) {
        seen.push(check(got.bytes, got.length))
        got.release()
        if (seen.at(-1) === last) break
      }
      assert.ok(seen.length <= 3 && !seen.includes(-1), `fresh subscriber saw ${seen}`)
      fresh.unsubscribe()
      topic.close()
      reading = false
      await reader
      assert.equal(localBad, 0)
      assert.equal(localBackwards, 0)
      assert.ok(localGot > 0)
      assert.equal(topic.stats().stray, 0)
      await allBack(pool, topic)
    } finally {
      cleanup()
    }
  })
})

test('every method and accessor of Topic, Subscription and Sample called with a wrong `this` fails with ERR_INVALID_THIS', async () => {
  const pool = new SharedPool({ slotSize: 64, slots: 4 })
  const topic = new Topic(pool, { capacity: 2 })
  const sub = topic.subscribe()
  const lease = pool.acquireSync()
  topic.publishSync(lease, 4)
  const sample = sub.tryRecv()
  let checked = 0
  for (const object of [topic, sub, sample]) {
    const proto = Object.getPrototypeOf(object)
    for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) {
      if (name === 'constructor') continue
      const call = d.get ?? (typeof d.value === 'function' ? d.value : undefined)
      if (call === undefined) continue
      for (const self of [undefined, {}, lease, object === sample ? sub : sample]) {
        let error
        try {
          const result = call.call(self)
          // async members reject instead
          if (result instanceof Promise) await result.then(() => {}, (e) => { error = e })
        } catch (e) {
          error = e
        }
        assert.ok(error instanceof TypeError && error.code === 'ERR_INVALID_THIS', `${name} with a wrong this: ${error}`)
        checked++
      }
    }
    const asyncIterator = proto[Symbol.asyncIterator]
    if (asyncIterator) throwsCode(() => asyncIterator.call({}), TypeError, 'ERR_INVALID_THIS')
  }
  assert.ok(checked > 60, `checked ${checked}`)
  sample.release()
  assert.equal(pool.stats().inUse, 0)
})
