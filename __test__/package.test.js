'use strict'
// Packaging: package.json metadata, `npm pack` contents, and an install of the packed tarballs
// into an empty project (offline, no Rust needed: the binary comes from the platform package),
// where a CommonJS and an ES module program each hand a slot to a worker and back.
// Set SABPOOL_TEST_SOURCE_BUILD=1 to also install the main tarball alone and let its install
// script build the addon from the shipped Rust sources with cargo (about 20 s more).

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const PKG = require('../package.json')
const TARGET_DIRS = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc',
}
const OS_CPU = {
  'linux-x64-gnu': ['linux', 'x64'],
  'linux-arm64-gnu': ['linux', 'arm64'],
  'darwin-x64': ['darwin', 'x64'],
  'darwin-arm64': ['darwin', 'arm64'],
  'win32-x64-msvc': ['win32', 'x64'],
}
const HERE = process.platform === 'linux' && process.arch === 'x64' ? 'linux-x64-gnu' : null

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, shell: process.platform === 'win32', ...options })
  return { status: r.status, signal: r.signal, error: r.error, out: `${r.stdout || ''}${r.stderr || ''}`, stdout: r.stdout || '' }
}

function npm(args, cwd, env = {}) {
  return run('npm', [...args, '--no-audit', '--no-fund', '--no-update-notifier'], { cwd, env: { ...process.env, ...env } })
}

function emptyProject(dir) {
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'sabpool-smoke', version: '1.0.0', private: true }, null, 2))
  return dir
}

describe('package.json and npm/ platform packages', () => {
  it('napi.targets, npm/<platform>/ and optionalDependencies agree, at the same version', () => {
    const dirs = PKG.napi.targets.map((t) => {
      assert.ok(TARGET_DIRS[t], `no npm dir mapping for target ${t}`)
      return TARGET_DIRS[t]
    })
    assert.deepEqual([...dirs].sort(), fs.readdirSync(path.join(ROOT, 'npm')).sort())
    assert.deepEqual(Object.keys(PKG.optionalDependencies).sort(), dirs.map((d) => `sabpool-${d}`).sort())
    for (const d of dirs) {
      const p = JSON.parse(fs.readFileSync(path.join(ROOT, 'npm', d, 'package.json'), 'utf8'))
      assert.equal(p.name, `sabpool-${d}`)
      assert.equal(p.version, PKG.version, `npm/${d} version`)
      assert.equal(PKG.optionalDependencies[p.name], PKG.version, `optionalDependencies ${p.name}`)
      assert.equal(p.main, `sabpool.${d}.node`)
      assert.deepEqual(p.files, [p.main])
      assert.deepEqual([p.os, p.cpu], [[OS_CPU[d][0]], [OS_CPU[d][1]]], `npm/${d} os/cpu`)
      if (d.endsWith('-gnu')) assert.deepEqual(p.libc, ['glibc'])
      assert.deepEqual(p.engines, PKG.engines)
    }
  })

  it('exports map: import → index.mjs/index.d.mts, require → index.js/index.d.ts, ./piscina; all shipped', () => {
    assert.deepEqual(PKG.exports['.'], {
      import: { types: './index.d.mts', default: './index.mjs' },
      require: { types: './index.d.ts', default: './index.js' },
    })
    assert.deepEqual(PKG.exports['./piscina'], { types: './piscina.d.ts', default: './piscina.js' })
    for (const f of ['index.js', 'index.mjs', 'index.d.ts', 'index.d.mts', 'piscina.js', 'piscina.d.ts', 'lib/', 'binding.js', 'binding.d.ts', 'scripts/install.js']) {
      assert.ok(PKG.files.includes(f), `files lacks ${f}`)
      assert.ok(fs.existsSync(path.join(ROOT, f)), `${f} is missing (binding.* come from npm run build)`)
    }
    assert.equal(PKG.scripts.install, 'node scripts/install.js')
  })
})

describe('npm pack → npm install into an empty project', { skip: HERE ? false : 'packs the linux-x64-gnu binary: runs on linux x64 only' }, () => {
  let tmp
  let packed

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-pkgtest-'))
    const r = run(process.execPath, [path.join(ROOT, 'scripts', 'pack.js'), '--out', path.join(tmp, 'tarballs'), '--json'], { cwd: ROOT })
    assert.equal(r.status, 0, `scripts/pack.js failed:\n${r.out}`)
    packed = JSON.parse(r.stdout)
  })

  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('the main tarball has the JS, the types, the loader and the Rust sources, but no binary', () => {
    const files = packed.main.files
    const lib = fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.js')).map((f) => `lib/${f}`)
    for (const f of ['package.json', 'README.md', 'index.js', 'index.mjs', 'index.d.ts', 'index.d.mts', 'piscina.js', 'piscina.d.ts', ...lib, 'binding.js', 'binding.d.ts', 'scripts/install.js', 'Cargo.toml', 'Cargo.lock', 'build.rs', 'src/lib.rs', 'crates/sabpool-core/Cargo.toml', 'crates/sabpool-core/src/lib.rs']) {
      assert.ok(files.includes(f), `main tarball lacks ${f}`)
    }
    const unexpected = files.filter((f) => !/^(package\.json|README\.md|index\.(js|mjs|d\.ts|d\.mts)|piscina\.(js|d\.ts)|lib\/[a-z]+\.js|binding\.(js|d\.ts)|scripts\/install\.js|Cargo\.(toml|lock)|build\.rs|src\/.+\.rs|crates\/sabpool-core\/(Cargo\.toml|src\/.+\.rs))$/.test(f))
    assert.deepEqual(unexpected, [], 'unexpected files in the main tarball')
    assert.ok(packed.main.size < 500_000, `main tarball is ${packed.main.size} bytes`)
  })

  it(`the ${HERE} platform tarball has exactly its binary`, () => {
    const platform = packed.platforms.find((p) => p.name === `sabpool-${HERE}`)
    assert.ok(platform, `no sabpool-${HERE} tarball; packed: ${packed.platforms.map((p) => p.name)}`)
    assert.deepEqual(platform.files, ['README.md', `sabpool.${HERE}.node`, 'package.json'].sort())
    assert.equal(platform.version, PKG.version)
  })

  it('installs offline without Rust and runs a worker round trip with require and with import', () => {
    const project = emptyProject(path.join(tmp, 'project'))
    const platform = packed.platforms.find((p) => p.name === `sabpool-${HERE}`)
    // CARGO points nowhere: the install must not need Rust when the platform package is there.
    const r = npm(['install', '--offline', '--foreground-scripts', packed.main.tarball, platform.tarball], project, { CARGO: path.join(tmp, 'no-cargo') })
    assert.equal(r.status, 0, `npm install failed:\n${r.out}`)
    assert.match(r.out, new RegExp(`sabpool: using the prebuilt binary from package sabpool-${HERE}`))
    const installed = path.join(project, 'node_modules', 'sabpool')
    assert.deepEqual(fs.readdirSync(installed).filter((f) => f.endsWith('.node')), [], 'no binary inside node_modules/sabpool')

    for (const f of fs.readdirSync(path.join(__dirname, 'packaging'))) fs.copyFileSync(path.join(__dirname, 'packaging', f), path.join(project, f))
    for (const script of ['roundtrip.cjs', 'roundtrip.mjs']) {
      const s = run(process.execPath, [script], { cwd: project, timeout: 60_000 })
      assert.equal(s.status, 0, `${script} failed:\n${s.out}`)
      const out = JSON.parse(s.stdout.trim().split('\n').pop())
      assert.equal(out.ok, true)
      assert.equal(out.length, 1000)
      assert.equal(out.exitCode, 0)
      assert.ok(String(out.resolved).includes(path.join('node_modules', 'sabpool', 'index.')), `${script} resolved ${out.resolved}`)
      if (script.endsWith('.cjs')) {
        assert.equal(out.sameClassViaImport, true)
        assert.equal(out.bindingSource, 'package', `the addon loads straight from sabpool-${HERE}`)
      } else {
        assert.equal(out.sameClassViaRequire, true)
      }
    }

    // The installed types work for a TypeScript consumer (typescript and @types/node come from
    // this repository's devDependencies).
    fs.writeFileSync(path.join(project, 'use.mts'), [
      "import sabpool, { SharedPool, Channel, type Lease, type Ticket } from 'sabpool'",
      "import { runLease, leaseTask } from 'sabpool/piscina'",
      'const pool = new SharedPool({ slotSize: 64, slots: 2 })',
      'const lease: Lease = pool.acquireSync()',
      'const t: Ticket = lease.handoff()',
      'const c: Channel = new sabpool.Channel(pool, { capacity: 2 })',
      '// @ts-expect-error capacity is required',
      'new Channel(pool, {})',
      'const task = leaseTask(pool, (l: Lease) => l.length)',
      'const reply: Promise<Lease> = runLease({ run: async () => t }, pool, pool.acquireSync())',
      'export { t, c, task, reply }',
      '',
    ].join('\n'))
    fs.writeFileSync(path.join(project, 'use.cts'), "import sabpool = require('sabpool')\nconst pool: sabpool.SharedPool = new sabpool.SharedPool({ slotSize: 64, slots: 2 })\n// @ts-expect-error slots is required\nnew sabpool.SharedPool({ slotSize: 64 })\nexport = pool\n")
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', lib: ['es2022'], strict: true, noEmit: true, types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')] },
      files: ['use.mts', 'use.cts'],
    }))
    // 'sabpool/piscina' loads from the installed package, piscina itself not installed.
    const adapter = run(process.execPath, ['-e', "const p = require('sabpool/piscina'); console.log(require.resolve('sabpool/piscina'), typeof p.runLease, typeof p.leaseTask)"], { cwd: project })
    assert.equal(adapter.status, 0, adapter.out)
    assert.equal(adapter.stdout.trim(), `${path.join(installed, 'piscina.js')} function function`)
    const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] })
    const t = run(process.execPath, [tsc, '-p', project, '--pretty', 'false'], { cwd: project })
    assert.equal(t.status, 0, `tsc on the installed package failed:\n${t.out}`)
  })

  it('without the platform package and without cargo, npm install fails with a clear message', () => {
    const project = emptyProject(path.join(tmp, 'project-no-binary'))
    const r = npm(['install', '--offline', packed.main.tarball], project, { CARGO: path.join(tmp, 'no-cargo') })
    assert.notEqual(r.status, 0, `npm install should have failed:\n${r.out}`)
    assert.match(r.out, /sabpool: cannot install the native addon/)
    assert.match(r.out, new RegExp(`No usable native addon for ${process.platform}/${process.arch} \\(${HERE}\\)`))
    assert.match(r.out, new RegExp(`package sabpool-${HERE} is not installed`))
    assert.match(r.out, /`cargo` was not found on PATH/)
  })

  it('without the platform package but with cargo, npm install builds from the shipped sources', { skip: process.env.SABPOOL_TEST_SOURCE_BUILD === '1' ? false : 'set SABPOOL_TEST_SOURCE_BUILD=1 (needs cargo, ~20 s)' }, () => {
    const project = emptyProject(path.join(tmp, 'project-source'))
    const r = npm(['install', '--offline', '--foreground-scripts', packed.main.tarball], project)
    assert.equal(r.status, 0, `npm install failed:\n${r.out}`)
    assert.match(r.out, /no prebuilt binary .*building from source/)
    assert.ok(fs.existsSync(path.join(project, 'node_modules', 'sabpool', `sabpool.${HERE}.node`)))
    for (const f of fs.readdirSync(path.join(__dirname, 'packaging'))) fs.copyFileSync(path.join(__dirname, 'packaging', f), path.join(project, f))
    for (const script of ['roundtrip.cjs', 'roundtrip.mjs']) {
      const s = run(process.execPath, [script], { cwd: project, timeout: 60_000 })
      assert.equal(s.status, 0, `${script} failed:\n${s.out}`)
      const out = JSON.parse(s.stdout.trim().split('\n').pop())
      assert.equal(out.ok, true)
      if (script.endsWith('.cjs')) assert.equal(out.bindingSource, 'file', `the addon loads straight from the built sabpool.${HERE}.node`)
    }
  })
})
