'use strict'
// Smoke test of `npm run bench`: the quick preset runs every mechanism end to end (each message's
// payload is checked by the bench itself) and its JSON has every cell. Timings are never asserted.
const { it } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const os = require('node:os')
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')

it('bench --quick runs every mechanism and writes a complete JSON report and chart', { timeout: 180_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sabpool-bench-'))
  const json = path.join(dir, 'bench.json')
  const svg = path.join(dir, 'bench.svg')
  const run = spawnSync(process.execPath, ['bench/index.js', '--quick', '--json', json, '--svg', svg], {
    cwd: root, encoding: 'utf8', timeout: 170_000,
  })
  assert.equal(run.status, 0, `bench failed:\n${run.stderr.slice(-2000)}`)
  assert.match(run.stdout, /sabpool channel/)
  assert.match(run.stdout, /hand-rolled ring/)
  const check = spawnSync(process.execPath, ['bench/check-json.js', json, '--all'], { cwd: root, encoding: 'utf8' })
  assert.equal(check.status, 0, `incomplete JSON report:\n${check.stdout}${check.stderr}`)
  const report = JSON.parse(fs.readFileSync(json, 'utf8'))
  assert.equal(typeof report, 'object')
  assert.match(fs.readFileSync(svg, 'utf8'), /^<svg[\s\S]*<\/svg>\s*$/)
  fs.rmSync(dir, { recursive: true, force: true })
})
