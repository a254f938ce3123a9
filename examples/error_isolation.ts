/**
 * Error isolation: a line-echo server whose handler throws when a client
 * sends `boom`. That client's connection is closed; every other client goes
 * on as if nothing happened, and the server keeps accepting.
 *
 * Run it:   deno run -A examples/error_isolation.ts [port]    (default 8888)
 * Try it:   nc 127.0.0.1 8888   in two terminals; type `boom` in one.
 *
 * The server runs each handler on its own and catches what it throws: the
 * error is logged with the peer's address, and that connection is aborted
 * (its unsent data is dropped, the peer sees the connection end). In a
 * server that ran every client on one call stack without that catch, one
 * bad input would take everyone down.
 */

import { configure, getConsoleSink } from "@logtape/logtape";
import { serveTcpStreams, type StreamReader, type StreamWriter } from "../mod.ts";

const port = Number(Deno.args[0] ?? 8888);
const decoder = new TextDecoder();

// The library logs through LogTape and stays silent until the program configures it.
await configure({
  sinks: { console: getConsoleSink() },
  loggers: [
    { category: ["echo"], lowestLevel: "info", sinks: ["console"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
  ],
});

async function handleLines(reader: StreamReader, writer: StreamWriter): Promise<void> {
  for (let line; (line = await reader.readLine()) !== null;) {
    if (decoder.decode(line) === "boom\n") {
      throw new Error("the client said boom"); // a bug, bad input, anything unexpected
    }
    writer.write(line);
    await writer.drain();
  }
  await writer.close();
}

const server = serveTcpStreams({ hostname: "127.0.0.1", port }, handleLines);
console.log(`Serving on 127.0.0.1:${server.addr.port}`);

Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
