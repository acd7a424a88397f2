# config.capnp plus a wss:// socket. The certificate and key are embedded
# when workerd reads this file, from cert.pem and key.pem BESIDE it, so copy
# this file, config.capnp and worker.js next to them (bench/compare.sh does):
#
#   workerd serve config-tls.capnp --socket-addr http=127.0.0.1:P \
#       --socket-addr https=127.0.0.1:Q --directory-path do-storage=/some/dir
using Workerd = import "/workerd/workerd.capnp";
using Peer = import "config.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = Peer.peerWorker),
    (name = "do-storage", disk = (path = "/tmp/roomd-workerd-peer-storage", writable = true)),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8096", http = (), service = "main"),
    (name = "https", address = "127.0.0.1:8097", service = "main",
     https = (options = (), tlsOptions = (keypair = (privateKey = embed "key.pem",
                                                     certificateChain = embed "cert.pem")))),
  ],
);
