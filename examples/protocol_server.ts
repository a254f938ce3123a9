/**
 * The low-level protocol server of the asyncio tutorials, in Deno.
 *
 * Run it:   deno run -A examples/protocol_server.ts [port]    (default 8888)
 * Try it:   nc 127.0.0.1 8888
 *
 * A protocol object is made for each connection. The server calls it when
 * something happens: the connection is made, data arrives, the peer stops
 * sending, the connection is lost. The protocol acts through its transport.
 */

import { serveTcp, type Transport } from "../mod.ts";

const port = Number(Deno.args[0] ?? 8888);
const decoder = new TextDecoder();

class EchoServerProtocol {
  #transport!: Transport;
  #peer = "";

  // Called once, first: keep the transport to answer on.
  connectionMade(transport: Transport): void {
    this.#transport = transport;
    const { hostname, port } = transport.getExtraInfo("peername");
    this.#peer = `${hostname}:${port}`;
    console.log(`Connection from ${this.#peer}`);
  }

  // Called with each chunk read. `data` is only valid during this call;
  // writing it straight back is safe (the transport sends it before reading more).
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

const server = serveTcp({ hostname: "127.0.0.1", port }, () => new EchoServerProtocol());
console.log(`Serving on 127.0.0.1:${server.addr.port}`);

// Ctrl-C: stop accepting, let connections flush, then exit.
Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
