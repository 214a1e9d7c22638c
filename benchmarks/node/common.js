"use strict";
// What the two Node.js benchmark apps share: the routes of benchmarks/_common.py, the same
// parameters and the same payloads, so that one client (benchmarks/client.py) drives them all.
// Node's standard library only.

const http = require("node:http");

const DEFAULT_TOPIC = "bench";
const ALPHABET = "abcdefghijklmnopqrstuvwxyz012345";

/** `size` characters of ASCII data (no line breaks), as `make_payload` in _common.py. */
function makePayload(size) {
  return ALPHABET.repeat(Math.floor(size / ALPHABET.length) + 1).slice(0, size);
}

/** The data of published event `seq`: its number and the publishing instant.
 * process.hrtime is CLOCK_MONOTONIC on Linux (libuv), the clock of Python's monotonic_ns. */
function publishData(seq) {
  return `${seq} ${process.hrtime.bigint()}`;
}

function intArg(params, name, fallback) {
  const value = params.get(name);
  return value === null ? fallback : parseInt(value, 10);
}

function floatArg(params, name, fallback) {
  const value = params.get(name);
  return value === null ? fallback : parseFloat(value);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls `each(seq)` for the `n` events a /publish asks for, each at the time `rate` (per
 * second, 0: back to back) schedules it, numbered from `seq`. */
async function pacedSequence(params, each) {
  const first = intArg(params, "seq", 0);
  const n = intArg(params, "n", 1);
  const rate = floatArg(params, "rate", 0);
  const start = performance.now();
  for (let index = 0; index < n; index++) {
    if (rate > 0) {
      const delay = start + (1000 * index) / rate - performance.now();
      if (delay > 0) await sleep(delay);
    }
    each(first + index);
  }
}

/** Waits until `res` has room again (a write returned false). */
function drained(res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

function plain(res, body, status = 200, type = "text/plain") {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/** Serves `routes` (path -> handler(req, res, params)) on 127.0.0.1:--port. */
function serve(routes, stats) {
  const port = parseInt(process.argv[process.argv.indexOf("--port") + 1], 10);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const handler = routes[url.pathname];
    if (url.pathname === "/stats") {
      plain(res, JSON.stringify(stats), 200, "application/json");
    } else if (handler === undefined) {
      plain(res, "not found", 404);
    } else {
      handler(req, res, url.searchParams);
    }
  });
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.listen(port, "127.0.0.1", 4096);
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

module.exports = {
  DEFAULT_TOPIC, drained, floatArg, intArg, makePayload, pacedSequence, plain, publishData, serve,
};
