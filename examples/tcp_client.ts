/**
 * The TCP console client of the tutorials: each line you type goes to the
 * server, and what comes back is printed.
 *
 * Run it:   deno run -A examples/tcp_client.ts [port] [host]    (default 8888 127.0.0.1)
 *           then type lines; Ctrl-D ends.
 * Or:       printf 'one\ntwo\n' | deno run -A examples/tcp_client.ts 8888
 *
 * This one uses the stream API: `readLine()` waits until a whole line is
 * back, however TCP split it into packets (TCP carries bytes, not messages).
 */

import { TextLineStream } from "@std/streams/text-line-stream";
import { connectTcpStreams } from "../mod.ts";

const port = Number(Deno.args[0] ?? 8888);
const hostname = Deno.args[1] ?? "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const { reader, writer } = await connectTcpStreams({ hostname, port });
console.log(`Connected to ${hostname}:${port}; type lines, Ctrl-D to end`);

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
  new TextLineStream() as TransformStream<string, string>, // std from npm has no types
);
try {
  for await (const line of lines) {
    writer.write(encoder.encode(`${line}\n`));
    await writer.drain(); // wait if the server is slow to read
    const answer = await reader.readLine(); // the bytes up to and including "\n"; null at EOF
    if (answer === null) {
      console.log("The server closed the connection");
      break;
    }
    console.log(`Received: ${decoder.decode(answer).trimEnd()}`);
  }
} catch (error) {
  // A reset (the server crashed or aborted us) ends up here, not as a crash.
  console.log(`Connection failed: ${(error as Error).message}`);
}

await writer.close(); // flush, then close
