/**
 * The high-level streams server of the asyncio tutorials, in Deno: read up to
 * 100 bytes, send them back, close.
 *
 * Run it:   deno run -A examples/streams_server.ts [port]    (default 8888)
 * Try it:   echo hello | nc -N 127.0.0.1 8888
 *
 * The handler is an ordinary async function with a reader and a writer. Each
 * connection runs its own call, so a slow client never blocks the others.
 *
 * Keep-alive is on: a connection that goes quiet for 10 minutes is probed
 * every 30 seconds, and dropped after 4 unanswered probes, so a client that
 * vanished (unplugged, crashed host) does not hold its connection forever.
 */

import { serveTcpStreams, type StreamReader, type StreamWriter } from "../mod.ts";

const port = Number(Deno.args[0] ?? 8888);
const keepAlive = { idle: 600, interval: 30, count: 4 };

async function handleEcho(reader: StreamReader, writer: StreamWriter): Promise<void> {
  const data = await reader.read(100); // whatever has arrived, at most 100 bytes; null at EOF
  const { hostname, port } = writer.getExtraInfo("peername") as Deno.NetAddr; // TCP here
  const message = data ? new TextDecoder().decode(data) : "";
  console.log(`Received ${JSON.stringify(message)} from ${hostname}:${port}`);

  const options = writer.getExtraInfo("socketOptions"); // read back from the kernel
  console.log(
    `Keep-alive ${options.keepAlive ? "on" : "off"}: idle ${options.keepAliveIdle} s, ` +
      `interval ${options.keepAliveInterval} s, ${options.keepAliveCount} probes`,
  );

  if (data) writer.write(data);
  await writer.drain(); // wait if the peer reads slowly
  console.log("Close the connection");
  await writer.close(); // sends what is buffered, then closes
}

const server = serveTcpStreams({ hostname: "127.0.0.1", port, keepAlive }, handleEcho);
console.log(`Serving on 127.0.0.1:${server.addr.port}`);

Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
