// Hand ACTIONS_RUNTIME_TOKEN, ACTIONS_CACHE_URL, ACTIONS_RESULTS_URL and
// ACTIONS_CACHE_SERVICE_V2 (what makes buildx speak the v2 protocol) to the
// mbx step through a 0600 file in RUNNER_TEMP (see action.yml for why).
// No dependencies: plain Node, so nothing to install or audit.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const KEYS = ['ACTIONS_RUNTIME_TOKEN', 'ACTIONS_CACHE_URL', 'ACTIONS_RESULTS_URL', 'ACTIONS_CACHE_SERVICE_V2'];

function fail(message) {
  process.stdout.write(`::error title=mbx::${message.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A')}${os.EOL}`);
  process.exit(1);
}

const env = process.env;
const token = env.ACTIONS_RUNTIME_TOKEN || '';
if (!token || !(env.ACTIONS_CACHE_URL || env.ACTIONS_RESULTS_URL)) {
  fail('cache: gha needs ACTIONS_RUNTIME_TOKEN and ACTIONS_CACHE_URL or ACTIONS_RESULTS_URL, ' +
    'and the runner gave this step none of them; use cache: local, registry or none outside GitHub Actions');
}
// Mask the token in the log, whatever prints it later.
process.stdout.write(`::add-mask::${token}${os.EOL}`);

let body = '';
for (const k of KEYS) {
  const v = env[k] || '';
  if (/[\r\n]/.test(v)) fail(`${k} holds a line break; refusing to hand it over`);
  if (v) body += `${k}=${v}\n`;
}
const dir = env.RUNNER_TEMP || os.tmpdir();
const file = path.join(dir, `mbx-runtime-${crypto.randomBytes(8).toString('hex')}`);
// 'wx': never follow or reuse an existing file; 0600: only the runner's user reads it.
fs.writeFileSync(file, body, { mode: 0o600, flag: 'wx' });

const out = env.GITHUB_OUTPUT;
if (!out) fail('GITHUB_OUTPUT is not set: this step runs only inside GitHub Actions');
fs.appendFileSync(out, `file=${file}${os.EOL}`);
console.log(`mbx: cache credentials handed over in ${file} (0600, deleted by the mbx step)`);
