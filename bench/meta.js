'use strict'
// Where and how the numbers were measured.

const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'ignore'], timeout: 2000 }).toString().trim()
  } catch {
    return null
  }
}

function collectMeta(argv) {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    napi: process.versions.napi,
    sabpool: require('../package.json').version,
    commit: gitCommit(),
    cpu: cpus.length > 0 ? cpus[0].model.trim() : 'unknown',
    cores: cpus.length,
    availableParallelism: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    platform: process.platform,
    arch: process.arch,
    totalMemoryBytes: os.totalmem(),
    loadAverageAtStart: os.loadavg(),
    argv,
    execArgv: process.execArgv,
  }
}

module.exports = { collectMeta }
