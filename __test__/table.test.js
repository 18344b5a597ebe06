'use strict'
// Table regions (raw 32-bit words next to a file-backed pool, kept by JS with Atomics), through
// the native binding directly: creating, reading and writing them from a second attachment and
// from a child process, the stale-file rule, refusals (wrong pool, in-process pool, bad names,
// bad sizes, files of another kind), unlink and detach; and the participant facts poolDescribe
// gives JS (entry index, and the entry's token read from the region); and the table's wait sites
// (words 8 to 11): a process blocked in waitFile, and async waits through FileWaitSite, released
// by another process's bump and tableWake, and the errors of sites that do not fit.
// The child process runs fixtures/table-child.js, the worker fixtures/table-worker.js.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')
const { setTimeout: sleep } = require('node:timers/promises')

const { SharedPool } = require('..')
const {
  binding, DEFAULT_MODE, OFFSETS, SITE_FREE_SLOT, SITE_RECEIVED, SITE_ROOM, SITE_TABLE_WAIT,
  TABLE_WAIT_SITES, TABLE_WAIT_WORD,
} = require('../lib/native.js')
const { FileWaitSite, parkAsync } = require('../lib/wait.js')
const { reclass } = require('../lib/errors.js')
const { FIXTURES, spawnWorker, terminateWorkers, waitFor } = require('./helpers.js')
const { tableWords, entryToken } = require('./fixtures/table-common.js')

const dirs = new Set()
const children = new Set()
/** Attachments and pools a test made, detached after it (a failed test must not keep them). */
const attached = new Set()

afterEach(async () => {
  for (const a of attached) {
    try { a.detach() } catch { /* detached already */ }
  }
  attached.clear()
  for (const c of children) c.kill('SIGKILL')
  children.clear()
  await terminateWorkers()
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
  dirs.clear()
})

function tmpDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-table-'))
  dirs.add(dir)
  return dir
}

function keep(thing) {
  attached.add(thing)
  return thing
}

function filePool(dir, name = 'p', options = {}) {
  return keep(SharedPool.create({ name, dir, slotSize: 64, slots: 4, ...options }))
}

let nextUid = 0x7ab1_0000
function createTable(dir, name, pool, words) {
  return keep(binding.tableCreateFile(dir, name, pool._state.ref, words, ++nextUid, DEFAULT_MODE))
}

function openTable(dir, name, pool) {
  return keep(binding.tableOpenFile(dir, name, pool._state.ref))
}

/** `fn` throws a native error with `code` that the error machinery gives class `Ctor`. */
function nativeThrows(fn, Ctor, code, message) {
  assert.throws(fn, (err) => {
    assert.equal(err.code, code, `wrong code; message: ${err.message}`)
    if (message !== undefined) assert.match(err.message, message)
    const js = reclass(err)
    assert.ok(js instanceof Ctor, `${code} reclassed as ${js.constructor.name}, not ${Ctor.name}`)
    assert.equal(js.code, code)
    return true
  })
}

/** Forks fixtures/table-child.js; messages are queued; `next(type)` waits for one. */
function child(opts) {
  const proc = fork(path.join(FIXTURES, 'table-child.js'), [JSON.stringify(opts)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.add(proc)
  const queue = []
  const waiting = []
  proc.on('message', (msg) => {
    const i = waiting.findIndex((w) => w.type === msg.type)
    if (i >= 0) waiting.splice(i, 1)[0].resolve(msg)
    else queue.push(msg)
  })
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => {
    children.delete(proc)
    for (const w of waiting.splice(0)) w.reject(new Error(`table-child exited (${code}, ${signal}) before '${w.type}'`))
    resolve({ code, signal })
  }))
  return {
    exited,
    send: (msg) => proc.send(msg),
    next(type) {
      const i = queue.findIndex((m) => m.type === type)
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0])
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${type}' from table-child within 15 s`)), 15000)
        waiting.push({ type, resolve: (m) => { clearTimeout(timer); resolve(m) }, reject: (e) => { clearTimeout(timer); reject(e) } })
      })
    },
  }
}

const read = (words) => Array.from(words, (_, i) => Atomics.load(words, i))

describe('table regions', () => {
  it('a table of N zeroed words is created next to a file pool; words written with Atomics are read back by a second attachment, and the other way round', () => {
    const dir = tmpDir()
    const pool = filePool(dir)
    const N = 100
    const table = createTable(dir, 'svc', pool, N)
    const info = binding.tableInfo(table.id)
    assert.deepEqual({ ...info }, { uid: nextUid, words: N, dataOffset: 64 })
    assert.equal(binding.regionPath(table.id), path.join(dir, 'sabpool.svc.table'))
    // A header line, then the words, rounded up to a line.
    assert.equal(fs.statSync(path.join(dir, 'sabpool.svc.table')).size, 64 + Math.ceil(N * 4 / 64) * 64)
    assert.equal(fs.statSync(path.join(dir, 'sabpool.svc.table')).mode & 0o777, 0o600)

    const words = tableWords(table)
    assert.equal(words.length, N)
    assert.deepEqual(read(words), new Array(N).fill(0))
    for (let i = 0; i < N; i++) Atomics.store(words, i, (i * 2654435761) | 0)

    const again = openTable(dir, 'svc', pool)
    assert.notEqual(again.id, table.id)
    assert.deepEqual({ ...binding.tableInfo(again.id) }, { ...info })
    const other = tableWords(again)
    assert.notEqual(other.buffer, words.buffer, 'each attachment has its own mapping')
    assert.deepEqual(read(other), Array.from({ length: N }, (_, i) => (i * 2654435761) | 0))
    Atomics.add(other, 7, 5)
    Atomics.store(other, N - 1, -1)
    assert.equal(Atomics.load(words, 7), ((7 * 2654435761) | 0) + 5)
    assert.equal(Atomics.load(words, N - 1), -1)

    // A pool attached by handle (another attachment of the same pool) opens it too.
    const byHandle = keep(SharedPool.attach(pool.handle))
    assert.equal(Atomics.load(tableWords(openTable(dir, 'svc', byHandle)), 7), Atomics.load(words, 7))
  })

  it('a child process opens the table by name, reads the words, and its Atomics.add races with ours without losing an update', async () => {
    const dir = tmpDir()
    const pool = filePool(dir, 'xp')
    const N = 40
    const table = createTable(dir, 'xt', pool, N)
    const words = tableWords(table)
    for (let i = 1; i < N; i++) Atomics.store(words, i, i * 1000 + 1)
    const c = child({ dir, pool: 'xp', table: 'xt' })
    const seen = await c.next('read')
    assert.deepEqual(seen.info, { uid: binding.tableInfo(table.id).uid, words: N, dataOffset: 64 })
    assert.deepEqual(seen.words, read(words))

    const COUNT = 300_000
    const GO = 1
    Atomics.store(words, GO, 0)
    c.send({ type: 'add', count: COUNT, go: GO })
    await c.next('ready')
    Atomics.store(words, GO, 1)
    for (let i = 0; i < COUNT; i++) Atomics.add(words, 0, 1)
    await c.next('added')
    assert.equal(Atomics.load(words, 0), 2 * COUNT)
    for (let i = 2; i < N; i++) assert.equal(Atomics.load(words, i), -(i + 1), `word ${i}`)
    c.send({ type: 'exit' })
    assert.deepEqual(await c.exited, { code: 0, signal: null })
  })

  it('a table left by an earlier pool of the same name is replaced by a zeroed one; one of the live pool is not (ERR_SABPOOL_EXISTS)', () => {
    const dir = tmpDir()
    const first = filePool(dir, 'p')
    const old = createTable(dir, 't', first, 8)
    const oldWords = tableWords(old)
    Atomics.store(oldWords, 3, 33)
    // The same pool again: the table is in use.
    nativeThrows(() => createTable(dir, 't', first, 8), Error, 'ERR_SABPOOL_EXISTS', /in use/)
    assert.equal(Atomics.load(tableWords(openTable(dir, 't', first)), 3), 33, 'left alone')
    const { ino } = fs.statSync(path.join(dir, 'sabpool.t.table'))

    // The pool goes away; a new pool of the same name (another uid) takes the name over.
    first.detach()
    const second = filePool(dir, 'p')
    assert.notEqual(second.id, first.id)
    const fresh = createTable(dir, 't', second, 16)
    assert.notEqual(fs.statSync(path.join(dir, 'sabpool.t.table')).ino, ino, 'a new file')
    assert.equal(binding.tableInfo(fresh.id).words, 16)
    assert.deepEqual(read(tableWords(fresh)), new Array(16).fill(0))
    assert.equal(Atomics.load(tableWords(openTable(dir, 't', second)), 3), 0)
    // Who still has the old table keeps its memory (unlinked, not truncated).
    assert.equal(Atomics.load(oldWords, 3), 33)
  })

  it('a table of another pool is refused with ERR_SABPOOL_BAD_HANDLE, as a channel of another pool is; an in-process pool has no table file (ERR_SABPOOL_NOT_FILE)', () => {
    const dir = tmpDir()
    const mine = filePool(dir, 'mine')
    const theirs = filePool(dir, 'theirs')
    createTable(dir, 't', mine, 4)
    nativeThrows(() => openTable(dir, 't', theirs), TypeError, 'ERR_SABPOOL_BAD_HANDLE', /another pool/)
    // The same refusal a channel of another pool gets.
    keep(binding.channelCreateFile(dir, 'c', mine._state.ref, 4, 1, DEFAULT_MODE))
    nativeThrows(() => keep(binding.channelOpenFile(dir, 'c', theirs._state.ref)), TypeError, 'ERR_SABPOOL_BAD_HANDLE', /another pool/)

    const inProcess = keep(new SharedPool({ slotSize: 16, slots: 2 }))
    nativeThrows(() => createTable(dir, 'x', inProcess, 4), TypeError, 'ERR_SABPOOL_NOT_FILE', /file-backed table needs a file-backed pool/)
    nativeThrows(() => openTable(dir, 't', inProcess), TypeError, 'ERR_SABPOOL_NOT_FILE')
    assert.equal(fs.existsSync(path.join(dir, 'sabpool.x.table')), false)
    // A detached pool, or an id that names no pool (a table's), names nothing to attach to.
    const table = openTable(dir, 't', mine)
    nativeThrows(() => keep(binding.tableOpenFile(dir, 't', table.id)), Error, 'ERR_SABPOOL_DETACHED')
    const gone = filePool(dir, 'gone')
    const goneRef = gone._state.ref
    gone.detach()
    nativeThrows(() => keep(binding.tableOpenFile(dir, 't', goneRef)), Error, 'ERR_SABPOOL_DETACHED')
    nativeThrows(() => keep(binding.tableCreateFile(dir, 'g', goneRef, 4, 1, DEFAULT_MODE)), Error, 'ERR_SABPOOL_DETACHED')
  })

  it('bad names are refused with ERR_SABPOOL_BAD_NAME (a TypeError) by create and open, and nothing is created', () => {
    const dir = tmpDir()
    const pool = filePool(dir)
    for (const name of ['', '.', '..', '../x', 'a/b', '/abs', '.hidden', 'a b', 'a\0b', 'é', 'x'.repeat(201)]) {
      nativeThrows(() => createTable(dir, name, pool, 4), TypeError, 'ERR_SABPOOL_BAD_NAME')
      nativeThrows(() => openTable(dir, name, pool), TypeError, 'ERR_SABPOOL_BAD_NAME')
    }
    // The name is judged before the size.
    nativeThrows(() => createTable(dir, '../x', pool, 0), TypeError, 'ERR_SABPOOL_BAD_NAME')
    assert.deepEqual(fs.readdirSync(dir), ['sabpool.p.pool'])
  })

  it('word counts outside 1 ..= 2^26, missing tables, files of another kind and bad modes are refused', () => {
    const dir = tmpDir()
    const pool = filePool(dir)
    assert.equal(OFFSETS.maxTableWords, 2 ** 26)
    for (const words of [0, 2 ** 26 + 1, 2 ** 32 - 1]) {
      nativeThrows(() => createTable(dir, 'big', pool, words), TypeError, 'ERR_SABPOOL_BAD_HANDLE', /out of range/)
    }
    assert.equal(fs.existsSync(path.join(dir, 'sabpool.big.table')), false)
    nativeThrows(() => openTable(dir, 'missing', pool), Error, 'ERR_SABPOOL_NOT_FOUND')
    // A pool file under a table's name: not a table, never replaced.
    const bytes = fs.readFileSync(path.join(dir, 'sabpool.p.pool'))
    fs.writeFileSync(path.join(dir, 'sabpool.odd.table'), bytes, { mode: 0o600 })
    nativeThrows(() => openTable(dir, 'odd', pool), TypeError, 'ERR_SABPOOL_BAD_HANDLE', /not a table/)
    nativeThrows(() => createTable(dir, 'odd', pool, 4), Error, 'ERR_SABPOOL_EXISTS')
    assert.deepEqual(fs.readFileSync(path.join(dir, 'sabpool.odd.table')), bytes)
    nativeThrows(() => keep(binding.tableCreateFile(dir, 'ro', pool._state.ref, 4, 1, 0o400)), RangeError, 'ERR_OUT_OF_RANGE')
    keep(binding.tableCreateFile(dir, 'grp', pool._state.ref, 4, 1, 0o660))
    assert.equal(fs.statSync(path.join(dir, 'sabpool.grp.table')).mode & 0o777, 0o660)
  })

  it('regionUnlink removes the name (once); detach ends the attachment (ERR_SABPOOL_DETACHED after); the table does not count as a pool or a channel', () => {
    const dir = tmpDir()
    const pool = filePool(dir)
    const table = createTable(dir, 't', pool, 4)
    const words = tableWords(table)
    Atomics.store(words, 0, 9)
    assert.throws(() => binding.poolDescribe(table.id), { code: 'ERR_SABPOOL_DETACHED' })
    assert.throws(() => binding.channelStats(table.id), { code: 'ERR_SABPOOL_DETACHED' })
    assert.throws(() => binding.tableInfo(pool._state.ref), { code: 'ERR_SABPOOL_DETACHED' })
    assert.equal(binding.regionUnlink(table.id), true)
    assert.equal(fs.existsSync(path.join(dir, 'sabpool.t.table')), false)
    assert.equal(binding.regionUnlink(table.id), false, 'already gone')
    nativeThrows(() => openTable(dir, 't', pool), Error, 'ERR_SABPOOL_NOT_FOUND')
    assert.equal(Atomics.load(words, 0), 9, 'the mapping outlives the name')
    // The name is free again.
    const next = createTable(dir, 't', pool, 4)
    assert.equal(Atomics.load(tableWords(next), 0), 0)
    const id = table.id
    table.detach()
    assert.throws(() => binding.tableInfo(id), { code: 'ERR_SABPOOL_DETACHED' })
    assert.throws(() => binding.regionBuffer(id), { code: 'ERR_SABPOOL_DETACHED' })
    assert.throws(() => binding.regionPath(id), { code: 'ERR_SABPOOL_DETACHED' })
  })
})

describe('pool participant facts', () => {
  for (const kind of ['in-process', 'file']) {
    it(`poolDescribe gives ${kind === 'file' ? 'a file' : 'an in-process'} pool's main-thread and worker attachments distinct entries whose tokens, read from the region, are non-zero and differ; a left entry's token changes`, async () => {
      const pool = kind === 'file'
        ? filePool(tmpDir(), 'pp', { maxParticipants: 8 })
        : keep(new SharedPool({ slotSize: 64, slots: 4, maxParticipants: 8 }))
      const buffer = pool._state.buffer
      const mine = binding.poolDescribe(pool._state.ref)
      assert.equal(mine.maxParticipants, 8)
      assert.equal(mine.participantsOffset, 256)
      assert.equal(mine.participantSize, 64)
      assert.equal(OFFSETS.participantToken, 0)
      assert.ok(Number.isInteger(mine.participant) && mine.participant >= 0 && mine.participant < 8)
      const myToken = entryToken(buffer, mine, mine.participant)
      assert.notEqual(myToken, 0n)

      const w = spawnWorker('table-worker.js', { handle: pool.handle })
      const { info, token } = await w.next('described')
      assert.notEqual(info.participant, mine.participant)
      assert.equal(info.maxParticipants, 8)
      assert.equal(info.participantsOffset, mine.participantsOffset)
      assert.equal(info.participantSize, mine.participantSize)
      assert.notEqual(token, 0n)
      assert.notEqual(token, myToken)
      // Both read the same entries (one region), each finding the other's token there.
      assert.equal(entryToken(buffer, mine, info.participant), token)

      w.post({ type: 'leave' })
      assert.equal(await w.exited, 0)
      await waitFor(() => entryToken(buffer, mine, info.participant) !== token, 'the worker\'s entry to be left')
      assert.equal(entryToken(buffer, mine, mine.participant), myToken, 'ours is untouched')
      // A later attachment may take the freed entry; it carries a new token.
      const later = keep(SharedPool.attach(pool.handle))
      const laterInfo = binding.poolDescribe(later._state.ref)
      const laterToken = entryToken(buffer, mine, laterInfo.participant)
      assert.notEqual(laterToken, 0n)
      assert.notEqual(laterToken, token)
      assert.notEqual(laterToken, myToken)
    })
  }
})

/** Threads of this process named 'sabpool-watch' (Linux: /proc), or undefined elsewhere. */
function watcherThreads() {
  if (process.platform !== 'linux') return undefined
  return fs.readdirSync('/proc/self/task').filter((tid) => {
    try {
      return fs.readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'sabpool-watch'
    } catch {
      return false // the thread exited meanwhile
    }
  }).length
}

const wallNow = () => performance.timeOrigin + performance.now()

describe('table wait sites', () => {
  it('the protocol names four table wait sites after the pool and channel ones, on words 8 to 11', () => {
    assert.deepEqual([SITE_FREE_SLOT, SITE_RECEIVED, SITE_ROOM], [0, 1, 2])
    assert.deepEqual([SITE_TABLE_WAIT, TABLE_WAIT_SITES, TABLE_WAIT_WORD], [3, 4, 8])
    const p = binding.protocol()
    assert.deepEqual([p.siteTableWait, p.tableWaitSites, p.tableWaitWord], [3, 4, 8])
  })

  it('a child process blocked in waitFile on a table wait site stays parked through a bump alone and a wake of another site, and returns soon after a bump and tableWake', { skip: process.platform !== 'linux' && 'waitFile polls instead of parking off Linux' }, async () => {
    const dir = tmpDir()
    const pool = filePool(dir, 'wp')
    const table = createTable(dir, 'wt', pool, 16)
    const words = tableWords(table)
    const c = child({ dir, pool: 'wp', table: 'wt' })
    await c.next('read')
    // Words 0 and 1 say when the child is about to wait and when it has returned (no IPC: its
    // main thread is blocked in between).
    const READY = 0
    const DONE = 1
    Atomics.store(words, TABLE_WAIT_WORD, 41)
    c.send({ type: 'wait', site: SITE_TABLE_WAIT, ready: READY, done: DONE, timeout: 8000 })
    await waitFor(() => Atomics.load(words, READY) === 1, 'the child to be about to wait')
    await sleep(300)
    assert.equal(Atomics.load(words, DONE), 0, 'the child returned before anything happened')
    // A bump and wake of the next wait word (site 4, word 9) is not this site's: nobody there.
    Atomics.add(words, TABLE_WAIT_WORD + 1, 1)
    assert.equal(binding.tableWake(table.id, SITE_TABLE_WAIT + 1), 0)
    // A bump without a wake: a parked futex waiter does not look at the word again by itself.
    Atomics.add(words, TABLE_WAIT_WORD, 1)
    await sleep(200)
    assert.equal(Atomics.load(words, DONE), 0, 'the child returned without a wake of its site')
    const wakeAt = wallNow()
    const woken = binding.tableWake(table.id, SITE_TABLE_WAIT)
    const waited = await c.next('waited')
    assert.equal(woken, 1, 'the futex woke the one parked child thread')
    assert.equal(waited.seen, 41)
    assert.equal(waited.value, 42)
    assert.ok(waited.elapsed >= 450, `the child waited only ${waited.elapsed} ms`)
    assert.ok(waited.elapsed < 7000, `the child's wait timed out (${waited.elapsed} ms)`)
    assert.ok(waited.returnedAt - wakeAt < 2000, `the child returned ${waited.returnedAt - wakeAt} ms after the wake`)
    assert.equal(binding.tableWake(table.id, SITE_TABLE_WAIT), 0, 'nobody is left to wake')
    c.send({ type: 'exit' })
    assert.deepEqual(await c.exited, { code: 0, signal: null })
  })

  it('waitFile on a table wait site returns at once when the word no longer holds the value seen, and at its timeout when nobody wakes it', { skip: process.platform !== 'linux' && 'waitFile polls instead of parking off Linux' }, () => {
    const dir = tmpDir()
    const table = createTable(dir, 't', filePool(dir), 12)
    const words = tableWords(table)
    for (let k = 0; k < TABLE_WAIT_SITES; k++) {
      Atomics.store(words, TABLE_WAIT_WORD + k, 7 + k)
      let started = performance.now()
      binding.waitFile(table.id, SITE_TABLE_WAIT + k, 6 + k, 5000)
      assert.ok(performance.now() - started < 1000, `site ${SITE_TABLE_WAIT + k}: a stale value parked`)
      started = performance.now()
      binding.waitFile(table.id, SITE_TABLE_WAIT + k, 7 + k, 60)
      const ms = performance.now() - started
      assert.ok(ms >= 55 && ms < 3000, `site ${SITE_TABLE_WAIT + k}: a 60 ms wait took ${ms} ms`)
    }
  })

  it('async waits through FileWaitSite on each table wait site resolve after another process bumps that word and wakes it, not before nor on another site\'s bump; detach stops their watcher threads', async () => {
    const dir = tmpDir()
    const pool = filePool(dir, 'ap')
    const table = createTable(dir, 'at', pool, 12)
    const { dataOffset, uid } = binding.tableInfo(table.id)
    const i32 = new Int32Array(binding.regionBuffer(table.id))
    const c = child({ dir, pool: 'ap', table: 'at' })
    await c.next('read')
    const threadsBefore = watcherThreads()

    let registered = 0
    let parks = 0
    const sites = Array.from({ length: TABLE_WAIT_SITES }, (_, k) => new FileWaitSite({
      i32,
      epochOffset: dataOffset + 4 * (TABLE_WAIT_WORD + k),
      register: (delta) => { registered += delta },
      noteWait: () => { parks++ },
      kind: 'table',
      uid,
      ref: () => table.id,
      site: SITE_TABLE_WAIT + k,
    }))
    const settled = new Array(TABLE_WAIT_SITES).fill(undefined)
    const waits = sites.map((site, k) => {
      Atomics.store(i32, site.epochIndex, 100 * k)
      const attempt = () => {
        const now = Atomics.load(i32, site.epochIndex)
        return now === 100 * k ? undefined : now
      }
      return parkAsync(site, attempt, 20_000, undefined, `table wait ${k}`).then((value) => {
        settled[k] = { value, at: wallNow() }
      })
    })
    await sleep(200)
    assert.deepEqual(settled, [undefined, undefined, undefined, undefined], 'a wait resolved before any bump')
    assert.equal(registered, TABLE_WAIT_SITES, 'each wait is registered once while parked')
    if (threadsBefore !== undefined) assert.equal(watcherThreads(), threadsBefore + TABLE_WAIT_SITES, 'one watcher thread per site')

    // The third site first, then the others in turn: each bump releases its own site's wait only.
    let woken = 0
    for (const k of [2, 0, 3, 1]) {
      assert.equal(settled[k], undefined, `site ${SITE_TABLE_WAIT + k} resolved before its bump`)
      c.send({ type: 'bump', site: SITE_TABLE_WAIT + k, delay: 50 })
      const bumped = await c.next('bumped')
      assert.equal(bumped.site, SITE_TABLE_WAIT + k)
      assert.equal(bumped.value, 100 * k + 1)
      assert.ok(bumped.woken <= 1, `${bumped.woken} threads woken`)
      woken += bumped.woken
      await waitFor(() => settled[k], `the wait on site ${SITE_TABLE_WAIT + k} to resolve`)
      // The value it resolved with exists only after the child's bump.
      assert.equal(settled[k].value, 100 * k + 1)
      assert.ok(settled[k].at - bumped.at < 2000, `resolved ${settled[k].at - bumped.at} ms after the bump`)
      await sleep(100)
      for (let j = 0; j < TABLE_WAIT_SITES; j++) {
        if (j !== k && Atomics.load(i32, sites[j].epochIndex) === 100 * j) assert.equal(settled[j], undefined, `site ${SITE_TABLE_WAIT + j} resolved on the bump of site ${SITE_TABLE_WAIT + k}`)
      }
    }
    await Promise.all(waits)
    assert.equal(registered, 0, 'every park withdrew its registration')
    assert.ok(parks >= TABLE_WAIT_SITES, `${parks} parks counted`)
    // The watcher threads are parked on the futex between their slices: the wakes reached them.
    if (process.platform === 'linux') assert.ok(woken >= 1, 'no tableWake woke a watcher thread')

    c.send({ type: 'exit' })
    assert.deepEqual(await c.exited, { code: 0, signal: null })
    const id = table.id
    table.detach()
    if (threadsBefore !== undefined) await waitFor(() => watcherThreads() === threadsBefore, 'the watcher threads to stop after detach')
    nativeThrows(() => binding.waitFile(id, SITE_TABLE_WAIT, 0, 10), Error, 'ERR_SABPOOL_DETACHED')
    nativeThrows(() => binding.tableWake(id, SITE_TABLE_WAIT), Error, 'ERR_SABPOOL_DETACHED')
  })

  it('bad site numbers, sites of another kind of attachment and wait words a small table lacks are refused with codes', () => {
    const dir = tmpDir()
    const pool = filePool(dir)
    const table = createTable(dir, 't', pool, 12)
    const channel = keep(binding.channelCreateFile(dir, 'c', pool._state.ref, 4, 1, DEFAULT_MODE))
    const noop = () => {}
    const calls = {
      waitFile: (id, site) => binding.waitFile(id, site, 0, 10),
      watchFile: (id, site) => binding.watchFile(id, site, noop),
      armFile: (id, site) => binding.armFile(id, site, 0),
      tableWake: (id, site) => binding.tableWake(id, site),
    }
    for (const call of Object.values(calls)) {
      for (const site of [7, 99, 2 ** 31, 2 ** 32 - 1]) {
        nativeThrows(() => call(table.id, site), RangeError, 'ERR_OUT_OF_RANGE', new RegExp(`unknown wait site ${site} \\(sites are 0 to 6\\)`))
        nativeThrows(() => call(pool._state.ref, site), RangeError, 'ERR_OUT_OF_RANGE', /unknown wait site/)
      }
      // A table's site on a pool or a channel.
      for (const k of [0, 3]) {
        nativeThrows(() => call(pool._state.ref, SITE_TABLE_WAIT + k), TypeError, 'ERR_INVALID_ARG_TYPE', new RegExp(`wait site ${SITE_TABLE_WAIT + k} is on a table, and attachment ${pool._state.ref} is a pool`))
        nativeThrows(() => call(channel.id, SITE_TABLE_WAIT + k), TypeError, 'ERR_INVALID_ARG_TYPE', /is on a table, and attachment \d+ is a channel/)
      }
    }
    // A pool's or a channel's site on a table (and on the other kind), for the wait calls.
    for (const name of ['waitFile', 'watchFile', 'armFile']) {
      const call = calls[name]
      nativeThrows(() => call(table.id, SITE_FREE_SLOT), TypeError, 'ERR_INVALID_ARG_TYPE', /wait site 0 is on a pool, and attachment \d+ is a table/)
      nativeThrows(() => call(table.id, SITE_RECEIVED), TypeError, 'ERR_INVALID_ARG_TYPE', /wait site 1 is on a channel, and attachment \d+ is a table/)
      nativeThrows(() => call(table.id, SITE_ROOM), TypeError, 'ERR_INVALID_ARG_TYPE', /wait site 2 is on a channel/)
      nativeThrows(() => call(channel.id, SITE_FREE_SLOT), TypeError, 'ERR_INVALID_ARG_TYPE', /is on a pool, and attachment \d+ is a channel/)
      nativeThrows(() => call(pool._state.ref, SITE_ROOM), TypeError, 'ERR_INVALID_ARG_TYPE', /is on a channel, and attachment \d+ is a pool/)
    }
    // tableWake takes table sites only, whatever the attachment.
    for (const site of [SITE_FREE_SLOT, SITE_RECEIVED, SITE_ROOM]) {
      nativeThrows(() => binding.tableWake(table.id, site), RangeError, 'ERR_OUT_OF_RANGE', /tableWake takes a table's wait site \(3 to 6\)/)
      nativeThrows(() => binding.tableWake(pool._state.ref, site), RangeError, 'ERR_OUT_OF_RANGE')
    }
    // A table of 10 words holds the wait words 8 and 9 only; one of 4 words none of them.
    const small = createTable(dir, 'small', pool, 10)
    const tiny = createTable(dir, 'tiny', pool, 4)
    for (const [name, call] of Object.entries(calls)) {
      for (const k of [2, 3]) {
        nativeThrows(() => call(small.id, SITE_TABLE_WAIT + k), RangeError, 'ERR_OUT_OF_RANGE', new RegExp(`wait site ${SITE_TABLE_WAIT + k} parks on table word ${TABLE_WAIT_WORD + k}, and this table has 10 words`))
      }
      for (let k = 0; k < TABLE_WAIT_SITES; k++) {
        nativeThrows(() => call(tiny.id, SITE_TABLE_WAIT + k), RangeError, 'ERR_OUT_OF_RANGE', /this table has 4 words/)
      }
      if (name === 'armFile') continue // arming needs a started watcher
      call(small.id, SITE_TABLE_WAIT)
      call(small.id, SITE_TABLE_WAIT + 1)
    }
    binding.armFile(small.id, SITE_TABLE_WAIT + 1, 0)
    // Through the wrapper's wait site, the class follows the code.
    const site = new FileWaitSite({
      i32: new Int32Array(binding.regionBuffer(table.id)),
      epochOffset: binding.tableInfo(table.id).dataOffset + 4 * TABLE_WAIT_WORD,
      register: noop,
      noteWait: noop,
      kind: 'table',
      uid: binding.tableInfo(table.id).uid,
      ref: () => tiny.id,
      site: SITE_TABLE_WAIT,
    })
    assert.throws(() => site.sleep(0, 10), (err) => err instanceof RangeError && err.code === 'ERR_OUT_OF_RANGE')
    assert.throws(() => site.changed(0, 10), (err) => err instanceof RangeError && err.code === 'ERR_OUT_OF_RANGE')
  })
})
