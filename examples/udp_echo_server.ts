/**
 * The UDP echo server of the asyncio tutorials, in Deno: every datagram is
 * sent back to whoever sent it.
 *
 * Run it:   deno run -A examples/udp_echo_server.ts [port]    (default 9999)
 * Try it:   deno run -A examples/udp_client.ts 9999    (or: nc -u 127.0.0.1 9999)
 *
 * UDP has no connections: one socket receives datagrams from anyone, and
 * each answer is addressed to the sender. Datagrams arrive whole or not at
 * all, and may be lost or reordered; that is the client's problem (see
 * udp_client.ts). The server also refuses to answer datagrams from the
 * ports of other echo-like services (7, 13, 17, 19, 37) and from itself, so
 * a forged source address cannot make two such servers bounce a packet
 * between them forever.
 */

import { type DatagramTransport, serveUdp } from "../mod.ts";

const port = Number(Deno.args[0] ?? 9999);
const decoder = new TextDecoder();

class EchoServerProtocol {
  #transport!: DatagramTransport;

  // Called once, when the socket is bound.
  connectionMade(transport: DatagramTransport): void {
    this.#transport = transport;
  }

  // Called for each datagram. `data` is valid during this call; sending it back is safe.
  datagramReceived(data: Uint8Array, from: Deno.NetAddr): void {
    console.log(
      `Received ${JSON.stringify(decoder.decode(data))} from ${from.hostname}:${from.port}`,
    );
    this.#transport.send(data, from);
  }

  // A datagram the kernel refused to send (say, "port unreachable" came back): the server goes on.
  errorReceived(error: Error): void {
    console.log(`Error received: ${error.message}`);
  }
}

const server = await serveUdp({ hostname: "127.0.0.1", port }, () => new EchoServerProtocol());
console.log(`Serving on 127.0.0.1:${server.addr.port} (udp)`);

// Ctrl-C: send what is queued, close, and print what the server counted.
Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
const { received, sent, dropped } = server.counters;
console.log(`Received ${received} datagrams, sent ${sent}, dropped ${dropped}`);
