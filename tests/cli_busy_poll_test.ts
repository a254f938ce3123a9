/**
 * The server's `--busy-poll`, as the program runs it: each event loop (the
 * program's own, or each worker's) spins for what the flag says where the
 * machine has 2 CPUs for it, and says so at debug level. The spin itself
 * is tested on the poller (`poller_test.ts`).
 */

import { assertEquals } from "@std/assert";
import { ServerProcess } from "./_programs.ts";
import { echoOf } from "./_helpers.ts";

const cores = navigator.hardwareConcurrency;

const cases: { flags: string[]; loops: number; asked: number }[] = [
  { flags: [], loops: 1, asked: 50 },
  { flags: ["--busy-poll", "20"], loops: 1, asked: 20 },
  { flags: ["--busy-poll", "0"], loops: 1, asked: 0 },
  { flags: ["--workers", "1", "--busy-poll", "30"], loops: 1, asked: 30 },
  { flags: ["--workers", "2", "--busy-poll", "30"], loops: 2, asked: 30 },
];

for (const { flags, loops, asked } of cases) {
  Deno.test(`server ${flags.join(" ") || "(no flags)"}: busy polling as the flag and ${cores} CPUs allow`, async () => {
    await using server = await new ServerProcess([...flags, "--log-level", "debug"]).ready();
    assertEquals(await echoOf(server.port, "polled"), "polled");
    assertEquals(await server.stop(), 0);
    const said = (await server.stderr).split("\n").filter((line) => line.includes("usy polling"))
      .map((line) => line.replace(/^.*?(No busy|Busy)/, "$1"));
    const expected = asked === 0
      ? []
      : cores >= 2 * loops
      ? Array(loops).fill(`Busy polling: a wait after events looks for more for up to ${asked} µs`)
      : Array(loops).fill(
        `No busy polling: ${cores} CPUs for ${loops} event loops, where it needs 2 for each`,
      );
    assertEquals(said, expected);
  });
}
