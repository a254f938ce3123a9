/**
 * Other people's clients against the server program: Python's asyncio, socat
 * and OpenBSD netcat. `.ci/run` installs them; on a machine without one, its
 * test is skipped and says which command is missing.
 */

import { assertEquals } from "@std/assert";
import { assertSameBytes, decode, randomBytes } from "./_helpers.ts";
import { installed, pipeThrough, ServerProcess } from "./_programs.ts";

const PYTHON_CLIENT = `
import asyncio, sys
async def main(port, size):
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()
    echoed = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    sys.exit(0 if echoed == data else f"echo differs: {len(echoed)} of {len(data)} bytes")
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
`;

for (const api of ["protocol", "stream"]) {
  Deno.test({
    name: `${api} API: Python asyncio's open_connection gets 1 MiB back byte-exact`,
    ignore: !installed("python3") && (console.warn("python3 missing: skipped"), true),
    async fn() {
      await using server = await new ServerProcess(["--api", api, "--log-level", "warning"])
        .ready();
      const result = await pipeThrough(
        "python3",
        ["-c", PYTHON_CLIENT, String(server.port), String(1 << 20)],
        new Uint8Array(),
      );
      assertEquals(result.code, 0, result.stderr);
    },
  });

  Deno.test({
    name: `${api} API: socat sends 256 KiB and gets it back byte-exact`,
    ignore: !installed("socat") && (console.warn("socat missing: skipped"), true),
    async fn() {
      await using server = await new ServerProcess(["--api", api, "--log-level", "warning"])
        .ready();
      const data = randomBytes(256 * 1024, 31);
      const result = await pipeThrough(
        "socat",
        ["-t", "10", "-", `TCP:127.0.0.1:${server.port}`],
        data,
      );
      assertEquals(result.code, 0, result.stderr);
      assertSameBytes(result.stdout, data);
    },
  });

  Deno.test({
    name: `${api} API: nc sends lines and gets them back`,
    ignore: !installed("nc") && (console.warn("nc missing: skipped"), true),
    async fn() {
      await using server = await new ServerProcess(["--api", api, "--log-level", "warning"])
        .ready();
      const text = "hello from nc\nsecond line\n";
      // -N: half-close after end of input (OpenBSD netcat), so the server's close ends nc.
      const result = await pipeThrough(
        "nc",
        ["-N", "127.0.0.1", String(server.port)],
        new TextEncoder().encode(text),
      );
      assertEquals(result.code, 0, result.stderr);
      assertEquals(decode(result.stdout), text);
    },
  });
}
