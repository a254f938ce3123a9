/**
 * The blocking server of the tutorials, in Deno: take one connection, print
 * who it is, read until the client sends `quit\n`, send everything back, and
 * stop.
 *
 * Run it:   deno run -A examples/blocking_server.ts [port]    (default 8888)
 * Try it:   printf 'hello\nquit\n' | nc 127.0.0.1 8888
 *
 * Every `await` below waits for one thing to happen before the next line
 * runs, like the blocking `accept()`, `recv()` and `sendall()` calls of the
 * tutorial. That makes the code easy to follow, and it is also why this
 * server can only talk to one client: while it waits on this client's
 * `read`, nobody calls `accept` again. examples/many_clients_server.ts fixes that.
 */

const port = Number(Deno.args[0] ?? 8888);
const QUIT = new TextEncoder().encode("quit\n");

const listener = Deno.listen({ hostname: "127.0.0.1", port });
console.log(`Serving on 127.0.0.1:${listener.addr.port}`);

// accept(): wait until one client connects. The second one waits in the kernel's backlog.
const conn = await listener.accept();
const peer = conn.remoteAddr;
console.log(`Connected by ${peer.hostname}:${peer.port}`);

// recv() in a loop: keep everything until it ends with "quit\n", or the client stops sending.
let received: Uint8Array = new Uint8Array(0);
const buffer = new Uint8Array(1024);
while (!endsWith(received, QUIT)) {
  const n = await conn.read(buffer); // waits for data; null when the client closed its side
  if (n === null) break;
  received = concat(received, buffer.subarray(0, n)); // copy: the next read reuses `buffer`
  console.log(`Received ${n} bytes`);
}

// sendall(): write() may send only part, so loop until every byte is out.
for (let sent = 0; sent < received.length;) {
  sent += await conn.write(received.subarray(sent));
}
console.log(`Sent ${received.length} bytes back; closing`);
conn.close();
// One connection only. Closing the listener resets whoever still waits in its backlog.
listener.close();

function endsWith(data: Uint8Array, tail: Uint8Array): boolean {
  const start = data.length - tail.length;
  return start >= 0 && tail.every((byte, i) => data[start + i] === byte);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}
