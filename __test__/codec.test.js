'use strict'
// Payload codecs on a lease: strings, JSON, V8-serialized values and typed views, straight into the
// slot and out of it — edge cases, and across worker threads and processes.
const { test, describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')
const { SharedPool, Channel, Topic } = require('..')
const { throwsCode, spawnWorker, terminateWorkers } = require('./helpers.js')

afterEach(terminateWorkers)

test('writeString/readString: UTF-8 straight into the slot, length set; empty, exactly full, one byte too many', () => {
  const pool = new SharedPool({ slotSize: 16, slots: 2 })
  const lease = pool.acquireSync()
  assert.equal(lease.writeString('héllo'), 6)
  assert.equal(lease.length, 6)
  assert.deepEqual([...lease.bytes.subarray(0, 6)], [...Buffer.from('héllo')])
  assert.equal(lease.readString(), 'héllo')
  assert.equal(lease.readString(1, 2), 'é')
  assert.equal(lease.writeString('', 0), 0)
  assert.equal(lease.length, 0)
  assert.equal(lease.readString(), '')
  // At an offset: length is where the text ends.
  lease.bytes.set([1, 2, 3, 4])
  assert.equal(lease.writeString('ab', 4), 2)
  assert.equal(lease.length, 6)
  assert.equal(lease.readString(4), 'ab')
  // Exactly full: 16 bytes of which the last character takes 3.
  const full = 'x'.repeat(13) + '€'
  assert.equal(lease.writeString(full), 16)
  assert.equal(lease.readString(), full)
  // One byte too many: a RangeError saying what it needed, and nothing changed.
  const before = Buffer.from(lease.bytes)
  throwsCode(() => lease.writeString('y'.repeat(14) + '€'), RangeError, 'ERR_SABPOOL_DOES_NOT_FIT', /needs 17 bytes, and the slot has 16/)
  try {
    lease.writeString('é'.repeat(5), 7)
  } catch (error) {
    assert.equal(error.needed, 10)
    assert.equal(error.available, 9)
  }
  assert.equal(lease.length, 16)
  assert.deepEqual(Buffer.from(lease.bytes), before)
  throwsCode(() => lease.writeString(5), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => lease.writeString('a', 17), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => lease.writeString('a', 1.5), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => lease.readString(0, 17), RangeError, 'ERR_OUT_OF_RANGE')
  lease.length = 2
  throwsCode(() => lease.readString(3), RangeError, 'ERR_OUT_OF_RANGE', /past the payload/)
  lease.release()
  throwsCode(() => lease.writeString('a'), Error, 'ERR_SABPOOL_STALE_LEASE')
  throwsCode(() => lease.readString(), Error, 'ERR_SABPOOL_STALE_LEASE')
})

test('strings that are not valid UTF-16, and bytes that are not valid UTF-8, read as U+FFFD', () => {
  const pool = new SharedPool({ slotSize: 32, slots: 1 })
  const lease = pool.acquireSync()
  assert.equal(lease.writeString('a\ud800b'), 5, 'a lone surrogate is written as EF BF BD')
  assert.deepEqual([...lease.bytes.subarray(0, 5)], [0x61, 0xef, 0xbf, 0xbd, 0x62])
  assert.equal(lease.readString(), 'a\ufffdb')
  lease.bytes.set([0x61, 0xff, 0xc3, 0x62])
  lease.length = 4
  assert.equal(lease.readString(), 'a\ufffd\ufffdb')
  // A string near the worst case (3 bytes per unit) is counted before writing.
  throwsCode(() => lease.writeString('\ud800'.repeat(11)), RangeError, 'ERR_SABPOOL_DOES_NOT_FIT', /needs 33/)
  assert.equal(lease.writeString('\ud800'.repeat(10)), 30)
})

test('writeJSON/readJSON, and what JSON cannot hold', () => {
  const pool = new SharedPool({ slotSize: 64, slots: 1 })
  const lease = pool.acquireSync()
  const value = { a: [1, 'two', null, true], b: { c: -0 }, d: 'é' }
  const n = lease.writeJSON(value)
  assert.equal(n, Buffer.byteLength(JSON.stringify(value)))
  assert.equal(lease.length, n)
  assert.deepEqual(lease.readJSON(), { a: [1, 'two', null, true], b: { c: 0 }, d: 'é' })
  throwsCode(() => lease.writeJSON({ big: 1n }), TypeError, 'ERR_INVALID_ARG_TYPE', /BigInt/)
  throwsCode(() => lease.writeJSON(undefined), TypeError, 'ERR_INVALID_ARG_TYPE', /no JSON form/)
  const cyclic = {}
  cyclic.self = cyclic
  throwsCode(() => lease.writeJSON(cyclic), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => lease.writeJSON('x'.repeat(63)), RangeError, 'ERR_SABPOOL_DOES_NOT_FIT', /needs 65/)
  assert.equal(lease.length, n, 'a failed write leaves length')
  assert.equal(lease.writeJSON('x'.repeat(62)), 64, 'exactly full')
  lease.writeString('{"a":')
  throwsCode(() => lease.readJSON(), Error, 'ERR_SABPOOL_BAD_PAYLOAD', /not JSON/)
})

test('writeValue/readValue: the structured-clone format, -0, NaN, BigInt, Map, Set, Date, typed arrays', () => {
  // (Room for Bun's serializer too, whose output is larger than Node's.)
  const pool = new SharedPool({ slotSize: 512, slots: 1 })
  const lease = pool.acquireSync()
  const value = {
    negZero: -0, nan: NaN, inf: -Infinity, big: -(2n ** 70n), date: new Date(86_400_000),
    map: new Map([[1, 'a'], ['k', [2]]]), set: new Set([3, 'b']), f64: new Float64Array([1.5, -0]),
    u8: new Uint8Array([7, 8]), re: /x+/gi, nested: [undefined, null],
  }
  const n = lease.writeValue(value)
  assert.equal(lease.length, n)
  const back = lease.readValue()
  assert.ok(Object.is(back.negZero, -0))
  assert.ok(Number.isNaN(back.nan))
  assert.deepEqual(back, value)
  assert.ok(back.f64.buffer !== pool.handle.buffer, 'a deserialized typed array has its own memory')
  assert.equal(lease.writeValue(undefined), lease.length)
  assert.equal(lease.readValue(), undefined)
  throwsCode(() => lease.writeValue({ f() {} }), TypeError, 'ERR_INVALID_ARG_TYPE', /^writeValue: .*(could|can) not be cloned/)
  const before = lease.length
  throwsCode(() => lease.writeValue('x'.repeat(600)), RangeError, 'ERR_SABPOOL_DOES_NOT_FIT')
  assert.equal(lease.length, before)
  lease.writeString('not serialized')
  throwsCode(() => lease.readValue(), Error, 'ERR_SABPOOL_BAD_PAYLOAD')
})

test('view: typed arrays over the slot at aligned offsets; misaligned and oversized views refused; slots start on 64 bytes', () => {
  const pool = new SharedPool({ slotSize: 100, slots: 3 })
  const leases = [pool.acquireSync(), pool.acquireSync(), pool.acquireSync()]
  for (const lease of leases) assert.equal(lease.bytes.byteOffset % 64, 0, 'slot payloads start on 64-byte boundaries')
  const lease = leases[1]
  const f = lease.view(Float64Array)
  assert.equal(f.length, 12)
  assert.equal(f.buffer, pool.handle.buffer)
  f[0] = Math.PI
  assert.deepEqual([...lease.bytes.subarray(0, 8)], [...new Uint8Array(new Float64Array([Math.PI]).buffer)])
  assert.equal(lease.view(Int32Array, 4, 3).length, 3)
  assert.equal(lease.view(BigInt64Array, 96).length, 0)
  const dv = lease.view(DataView, 3, 10)
  assert.equal(dv.byteLength, 10)
  dv.setUint16(0, 0xbeef)
  assert.equal(lease.bytes[3], 0xbe)
  throwsCode(() => lease.view(Float64Array, 4), RangeError, 'ERR_SABPOOL_MISALIGNED')
  throwsCode(() => lease.view(Uint16Array, 1), RangeError, 'ERR_SABPOOL_MISALIGNED')
  throwsCode(() => lease.view(Float64Array, 0, 13), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => lease.view(Uint8Array, 101), RangeError, 'ERR_OUT_OF_RANGE')
  throwsCode(() => lease.view(Array), TypeError, 'ERR_INVALID_ARG_TYPE')
  throwsCode(() => lease.view(Float64Array, '8'), TypeError, 'ERR_INVALID_ARG_TYPE')
  leases.forEach((l) => l.release())
  throwsCode(() => lease.view(Uint8Array), Error, 'ERR_SABPOOL_STALE_LEASE')
})

test('a topic sample reads with the same codecs', () => {
  const pool = new SharedPool({ slotSize: 128, slots: 4 })
  const topic = new Topic(pool, { capacity: 2 })
  const sub = topic.subscribe()
  const lease = pool.acquireSync()
  lease.writeJSON({ frame: 1, tags: ['a'] })
  topic.publishSync(lease)
  const sample = sub.tryRecv()
  assert.deepEqual(sample.readJSON(), { frame: 1, tags: ['a'] })
  assert.equal(sample.readString(0, 1), '{')
  assert.equal(sample.view(Uint8Array, 0, 1)[0], 0x7b)
  sample.release()
  throwsCode(() => sample.readJSON(), Error, 'ERR_SABPOOL_STALE_LEASE')
  const value = pool.acquireSync()
  value.writeValue(new Map([[1n, -0]]))
  topic.publishSync(value)
  const s2 = sub.tryRecv()
  assert.ok(Object.is(s2.readValue().get(1n), -0))
  s2.release()
  assert.equal(pool.stats().inUse, 0)
})

const CASES = [
  { kind: 'string', write: (l) => l.writeString('grüße ✓'), read: (l) => l.readString(), expected: 'grüße ✓!' },
  { kind: 'json', write: (l) => l.writeJSON({ n: 1, s: 'é' }), read: (l) => l.readJSON(), expected: { got: { n: 1, s: 'é' } } },
  { kind: 'value', write: (l) => l.writeValue(new Map([['k', 2n ** 64n]])), read: (l) => l.readValue(), expected: [new Map([['k', 2n ** 64n]])] },
  { kind: 'view', write: (l) => { l.view(Float64Array, 64, 4).set([1.5, 2.5, 3, -1]); l.length = 96 }, read: (l) => l.view(BigInt64Array, 0, 1)[0], expected: 6n },
]

test('across worker threads: each codec written by one thread is read by another, and answered the same way', async () => {
  const pool = new SharedPool({ slotSize: 256, slots: 4 })
  const requests = new Channel(pool, { capacity: 4 })
  const replies = new Channel(pool, { capacity: 4 })
  const w = spawnWorker('codec-echo.js', { pool: pool.handle, requests: requests.handle, replies: replies.handle, kinds: CASES.map((c) => c.kind), n: 4 })
  for (const c of CASES) {
    const lease = await pool.acquire()
    c.write(lease)
    await requests.send(lease)
    const reply = await replies.recv({ timeout: 10_000 })
    assert.deepEqual(c.read(reply), c.expected, c.kind)
    reply.release()
  }
  requests.close()
  await w.next('done')
  assert.equal(pool.stats().inUse, 0)
})

describe('codecs across processes', () => {
  it('each codec written by one process is read by another, and answered the same way', { timeout: 30_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-codec-'))
    const poolName = `codec${process.pid}`
    const pool = SharedPool.create({ name: poolName, dir, slotSize: 256, slots: 4 })
    const proc = fork(path.join(__dirname, 'fixtures', 'codec-echo.js'), [JSON.stringify({ poolName, dir, n: 4 })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    try {
      const messages = []
      let wake
      proc.on('message', (m) => { messages.push(m); if (wake) wake() })
      const next = () => new Promise((resolve) => {
        wake = () => { if (messages.length) resolve(messages.shift()) }
        wake()
      })
      assert.deepEqual(await next(), { ready: true })
      for (const c of CASES) {
        const lease = pool.acquireSync()
        c.write(lease)
        proc.send({ kind: c.kind, ticket: lease.handoff() })
        const reply = pool.adopt((await next()).ticket)
        assert.deepEqual(c.read(reply), c.expected, c.kind)
        reply.release()
      }
      assert.equal(pool.stats().inUse, 0)
    } finally {
      proc.kill()
      pool.unlink()
      pool.detach()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
