/**
 * The blocking server again, but for many clients at once: each connection
 * gets its own async function, started without waiting for it to finish.
 *
 * Run it:   deno run -A examples/many_clients_server.ts [port]    (default 8888)
 * Try it:   nc 127.0.0.1 8888   in two terminals; type lines, then `quit`.
 *
 * Why the blocking version cannot do this: it awaits one client's `read`
 * before it calls `accept` again, so a second client waits until the first
 * is done. Threads were the old answer. Here, `await` does not block the
 * program, only the function it is in: while `serve(conn)` waits for data,
 * the event loop runs the accept loop and every other `serve`. One thread,
 * any number of clients, as long as no handler computes for long without
 * awaiting.
 */

const port = Number(Deno.args[0] ?? 8888);
const QUIT = "quit\n";

/** One client: collect what it sends until it ends with "quit\n", then send it all back. */
async function serve(conn: Deno.TcpConn): Promise<void> {
  const { hostname, port } = conn.remoteAddr;
  const peer = `${hostname}:${port}`;
  console.log(`Connected by ${peer}`);
  const decoder = new TextDecoder();
  let text = "";
  try {
    const buffer = new Uint8Array(1024);
    while (!text.endsWith(QUIT)) {
      const n = await conn.read(buffer); // only this function waits here
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
    const reply = new TextEncoder().encode(text);
    for (let sent = 0; sent < reply.length;) sent += await conn.write(reply.subarray(sent));
    console.log(`Echoed ${reply.length} bytes to ${peer}`);
  } catch (error) {
    // A client that resets its connection must not take the server down.
    console.log(`${peer} failed: ${(error as Error).message}`);
  } finally {
    conn.close();
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`Serving on 127.0.0.1:${listener.addr.port}`);

// Ctrl-C: stop accepting; connections already being served finish on their own.
Deno.addSignalListener("SIGINT", () => listener.close());

for await (const conn of listener) {
  serve(conn); // not awaited: go back to accepting at once
}
