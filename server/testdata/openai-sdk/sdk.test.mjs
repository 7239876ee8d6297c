// End-to-end test of authgate with the official OpenAI Node SDK as the client.
//
// server/sdk_test.go (TestOpenAISDK) starts the mock upstream and a gateway in
// front of it, then runs `node --test sdk.test.mjs` here with:
//
//   OPENAI_BASE_URL       the gateway's base URL, e.g. http://127.0.0.1:PORT/v1
//   AUTHGATE_KEY          a valid key (key_id "sdk")
//   AUTHGATE_LIMITED_KEY  a valid key with rpm=1 (key_id "sdk-limited"), not
//                         used before: its one request is spent by this file
//   AUTHGATE_LIMITED_ID   the limited key's key_id (default "sdk-limited")
//   AUTHGATE_MODEL        the mock's model id (default "mock-model")
//
// The expected contents are the mock upstream's (mockupstream/chat.go,
// embeddings.go). Top-level tests run one after another, in file order.
// TestOpenAISDK then expects exactly these requests in the access log: a
// request added here must be added there too.
// maxRetries is 0 everywhere: a retried 429 would wait retry-after-ms (~60 s).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import OpenAI from 'openai';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (!v) {
    throw new Error(`${name} is not set: run this file through "go test -run TestOpenAISDK ./server/"`);
  }
  return v;
}

const baseURL = env('OPENAI_BASE_URL');
const key = env('AUTHGATE_KEY');
const limitedKey = env('AUTHGATE_LIMITED_KEY');
const limitedID = env('AUTHGATE_LIMITED_ID', 'sdk-limited');
const model = env('AUTHGATE_MODEL', 'mock-model');

// What the mock upstream answers to every chat completion (mockupstream/chat.go).
const mockReply = 'Hello from the mock upstream.';
// The length of every mock embedding (mockupstream/embeddings.go).
const mockDims = 8;

const messages = [{ role: 'user', content: 'Say hello.' }];

const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0, timeout: 20_000 });

// The non-streamed reply, compared with the streamed one below.
let nonStreamedContent;

test('chat completion', async (t) => {
  const { data, response, request_id } = await client.chat.completions
    .create({ model, messages })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, model);
  const content = data.choices[0]?.message?.content;
  assert.equal(typeof content, 'string');
  assert.ok(content.length > 0, 'empty content');
  assert.equal(content, mockReply);
  assert.equal(data.choices[0].finish_reason, 'stop');
  nonStreamedContent = content;

  // The gateway's own headers reach the SDK (SPEC 5.2, 5.3).
  assert.ok(request_id, 'no x-request-id');
  assert.equal(response.headers.get('x-ratelimit-limit-requests'), '100');
  assert.match(response.headers.get('x-ratelimit-remaining-requests') ?? '', /^\d+$/);
  assert.ok(response.headers.get('x-ratelimit-reset-requests'), 'no x-ratelimit-reset-requests');
  t.diagnostic(`content ${JSON.stringify(content)}, x-request-id ${request_id}`);
});

test('streamed chat completion', async (t) => {
  const start = performance.now();
  const { data: stream, response } = await client.chat.completions
    .create({ model, messages, stream: true, stream_options: { include_usage: true } })
    .withResponse();
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  assert.equal(response.headers.get('x-accel-buffering'), 'no');

  // One entry per iteration of the SDK's stream: its arrival time and its
  // content delta, if any.
  const arrivals = [];
  let finishReason;
  let usage;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    const choice = chunk.choices[0];
    if (choice?.finish_reason) {
      finishReason = choice.finish_reason;
    }
    if (chunk.usage) {
      usage = chunk.usage;
    }
    arrivals.push({ ms: performance.now() - start, content: choice?.delta?.content });
  }
  const deltas = arrivals.filter((a) => typeof a.content === 'string' && a.content !== '');
  assert.ok(deltas.length >= 2, `${deltas.length} content deltas, want at least 2`);
  const joined = deltas.map((d) => d.content).join('');
  assert.equal(joined, mockReply);
  assert.equal(joined, nonStreamedContent ?? mockReply);
  assert.equal(finishReason, 'stop');
  assert.ok(usage && usage.completion_tokens > 0, 'no usage chunk at the end of the stream');

  // Each chunk was its own iteration; the arrival times show whether they
  // were spread out (streamed) or came together (buffered). They are logged,
  // not asserted: timing depends on the machine.
  t.diagnostic(`${arrivals.length} chunks, ${deltas.length} content deltas: ` +
    arrivals.map((a) => `${a.ms.toFixed(1)}ms ${JSON.stringify(a.content ?? null)}`).join(', '));
});

test('models list', async (t) => {
  const ids = [];
  for await (const m of client.models.list()) {
    ids.push(m.id);
  }
  assert.ok(ids.includes(model), `models ${JSON.stringify(ids)} lack ${model}`);

  const one = await client.models.retrieve(model);
  assert.equal(one.id, model);
  t.diagnostic(`models ${JSON.stringify(ids)}`);
});

test('embeddings (the SDK asks for base64 and decodes it)', async (t) => {
  const res = await client.embeddings.create({ model, input: ['a', 'b'] });
  assert.equal(res.data.length, 2);
  for (const [i, e] of res.data.entries()) {
    assert.equal(e.index, i);
    assert.equal(e.embedding.length, mockDims, `embedding ${i}: length ${e.embedding.length}`);
    const norm = Math.hypot(...e.embedding);
    assert.ok(Math.abs(norm - 1) < 1e-3, `embedding ${i}: norm ${norm}, want 1 (the mock's are unit length)`);
  }
  assert.notDeepEqual(Array.from(res.data[0].embedding), Array.from(res.data[1].embedding));

  // The same vectors when asked for as floats: the base64 path lost nothing.
  const floats = await client.embeddings.create({ model, input: ['a', 'b'], encoding_format: 'float' });
  for (const [i, e] of floats.data.entries()) {
    const b64 = Array.from(res.data[i].embedding);
    e.embedding.forEach((v, j) => assert.ok(Math.abs(v - b64[j]) < 1e-6, `embedding ${i}[${j}]: float ${v}, base64 ${b64[j]}`));
  }
  t.diagnostic(`2 embeddings of ${mockDims} dimensions`);
});

test('wrong key: AuthenticationError 401 "Invalid API key"', async (t) => {
  const wrong = new OpenAI({ apiKey: 'sk-wrong-0123456789abcdef', baseURL, maxRetries: 0, timeout: 20_000 });
  const err = await wrong.chat.completions.create({ model, messages }).then(
    () => assert.fail('a wrong key was accepted'),
    (e) => e,
  );
  assert.ok(err instanceof OpenAI.AuthenticationError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 401);
  assert.equal(err.error?.message, 'Invalid API key');
  assert.equal(err.message, '401 Invalid API key');
  assert.equal(err.type, 'invalid_request_error');
  assert.equal(err.code, 'invalid_api_key');
  assert.equal(err.param, 'authorization');
  assert.ok(err.requestID, 'no x-request-id on the 401');
  t.diagnostic(`${err.constructor.name}: ${err.message}`);
});

test('limited key (rpm=1): RateLimitError 429 with retry headers', async (t) => {
  const limited = new OpenAI({ apiKey: limitedKey, baseURL, maxRetries: 0, timeout: 20_000 });

  const first = await limited.chat.completions.create({ model, messages }).withResponse();
  assert.equal(first.data.choices[0].message.content, mockReply);
  assert.equal(first.response.headers.get('x-ratelimit-limit-requests'), '1');
  assert.equal(first.response.headers.get('x-ratelimit-remaining-requests'), '0');

  const err = await limited.chat.completions.create({ model, messages }).then(
    () => assert.fail('the second request of an rpm=1 key was accepted'),
    (e) => e,
  );
  assert.ok(err instanceof OpenAI.RateLimitError, `got ${err?.constructor?.name}: ${err}`);
  assert.equal(err.status, 429);
  assert.equal(err.error?.message, `Rate limit exceeded for ${limitedID}`);
  assert.match(err.message, new RegExp(`Rate limit exceeded for ${limitedID}$`));
  assert.equal(err.type, 'rate_limit_error');
  assert.equal(err.code, 'rate_limit_exceeded');
  assert.ok(err.requestID, 'no x-request-id on the 429');

  // What the SDK reads before retrying (client.js retryRequest): it would
  // wait retry-after-ms, else Retry-After.
  const h = err.headers;
  const ms = Number(h.get('retry-after-ms'));
  assert.ok(Number.isFinite(ms) && ms > 0 && ms <= 60_000, `retry-after-ms ${h.get('retry-after-ms')}`);
  const secs = h.get('retry-after');
  assert.match(secs ?? '', /^\d+$/, `retry-after ${secs}`);
  assert.equal(Number(secs), Math.max(1, Math.ceil(ms / 1000)), `retry-after ${secs} for retry-after-ms ${ms}`);
  assert.equal(h.get('x-ratelimit-limit-requests'), '1');
  assert.equal(h.get('x-ratelimit-remaining-requests'), '0');
  assert.ok(h.get('x-ratelimit-reset-requests'), 'no x-ratelimit-reset-requests');
  t.diagnostic(`${err.constructor.name}: ${err.message}; retry-after-ms ${ms}, retry-after ${secs}, ` +
    `x-ratelimit-reset-requests ${h.get('x-ratelimit-reset-requests')}`);
});
