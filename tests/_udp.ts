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
import { getPoller } from "../src/poll/_poller.ts";
import { type LinuxLibc, loadLibc } from "../src/libc/_libc.ts";
import { EAGAIN } from "../src/libc/_constants.ts";
import { useDatagramLibc } from "../src/udp/_epoll_socket.ts";

/**
 * The backends a test file runs on: `epoll` (where FFI works on Linux) and
 * `node` in the normal run; `deno`, which needs `--unstable-net`, in the run
 * {@linkcode rerunUnderUnstableNet} makes of the same file.
 */
export const BACKENDS: DatagramBackend[] = hasUnstableNet()
  ? ["deno"]
  : typeof getPoller() === "string"
  ? ["node"]
  : ["epoll", "node"];

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
        signal: AbortSignal.timeout(600_000),
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

/**
 * Over loopback the kernel always has room for a datagram, so nothing is
 * ever queued on the `epoll` backend. This makes the next epoll sockets'
 * `sendto`, `sendmmsg` and `send` fail with EAGAIN, as a full send buffer would,
 * until `unclog()`; on the other backends (whose sends are queued anyway)
 * it does nothing. Dispose of it once the server under test is open.
 * `onReceived` is told how many datagrams each of their `recvmmsg` calls
 * took (and 1 for each datagram a connected socket took with `recv`).
 */
export function clogNextSockets(
  backend: DatagramBackend,
  onReceived?: (count: number) => void,
): { unclog(): void } & Disposable {
  let clogged = backend === "epoll";
  if (!clogged) return { unclog() {}, [Symbol.dispose]() {} };
  const real = loadLibc() as LinuxLibc;
  let fakeErrno = 0;
  const refuse = () => {
    fakeErrno = EAGAIN;
    return -1;
  };
  const linux: LinuxLibc["linux"] = {
    ...real.linux,
    sendto: (...args) => clogged ? refuse() : real.linux.sendto(...args),
    sendmmsg: (...args) => clogged ? refuse() : real.linux.sendmmsg(...args),
    recvmmsg(...args) {
      const n = real.linux.recvmmsg(...args);
      if (n > 0) onReceived?.(n);
      return n;
    },
  };
  // A connected socket sends to its remote with `send`.
  const symbols: LinuxLibc["symbols"] = {
    ...real.symbols,
    send: (...args) => clogged ? refuse() : real.symbols.send(...args),
    recv(...args) {
      const n = real.symbols.recv(...args);
      if (n >= 0) onReceived?.(1);
      return n;
    },
  };
  useDatagramLibc({
    ...real,
    symbols,
    linux,
    errno() {
      const code = fakeErrno;
      fakeErrno = 0;
      return code || real.errno();
    },
  });
  return {
    unclog: () => void (clogged = false),
    [Symbol.dispose]: () => useDatagramLibc(null),
  };
}

/** `EPERM` on Linux: a send a firewall rule refused. */
const EPERM = 1;

/**
 * Makes the next epoll sockets' first `sendmmsg` send only its first
 * `taken` messages and their second fail with EPERM, as a datagram a
 * firewall refuses in the middle of a batch; later calls go through.
 * Dispose of it once the server under test is open.
 */
export function refuseInBatch(taken: number): Disposable {
  const real = loadLibc() as LinuxLibc;
  let calls = 0;
  let fakeErrno = 0;
  useDatagramLibc({
    ...real,
    linux: {
      ...real.linux,
      sendmmsg(fd, headers, count, flags) {
        calls++;
        if (calls === 1) return real.linux.sendmmsg(fd, headers, taken, flags);
        if (calls === 2) {
          fakeErrno = EPERM;
          return -1;
        }
        return real.linux.sendmmsg(fd, headers, count, flags);
      },
    },
    errno() {
      const code = fakeErrno;
      fakeErrno = 0;
      return code || real.errno();
    },
  });
  return { [Symbol.dispose]: () => useDatagramLibc(null) };
}
