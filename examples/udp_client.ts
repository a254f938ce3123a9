/**
 * The UDP console client of the tutorials: each line you type is sent as one
 * datagram, and the answer is printed.
 *
 * Run it:   deno run -A examples/udp_client.ts [port] [host]    (default 9999 127.0.0.1)
 *           then type lines; Ctrl-D ends.
 * Or:       printf 'one\ntwo\n' | deno run -A examples/udp_client.ts 9999
 *
 * A datagram, or its answer, can be lost: nothing in UDP resends it. So the
 * client waits a while for each answer and asks again if none comes, a few
 * times, before it gives up on that line.
 */

import { TextLineStream } from "@std/streams/text-line-stream";
import { connectUdpClient } from "../mod.ts";

const port = Number(Deno.args[0] ?? 9999);
const hostname = Deno.args[1] ?? "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

await using client = await connectUdpClient({ hostname, port });
console.log(`Sending to ${hostname}:${port} over UDP; type lines, Ctrl-D to end`);

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).pipeThrough(
  new TextLineStream() as TransformStream<string, string>, // std from npm has no types
);
for await (const line of lines) {
  try {
    // Up to 3 tries, each waiting 1 second for the answer.
    const answer = await client.request(encoder.encode(line), { timeout: 1000, retries: 2 });
    console.log(`Received: ${decoder.decode(answer)}`);
  } catch (error) {
    console.log(`No answer: ${(error as Error).message}`);
  }
}
