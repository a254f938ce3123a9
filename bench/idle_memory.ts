/**
 * `deno task bench:memory`: the server's resident memory with 10,000 idle
 * connections held open, per API and backend. Opens the connections,
 * sends one byte on each and waits for its echo (so every connection has
 * been read from once), then reads the server's VmRSS from /proc. Linux only;
 * the task raises the descriptor limit with `ulimit -n`.
 *
 * Flags: `--connections N` (default 10000); `--echoload PATH` to also run
 * that load generator (`../shared/bench/echoload.c`, built by compare.sh into
 * `$TMPDIR/echo-bench-bin`) with 100,000-byte messages on 10 more connections
 * while the idle ones are held, and report its requests/s and the RSS after.
 *
 * @module
 */

import { parseArgs } from "@std/cli/parse-args";
import { firstLine } from "./_first_line.ts";

const flags = parseArgs(Deno.args, {
  string: ["connections", "echoload"],
  default: { connections: "10000" },
});
const count = Number(flags.connections);
const echoload = flags.echoload;
const server = new URL("../src/cli/server.ts", import.meta.url).pathname;

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

/** Runs echoload against `port` with 100 KB messages; its requests/s. */
async function underLoad(path: string, port: number, pid: number): Promise<number> {
  const args = ["--port", `${port}`, "--msize", "100000", "--conns", "10", "--duration", "4"];
  const { success, stdout } = await new Deno.Command(path, { args: [...args, "--pid", `${pid}`] })
    .output();
  if (!success) throw new Error(`${path} failed against port ${port}`);
  return JSON.parse(new TextDecoder().decode(stdout)).rps;
}

const loadColumns = echoload ? " 100 KB req/s meanwhile | RSS after it MiB |" : "";
const rows = [
  `| api | backend | RSS at start MiB | RSS with ${count} idle connections MiB | per connection KiB |` +
  loadColumns,
  `|---|---|---|---|---|${echoload ? "---|---|" : ""}`,
];
const one = new Uint8Array([42]);
for (const backend of ["epoll", "deno"]) {
  for (const api of ["protocol", "stream"]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        server,
        "--port",
        "0",
        "--api",
        api,
        "--backend",
        backend,
        "--log-level",
        "warning",
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const port = Number((await firstLine(child.stdout)).match(/:(\d+) \(/)?.[1]);
    const start = rssMiB(child.pid);
    const conns: Deno.TcpConn[] = [];
    for (let i = 0; i < count; i += 500) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(500, count - i) }, () => Deno.connect({ port })),
      );
      await Promise.all(batch.map(async (conn) => {
        await conn.write(one);
        await conn.read(new Uint8Array(1));
      }));
      conns.push(...batch);
    }
    // Let the server settle (V8 may collect what setting up the connections left).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const held = rssMiB(child.pid);
    let row = `| ${api} | ${backend} | ${start.toFixed(0)} | ${held.toFixed(0)} | ` +
      `${((held - start) * 1024 / count).toFixed(1)} |`;
    if (echoload) {
      const rps = await underLoad(echoload, port, child.pid);
      row += ` ${rps.toFixed(0)} | ${rssMiB(child.pid).toFixed(0)} |`;
    }
    rows.push(row);
    for (const conn of conns) conn.close();
    child.kill("SIGTERM");
    await child.status;
  }
}
console.log(rows.join("\n"));
