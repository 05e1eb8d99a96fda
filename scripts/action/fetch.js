// What scripts/action/fetch does with node where the runner or the job's
// container has no jq, sha256sum, curl or wget: a job with `container:` runs
// every step in that image, and the only program the runner puts in every job
// container is its own node (its externals, mounted read-only at /__e; the
// one JavaScript actions run with). Plain Node >= 18 (fetch, crypto, streams):
// nothing to install.
//
//   node fetch.js flat FILE             every value in the JSON FILE, one
//                                       "KEY/KEY...<TAB>VALUE" line each
//   node fetch.js sha256 FILE...        "HEX  FILE" lines, as sha256sum prints them
//   node fetch.js download URL OUT [--https-only]
//                                       GET URL into OUT, following redirects
//                                       (--https-only: every hop https), 3 tries
//
// Exit 0, or 1 with one line on stderr saying what failed.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const { Readable } = require('stream');
const { pipeline } = require('stream/promises');

function die(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

// Every value, one `PATH<TAB>VALUE` line each, PATH the keys joined by `/`: a
// string, number or boolean as text, an object as its keys (", "). One call
// for the whole manifest: a node start costs more than reading it.
function flat(file) {
  let root;
  try {
    root = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    die(`${file}: ${e.message}`);
  }
  const lines = [];
  const oneLine = (s) => !/[\t\r\n]/.test(s);
  (function walk(v, at) {
    if (v === null || Array.isArray(v)) return;
    if (typeof v === 'object') {
      const keys = Object.keys(v).sort();
      if (at) lines.push(`${at}\t${keys.join(', ')}`);
      for (const k of keys) if (oneLine(k) && !k.includes('/')) walk(v[k], at ? `${at}/${k}` : k);
    } else if (oneLine(String(v))) {
      lines.push(`${at}\t${v}`);
    }
  })(root, '');
  process.stdout.write(lines.map((l) => `${l}\n`).join(''));
}

async function sha256(files) {
  for (const f of files) {
    const h = crypto.createHash('sha256');
    try {
      await pipeline(fs.createReadStream(f), h);
    } catch (e) {
      die(`${f}: ${e.message}`);
    }
    process.stdout.write(`${h.digest('hex')}  ${f}\n`);
  }
}

// One GET, redirects followed by hand so each hop's scheme is checked.
async function get(url, out, httpsOnly, signal) {
  for (let hop = 0; hop < 10; hop++) {
    if (httpsOnly && new URL(url).protocol !== 'https:') throw new Error(`refusing ${url}: not https`);
    const res = await fetch(url, { redirect: 'manual', signal });
    if ([301, 302, 303, 307, 308].includes(res.status)) {
      const to = res.headers.get('location');
      if (!to) throw new Error(`HTTP ${res.status} without a Location from ${url}`);
      url = new URL(to, url).href;
      continue;
    }
    if (!res.ok) {
      const err = new Error(`HTTP ${res.status} from ${url}`);
      err.retry = res.status >= 500 || res.status === 429;
      throw err;
    }
    await pipeline(Readable.fromWeb(res.body), fs.createWriteStream(out));
    return;
  }
  throw new Error(`more than 10 redirects from ${url}`);
}

async function download(url, out, httpsOnly) {
  const signal = AbortSignal.timeout(300000);
  for (let attempt = 1; ; attempt++) {
    try {
      await get(url, out, httpsOnly, signal);
      return;
    } catch (e) {
      const transient = e.retry || (e.name === 'TypeError' && !signal.aborted);
      if (!transient || attempt === 3) die(`${url}: ${e.cause ? `${e.message} (${e.cause.code || e.cause.message})` : e.message}`);
      await new Promise((r) => setTimeout(r, 1000 * attempt));
    }
  }
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'flat' && args.length === 1) flat(args[0]);
else if (cmd === 'sha256') sha256(args);
else if (cmd === 'download' && (args.length === 2 || (args.length === 3 && args[2] === '--https-only'))) {
  download(args[0], args[1], args.length === 3);
} else die('usage: fetch.js flat FILE | sha256 FILE... | download URL OUT [--https-only]');
