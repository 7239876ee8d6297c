// End-to-end test of routing by model with the official OpenAI Node SDK.
//
// server/sdk_test.go (TestOpenAISDKModels) starts two mock upstreams, one
// serving CHAT_MODEL, the other EMBED_MODEL (each answers 404 for a model it
// does not serve), and a gateway in front of both, then runs
// `node --test models.test.mjs` here with:
//
//   OPENAI_BASE_URL    the gateway's base URL, e.g. http://127.0.0.1:PORT/v1
//   AUTHGATE_KEY       a key without a model list (key_id "sdk")
//   AUTHGATE_CHAT_KEY  a key with models=CHAT_MODEL (key_id "sdk-chat")
//   CHAT_MODEL, EMBED_MODEL
//
// TestOpenAISDKModels then checks the access log: which upstream served
// each request.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI, { NotFoundError } from 'openai';

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run this file through "go test -run TestOpenAISDKModels ./server/"`);
  }
  return v;
}

const baseURL = env('OPENAI_BASE_URL');
const chatModel = env('CHAT_MODEL');
const embedModel = env('EMBED_MODEL');
const all = new OpenAI({ apiKey: env('AUTHGATE_KEY'), baseURL, maxRetries: 0, timeout: 20_000 });
const chatOnly = new OpenAI({ apiKey: env('AUTHGATE_CHAT_KEY'), baseURL, maxRetries: 0, timeout: 20_000 });
const messages = [{ role: 'user', content: 'Say hello.' }];

async function ids(client) {
  const out = [];
  for await (const m of client.models.list()) {
    out.push(m.id);
  }
  return out.sort();
}

test('models.list shows exactly the key\'s models', async () => {
  assert.deepEqual(await ids(all), [chatModel, embedModel].sort());
  assert.deepEqual(await ids(chatOnly), [chatModel]);
});

test('chat reaches the chat pool, embeddings the embedding pool', async () => {
  const chat = await all.chat.completions.create({ model: chatModel, messages });
  assert.equal(chat.model, chatModel);
  const emb = await all.embeddings.create({ model: embedModel, input: ['a'] });
  assert.equal(emb.data.length, 1);
});

test('a denied model raises NotFoundError, as an unknown one does', async () => {
  for (const [client, model] of [[chatOnly, embedModel], [all, 'no-such-model'], [chatOnly, 'no-such-model']]) {
    await assert.rejects(
      client.chat.completions.create({ model, messages }),
      (err) => {
        assert.ok(err instanceof NotFoundError, `${model}: ${err}`);
        assert.equal(err.status, 404);
        assert.equal(err.code, 'model_not_found');
        assert.match(err.message, new RegExp('The model `' + model + '` does not exist or you do not have access to it.'));
        return true;
      },
    );
  }
  await assert.rejects(chatOnly.models.retrieve(embedModel), NotFoundError);
  const m = await chatOnly.models.retrieve(chatModel);
  assert.equal(m.id, chatModel);
});
