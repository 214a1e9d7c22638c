"use strict";
// The Node.js floor: node:http, no SSE library, pre-formatted SSE strings (CRLF, as the Python
// raw floor writes them). `node raw.js --port P`.
//
// * /stream writes one `res.write` per event, waiting for "drain" when the socket is full;
// * /subscribe registers the response with its topic; /publish formats each event once and
//   writes it to every subscriber's response.

const common = require("./common.js");

const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store" };
const topics = new Map(); // topic -> Set of ServerResponse

async function stream(req, res, params) {
  const n = common.intArg(params, "n", 1000);
  const data = common.makePayload(common.intArg(params, "size", 32));
  res.socket.setNoDelay(true);
  res.writeHead(200, SSE_HEADERS);
  for (let i = 0; i < n; i++) {
    if (!res.write(`id: ${i}\r\ndata: ${data}\r\n\r\n`)) await common.drained(res);
    if (res.destroyed) return;
  }
  res.end();
}

function subscribe(req, res, params) {
  const topic = params.get("topic") ?? common.DEFAULT_TOPIC;
  let subscribers = topics.get(topic);
  if (subscribers === undefined) topics.set(topic, (subscribers = new Set()));
  subscribers.add(res);
  res.once("close", () => subscribers.delete(res));
  res.socket.setNoDelay(true);
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
}

async function publish(req, res, params) {
  const topic = params.get("topic") ?? common.DEFAULT_TOPIC;
  let reached = 0;
  await common.pacedSequence(params, (seq) => {
    const event = Buffer.from(`id: ${seq}\r\ndata: ${common.publishData(seq)}\r\n\r\n`);
    const subscribers = topics.get(topic) ?? new Set();
    for (const subscriber of subscribers) subscriber.write(event);
    reached = subscribers.size;
  });
  common.plain(res, String(reached));
}

common.serve(
  { "/stream": stream, "/subscribe": subscribe, "/publish": publish },
  { app: "node-raw", impl: `node:http ${process.version}, pre-formatted strings` },
);
