// Node 20 scenarios for /client.js and /exports.js, run by test_client.py:
//   node --experimental-network-imports --experimental-websocket node_client.mjs SCENARIO BASE [ARGS]
// Each prints one JSON line with what it saw and exits 0, or throws.
const [scenario, base, ...args] = process.argv.slice(2);
const out = (o) => console.log(JSON.stringify(o));
const timeout = (ms, what) => new Promise((_, no) => setTimeout(() => no(new Error(what + " timed out")), ms));

async function shared() {
  // Shared and isolated counters: "expect" is the value the watch waits for.
  const [query, expect] = args;
  const { Counter } = await import(`${base}/exports.js${query}`);
  const c = await new Counter(0);
  const mine = await c.increment();
  let seen;
  const it = c.watch();
  for await (const v of it) {
    seen = v;
    if (v >= Number(expect)) break; // leaving the loop cancels the stream
  }
  out({ name: c.$name, mine, seen, count: await c.getCount() });
  c.close();
}

async function client() {
  const { connect, message, RpcError } = await import(`${base}/client.js`);
  const res = {};
  const c = connect(`${base.replace("http", "ws")}/counter/nodeclient`, { heartbeat: 100, heartbeatTimeout: 2000 });
  let opens = 0;
  c.on("open", () => opens++);
  await c.ready;
  res.first = await c.call("increment", [2]);
  try {
    await c.call("increment", ["x"]);
  } catch (e) {
    res.error = { rpc: e instanceof RpcError, code: e.code, message: e.message };
  }
  // Heartbeats flow while idle (the gateway answers them).
  await new Promise((r) => setTimeout(r, 400));
  res.stillOpen = c.state === "open";
  // A typed message round trip through the mirror class.
  const Ping = message("PING", (p) => typeof p.n === "number");
  const m = connect(`${base.replace("http", "ws")}/mirror/nodeclient`);
  const got = new Promise((r) => m.on(Ping, (payload, msg) => r({ payload, hasMeta: !!msg.meta.timestamp })));
  m.send(Ping, { n: 5 });
  res.typed = await Promise.race([got, timeout(5000, "typed")]);
  try {
    m.send(Ping, { n: "no" });
  } catch (e) {
    res.invalid = e.message;
  }
  // An RPC that is never answered (echo has no methods) times out.
  const e = connect(`${base.replace("http", "ws")}/echo/nodeclient`);
  try {
    await e.call("increment", [], { timeout: 300 });
  } catch (err) {
    res.timeout = err.message;
  }
  res.opens = opens;
  out(res);
  c.close();
  m.close();
  e.close();
}

async function queue() {
  // Nothing listens at base: sends wait in the bounded queue.
  const { connect } = await import(args[0]);
  const c = connect(`${base}/counter/q`, { queue: 2, backoff: 50, maxBackoff: 100 });
  c.send("a");
  c.send("b");
  let err;
  try {
    c.send("c");
  } catch (e) {
    err = e.message;
  }
  const closes = await new Promise((r) => {
    let n = 0;
    c.on("close", () => ++n === 3 && r(n));
  });
  c.close();
  out({ err, closes });
}

async function reconnect() {
  // Connect, then wait (bounded) for the gateway to go away and come back.
  const { connect } = await import(args[0]);
  const c = connect(`${base}/counter/rc`, { backoff: 50, maxBackoff: 500 });
  const events = [];
  c.on("open", () => events.push("open"));
  c.on("close", () => events.push("close"));
  c.on("reconnect", () => events.push("reconnect"));
  await c.ready;
  const before = await c.call("increment");
  console.log("ready"); // the test restarts the gateway now
  await Promise.race([new Promise((r) => c.on("reconnect", r)), timeout(30000, "reconnect")]);
  const after = await c.call("increment");
  out({ before, after, events });
  c.close();
}

async function deadlink() {
  // The test freezes the gateway (SIGSTOP) after "ready": the heartbeat goes
  // unanswered, the client gives the link up (4000) and, once the gateway
  // runs again, reconnects.
  const { connect } = await import(args[0]);
  const c = connect(`${base}/counter/dl`, { heartbeat: 100, heartbeatTimeout: 400, backoff: 50, maxBackoff: 200 });
  await c.ready;
  const dead = new Promise((r) => c.on("close", r));
  console.log("ready");
  const info = await Promise.race([dead, timeout(20000, "heartbeat timeout")]);
  console.log("dead");
  await Promise.race([new Promise((r) => c.on("reconnect", r)), timeout(30000, "reconnect")]);
  out({ code: info.code, reason: info.reason, after: await c.call("increment") });
  c.close();
}

const scenarios = { shared, client, queue, reconnect, deadlink };
await Promise.race([scenarios[scenario](), timeout(45000, scenario)]);
process.exit(0);
