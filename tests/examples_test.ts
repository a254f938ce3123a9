import { assertEquals, assertStringIncludes } from "@std/assert";
import { decode, dial, encode, readToEnd, writeAll } from "./_helpers.ts";

/** Runs an example on port 0; returns the port it printed and a stop function giving its output. */
async function startExample(name: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      new URL(`../examples/${name}`, import.meta.url).pathname,
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let output = "";
  while (!output.includes("Serving on")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`${name} exited: ${decode((await child.output()).stderr)}`);
    output += value;
  }
  const port = Number(output.match(/Serving on 127\.0\.0\.1:(\d+)/)![1]);
  return {
    port,
    async stop(): Promise<string> {
      child.kill("SIGINT");
      for (let r; !(r = await lines.read()).done;) output += r.value;
      await child.stderr.cancel();
      assertEquals((await child.status).code, 0);
      return output;
    },
  };
}

Deno.test("examples/protocol_server.ts echoes and logs each callback", async () => {
  const example = await startExample("protocol_server.ts");
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: example.port });
  await writeAll(conn, encode("hi there"));
  conn.closeWrite();
  assertEquals(decode(await readToEnd(conn)), "hi there");
  const peer = `127.0.0.1:${(conn.localAddr as Deno.NetAddr).port}`;
  conn.close();
  const output = await example.stop();
  assertStringIncludes(output, `Connection from ${peer}`);
  assertStringIncludes(output, `Data received from ${peer}: "hi there"`);
  assertStringIncludes(output, `Connection lost with ${peer}`);
});

Deno.test("examples/streams_server.ts answers up to 100 bytes once, then closes", async () => {
  const example = await startExample("streams_server.ts");
  const conn = await dial({ transport: "tcp", hostname: "127.0.0.1", port: example.port });
  await writeAll(conn, encode("hello"));
  assertEquals(decode(await readToEnd(conn)), "hello"); // closed without our EOF
  conn.close();
  const output = await example.stop();
  assertStringIncludes(output, 'Received "hello" from 127.0.0.1:');
  assertStringIncludes(output, "Close the connection");
});
