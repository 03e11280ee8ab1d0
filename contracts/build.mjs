// Compiles contracts/src with the solc pinned in package.json and writes one artifact per
// deployable contract (ABI + creation and runtime bytecode) to artifacts/ (or --out DIR).
// The artifacts are committed; tests/chain recompiles and compares them byte for byte.
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const solc = require('solc')
const here = path.dirname(fileURLToPath(import.meta.url))
const srcDir = path.join(here, 'src')

// Contracts that are deployed (the others are abstract parts or libraries).
const DEPLOYED = ['CommunityLedger', 'NaiveToken', 'Exchange', 'Governance', 'Conversion', 'AccountRecovery', 'Helpers', 'PaymentRequests', 'StandingOrders']

// Fixed settings: changing any of them changes the bytecode, so they live here, not on
// the command line. evmVersion is pinned to cancun, which py-evm and anvil both run.
const SETTINGS = {
  optimizer: { enabled: true, runs: 2000 },
  evmVersion: 'cancun',
  viaIR: true,
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
}

function listSources(dir) {
  const out = {}
  for (const name of fs.readdirSync(dir).sort()) {
    const full = path.join(dir, name)
    if (fs.statSync(full).isDirectory()) Object.assign(out, listSources(full))
    else if (name.endsWith('.sol')) out[path.relative(here, full)] = { content: fs.readFileSync(full, 'utf8') }
  }
  return out
}

function findImport(p) {
  for (const base of [here, path.join(here, 'node_modules')]) {
    const full = path.join(base, p)
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') }
  }
  return { error: `import not found: ${p}` }
}

const args = process.argv.slice(2)
const outIdx = args.indexOf('--out')
const outDir = outIdx >= 0 ? path.resolve(args[outIdx + 1]) : path.join(here, 'artifacts')

const input = { language: 'Solidity', sources: listSources(srcDir), settings: SETTINGS }
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }))
const errors = (output.errors || []).filter((e) => e.severity === 'error')
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n')
if (errors.length) process.exit(1)

fs.mkdirSync(outDir, { recursive: true })
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    if (!DEPLOYED.includes(name)) continue
    const artifact = {
      contractName: name,
      sourceName: file,
      compiler: `solc ${solc.version()}`,
      settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion },
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
      deployedBytecode: '0x' + c.evm.deployedBytecode.object,
    }
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 2) + '\n')
  }
}
