'use strict'
// Service: request/response between threads (and processes) over a pool.
const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const { setTimeout: sleep } = require('node:timers/promises')
const { SharedPool, Service, Channel } = require('..')
const { spawnWorker, terminateWorkers, rejectsCode, throwsCode, waitFor, assertAllFreeOnce } = require('./helpers.js')
const { OPS } = require('./fixtures/svc-common.js')

afterEach(terminateWorkers)

/** A pool, a service on it, and `servers` server threads (sync unless `mode` is 'async'). */
async function setup({ slots = 16, slotSize = 256, capacity = 8, servers = 1, mode = 'sync', concurrency } = {}) {
  const pool = new SharedPool({ slotSize, slots })
  const svc = new Service(pool, { capacity })
  const workers = []
  for (let i = 0; i < servers; i++) {
    const w = spawnWorker('svc-server.js', { pool: pool.handle, svc: svc.handle, mode, concurrency })
    await w.next('ready')
    workers.push(w)
  }
  await waitFor(() => svc.stats().servers === servers * (mode === 'async' ? 1 : 1), 'servers to be counted')
  return { pool, svc, workers }
}

/** A request lease: op byte, then `bytes`. */
function request(pool, op, bytes = [1, 2, 3]) {
  const lease = pool.tryAcquire()
  assert.ok(lease, 'a free slot')
  lease.bytes[0] = op
  lease.bytes.set(bytes, 1)
  lease.length = 1 + bytes.length
  return lease
}

describe('Service: calls and replies', () => {
  it('a reply in place (handler returns a length) comes back to the caller, now its lease', async () => {
    const { pool, svc } = await setup()
    const lease = request(pool, OPS.INVERT, [1, 2, 3, 250])
    const reply = await svc.call(lease)
    assert.equal(reply.owned, true)
    assert.equal(reply.slot, lease.slot, 'same slot')
    assert.deepEqual([...reply.bytes.subarray(0, reply.length)], [OPS.INVERT, 254, 253, 252, 5])
    reply.release()
    const s = svc.stats()
    assert.equal(s.calls, 1)
    assert.equal(s.replies, 1)
    assert.equal(s.inFlight, 0)
    assert.equal(s.servers, 1)
    svc.close()
    assertAllFreeOnce(pool)
  })

  it('undefined replies with the request as it is; another lease replies in its slot and the request slot goes back', async () => {
    const { pool, svc } = await setup()
    const same = await svc.call(request(pool, OPS.AS_IS, [9, 8]))
    assert.deepEqual([...same.bytes.subarray(0, same.length)], [OPS.AS_IS, 9, 8])
    same.release()
    const req = request(pool, OPS.NEW_LEASE, [1, 2, 3])
    const reqSlot = req.slot
    const other = await svc.call(req, 4)
    assert.notEqual(other.slot, reqSlot)
    assert.deepEqual([...other.bytes.subarray(0, other.length)], [3, 2, 1, OPS.NEW_LEASE])
    // The server sends the reply before it releases the request: give it that moment.
    await waitFor(() => pool.stats().inUse === 1, 'only the reply in use: the request slot back')
    other.release()
    svc.close()
    assertAllFreeOnce(pool)
  })

  it('a length argument sends only that many bytes', async () => {
    const { pool, svc } = await setup()
    const lease = request(pool, OPS.AS_IS, [1, 2, 3, 4, 5])
    const reply = await svc.call(lease, 3)
    assert.equal(reply.length, 3)
    reply.release()
    svc.close()
  })

  it('callSync works from a thread that blocks, with many callers at once: every reply answers its own request', { timeout: 60_000 }, async () => {
    const { pool, svc } = await setup({ servers: 2, slots: 32, capacity: 8 })
    const callers = [1, 2, 3].map((seed) => spawnWorker('svc-caller.js', { pool: pool.handle, svc: svc.handle, n: 400, seed }))
    // The main thread calls concurrently too, 8 calls in flight at a time.
    let mainOk = 0
    const lane = async (seed) => {
      for (let i = 0; i < 100; i++) {
        const lease = await pool.acquire()
        const n = 2 + ((seed * 31 + i * 7) % 200)
        lease.bytes[0] = OPS.INVERT
        for (let j = 1; j < n; j++) lease.bytes[j] = (seed + i + j) & 0xff
        const reply = await svc.call(lease, n)
        let good = reply.length === n
        for (let j = 1; good && j < n; j++) good = reply.bytes[j] === (((seed + i + j) & 0xff) ^ 0xff)
        reply.release()
        if (good) mainOk++
      }
    }
    await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(lane))
    const results = await Promise.all(callers.map((c) => c.next('done', 50_000)))
    assert.equal(mainOk, 800)
    for (const r of results) assert.deepEqual(r, { type: 'done', ok: 400, bad: 0 })
    const s = svc.stats()
    assert.equal(s.calls, 2000)
    assert.equal(s.replies, 2000)
    assert.equal(s.inFlight, 0)
    svc.close()
    await Promise.all(callers.map((c) => c.exited))
    assertAllFreeOnce(pool)
  })
})

describe('Service: errors', () => {
  it('a handler that throws rejects that call with its message and code; the request slot goes back; the server goes on', async () => {
    const { pool, svc } = await setup()
    const code = [...Buffer.from('E_CUSTOM')]
    await rejectsCode(svc.call(request(pool, OPS.THROW_CODE, code)), Error, 'E_CUSTOM', /failed on purpose/)
    assert.equal(pool.stats().inUse, 0)
    await rejectsCode(svc.call(request(pool, OPS.THROW_STRING)), Error, 'ERR_SABPOOL_HANDLER', /a plain string/)
    await rejectsCode(svc.call(request(pool, OPS.BAD_REPLY)), Error, 'ERR_SABPOOL_BAD_REPLY')
    const ok = await svc.call(request(pool, OPS.INVERT))
    ok.release()
    const s = svc.stats()
    assert.equal(s.errors, 3)
    assert.equal(s.replies, 1)
    svc.close()
    assertAllFreeOnce(pool)
  })

  it('an error message longer than the slot is cut to fit', async () => {
    const { pool, svc } = await setup({ slotSize: 24 })
    const code = [...Buffer.from('E_A_RATHER_LONG_CODE')]
    await assert.rejects(svc.call(request(pool, OPS.THROW_CODE, code)), (err) => {
      assert.ok(err.code.length > 0 && 'E_A_RATHER_LONG_CODE'.startsWith(err.code))
      return true
    })
    svc.close()
    assertAllFreeOnce(pool)
  })

  it('a handler that gives the request away without a reply: the call rejects with ERR_SABPOOL_NO_REPLY', async () => {
    const { pool, svc } = await setup()
    await rejectsCode(svc.call(request(pool, OPS.GIVE_AWAY)), Error, 'ERR_SABPOOL_NO_REPLY')
    svc.close()
    assertAllFreeOnce(pool)
  })

  it('bad arguments are refused with coded errors and the lease stays the caller\'s', async () => {
    const { pool, svc } = await setup()
    const other = new SharedPool({ slotSize: 64, slots: 2 })
    await rejectsCode(svc.call({}), TypeError, 'ERR_INVALID_ARG_TYPE')
    const foreign = other.tryAcquire()
    await rejectsCode(svc.call(foreign), TypeError, 'ERR_SABPOOL_BAD_TICKET')
    foreign.release()
    const lease = pool.tryAcquire()
    await rejectsCode(svc.call(lease, pool.slotSize + 1), RangeError, 'ERR_SABPOOL_BAD_LENGTH')
    await rejectsCode(svc.call(lease, 1, { timeout: -1 }), RangeError, 'ERR_OUT_OF_RANGE')
    await rejectsCode(svc.call(lease, 1, { signal: 5 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => svc.callSync(lease, 1, 'x'), TypeError, 'ERR_INVALID_ARG_TYPE')
    assert.equal(lease.owned, true)
    lease.release()
    await rejectsCode(svc.call(lease), Error, 'ERR_SABPOOL_STALE_LEASE')
    throwsCode(() => svc.serveSync(42), TypeError, 'ERR_INVALID_ARG_TYPE')
    await rejectsCode(svc.serve(null), TypeError, 'ERR_INVALID_ARG_TYPE')
    await rejectsCode(svc.serve(() => {}, { concurrency: 0 }), RangeError, 'ERR_OUT_OF_RANGE')
    throwsCode(() => new Service({}, { capacity: 4 }), TypeError, 'ERR_INVALID_ARG_TYPE')
    throwsCode(() => new Service(pool, { capacity: 3 }), RangeError, 'ERR_OUT_OF_RANGE')
    throwsCode(() => Service.attach({ kind: 'nope' }, pool), TypeError, 'ERR_SABPOOL_BAD_HANDLE')
    throwsCode(() => Service.attach(svc.handle, other), TypeError, 'ERR_SABPOOL_BAD_HANDLE')
    throwsCode(() => Service.prototype.stats.call({}), TypeError, 'ERR_INVALID_THIS')
    svc.close()
    assertAllFreeOnce(pool)
  })
})

describe('Service: timeouts and aborts', () => {
  it('a call that times out rejects; its late reply is returned to the pool by the library', async () => {
    const { pool, svc } = await setup()
    await rejectsCode(svc.call(request(pool, OPS.SLEEP, [20]), undefined, { timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT')
    assert.equal(svc.stats().timeouts, 1)
    await waitFor(() => svc.stats().late === 1, 'the late reply to be returned', 5000)
    await waitFor(() => pool.stats().inUse === 0, 'its slot to be free')
    svc.close()
    assertAllFreeOnce(pool)
  })

  it('callSync times out the same way', async () => {
    const { pool, svc } = await setup()
    // The blocking call runs here on the main thread: the server is another thread.
    throwsCode(() => svc.callSync(request(pool, OPS.SLEEP, [20]), undefined, { timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT')
    await waitFor(() => pool.stats().inUse === 0, 'the late reply to be returned', 5000)
    svc.close()
  })

  it('an abort rejects with ABORT_ERR, and the reply is returned when it comes; an aborted signal leaves the lease with the caller', async () => {
    const { pool, svc } = await setup()
    const ac = new AbortController()
    const pending = svc.call(request(pool, OPS.SLEEP, [10]), undefined, { signal: ac.signal })
    setTimeout(() => ac.abort(), 10)
    await rejectsCode(pending, Error, 'ABORT_ERR')
    assert.equal(svc.stats().aborts, 1)
    await waitFor(() => pool.stats().inUse === 0, 'the aborted call\'s reply to be returned', 5000)
    const lease = request(pool, OPS.INVERT)
    await rejectsCode(svc.call(lease, undefined, { signal: AbortSignal.abort() }), Error, 'ABORT_ERR')
    assert.equal(lease.owned, true)
    lease.release()
    svc.close()
  })

  it('backpressure: with no server and a full request ring, call waits, and its timeout leaves the lease with the caller', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 8 })
    const svc = new Service(pool, { capacity: 2 })
    const queued = [svc.call(request(pool, OPS.INVERT)), svc.call(request(pool, OPS.INVERT))]
    const third = request(pool, OPS.INVERT)
    await rejectsCode(svc.call(third, undefined, { timeout: 30 }), Error, 'ERR_SABPOOL_TIMEOUT')
    assert.equal(third.owned, true, 'never sent: still the caller\'s')
    // A server now drains the queue.
    const w = spawnWorker('svc-server.js', { pool: pool.handle, svc: svc.handle, mode: 'sync' })
    await w.next('ready')
    for (const reply of await Promise.all(queued)) reply.release()
    ;(await svc.call(third)).release()
    svc.close()
    assert.equal((await w.next('done')).served, 3)
    assertAllFreeOnce(pool)
  })
})

describe('Service: servers that die', () => {
  for (const [what, op] of [['exits (process.exit in a worker)', OPS.EXIT], ['is terminated', OPS.HANG]]) {
    it(`a server that ${what} while handling: its call rejects with ERR_SABPOOL_NO_REPLY, the slot is reclaimed, the other server goes on`, { timeout: 30_000 }, async () => {
      const { pool, svc, workers } = await setup({ servers: 2 })
      const doomed = svc.call(request(pool, op))
      if (op === OPS.HANG) {
        // Whichever server took it says so; terminate that one.
        const busy = await Promise.race(workers.map((w, i) => w.next('busy', 10_000).then(() => i)))
        await workers[busy].worker.terminate()
      }
      await rejectsCode(doomed, Error, 'ERR_SABPOOL_NO_REPLY')
      assert.equal(svc.stats().lost, 1)
      await waitFor(() => svc.stats().servers === 1, 'the dead server to be uncounted')
      for (let i = 0; i < 5; i++) (await svc.call(request(pool, OPS.INVERT))).release()
      svc.close()
      assertAllFreeOnce(pool)
    })
  }

  it('an async server whose thread dies of an uncaught exception: the call rejects, the slot comes back', { timeout: 30_000 }, async () => {
    const { pool, svc, workers } = await setup({ servers: 1, mode: 'async' })
    await rejectsCode(svc.call(request(pool, OPS.UNCAUGHT)), Error, 'ERR_SABPOOL_NO_REPLY')
    await workers[0].exited
    assert.equal(svc.stats().servers, 0)
    svc.close()
    assertAllFreeOnce(pool)
  })
})

describe('Service: async servers', () => {
  it('serve() handles up to `concurrency` requests at a time and resolves with how many it served after close', async () => {
    const { pool, svc, workers } = await setup({ servers: 1, mode: 'async', concurrency: 3, slots: 16 })
    const replies = await Promise.all(Array.from({ length: 9 }, () => svc.call(request(pool, OPS.SLEEP, [2]))))
    for (const r of replies) r.release()
    svc.close()
    const done = await workers[0].next('done')
    assert.equal(done.served, 9)
    assert.equal(done.maxActive, 3)
    assertAllFreeOnce(pool)
  })

  it('serve() in the same thread as the calls', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 8 })
    const svc = new Service(pool, { capacity: 4 })
    const serving = svc.serve(async (req) => {
      await sleep(1)
      req.bytes[0] += 1
    })
    const lease = pool.tryAcquire()
    lease.bytes[0] = 41
    lease.length = 1
    const reply = await svc.call(lease)
    assert.equal(reply.bytes[0], 42)
    reply.release()
    svc.close()
    assert.equal(await serving, 1)
  })
})

describe('Service: close', () => {
  it('close(): new calls reject with ERR_SABPOOL_CLOSED and keep the lease; serve loops return; queued requests are served first', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 8 })
    const svc = new Service(pool, { capacity: 4 })
    const queued = [svc.call(request(pool, OPS.INVERT)), svc.call(request(pool, OPS.INVERT))]
    const w = spawnWorker('svc-server.js', { pool: pool.handle, svc: svc.handle, mode: 'sync' })
    await w.next('ready')
    for (const reply of await Promise.all(queued)) reply.release()
    assert.equal(svc.close(), true)
    assert.equal(svc.close(), false)
    assert.equal(svc.closed, true)
    assert.equal((await w.next('done')).served, 2)
    const lease = request(pool, OPS.INVERT)
    await rejectsCode(svc.call(lease), Error, 'ERR_SABPOOL_CLOSED')
    assert.equal(lease.owned, true)
    lease.release()
    assertAllFreeOnce(pool)
  })

  it('close() with no server attached answers the queued requests with ERR_SABPOOL_CLOSED', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 8 })
    const svc = new Service(pool, { capacity: 4 })
    const queued = [svc.call(request(pool, OPS.INVERT)), svc.call(request(pool, OPS.INVERT))]
    await sleep(5)
    svc.close()
    for (const p of queued) await rejectsCode(p, Error, 'ERR_SABPOOL_CLOSED')
    assertAllFreeOnce(pool)
  })

  it('a lease sent into the request channel by hand (no call) is returned, not served', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 4 })
    const svc = new Service(pool, { capacity: 4 })
    const requests = Channel.attach(svc.handle.requests, pool)
    const lease = pool.tryAcquire()
    // A slot record that says "reply" is not a request.
    const reply = await (async () => {
      const serving = svc.serve(() => assert.fail('must not be called'))
      requests.trySend(lease, 0)
      await waitFor(() => svc.stats().stray === 1, 'the stray lease to be counted')
      svc.close()
      return serving
    })()
    assert.equal(reply, 0)
    assertAllFreeOnce(pool)
  })
})

describe('Service across processes (file-backed pools)', () => {
  const fs = require('node:fs')
  const os = require('node:os')
  const path = require('node:path')
  const { fork } = require('node:child_process')
  const CHILD = path.join(__dirname, 'fixtures', 'svc-process.js')

  /** A forked participant: `next(type)` resolves with its next message of that type. */
  function child(args) {
    const proc = fork(CHILD, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
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

  it('processes serve and call by name; a server killed with SIGKILL mid-request: its call rejects with ERR_SABPOOL_NO_REPLY, its slot comes back, the other server goes on; unlink removes the files', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-svc-'))
    const name = `svc${process.pid}`
    const pool = SharedPool.create({ name, dir, slotSize: 128, slots: 16 })
    const svc = Service.create(pool, { name, dir, capacity: 8 })
    const servers = [child([name, dir, 'serve']), child([name, dir, 'serve'])]
    try {
      await Promise.all(servers.map((s) => s.next('ready')))
      await waitFor(() => svc.stats().servers === 2, 'both servers counted')
      // A caller in a third process, and calls from here.
      const caller = child([name, dir, 'call', '300', '7'])
      for (let i = 0; i < 50; i++) {
        const reply = await svc.call(request(pool, OPS.INVERT, [i, 255 - i]))
        assert.deepEqual([...reply.bytes.subarray(1, reply.length)], [i ^ 0xff, i])
        reply.release()
      }
      assert.deepEqual(await caller.next('done'), { type: 'done', ok: 300, bad: 0 })
      await caller.exited

      const doomed = svc.call(request(pool, OPS.HANG))
      const busy = await Promise.race(servers.map((s, i) => s.next('busy').then(() => i)))
      servers[busy].proc.kill('SIGKILL')
      await rejectsCode(doomed, Error, 'ERR_SABPOOL_NO_REPLY')
      await waitFor(() => svc.stats().servers === 1, 'the killed server to be uncounted')
      for (let i = 0; i < 10; i++) (await svc.call(request(pool, OPS.INVERT))).release()
      assert.equal(pool.stats().inUse, 0)

      svc.close()
      const other = servers[1 - busy]
      assert.ok((await other.next('done')).served >= 1)
      await other.exited
      assert.equal(svc.unlink(), true)
      const left = fs.readdirSync(dir).filter((f) => !f.endsWith('.pool'))
      assert.deepEqual(left, [], 'the service files are removed')
      assertAllFreeOnce(pool)
    } finally {
      for (const s of servers) s.proc.kill('SIGKILL')
      pool.detach()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('servers and callers killed with SIGKILL at random points: every call gets its own reply or ERR_SABPOOL_NO_REPLY, and every slot comes back', { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-svc-'))
    const name = `svckill${process.pid}`
    const pool = SharedPool.create({ name, dir, slotSize: 96, slots: 24 })
    const svc = Service.create(pool, { name, dir, capacity: 8 })
    const live = new Set()
    const spawn = (args) => {
      const c = child(args)
      live.add(c)
      c.exited.then(() => live.delete(c))
      return c
    }
    const servers = [spawn([name, dir, 'serve']), spawn([name, dir, 'serve'])]
    let caller = spawn([name, dir, 'call', '1000000', '11'])
    let ok = 0
    let lost = 0
    let stop = false
    const lane = async (k) => {
      for (let i = 0; !stop; i++) {
        const lease = await pool.acquire({ timeout: 20_000 })
        const n = 2 + ((k * 13 + i) % 90)
        lease.bytes[0] = OPS.INVERT
        for (let j = 1; j < n; j++) lease.bytes[j] = (k + i * j) & 0xff
        try {
          const reply = await svc.call(lease, n, { timeout: 20_000 })
          let good = reply.length === n
          for (let j = 1; good && j < n; j++) good = reply.bytes[j] === (((k + i * j) & 0xff) ^ 0xff)
          reply.release()
          assert.ok(good, 'a reply answers its own request')
          ok++
        } catch (error) {
          if (error.code !== 'ERR_SABPOOL_NO_REPLY') throw error
          lost++
        }
      }
    }
    try {
      await Promise.all(servers.map((s) => s.next('ready')))
      const lanes = [0, 1, 2, 3, 4, 5].map(lane)
      let seed = 12345
      const rand = (n) => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
        return seed % n
      }
      for (let round = 0; round < 12; round++) {
        await sleep(5 + rand(40))
        if (round % 3 === 2) {
          caller.proc.kill('SIGKILL')
          await caller.exited
          caller = spawn([name, dir, 'call', '1000000', String(round + 20)])
        } else {
          const i = rand(2)
          servers[i].proc.kill('SIGKILL')
          await servers[i].exited
          servers[i] = spawn([name, dir, 'serve'])
          await servers[i].next('ready')
        }
      }
      stop = true
      await Promise.all(lanes)
      assert.ok(ok > 0, 'calls were answered')
      caller.proc.kill('SIGKILL')
      await caller.exited
      svc.close()
      await Promise.all(servers.map((s) => s.exited))
      pool.reclaimDead()
      svc.close() // the sweep of ports left by dead callers runs again now that they are reclaimed
      // The shared count also has the calls of the killed caller processes that lost their server.
      assert.ok(svc.stats().lost >= lost, `stats().lost ${svc.stats().lost} < the ${lost} seen here`)
      assertAllFreeOnce(pool)
    } finally {
      stop = true
      for (const c of live) c.proc.kill('SIGKILL')
      svc.unlink()
      pool.detach()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('a Service.create that fails after making its table file removes it again', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-svc-'))
    const pool = SharedPool.create({ name: `svc-fail${process.pid}`, dir, slotSize: 64, slots: 2 })
    try {
      // A file that is not a channel where the request channel's file would go: its create fails
      // after the service table file was made.
      fs.writeFileSync(path.join(dir, 'sabpool.half.requests.channel'), 'not a channel')
      const before = fs.readdirSync(dir).sort()
      throwsCode(() => Service.create(pool, { name: 'half', capacity: 2, dir }), Error, 'ERR_SABPOOL_EXISTS')
      assert.deepEqual(fs.readdirSync(dir).sort(), before)
      throwsCode(() => Service.open('half', pool, { dir }), Error, 'ERR_SABPOOL_NOT_FOUND')
      // Once the obstacle is gone the name works, and nothing of the failed attempt is in the way.
      fs.rmSync(path.join(dir, 'sabpool.half.requests.channel'))
      const svc = Service.create(pool, { name: 'half', capacity: 2, dir })
      svc.unlink()
      svc.close()
    } finally {
      pool.detach()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it('Service.open refuses a name with no service, and an in-process pool', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-svc-'))
    const pool = SharedPool.create({ name: `svc-none${process.pid}`, dir, slotSize: 64, slots: 2 })
    try {
      throwsCode(() => Service.open('nothing-here', pool, { dir }), Error, 'ERR_SABPOOL_NOT_FOUND')
      throwsCode(() => Service.create(new SharedPool({ slotSize: 64, slots: 2 }), { name: 'x', capacity: 2, dir }), TypeError, 'ERR_SABPOOL_NOT_FILE')
      throwsCode(() => Service.create(pool, { name: '../x', capacity: 2, dir }), TypeError, 'ERR_SABPOOL_BAD_NAME')
    } finally {
      pool.detach()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})
