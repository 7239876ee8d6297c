// End-to-end test of token metering and token limits with the official
// OpenAI Node SDK.
//
// server/sdk_tokens_test.go (TestOpenAISDKTokens) starts a mock upstream
// and a gateway with a RateWindow of a few seconds, then runs
// `node --test tokens.test.mjs` here with:
//
//   OPENAI_BASE_URL       the gateway's base URL
//   AUTHGATE_STREAM_KEY   a key with models=* (the gateway reads its bodies)
//   AUTHGATE_TPM_KEY      a key with tpm=1000
//   MODEL                 the mock's model

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { RateLimitError } from 'openai';

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run this file through "go test -run TestOpenAISDKTokens ./server/"`);
  }
  return v;
}

const baseURL = env('OPENAI_BASE_URL');
const model = env('MODEL');
const messages = [{ role: 'user', content: 'Say hello.' }];

async function usageChunks(client, params) {
  const stream = await client.chat.completions.create({ model, messages, stream: true, ...params });
  let withUsage = 0;
  let content = '';
  for await (const chunk of stream) {
    if (chunk.usage) {
      withUsage++;
    }
    content += chunk.choices[0]?.delta?.content ?? '';
  }
  return { withUsage, content };
}

test('a stream without include_usage shows no usage chunk; one with it shows exactly one', async () => {
  const client = new OpenAI({ apiKey: env('AUTHGATE_STREAM_KEY'), baseURL, maxRetries: 0, timeout: 20_000 });
  const plain = await usageChunks(client, {});
  assert.equal(plain.withUsage, 0);
  assert.ok(plain.content.length > 0);
  const asked = await usageChunks(client, { stream_options: { include_usage: true } });
  assert.equal(asked.withUsage, 1);
  assert.equal(asked.content, plain.content);
});

test('a TPM refusal raises RateLimitError, and the SDK retries after the header\'s time', async () => {
  const limit = 1000;
  // A reservation of limit-10 tokens (the body's bytes plus max_tokens):
  // admitted alone, refused once the first request's usage (more than 10
  // tokens) is counted.
  const params = { model, messages, max_tokens: 1 };
  params.max_tokens = limit - 10 - JSON.stringify(params).length;
  const noRetry = new OpenAI({ apiKey: env('AUTHGATE_TPM_KEY'), baseURL, maxRetries: 0, timeout: 20_000 });
  const first = await noRetry.chat.completions.create(params).withResponse();
  assert.equal(first.response.headers.get('x-ratelimit-limit-tokens'), String(limit));

  let waitMs = 0;
  await assert.rejects(noRetry.chat.completions.create(params), (err) => {
    assert.ok(err instanceof RateLimitError, String(err));
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.match(err.message, /Rate limit reached for sdk-tpm on tokens per min \(TPM\): Limit 1000/);
    const h = err.headers;
    waitMs = Number(typeof h?.get === 'function' ? h.get('retry-after-ms') : h?.['retry-after-ms']);
    return true;
  });
  assert.ok(waitMs > 0 && waitMs < 60_000, `retry-after-ms ${waitMs}`);

  const retrying = new OpenAI({ apiKey: env('AUTHGATE_TPM_KEY'), baseURL, maxRetries: 1, timeout: 20_000 });
  const start = Date.now();
  const again = await retrying.chat.completions.create(params);
  assert.ok(again.choices.length > 0);
  // The SDK waited as the gateway said (less the time since it said so).
  assert.ok(Date.now() - start >= waitMs - 1000, `retried after ${Date.now() - start} ms, told ${waitMs}`);
});
