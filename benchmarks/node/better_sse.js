"use strict";
// better-sse on node:http, written the way its documentation shows. `node better_sse.js --port P`.
//
// * /stream: `session.push(data, "message", id)` per event; /stream-batch: the same events
//   through `session.batch(buffer)`, one EventBuffer per ~64 KiB (the Python apps' body size);
//   both wait for "drain" when the socket is full;
// * /subscribe: a session registered with the topic's Channel; /publish:
//   `channel.broadcast(data, "message", { eventId })` (better-sse encodes it once per session);
//   /publish?mode=batch: one EventBuffer per event, sent to every session with `session.batch`.
//
// The serializer is `String`: the data are already text (the default JSON-encodes them), as
// the Python apps send them. No initial `retry:` field, which the Python apps do not send.

const { createChannel, createEventBuffer, createSession } = require("better-sse");
const common = require("./common.js");
const { version } = JSON.parse(
  require("node:fs").readFileSync(`${__dirname}/node_modules/better-sse/package.json`, "utf8"),
);

const OPTIONS = { serializer: String, retry: null };
const BATCH_BYTES = 64 * 1024;
const channels = new Map(); // topic -> Channel

function channelOf(topic) {
  let channel = channels.get(topic);
  if (channel === undefined) channels.set(topic, (channel = createChannel()));
  return channel;
}

async function stream(req, res, params) {
  const n = common.intArg(params, "n", 1000);
  const data = common.makePayload(common.intArg(params, "size", 32));
  const session = await createSession(req, res, OPTIONS);
  for (let i = 0; i < n; i++) {
    session.push(data, "message", String(i));
    if (res.writableNeedDrain) await common.drained(res);
    if (!session.isConnected) return;
  }
  res.end();
}

async function streamBatch(req, res, params) {
  const n = common.intArg(params, "n", 1000);
  const data = common.makePayload(common.intArg(params, "size", 32));
  const session = await createSession(req, res, OPTIONS);
  let i = 0;
  while (i < n && session.isConnected) {
    const buffer = createEventBuffer(OPTIONS);
    let size = 0;
    for (; i < n && size < BATCH_BYTES; i++) {
      buffer.push(data, "message", String(i));
      size += data.length + 30;
    }
    await session.batch(buffer);
    if (res.writableNeedDrain) await common.drained(res);
  }
  res.end();
}

async function subscribe(req, res, params) {
  const session = await createSession(req, res, OPTIONS);
  channelOf(params.get("topic") ?? common.DEFAULT_TOPIC).register(session);
}

async function publish(req, res, params) {
  const channel = channelOf(params.get("topic") ?? common.DEFAULT_TOPIC);
  const batched = params.get("mode") === "batch";
  await common.pacedSequence(params, (seq) => {
    const eventId = String(seq);
    if (!batched) {
      channel.broadcast(common.publishData(seq), "message", { eventId });
      return;
    }
    const buffer = createEventBuffer(OPTIONS).push(common.publishData(seq), "message", eventId);
    for (const session of channel.activeSessions) session.batch(buffer);
  });
  common.plain(res, String(channel.sessionCount));
}

common.serve(
  { "/stream": stream, "/stream-batch": streamBatch, "/subscribe": subscribe, "/publish": publish },
  { app: "better-sse", impl: `better-sse ${version} on node:http ${process.version}` },
);
