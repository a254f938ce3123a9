/**
 * UDP test helpers: the backends this process can run, a test that re-runs
 * a file under `--unstable-net` for the `Deno.listenDatagram` backend, and
 * raw peers on our lowest socket layer.
 */

import { assert, assertEquals } from "@std/assert";
import {
  type DatagramBackend,
  type DatagramSocket,
  openDatagramSocket,
} from "../src/udp/socket.ts";
import { hasUnstableNet } from "../src/_unstable.ts";

/** The backends this process can run: `deno` needs `--unstable-net`. */
export const BACKENDS: DatagramBackend[] = hasUnstableNet() ? ["deno", "node"] : ["node"];

/**
 * Registers a test that runs the test file at `fileUrl` again under
 * `--unstable-net`, so its `deno` cases run too; `expect` is a test name
 * that must appear in that run.
 */
export function rerunUnderUnstableNet(fileUrl: string, expect: string): void {
  Deno.test({
    name: "the deno backend passes the same tests (this file again under --unstable-net)",
    ignore: hasUnstableNet(),
    async fn() {
      const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["test", "-A", "--unstable-net", new URL(fileUrl).pathname],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
      assertEquals(code, 0, output);
      assert(output.includes(expect), output);
    },
  });
}

/** A raw UDP peer on the `node` backend (works without flags), bound to `hostname`. */
export function peer(hostname = "127.0.0.1", port = 0): Promise<DatagramSocket> {
  return openDatagramSocket({ hostname, port, backend: "node" });
}

/** The next datagram on `socket`, copied, with its source. */
export async function receiveCopy(
  socket: DatagramSocket,
): Promise<{ data: Uint8Array; from: Deno.NetAddr }> {
  const datagram = await socket.receive();
  if (datagram === null) throw new Error("the socket closed instead of receiving");
  return { data: datagram[0].slice(), from: datagram[1] };
}

/** Sends `data` from `socket` to `to` and returns the answer's bytes. */
export async function ask(
  socket: DatagramSocket,
  to: Deno.NetAddr,
  data: Uint8Array,
): Promise<Uint8Array> {
  await socket.send(data, to);
  const answer = await receiveCopy(socket);
  assertEquals(answer.from.port, to.port, "the answer came from another port");
  return answer.data;
}
