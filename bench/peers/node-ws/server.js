#!/usr/bin/env node
// roomd benchmark peer: a Node.js WebSocket server on the `ws` library with
// the same endpoints and behaviour as roomd's built-in classes and the C
// limit reference (bench/peers/limit_server.c):
//
//   /echo/<name>  replies to every message with "[Durable Object]: " + msg
//                 (text stays text, binary stays binary)
//   /chat/<name>  relays every message to every OTHER member of the room
//   anything else without "Upgrade: websocket": 426; an upgrade to another
//                 path: 404
//
// One process, one thread: that is how people run a `ws` server. Written the
// way the ws README writes a broadcast (loop over the members, send() each),
// so the numbers are those of ordinary `ws` code, not of a tuned one.
//
//   node server.js [--host 127.0.0.1] [--port 8095] [--tls-port P --cert F --key F]
//                  [--deflate] [--max-payload BYTES]
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer, WebSocket } = require('ws');

const USAGE = `usage: node server.js [options]
  --host ADDR          address to bind (default 127.0.0.1)
  --port N             plaintext ws:// port (default 8095; 0 = none)
  --tls-port N         wss:// port (needs --cert and --key)
  --cert FILE          PEM certificate chain for --tls-port
  --key FILE           PEM private key for --tls-port
  --deflate            accept permessage-deflate (off by default, like roomd)
  --max-payload BYTES  largest message accepted (default 16777216)
  --max-buffered BYTES a client whose unsent backlog exceeds this is dropped
                       (default 67108864)
  -h, --help           this text`;

function parseArgs(argv) {
    const o = { host: '127.0.0.1', port: 8095, tlsPort: 0, cert: null, key: null, deflate: false,
                maxPayload: 16 * 1024 * 1024, maxBuffered: 64 * 1024 * 1024 };
    const num = (name, v) => {
        const n = Number(v);
        if (v === undefined || !Number.isInteger(n) || n < 0) {
            throw new Error(`${name} needs a non-negative integer, got '${v}'`);
        }
        return n;
    };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        switch (a) {
        case '--host': o.host = argv[++i]; if (!o.host) throw new Error('--host needs an address'); break;
        case '--port': o.port = num(a, argv[++i]); break;
        case '--tls-port': o.tlsPort = num(a, argv[++i]); break;
        case '--cert': o.cert = argv[++i]; break;
        case '--key': o.key = argv[++i]; break;
        case '--deflate': o.deflate = true; break;
        case '--max-payload': o.maxPayload = num(a, argv[++i]); break;
        case '--max-buffered': o.maxBuffered = num(a, argv[++i]); break;
        case '-h': case '--help': console.log(USAGE); process.exit(0); break;
        default: throw new Error(`unknown option '${a}'`);
        }
    }
    if (o.tlsPort && (!o.cert || !o.key)) throw new Error('--tls-port needs --cert and --key');
    if ((o.cert || o.key) && !o.tlsPort) throw new Error('--cert/--key need --tls-port');
    if (!o.port && !o.tlsPort) throw new Error('nothing to listen on (--port 0 and no --tls-port)');
    return o;
}

let opts;
try {
    opts = parseArgs(process.argv);
} catch (e) {
    console.error(`server.js: ${e.message}\n${USAGE}`);
    process.exit(2);
}

const PREFIX = '[Durable Object]: ';
const PREFIX_BUF = Buffer.from(PREFIX);
const rooms = new Map(); // room name -> Set of WebSocket

// The WebSocket server owns no HTTP server: the upgrade handler below routes
// by path first, so a bad path is refused before the handshake.
const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,           // rooms are tracked below; no global Set
    perMessageDeflate: opts.deflate,
    maxPayload: opts.maxPayload,
});

function tooSlow(ws) {
    // ws buffers without limit; a reader that stopped reading would make the
    // process grow until it dies. Drop it instead (the limit server does too).
    if (ws.bufferedAmount > opts.maxBuffered) {
        ws.terminate();
        return true;
    }
    return false;
}

function onEcho(ws) {
    ws.on('message', (data, isBinary) => {
        if (tooSlow(ws)) return;
        if (isBinary) ws.send(Buffer.concat([PREFIX_BUF, data]), { binary: true });
        else ws.send(PREFIX + data.toString());
    });
}

function onChat(ws, name) {
    let room = rooms.get(name);
    if (!room) rooms.set(name, room = new Set());
    room.add(ws);
    ws.on('message', (data, isBinary) => {
        for (const m of room) {
            if (m !== ws && m.readyState === WebSocket.OPEN && !tooSlow(m)) {
                m.send(data, { binary: isBinary });
            }
        }
    });
    ws.on('close', () => {
        room.delete(ws);
        if (room.size === 0) rooms.delete(name);
    });
}

function route(url) {
    const path = url.split('?', 1)[0];
    if (path.startsWith('/echo/')) return { kind: 'echo' };
    if (path.startsWith('/chat/') && path.length > 6 && path.length <= 6 + 256) {
        return { kind: 'chat', name: path.slice(6) };
    }
    return null;
}

function onRequest(req, res) {
    const r = route(req.url);
    if (!r) {
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found\n');
        return;
    }
    // The seed's answer to a plain HTTP request on a WebSocket endpoint.
    res.writeHead(426, { 'Content-Type': 'text/plain', 'Upgrade': 'websocket' });
    res.end('Durable Object expected Upgrade: websocket');
}

function onUpgrade(req, socket, head) {
    const r = route(req.url);
    if (!r) {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
    }
    socket.setNoDelay(true);
    wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => {}); // a protocol error closes the socket; keep serving others
        if (r.kind === 'echo') onEcho(ws);
        else onChat(ws, r.name);
    });
}

function serve(server, port, scheme) {
    server.on('upgrade', onUpgrade);
    server.on('clientError', (err, socket) => socket.destroy());
    server.keepAliveTimeout = 5000;
    server.listen(port, opts.host, () => {
        const a = server.address();
        console.log(`node-ws: listening on ${scheme}://${a.address}:${a.port} ` +
                    `(ws ${require('ws/package.json').version}, node ${process.version}, ` +
                    `permessage-deflate ${opts.deflate ? 'on' : 'off'})`);
    });
    server.on('error', (e) => {
        console.error(`node-ws: ${scheme} listen on ${opts.host}:${port}: ${e.message}`);
        process.exit(1);
    });
}

if (opts.port) serve(http.createServer(onRequest), opts.port, 'ws');
if (opts.tlsPort) {
    let tls;
    try {
        tls = { cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) };
    } catch (e) {
        console.error(`node-ws: ${e.message}`);
        process.exit(2);
    }
    serve(https.createServer(tls, onRequest), opts.tlsPort, 'wss');
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
