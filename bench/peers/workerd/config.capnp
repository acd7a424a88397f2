# workerd configuration for the roomd benchmark peer (see worker.js).
#
#   node_modules/.bin/workerd serve config.capnp \
#       --socket-addr http=127.0.0.1:PORT --directory-path do-storage=/some/dir
#
# One Worker with four Durable Object classes, storage on local disk
# (SQLite files under the do-storage directory). The listening address and the
# storage directory here are defaults; bench/compare.sh overrides both.
# config-tls.capnp adds a wss:// socket.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .peerWorker),
    (name = "do-storage", disk = (path = "/tmp/roomd-workerd-peer-storage", writable = true)),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8096", http = (), service = "main"),
  ],
);

const peerWorker :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "worker.js") ],
  compatibilityDate = "2025-01-01",
  durableObjectNamespaces = [
    (className = "WebSocketServer", uniqueKey = "roomd-bench-echo"),
    (className = "HibernatingEcho", uniqueKey = "roomd-bench-echo-hib"),
    (className = "ChatRoom", uniqueKey = "roomd-bench-chat"),
    (className = "Counter", uniqueKey = "roomd-bench-counter"),
  ],
  durableObjectStorage = (localDisk = "do-storage"),
  bindings = [
    (name = "ECHO", durableObjectNamespace = "WebSocketServer"),
    (name = "ECHO_HIB", durableObjectNamespace = "HibernatingEcho"),
    (name = "CHAT", durableObjectNamespace = "ChatRoom"),
    (name = "COUNTER", durableObjectNamespace = "Counter"),
  ],
);
