#!/usr/bin/env bash
# The official `openai` npm package against a running `moeforge serve`: lists models, completes
# a chat request, streams one (same text), a completion, and reads a 404 as an APIError.
#   serve_openai_client.sh PORT API_KEY [NPM_DIR]
# Installs the package from the npm registry into NPM_DIR (kept between runs). Exits 77 (skip)
# when node/npm are missing or the install fails (offline), 1 when the client check fails.
# MOEFORGE_OPENAI_NPM overrides the package spec (default openai@6: 7.x needs Node >= 22,
# Debian 12's NodeSource Node here is 20).
set -uo pipefail
PORT=${1:?port}
KEY=${2:?api key}
DIR=${3:-${TMPDIR:-/tmp}/moeforge-openai-npm}
SPEC=${MOEFORGE_OPENAI_NPM:-openai@6}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "serve_openai_client: node/npm not found: skipping"
  exit 77
fi
mkdir -p "$DIR"
if [ ! -f "$DIR/.installed-$SPEC" ]; then
  [ -f "$DIR/package.json" ] || echo '{"private": true, "type": "module"}' >"$DIR/package.json"
  if ! (cd "$DIR" && timeout 300 npm install --no-audit --no-fund --loglevel=error "$SPEC" >npm.log 2>&1); then
    echo "serve_openai_client: 'npm install $SPEC' failed (offline?): skipping"
    tail -5 "$DIR/npm.log"
    exit 77
  fi
  touch "$DIR/.installed-$SPEC"
fi

cat >"$DIR/check.mjs" <<'JS'
import OpenAI from 'openai';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const [port, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey, maxRetries: 0, timeout: 60000 });

const models = await client.models.list();
const model = models.data[0].id;
assert.equal(model, 'default');

const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Name a prime number.' }];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0 });
assert.equal(chat.object, 'chat.completion');
assert.equal(chat.choices[0].message.role, 'assistant');
assert.equal(typeof chat.choices[0].message.content, 'string');
assert.ok(['stop', 'length'].includes(chat.choices[0].finish_reason));
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);

const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0, stream: true });
let text = '';
let chunks = 0;
let finish = null;
for await (const chunk of stream) {
  chunks++;
  text += chunk.choices[0]?.delta?.content ?? '';
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
assert.ok(chunks >= 2, `only ${chunks} chunks`);
assert.equal(text, chat.choices[0].message.content);
assert.equal(finish, chat.choices[0].finish_reason);

const completion = await client.completions.create({ model, prompt: 'def read_config(path):', max_tokens: 8, temperature: 0 });
assert.equal(completion.object, 'text_completion');
assert.equal(typeof completion.choices[0].text, 'string');

await assert.rejects(client.chat.completions.create({ model: 'no-such-model', messages }), (e) => {
  assert.ok(e instanceof OpenAI.APIError);
  assert.equal(e.status, 404);
  assert.equal(e.code, 'model_not_found');
  return true;
});
const wrongKey = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'wrong', maxRetries: 0 });
await assert.rejects(wrongKey.models.list(), (e) => e.status === 401);
const version = JSON.parse(readFileSync(new URL('./node_modules/openai/package.json', import.meta.url))).version;
console.log(`openai ${version}: chat ${JSON.stringify(chat.choices[0].message.content)}, streamed in ${chunks} chunks`);
JS
cd "$DIR" && node check.mjs "$PORT" "$KEY"
