'use strict'
// Table regions (raw 32-bit words next to a file-backed pool, kept by JS with Atomics), through
// the native binding directly: creating, reading and writing them from a second attachment and
// from a child process, the stale-file rule, refusals (wrong pool, in-process pool, bad names,
// bad sizes, files of another kind), unlink and detach; and the participant facts poolDescribe
// gives JS (entry index, and the entry's token read from the region).
// The child process runs fixtures/table-child.js, the worker fixtures/table-worker.js.

const { describe, it, afterEach } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')

const { SharedPool } = require('..')
const { binding, DEFAULT_MODE, OFFSETS } = require('../lib/native.js')
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
