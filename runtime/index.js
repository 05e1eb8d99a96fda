// The main step (see action.yml): name the builder, hand ACTIONS_RUNTIME_TOKEN,
// ACTIONS_CACHE_URL, ACTIONS_RESULTS_URL and ACTIONS_CACHE_SERVICE_V2 (what
// makes buildx speak the v2 protocol) to the mbx step through a 0600 file in
// RUNNER_TEMP with `cache: gha`, and leave the post step what it cleans up.
// No dependencies: plain Node, so nothing to install or audit.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const KEYS = ['ACTIONS_RUNTIME_TOKEN', 'ACTIONS_CACHE_URL', 'ACTIONS_RESULTS_URL', 'ACTIONS_CACHE_SERVICE_V2'];

// Workflow command data, escaped as the runner unescapes it (%25, %0D, %0A).
function escapeData(s) {
  return String(s).replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function fail(message) {
  process.stdout.write(`::error title=mbx::${escapeData(message)}${os.EOL}`);
  process.exit(1);
}

// A file command (GITHUB_OUTPUT, GITHUB_STATE): NAME=VALUE, the value on one line.
function fileCommand(variable, name, value) {
  const f = process.env[variable];
  if (!f) fail(`${variable} is not set: this step runs only inside GitHub Actions`);
  if (/[\r\n]/.test(value)) fail(`${name} holds a line break`);
  fs.appendFileSync(f, `${name}=${value}${os.EOL}`);
}

// The builder of this run: the input, or one per job run. A shared default
// (`ci-builder`) would be reused by another runner's job on the same machine
// (another HOME: mbx's ownership and user count are per HOME) and removed
// under it by the first job to finish. Like setup-buildx-action, which names
// one builder per run. Run id, attempt and job id say whose it is; matrix
// legs share all three, so a random suffix tells them apart (the post step
// reads the name from the state, never recomputes it). The name keeps to
// what buildx accepts.
function runBuilder(env) {
  const given = (env.INPUT_BUILDER || '').trim();
  if (given) return given;
  const parts = [env.GITHUB_RUN_ID, env.GITHUB_RUN_ATTEMPT, env.GITHUB_JOB]
    .map((p) => String(p || '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, ''))
    .filter(Boolean);
  const head = `mbx-${parts.join('-')}`.slice(0, 55).replace(/-+$/, '');
  return `${head}-${crypto.randomBytes(3).toString('hex')}`;
}

const env = process.env;
const builder = runBuilder(env);
fileCommand('GITHUB_OUTPUT', 'builder', builder);
fileCommand('GITHUB_STATE', 'builder', builder);
if (env.INPUT_MBX) fileCommand('GITHUB_STATE', 'mbx', env.INPUT_MBX);
console.log(`mbx: builder ${builder}${env.INPUT_BUILDER ? '' : ' (one per job run; removed at the end of the job)'}`);

if ((env.INPUT_CACHE || 'gha').trim().toLowerCase() === 'gha') {
  const token = env.ACTIONS_RUNTIME_TOKEN || '';
  if (!token || !(env.ACTIONS_CACHE_URL || env.ACTIONS_RESULTS_URL)) {
    fail('cache: gha needs ACTIONS_RUNTIME_TOKEN and ACTIONS_CACHE_URL or ACTIONS_RESULTS_URL, ' +
      'and the runner gave this step none of them; use cache: local, registry or none outside GitHub Actions');
  }
  // Mask the token in the log, whatever prints it later.
  process.stdout.write(`::add-mask::${escapeData(token)}${os.EOL}`);
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
  fileCommand('GITHUB_STATE', 'file', file);
  fileCommand('GITHUB_OUTPUT', 'file', file);
  console.log(`mbx: cache credentials handed over in ${file} (0600, deleted by the mbx step)`);
}
