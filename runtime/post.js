// The post step (see action.yml): runs at the end of the job whatever
// happened before (post-if: always()), also after the runner cancelled the
// job or the step timed out. On GitHub's runner a cancel sends SIGINT, then
// SIGTERM 7.5 s later, to the step's process only, and kills it 2.5 s after
// that: whatever the mbx step had no time to do is done here.
// State from the main step: STATE_builder, STATE_mbx, STATE_file.
'use strict';
const childProcess = require('child_process');
const fs = require('fs');

const env = process.env;

// The gha handoff file: normally the mbx step deleted it at once; a step
// stopped before that (cancelled, or cache spelt in a way the mbx step
// missed) must not leave the token in RUNNER_TEMP for the rest of the job.
const file = env.STATE_file || '';
if (file) {
  try {
    fs.unlinkSync(file);
    console.log(`mbx: deleted the leftover credentials file ${file}`);
  } catch (e) {
    if (e.code !== 'ENOENT') process.stdout.write(`::warning title=mbx::could not delete ${file}: ${e.code}\n`);
  }
}

// The builder: `mbx setup --cleanup` removes it only when mbx created it
// and no other run uses it.
const mbx = env.STATE_mbx || '';
const builder = env.STATE_builder || '';
if (mbx && builder) {
  const r = childProcess.spawnSync(mbx, ['setup', '--cleanup', '--builder', builder], {
    stdio: 'inherit',
    timeout: 120000,
  });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : `exit ${r.status === null ? r.signal : r.status}`;
    process.stdout.write(`::warning title=mbx::could not remove builder ${builder} (${why}); remove it with: docker buildx rm ${builder}\n`);
  }
}
