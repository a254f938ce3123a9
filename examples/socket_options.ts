/**
 * Socket options: set every option this module knows, then read each one
 * back from the kernel and print both numbers side by side.
 *
 * Run it:   deno run -A examples/socket_options.ts
 *
 * On Linux with FFI the server opens its listening socket itself (the epoll
 * backend), so it can ask for SO_REUSEPORT; Deno's own sockets need
 * `--unstable-net` for that.
 *
 * Deno sets a few options itself (TCP_NODELAY, SO_KEEPALIVE). The rest
 * (buffer sizes, keep-alive timing, quick-ack, address reuse) are set with
 * libc's setsockopt through Deno's FFI, and read back with getsockopt.
 * Expect two surprises, both Linux being honest: it reports buffer sizes
 * doubled (it keeps room for its own bookkeeping), and it caps them at
 * net.core.rmem_max / wmem_max.
 */

import {
  connectTcp,
  getSocketOptions,
  serveTcp,
  type SocketOptions,
  type SocketOptionValues,
  type Transport,
} from "../src/tcp/mod.ts";
import { openDatagramSocket } from "../src/udp/mod.ts";

const unstableNet = typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
/** SO_REUSEPORT can be asked for: the epoll backend (Linux, FFI) sets it, Deno needs the flag. */
const canReusePort = unstableNet ||
  (Deno.build.os === "linux" && Deno.permissions.querySync({ name: "ffi" }).state === "granted");

/** Prints one table: option, the value asked for, the kernel's value. */
function report(title: string, rows: [string, unknown, unknown][]): void {
  console.log(`\n${title}`);
  console.log(`  ${"option".padEnd(16)}${"asked".padStart(10)}${"kernel".padStart(10)}`);
  for (const [name, asked, actual] of rows) {
    const show = (value: unknown) => typeof value === "boolean" ? (value ? "1" : "0") : `${value}`;
    console.log(`  ${name.padEnd(16)}${show(asked).padStart(10)}${show(actual).padStart(10)}`);
  }
}

/** The rows every TCP socket has, from what was asked and what the kernel says. */
function tcpRows(asked: SocketOptions, kernel: SocketOptionValues): [string, unknown, unknown][] {
  const keepAlive = typeof asked.keepAlive === "object" ? asked.keepAlive : {};
  return [
    ["SO_RCVBUF", asked.receiveBufferSize, kernel.receiveBufferSize],
    ["SO_SNDBUF", asked.sendBufferSize, kernel.sendBufferSize],
    ["TCP_NODELAY", asked.noDelay, kernel.noDelay],
    ["SO_KEEPALIVE", asked.keepAlive !== undefined, kernel.keepAlive],
    ["TCP_KEEPIDLE", keepAlive.idle, kernel.keepAliveIdle],
    ["TCP_KEEPINTVL", keepAlive.interval, kernel.keepAliveInterval],
    ["TCP_KEEPCNT", keepAlive.count, kernel.keepAliveCount],
  ];
}

// 1. A TCP server. These are set once on the listening socket; Linux copies
//    them to every connection it accepts.
const serverOptions: SocketOptions = {
  backlog: 128,
  reuseAddress: true,
  reusePort: canReusePort ? true : undefined,
  receiveBufferSize: 131072,
  sendBufferSize: 131072,
  noDelay: true,
  keepAlive: { idle: 600, interval: 60, count: 5 },
};
let accepted: SocketOptionValues | undefined;
await using server = serveTcp({ hostname: "127.0.0.1", port: 0, ...serverOptions }, () => ({
  connectionMade(transport) {
    accepted = transport.getExtraInfo("socketOptions"); // what the accepted socket got
    transport.write(new TextEncoder().encode("hello"));
    transport.close();
  },
}));
const listening = server.getSocketOptions();
report(`TCP listening socket on port ${server.addr.port}`, [
  ["SO_REUSEADDR", serverOptions.reuseAddress, listening.reuseAddress],
  ["SO_REUSEPORT", serverOptions.reusePort ?? "-", listening.reusePort],
  ...tcpRows(serverOptions, listening),
  ["listen backlog", serverOptions.backlog, "-"],
]);
console.log("  (getsockopt cannot read the backlog: `ss -ltn` shows it as Send-Q)");
if (!canReusePort) {
  console.log("  (SO_REUSEPORT needs Deno's --unstable-net flag off the epoll backend: not asked)");
}

// 2. A TCP client with its own options. Quick-ack is per connection, and
//    the kernel leaves quick-ack mode on its own, so it is turned on again
//    after every read: read it back when data has just arrived.
const clientOptions: SocketOptions = {
  receiveBufferSize: 32768,
  sendBufferSize: 32768,
  noDelay: false,
  keepAlive: { idle: 30, interval: 5, count: 3 },
  quickAck: true,
};
const afterRead = Promise.withResolvers<SocketOptionValues>();
const client = await connectTcp(
  { hostname: "127.0.0.1", port: server.addr.port, ...clientOptions },
  () => {
    let transport: Transport;
    return {
      connectionMade: (t) => void (transport = t),
      dataReceived: () => afterRead.resolve(transport.getExtraInfo("socketOptions")),
    };
  },
);
const connected = await afterRead.promise;
report("TCP client connection", [
  ...tcpRows(clientOptions, connected),
  ["TCP_QUICKACK", clientOptions.quickAck, connected.quickAck],
]);
await client.transport.closed; // the server closes it after its hello

// 3. The connection the server accepted: it inherited the listener's options.
report("TCP connection accepted by the server (inherited)", tcpRows(serverOptions, accepted!));

// 4. A UDP socket: buffer sizes and address reuse.
await using udp = await openDatagramSocket({
  hostname: "127.0.0.1",
  port: 0,
  receiveBufferSize: 262144,
  sendBufferSize: 65536,
  reuseAddress: true,
});
const datagram = getSocketOptions(udp);
report(`UDP socket on port ${udp.addr.port}`, [
  ["SO_REUSEADDR", true, datagram.reuseAddress],
  ["SO_RCVBUF", 262144, datagram.receiveBufferSize],
  ["SO_SNDBUF", 65536, datagram.sendBufferSize],
]);
