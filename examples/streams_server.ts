/**
 * The high-level streams server of the asyncio tutorials, in Deno: read up to
 * 100 bytes, send them back, close.
 *
 * Run it:   deno run -A examples/streams_server.ts [port]    (default 8888)
 * Try it:   echo hello | nc -N 127.0.0.1 8888
 *
 * The handler is an ordinary async function with a reader and a writer. Each
 * connection runs its own call, so a slow client never blocks the others.
 */

import { serveTcpStreams, type StreamReader, type StreamWriter } from "../mod.ts";

const port = Number(Deno.args[0] ?? 8888);

async function handleEcho(reader: StreamReader, writer: StreamWriter): Promise<void> {
  const data = await reader.read(100); // whatever has arrived, at most 100 bytes; null at EOF
  const { hostname, port } = writer.getExtraInfo("peername");
  const message = data ? new TextDecoder().decode(data) : "";
  console.log(`Received ${JSON.stringify(message)} from ${hostname}:${port}`);

  if (data) writer.write(data);
  await writer.drain(); // wait if the peer reads slowly
  console.log("Close the connection");
  await writer.close(); // sends what is buffered, then closes
}

const server = serveTcpStreams({ hostname: "127.0.0.1", port }, handleEcho);
console.log(`Serving on 127.0.0.1:${server.addr.port}`);

Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
