/**
 * The low-level protocol server of the asyncio tutorials, in Deno.
 *
 * Run it:   deno run -A examples/protocol_server.ts [port]    (default 8888)
 * Try it:   nc 127.0.0.1 8888
 *
 * A protocol object is made for each connection. The server calls it when
 * something happens: the connection is made, data arrives, the peer stops
 * sending, the connection is lost. The protocol acts through its transport.
 *
 * The server also sets socket options, and each connection reads them back
 * from the kernel and checks them, as the tutorial's asserts do.
 */

import { serveTcp, type SocketOptions, type Transport } from "../mod.ts";

const port = Number(Deno.args[0] ?? 8888);
const decoder = new TextDecoder();

// Set once on the listening socket; Linux copies them to every accepted connection.
const socketOptions = {
  noDelay: true,
  keepAlive: { idle: 60, interval: 10, count: 5 },
} satisfies SocketOptions;

class EchoServerProtocol {
  #transport!: Transport;
  #peer = "";

  // Called once, first: keep the transport to answer on.
  connectionMade(transport: Transport): void {
    this.#transport = transport;
    const peer = transport.getExtraInfo("peername"); // a Deno.UnixAddr on a Unix socket
    this.#peer = "path" in peer ? "a Unix socket peer" : `${peer.hostname}:${peer.port}`;
    console.log(`Connection from ${this.#peer}`);

    // Ask the kernel (getsockopt, through FFI) what this socket really has.
    const actual = transport.getExtraInfo("socketOptions");
    const { idle, interval, count } = socketOptions.keepAlive;
    check("TCP_NODELAY", actual.noDelay, socketOptions.noDelay);
    check("SO_KEEPALIVE", actual.keepAlive, true);
    check("TCP_KEEPIDLE", actual.keepAliveIdle, idle);
    check("TCP_KEEPINTVL", actual.keepAliveInterval, interval);
    check("TCP_KEEPCNT", actual.keepAliveCount, count);
  }

  // Called with each chunk read. `data` is only valid during this call;
  // writing it is safe (the transport sends what the socket takes and copies the rest).
  dataReceived(data: Uint8Array): void {
    console.log(`Data received from ${this.#peer}: ${JSON.stringify(decoder.decode(data))}`);
    this.#transport.write(data);
  }

  // The peer half-closed. Returning false lets the transport close once the echo is sent.
  eofReceived(): boolean {
    console.log(`${this.#peer} finished sending`);
    return false;
  }

  // Called exactly once, last. `error` is set if the connection failed (a reset, say).
  connectionLost(error?: Error): void {
    console.log(`Connection lost with ${this.#peer}${error ? `: ${error.message}` : ""}`);
  }
}

/** Logs an option read back from the kernel, and whether it is what we asked for. */
function check(name: string, actual: unknown, expected: unknown): void {
  const verdict = actual === expected ? "ok" : `MISMATCH, expected ${expected}`;
  console.log(`  ${name} = ${actual} (${verdict})`);
}

const server = serveTcp(
  { hostname: "127.0.0.1", port, ...socketOptions },
  () => new EchoServerProtocol(),
);
console.log(`Serving on 127.0.0.1:${server.addr.port}`);

// Ctrl-C: stop accepting, let connections flush, then exit.
Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
