/**
 * `deno task bench:memory:floor`: what Deno itself costs per idle TCP
 * connection, with none of this module's code: a bare `Deno.listen` server
 * in a subprocess holds `--connections N` (default 10000) connections, each
 * either with one pending `conn.read` into a 1-byte buffer (how any server
 * on Deno's own sockets waits for data) or with no read at all. Prints the
 * server's resident memory. Linux only; the task raises `ulimit -n`.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";

const flags = parseArgs(Deno.args, { string: ["connections"], default: { connections: "10000" } });
const count = Number(flags.connections);

/** The bare server: `read` keeps one pending 1-byte read per connection, `hold` none. */
const SERVER = `
const mode = Deno.args[0];
const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(listener.addr.port);
const held = [];
for await (const conn of listener) {
  if (mode === "hold") { held.push(conn); await conn.write(new Uint8Array([1])); continue; }
  const buffer = new Uint8Array(1);
  const loop = (n) => {
    if (n === null) return conn.close();
    conn.write(buffer.subarray(0, n)).then(() => conn.read(buffer).then(loop));
  };
  conn.read(buffer).then(loop);
}`;

function rssMiB(pid: number): number {
  return Number(Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

console.log(
  `| bare Deno server | RSS at start MiB | RSS with ${count} connections MiB | per connection KiB |`,
);
console.log("|---|---|---|---|");
for (const mode of ["hold", "read"]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=js", SERVER, mode],
    stdout: "piped",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const port = Number((await lines.read()).value!.trim());
  await new Promise((resolve) => setTimeout(resolve, 300));
  const start = rssMiB(child.pid);
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    if (mode === "read") await conn.write(new Uint8Array([1]));
    await conn.read(new Uint8Array(1));
    conns.push(conn);
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const held = rssMiB(child.pid);
  const what = mode === "read" ? "each with one pending 1-byte read" : "no read pending";
  console.log(
    `| ${what} | ${start.toFixed(0)} | ${held.toFixed(0)} | ` +
      `${((held - start) * 1024 / count).toFixed(1)} |`,
  );
  for (const conn of conns) conn.close();
  child.kill();
  await child.status;
  await lines.cancel();
}
