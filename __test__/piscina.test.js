'use strict'
// require('sabpool/piscina') against the real piscina package (5.x): runLease on this thread,
// leaseTask functions in piscina's threads (fixtures/piscina-tasks.js); and examples/piscina,
// which is written with them.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')
const { Piscina } = require('piscina')
const { SharedPool, Lease } = require('sabpool')
const { runLease, leaseTask } = require('sabpool/piscina')
const { run } = require('../examples/piscina/main.js')
const { FIXTURES, waitFor, rejectsCode, throwsCode, assertAllFreeOnce, spawnWorker, terminateWorkers } = require('./helpers.js')

const ROOT = path.join(__dirname, '..')
const TASKS = path.join(FIXTURES, 'piscina-tasks.js')

const digest = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex')

/** A pool and a piscina running fixtures/piscina-tasks.js; destroys both after `fn`. */
async function withPiscina(options, fn) {
  const pool = new SharedPool({ slotSize: 4096, slots: 8, ...options.pool })
  const piscina = new Piscina({
    filename: TASKS,
    workerData: { pool: pool.handle },
    minThreads: 1,
    maxThreads: options.threads ?? 2,
    idleTimeout: 1000,
    ...options.piscina,
  })
  try {
    await fn(pool, piscina)
  } finally {
    await piscina.destroy()
    pool.detach()
  }
}

/** Word 0 of the returned Int32Array becomes 1 when a task given `flags` starts; setting word 1
 * lets a 'hold' task go on. */
function newFlags() {
  const flags = new SharedArrayBuffer(8)
  return { flags, words: new Int32Array(flags) }
}

const startedIn = (words) => Atomics.load(words, 0) === 1

afterEach(terminateWorkers)

describe('runLease / leaseTask', () => {
  it('many concurrent runs on every thread: each reply is its own request, verified by digest', async () => {
    await withPiscina({ threads: 3, pool: { slots: 6 }, piscina: { concurrentTasksPerWorker: 2 } }, async (pool, piscina) => {
      const runs = 240
      const slots = new Set()
      await Promise.all(Array.from({ length: runs }, async (_, t) => {
        const lease = await pool.acquire()
        const length = 1 + crypto.randomInt(pool.slotSize)
        const request = lease.bytes.subarray(0, length)
        crypto.randomFillSync(request)
        const expected = Buffer.from(request).reverse()
        const trim = t % 3
        const back = await runLease(piscina, pool, lease, { name: 'reverse', length, task: { sha256: digest(request), trim: Math.min(trim, length), async: t % 2 === 0 } })
        try {
          assert.ok(back instanceof Lease && back.owned)
          assert.equal(lease.owned, false, 'the request lease was handed off')
          assert.equal(back.slot, lease.slot, 'a reply in place comes back in the same slot')
          assert.equal(back.length, length - Math.min(trim, length))
          assert.equal(digest(back.bytes.subarray(0, back.length)), digest(expected.subarray(0, back.length)), `run ${t}`)
          slots.add(back.slot)
        } finally {
          back.release()
        }
      }))
      assert.equal(piscina.completed, runs)
      assert.equal(slots.size, 6, 'every slot was used')
      assertAllFreeOnce(pool)
    })
  })

  it('length defaults to lease.length; task defaults to undefined', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const lease = pool.acquireSync()
      lease.length = 123
      lease.bytes.fill(9, 0, 123)
      const back = await runLease(piscina, pool, lease, { name: 'quick' })
      assert.equal(back.length, 123)
      assert.deepEqual([...back.bytes.subarray(0, 124)], [...Array(123).fill(9), 0])
      back.release()
      const again = await runLease(piscina, pool, pool.acquireSync(), { name: 'reverse', task: { sha256: digest(new Uint8Array(0)) } })
      assert.equal(again.length, 0)
      again.release()
      assert.equal(pool.stats().inUse, 0)
    })
  })

  it('a function may reply with another lease of the pool: the request slot is released', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const lease = pool.acquireSync()
      for (let i = 0; i < 100; i++) lease.bytes[i] = i
      const requestSlot = lease.slot
      const back = await runLease(piscina, pool, lease, { name: 'copyPlusOne', length: 100, task: { length: 40 } })
      assert.notEqual(back.slot, requestSlot)
      assert.equal(back.length, 40)
      assert.deepEqual([...back.bytes.subarray(0, 40)], Array.from({ length: 40 }, (_, i) => i + 1))
      assert.equal(pool.stats().inUse, 1, 'only the reply is in use')
      back.release()
      assertAllFreeOnce(pool)
    })
  })

  it('a function that throws or rejects: the run rejects with its error, code included, and the slot is back', async () => {
    await withPiscina({}, async (pool, piscina) => {
      for (const async of [false, true]) {
        const lease = pool.acquireSync()
        await assert.rejects(runLease(piscina, pool, lease, { name: 'fail', task: { message: 'no good', code: 'E_NO_GOOD', async } }),
          (err) => err instanceof Error && err.message === 'no good' && err.code === 'E_NO_GOOD')
        assert.equal(lease.owned, false)
        assert.equal(pool.stats().inUse, 0, `async: ${async}`)
        await assert.rejects(runLease(piscina, pool, pool.acquireSync(), { name: 'fail', task: { message: 'no code', async } }),
          (err) => err.message === 'no code' && err.code === undefined)
        assert.equal(pool.stats().inUse, 0)
      }
      // The worker's own sabpool errors keep their codes too: a ticket of another pool.
      const other = new SharedPool({ slotSize: 64, slots: 1 })
      await rejectsCode(runLease(piscina, other, other.acquireSync(), { name: 'quick' }), Error, 'ERR_SABPOOL_BAD_TICKET', /another pool|not to this pool/)
      assert.equal(other.stats().inUse, 0, 'never adopted: taken back and released here')
      other.detach()
      assertAllFreeOnce(pool)
    })
  })

  it('a reply that is not a length, undefined or an owned Lease of the pool: ERR_SABPOOL_BAD_REPLY, slots back', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const kinds = ['string', 'object', 'null', 'negative', 'fraction', 'too long', 'released', 'released lease', 'foreign lease', 'async string']
      for (const kind of kinds) {
        const err = await runLease(piscina, pool, pool.acquireSync(), { name: 'badReply', task: { kind } }).then(() => null, (e) => e)
        assert.ok(err instanceof Error, `${kind}: rejected`)
        assert.equal(err.code, 'ERR_SABPOOL_BAD_REPLY', `${kind}: ${err.message}`)
        assert.match(err.message, /must return a length, undefined or a Lease of the pool/)
        assert.equal(pool.stats().inUse, 0, kind)
      }
      assertAllFreeOnce(pool)
      // A task function that is not made with leaseTask: its result is no reply ticket, and the
      // request it never adopted is taken back.
      await rejectsCode(runLease(piscina, pool, pool.acquireSync(), { name: 'plain' }), Error, 'ERR_SABPOOL_BAD_REPLY', /not a reply ticket/)
      assertAllFreeOnce(pool)
    })
  })

  it('aborted before a worker took it: AbortError, and the slot is back at once', async () => {
    await withPiscina({ threads: 1 }, async (pool, piscina) => {
      // An aborted signal: piscina refuses the run straight away.
      const lease = pool.acquireSync()
      await assert.rejects(runLease(piscina, pool, lease, { name: 'quick', signal: AbortSignal.abort() }), { name: 'AbortError' })
      assert.equal(lease.owned, false)
      assert.equal(pool.stats().inUse, 0)

      // Aborted while queued behind a task that holds the only thread.
      const hold = newFlags()
      const holding = runLease(piscina, pool, pool.acquireSync(), { name: 'hold', task: { flags: hold.flags } })
      await waitFor(() => startedIn(hold.words), 'the hold task to start')
      const controller = new AbortController()
      const queued = newFlags()
      const waiting = runLease(piscina, pool, pool.acquireSync(), { name: 'quick', signal: controller.signal, task: { flags: queued.flags } })
      assert.equal(pool.stats().inUse, 2)
      controller.abort()
      await assert.rejects(waiting, { name: 'AbortError' })
      assert.equal(pool.stats().inUse, 1, 'the queued request is back; the running one is not')
      Atomics.store(hold.words, 1, 1)
      Atomics.notify(hold.words, 1)
      ;(await holding).release()
      assert.equal(startedIn(queued.words), false, 'the aborted task never ran')
      assertAllFreeOnce(pool)
    })
  })

  it('aborted while it runs: piscina terminates its thread, whose slot is reclaimed', async () => {
    await withPiscina({}, async (pool, piscina) => {
      for (let i = 0; i < 3; i++) {
        const { flags, words } = newFlags()
        const controller = new AbortController()
        const running = runLease(piscina, pool, pool.acquireSync(), { name: 'spin', signal: controller.signal, task: { flags } })
        await waitFor(() => startedIn(words), 'the task to start')
        const reclaimed = pool.stats().reclaimed
        controller.abort(new Error('stop'))
        await assert.rejects(running, (err) => err.name === 'AbortError' && err.cause.message === 'stop')
        await waitFor(() => pool.stats().inUse === 0, 'the slot to be reclaimed from the terminated thread')
        assert.equal(pool.stats().reclaimed, reclaimed + 1)
      }
      // The pool and piscina go on working.
      const back = await runLease(piscina, pool, pool.acquireSync(), { name: 'quick' })
      back.release()
      assertAllFreeOnce(pool)
    })
  })

  it('aborted after the worker replied but before piscina delivered it: the reply in flight is released', async () => {
    await withPiscina({ threads: 1 }, async (pool, piscina) => {
      // piscina itself reports the result it got for a run it had already rejected.
      const unexpected = []
      piscina.on('error', (err) => unexpected.push(err.message))
      // Warm the thread up, so that the next run is posted to it at once.
      ;(await runLease(piscina, pool, pool.acquireSync(), { name: 'quick' })).release()
      const { flags, words } = newFlags()
      const controller = new AbortController()
      const released = pool.stats().released
      const running = runLease(piscina, pool, pool.acquireSync(), { name: 'quick', signal: controller.signal, task: { flags } })
      // Block this thread (so piscina cannot take the result in) until the worker started, then
      // long enough for it to hand its reply off and post it; then abort.
      assert.notEqual(Atomics.wait(words, 0, 0, 10_000), 'timed-out', 'the task started')
      const until = performance.now() + 200
      while (performance.now() < until);
      controller.abort()
      await assert.rejects(running, { name: 'AbortError' })
      assert.equal(pool.stats().inUse, 0, 'the announced reply was adopted and released before the rejection settled')
      assert.equal(pool.stats().released, released + 1)
      assertAllFreeOnce(pool)
      await waitFor(() => unexpected.length > 0, "piscina's 'error' event")
      assert.match(unexpected[0], /^Unexpected message from Worker/)
    })
  })

  it('aborted after the reply was announced, before its handoff: the dying thread\'s slot is reclaimed', async () => {
    await withPiscina({}, async (pool, piscina) => {
      const { flags, words } = newFlags()
      const controller = new AbortController()
      const running = runLease(piscina, pool, pool.acquireSync(), { name: 'slowHandoff', signal: controller.signal, task: { flags, ms: 60_000 } })
      await waitFor(() => startedIn(words), 'the reply to be announced')
      controller.abort()
      await assert.rejects(running, { name: 'AbortError' })
      await waitFor(() => pool.stats().inUse === 0, 'the slot to be reclaimed from the terminated thread')
      assertAllFreeOnce(pool)
    })
  })

  it('aborts at random moments around completion leave no slot in use', async () => {
    await withPiscina({ threads: 2, pool: { slots: 4 } }, async (pool, piscina) => {
      const outcomes = { resolved: 0, aborted: 0, unexpected: 0 }
      // An abort that loses the race to the result: piscina reports that result as unexpected.
      piscina.on('error', (err) => {
        assert.match(err.message, /^Unexpected message from Worker/)
        outcomes.unexpected++
      })
      // Two lanes (one per thread) of runs, each aborted once its task has started: at once, after
      // a spin of up to 300 µs that keeps this thread from taking the result in (the worker is
      // anywhere between its function and posting its reply), or after a turn of the event loop.
      const lane = async () => {
        for (let i = 0; i < 20; i++) {
          const { flags, words } = newFlags()
          const controller = new AbortController()
          const lease = await pool.acquire()
          const running = runLease(piscina, pool, lease, { name: 'quick', length: 1 + i, signal: controller.signal, task: { flags } })
          while (!startedIn(words)) await new Promise(setImmediate)
          const how = crypto.randomInt(4)
          if (how === 3) {
            await new Promise(setImmediate)
          } else if (how > 0) {
            const until = performance.now() + crypto.randomInt(300) / 1000
            while (performance.now() < until);
          }
          controller.abort()
          try {
            const back = await running
            assert.equal(back.length, 1 + i)
            outcomes.resolved++
            back.release()
          } catch (err) {
            assert.equal(err.name, 'AbortError', err.stack)
            outcomes.aborted++
          }
        }
      }
      await Promise.all([lane(), lane()])
      assert.equal(outcomes.resolved + outcomes.aborted, 40)
      await waitFor(() => pool.stats().inUse === 0, `every slot back (outcomes ${JSON.stringify(outcomes)}, stats ${JSON.stringify(pool.stats())})`, 10_000)
      assertAllFreeOnce(pool)
    })
  })

  it('a thread that exits in the middle of a task: the run rejects and the slot is reclaimed', async () => {
    await withPiscina({}, async (pool, piscina) => {
      await assert.rejects(runLease(piscina, pool, pool.acquireSync(), { name: 'exit' }), /exited with code: 7/)
      await waitFor(() => pool.stats().inUse === 0, 'the slot to be reclaimed')
      assertAllFreeOnce(pool)
    })
  })

  it('destroy() while tasks run and wait: every run rejects, every slot comes back', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 4 })
    const piscina = new Piscina({ filename: TASKS, workerData: { pool: pool.handle }, minThreads: 1, maxThreads: 1 })
    const { flags, words } = newFlags()
    const runs = [runLease(piscina, pool, pool.acquireSync(), { name: 'spin', task: { flags } })]
    for (let i = 0; i < 3; i++) runs.push(runLease(piscina, pool, pool.acquireSync(), { name: 'quick' }))
    const settled = Promise.allSettled(runs)
    await waitFor(() => startedIn(words), 'the first task to start')
    await piscina.destroy()
    const results = await settled
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected', 'rejected'])
    await waitFor(() => pool.stats().inUse === 0, 'every slot back')
    assertAllFreeOnce(pool)
    pool.detach()
  })

  it('a run given up while its worker is still replying: the reply is adopted once it is in flight', async () => {
    // A stand-in for piscina that gives up (rejects) as soon as the worker has announced its reply,
    // while the worker, alive, takes 150 ms more to hand it off.
    const pool = new SharedPool({ slotSize: 64, slots: 2 })
    const thread = spawnWorker('piscina-thread.js', { pool: pool.handle, ms: 150 })
    const givingUp = {
      run(message) {
        thread.post(message)
        return thread.next('replying').then(() => Promise.reject(new Error('gave up')))
      },
    }
    const released = pool.stats().released
    await assert.rejects(runLease(givingUp, pool, pool.acquireSync(), {}), /gave up/)
    assert.equal(pool.stats().inUse, 1, 'the worker still holds the reply')
    const { ticket } = await thread.next('result')
    await waitFor(() => pool.stats().inUse === 0, 'the reply to be adopted and released')
    assert.equal(pool.stats().released, released + 1)
    throwsCode(() => pool.adopt(ticket), Error, 'ERR_SABPOOL_STALE_LEASE')
    await thread.worker.terminate()
    assertAllFreeOnce(pool)
    pool.detach()
  })

  it('runLease refuses bad arguments with coded errors and leaves the lease with the caller', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 2 })
    const other = new SharedPool({ slotSize: 64, slots: 1 })
    let ran = 0
    const piscina = { run: async () => { ran++ } }
    const lease = pool.acquireSync()
    lease.length = 5
    for (const bad of [undefined, null, 42, {}, { run: 'no' }]) {
      await rejectsCode(runLease(bad, pool, lease), TypeError, 'ERR_INVALID_ARG_TYPE', /needs a Piscina/)
    }
    for (const bad of [undefined, {}, other._state, lease]) {
      await rejectsCode(runLease(piscina, bad, lease), TypeError, 'ERR_INVALID_ARG_TYPE', /needs the SharedPool/)
    }
    for (const bad of [undefined, {}, Object.create(Lease.prototype), lease.slot]) {
      await rejectsCode(runLease(piscina, pool, bad), TypeError, 'ERR_INVALID_ARG_TYPE', /needs a Lease/)
    }
    await rejectsCode(runLease(piscina, other, lease), TypeError, 'ERR_SABPOOL_BAD_TICKET', /another pool/)
    for (const bad of [null, 1, 'options']) {
      await rejectsCode(runLease(piscina, pool, lease, bad), TypeError, 'ERR_INVALID_ARG_TYPE', /options must be an object/)
    }
    await rejectsCode(runLease(piscina, pool, lease, { length: '5' }), TypeError, 'ERR_INVALID_ARG_TYPE', /length must be a number/)
    for (const bad of [-1, 1.5, 65, NaN]) {
      await rejectsCode(runLease(piscina, pool, lease, { length: bad }), RangeError, 'ERR_SABPOOL_BAD_LENGTH')
    }
    assert.equal(lease.owned, true)
    assert.equal(lease.length, 5)
    assert.equal(ran, 0)
    const released = pool.acquireSync()
    released.release()
    await rejectsCode(runLease(piscina, pool, released), Error, 'ERR_SABPOOL_STALE_LEASE', /no longer owned/)
    lease.release()
    assert.equal(pool.stats().inUse, 0)
    pool.detach()
    other.detach()
  })

  it('options other than task and length go to piscina.run; a throwing run() still returns the slot', async () => {
    const pool = new SharedPool({ slotSize: 64, slots: 1 })
    const seen = []
    const recorder = { run(message, options) { seen.push({ message, options }); throw new Error('no run today') } }
    const signal = new AbortController().signal
    await assert.rejects(runLease(recorder, pool, pool.acquireSync(), { task: { a: 1 }, length: 3, name: 'x', signal, transferList: [], filename: 'f.js' }), /no run today/)
    assert.equal(seen.length, 1)
    assert.deepEqual(Object.keys(seen[0].options).sort(), ['filename', 'name', 'signal', 'transferList'])
    assert.equal(seen[0].options.signal, signal)
    assert.deepEqual(seen[0].message.task, { a: 1 })
    assert.equal(seen[0].message.ticket.length, 3)
    assert.equal(pool.stats().inUse, 0, 'the request, never adopted, was taken back')
    pool.detach()
  })

  it('leaseTask refuses bad arguments, and its function refuses what runLease did not post', () => {
    const pool = new SharedPool({ slotSize: 64, slots: 1 })
    for (const bad of [undefined, {}, pool.handle]) {
      throwsCode(() => leaseTask(bad, () => {}), TypeError, 'ERR_INVALID_ARG_TYPE', /needs the SharedPool/)
    }
    for (const bad of [undefined, {}, 'fn']) {
      throwsCode(() => leaseTask(pool, bad), TypeError, 'ERR_INVALID_ARG_TYPE', /needs a function/)
    }
    const task = leaseTask(pool, () => {})
    assert.equal(typeof task, 'function')
    const ticket = pool.acquireSync().handoff()
    for (const bad of [undefined, ticket, { kind: 'sabpool.leaseTask', ticket }, { kind: 'sabpool.leaseTask', ticket, cell: new Int32Array(24) }]) {
      throwsCode(() => task(bad), TypeError, 'ERR_INVALID_ARG_TYPE', /takes the tasks runLease\(\) posts/)
    }
    pool.adopt(ticket).release()
    pool.detach()
  })

  it("import('sabpool/piscina') gives the same functions", async () => {
    const esm = await import('sabpool/piscina')
    assert.equal(esm.runLease, runLease)
    assert.equal(esm.leaseTask, leaseTask)
    assert.equal(require.resolve('sabpool/piscina'), path.join(ROOT, 'piscina.js'))
  })
})

describe('piscina example', () => {
  it('runs lease tasks on every thread, verifies every result and gets every slot back', async () => {
    // maxParticipants = main thread + one per piscina thread: attaching per task instead of once
    // per thread would fail with ERR_SABPOOL_TOO_MANY_PARTICIPANTS.
    const r = await run({ tasks: 120, threads: 2, kib: 64, maxParticipants: 3 })
    assert.equal(r.verified, 120)
    assert.equal(r.failedTask, 'this task fails on purpose')
    assert.equal(r.stats.inUse, 0)
    assert.equal(r.stats.acquired, 121)
    assert.equal(r.stats.released, 121)
    assert.equal(r.completed, 121)
  })

  it('the CLI runs and reports', () => {
    const r = spawnSync(process.execPath, ['examples/piscina/main.js', '--tasks', '30', '--threads', '2', '--kib', '16'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /piscina: 30\/30 tasks of 16 KiB on 2 threads: all verified/)
    assert.match(r.stdout, /in use 0/)
  })
})
