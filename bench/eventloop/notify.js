'use strict'
// Wake-up cost to the notifier: how long the call that frees a resource takes for its caller (the
// main thread) with 0, 1 or 2 worker threads parked waiting for it.
//   trySend       `channel.trySend(lease)` with workers parked in `recvSync` on that channel; a woken
//                 worker releases what it got and parks again.
//   release       `lease.release()` with workers parked in `acquireSync` on that pool (every slot is
//                 held by the main thread); the worker that gets the slot hands it back to the main
//                 thread over a second channel (trySend, nobody waiting there) and parks again.
//   raw notify    `Atomics.notify` on a SharedArrayBuffer word with workers in `Atomics.wait` on it:
//                 waking all of them, and waking one.
//   postMessage   `port.postMessage(0)` to a worker idling in its event loop (one receiver): what a
//                 postMessage send costs its sender.
// Before each timed call the main thread polls the waiter count (`channel.stats().recvWaiting`,
// `pool.stats().waiting`, or the raw probe's own counter) until it shows the wanted number of
// waiters, sleeps `settleMs` (a waiter registers just before its last retry and Atomics.wait), and
// checks the count again. After the call it waits until the woken worker has taken what was
// freed. The raw probe also checks Atomics.notify's own count of woken threads and retakes a
// sample whenever it woke fewer than were counted as waiting. The main thread is not a service
// here: it polls and sleeps with Atomics.wait so that nothing else runs on its loop.

const { SharedPool, Channel } = require('../..')
const { summarize } = require('../stats.js')
const cpu = require('../cpuload.js')
const { delay, sleepSync, pollSync } = require('./measure.js')

// The raw probe's words.
const GEN = 0 // the word waited on
const WAITING = 1 // workers about to wait or waiting
const WOKEN = 2 // wake-ups seen by workers
const STOP = 3 // 1: leave the current loop (raw and acquire modes)

const worker = {
  setup(init, port) {
    const poolC = SharedPool.attach(init.channel.pool)
    const poolP = SharedPool.attach(init.back.pool)
    return {
      port,
      poolC,
      ch: Channel.attach(init.channel, poolC),
      poolP,
      back: Channel.attach(init.back, poolP),
      raw: new Int32Array(init.raw),
      recvOpts: { reuse: undefined },
      acquireOpts: { reuse: undefined },
      mode: 'idle',
      expect: 0,
      mismatches: 0,
    }
  },
  run(w) {
    const raw = w.raw
    switch (w.mode) {
      case 'recv':
        for (;;) {
          const lease = w.ch.recvSync(w.recvOpts)
          if (lease === null) throw new Error('the channel was closed')
          const length = lease.length
          lease.release()
          w.recvOpts.reuse = lease
          if (length === 0) return
        }
      case 'acquire':
        for (;;) {
          const lease = w.poolP.acquireSync(w.acquireOpts)
          // STOP is read before the slot is handed back: the main thread sets it only after it has
          // taken the last sample's slot back and before it releases one slot per acquirer, so this
          // read tells those slots apart. Read after the hand-back, it could already see the STOP
          // meant for the next slot and leave that slot unclaimed in the pool.
          const stop = Atomics.load(raw, STOP) === 1
          if (!w.back.trySend(lease)) throw new Error('bench bug: the hand-back channel is full')
          w.acquireOpts.reuse = lease
          if (stop) return
        }
      case 'wait':
        for (;;) {
          if (Atomics.load(raw, STOP) === 1) return
          const gen = Atomics.load(raw, GEN)
          Atomics.add(raw, WAITING, 1)
          Atomics.wait(raw, GEN, gen)
          Atomics.sub(raw, WAITING, 1)
          Atomics.add(raw, WOKEN, 1)
        }
      default:
        // 'message': the replies come from onMessage, in this thread's event loop.
    }
  },
  onMessage(w, msg) {
    w.port.postMessage(msg)
  },
  abort(w) {
    w.ch.close()
    w.back.close()
  },
  teardown(w) {
    w.ch.detach()
    w.back.detach()
    w.poolC.detach()
    w.poolP.detach()
  },
}

// ---- main thread ----------------------------------------------------------------------------------

/** Polls `count()` until it is `k` and still is after `settleMs`. */
function untilParked(count, k, settleMs, what) {
  for (;;) {
    pollSync(() => count() === k, `${k} ${what}`)
    sleepSync(settleMs)
    if (count() === k) return
  }
}

const CASES = [
  {
    id: 'notify-trySend',
    short: 'channel.trySend()',
    label: 'sabpool channel.trySend(lease), receivers parked in recvSync',
    group: 'sabpool',
    mode: 'recv',
    waiters: [0, 1, 2],
    sample(st, k, settleMs) {
      const lease = st.poolC.tryAcquire()
      untilParked(() => st.ch.stats().recvWaiting, k, settleMs, 'receivers parked in recvSync')
      const received = st.ch.stats().received
      const t0 = performance.now()
      const sent = st.ch.trySend(lease, 1)
      const ms = performance.now() - t0
      if (!sent) throw new Error('bench bug: the probe channel is full')
      if (k === 0) st.ch.tryRecv().release()
      else pollSync(() => st.ch.stats().received === received + 1, 'a woken receiver to take the lease')
      return ms
    },
    end(st, k) {
      for (let i = 0; i < k; i++) {
        if (!st.ch.trySend(st.poolC.tryAcquire(), 0)) throw new Error('bench bug: the probe channel is full')
      }
    },
  },
  {
    id: 'notify-release',
    short: 'lease.release()',
    label: 'sabpool lease.release(), acquirers parked in acquireSync on the exhausted pool',
    group: 'sabpool',
    mode: 'acquire',
    waiters: [0, 1, 2],
    sample(st, k, settleMs) {
      untilParked(() => st.poolP.stats().waiting, k, settleMs, 'acquirers parked in acquireSync')
      const lease = st.held.pop()
      const t0 = performance.now()
      lease.release()
      const ms = performance.now() - t0
      let again = null
      if (k === 0) again = st.poolP.tryAcquire()
      else pollSync(() => (again = st.back.tryRecv()) !== null, 'a woken acquirer to hand the slot back')
      if (again === null) throw new Error('bench bug: the released slot is gone')
      st.held.push(again)
      return ms
    },
    end(st, k) {
      Atomics.store(st.raw, STOP, 1)
      for (let i = 0; i < k; i++) st.held.pop().release()
    },
    async after(st, k) {
      for (let i = 0; i < k; i++) {
        let lease = null
        pollSync(() => (lease = st.back.tryRecv()) !== null, 'the acquirers to hand their last slot back')
        st.held.push(lease)
      }
      Atomics.store(st.raw, STOP, 0)
    },
  },
  ...[['notify-raw-all', 'Atomics.notify (all)', undefined], ['notify-raw-one', 'Atomics.notify (one)', 1]].map(([id, short, count]) => ({
    id,
    short,
    label: `Atomics.notify(i32, index${count === undefined ? '' : ', 1'}) with threads in Atomics.wait on that word (no library)`,
    group: 'floor',
    mode: 'wait',
    waiters: [0, 1, 2],
    /** Returns the duration, or null when notify woke fewer threads than were waiting (retaken). */
    sample(st, k, settleMs) {
      const raw = st.raw
      untilParked(() => Atomics.load(raw, WAITING), k, settleMs, 'threads in Atomics.wait')
      const woken = Atomics.load(raw, WOKEN)
      Atomics.add(raw, GEN, 1)
      const t0 = performance.now()
      const n = Atomics.notify(raw, GEN, count)
      const ms = performance.now() - t0
      pollSync(() => Atomics.load(raw, WOKEN) === woken + n, 'the woken threads to run')
      return n === Math.min(k, count ?? k) ? ms : null
    },
    end(st) {
      Atomics.store(st.raw, STOP, 1)
      Atomics.add(st.raw, GEN, 1)
      Atomics.notify(st.raw, GEN)
    },
    async after(st) {
      Atomics.store(st.raw, STOP, 0)
    },
  })),
  {
    id: 'notify-postMessage',
    short: 'postMessage()',
    label: 'port.postMessage(0) to a worker idling in its event loop (it echoes; the main thread awaits the echo)',
    group: 'postMessage',
    mode: 'message',
    waiters: [1],
    async sample(st, _k, settleMs) {
      await delay(settleMs)
      const reply = new Promise((resolve) => {
        st.resolve = resolve
      })
      const t0 = performance.now()
      st.port.postMessage(0)
      const ms = performance.now() - t0
      await reply
      return ms
    },
  },
]

async function runNotify(hosts, cfg, progress) {
  const cpu0 = cpu.sample()
  const poolC = new SharedPool({ slotSize: 1024, slots: 8 })
  const poolP = new SharedPool({ slotSize: 1024, slots: 2 })
  const st = {
    poolC,
    ch: new Channel(poolC, { capacity: 8 }),
    poolP,
    back: new Channel(poolP, { capacity: 4 }),
    raw: new Int32Array(new SharedArrayBuffer(16)),
    held: [],
    port: hosts[0].port,
    resolve: null,
  }
  hosts[0].onMessage = () => {
    const resolve = st.resolve
    st.resolve = null
    resolve()
  }
  for (const h of hosts) await h.call('setup', { channel: st.ch.handle, back: st.back.handle, raw: st.raw.buffer })
  for (let i = 0; i < poolP.slots; i++) st.held.push(poolP.tryAcquire())
  const guard = (p) => Promise.race([p, ...hosts.map((h) => h.failed)])

  const n = cfg.notifyIters
  const rounds = Math.min(cfg.notifyRounds, n)
  const out = new Map(CASES.map((c) => [c.id, { samples: new Map(c.waiters.map((k) => [k, []])), retries: 0 }]))
  for (let r = 0; r < rounds; r++) {
    for (const c of CASES) {
      for (const k of c.waiters) {
        progress.phase(`round ${r + 1}/${rounds}: ${c.short}, ${k} waiting`)
        const active = hosts.slice(0, c.mode === 'message' ? 1 : k)
        await guard(Promise.all(active.map((h) => h.call('phase', { mode: c.mode }))))
        if (c.mode === 'message') await guard(active[0].next()) // its run() returned at once
        const o = out.get(c.id)
        const samples = o.samples.get(k)
        const want = Math.floor((n * (r + 1)) / rounds) - Math.floor((n * r) / rounds)
        for (let got = 0; got < want;) {
          const ms = await guard(Promise.resolve(c.sample(st, k, cfg.notifySettleMs)))
          if (ms === null) {
            if (++o.retries > 10 * n) throw new Error(`${c.id}: Atomics.notify keeps waking fewer threads than are waiting`)
            continue
          }
          samples.push(ms)
          got++
        }
        if (c.mode !== 'message') {
          c.end(st, k)
          for (const h of active) {
            const done = await guard(h.next())
            if (!done.done) throw new Error(`bench bug: expected the end of the notify worker's phase, got ${JSON.stringify(done)}`)
          }
          if (c.after !== undefined) await c.after(st, k)
        }
      }
    }
  }
  let mismatches = 0
  for (const h of hosts) mismatches += (await h.call('teardown')).mismatches
  hosts[0].onMessage = null
  for (const lease of st.held) lease.release()
  st.ch.detach()
  st.back.detach()
  poolC.detach()
  poolP.detach()
  const othersCores = cpu.othersCores(cpu0, cpu.sample())
  return CASES.map((c) => {
    const o = out.get(c.id)
    const waiters = {}
    for (const [k, samples] of o.samples) waiters[k] = summarize(samples, 1e6)
    return { family: 'notify', mechanism: c.id, label: c.label, short: c.short, group: c.group, waiters, retries: o.retries, verify: { main: 0, worker: mismatches }, cpu: { othersCores } }
  })
}

module.exports = {
  id: 'notify',
  title: 'wake-up cost to the notifier',
  rows: CASES,
  workers: { notify: worker },
  hostsFor: () => [{ id: 'notify', key: 'notify#0' }, { id: 'notify', key: 'notify#1' }],
  steps: () => 1,
  async run(hosts, cfg, progress) {
    progress.step('wake-up cost to the notifier')
    return { rows: await runNotify([hosts.get('notify#0'), hosts.get('notify#1')], cfg, progress) }
  },
}
