import { assert, assertEquals, assertThrows } from "@std/assert";
import { isLibc, type Libc, loadLibc } from "../src/libc/_libc.ts";
import { findSocketFd } from "../src/sockets/_fd.ts";
import { formatIpv6 } from "../src/sockets/_address.ts";
import { getOption, setOption } from "../src/sockopt/_options.ts";

const linux = Deno.build.os === "linux";

function libc(): Libc {
  const loaded = loadLibc();
  if (!isLibc(loaded)) throw new Error(loaded.reason);
  return loaded;
}

Deno.test({
  name: "sockopt FFI: options set on a listener read back, and accepted sockets inherit them",
  ignore: !linux,
  async fn() {
    const c = libc();
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const listenerFd = findSocketFd(c, { transport: "tcp", local: listener.addr });
    assert(listenerFd !== null, "listener fd not found");
    setOption(c, listenerFd!, "keepAlive", true);
    setOption(c, listenerFd!, "keepAliveIdle", 1800);
    setOption(c, listenerFd!, "keepAliveCount", 5);
    setOption(c, listenerFd!, "keepAliveInterval", 15);
    setOption(c, listenerFd!, "receiveBufferSize", 65536);
    setOption(c, listenerFd!, "sendBufferSize", 65536);
    setOption(c, listenerFd!, "noDelay", true);
    assertEquals(getOption(c, listenerFd!, "keepAliveIdle"), 1800);

    using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    using accepted = await listener.accept();
    const fd = findSocketFd(c, {
      transport: "tcp",
      local: accepted.localAddr as Deno.NetAddr,
      remote: accepted.remoteAddr as Deno.NetAddr,
    });
    assert(fd !== null && fd !== listenerFd, `accepted fd ${fd} (listener ${listenerFd})`);
    assertEquals(getOption(c, fd!, "keepAlive"), 1);
    assertEquals(getOption(c, fd!, "keepAliveIdle"), 1800);
    assertEquals(getOption(c, fd!, "keepAliveCount"), 5);
    assertEquals(getOption(c, fd!, "keepAliveInterval"), 15);
    assertEquals(getOption(c, fd!, "receiveBufferSize"), 2 * 65536); // Linux doubles it
    assertEquals(getOption(c, fd!, "sendBufferSize"), 2 * 65536);
    assertEquals(getOption(c, fd!, "noDelay"), 1);
    // The client's own socket kept the defaults: the lookup found the right fd.
    const clientFd = findSocketFd(c, {
      transport: "tcp",
      local: client.localAddr as Deno.NetAddr,
      remote: client.remoteAddr as Deno.NetAddr,
    });
    assert(clientFd !== null && clientFd !== fd);
    assertEquals(getOption(c, clientFd!, "keepAlive"), 0);
  },
});

Deno.test({
  name: "sockopt FFI: an IPv6 listener is found too",
  ignore: !linux,
  fn() {
    const c = libc();
    using listener = Deno.listen({ hostname: "::1", port: 0 });
    const fd = findSocketFd(c, { transport: "tcp", local: listener.addr });
    assert(fd !== null, "IPv6 listener fd not found");
    setOption(c, fd!, "reuseAddress", true);
    assertEquals(getOption(c, fd!, "reuseAddress"), 1);
  },
});

Deno.test({
  name: "sockopt FFI: the kernel's refusal names the option, the value and the reason",
  ignore: !linux,
  fn() {
    const c = libc();
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const fd = findSocketFd(c, { transport: "tcp", local: listener.addr })!;
    assertThrows(
      () => setOption(c, fd, "keepAliveIdle", 0),
      Error,
      "Cannot set TCP_KEEPIDLE (keepAliveIdle) to 0",
    );
    assertThrows(
      () => setOption(c, fd, "keepAliveIdle", 0),
      Error,
      "EINVAL (invalid argument, os error 22)",
    );
  },
});

Deno.test("sockopt FFI: IPv6 addresses print as Deno prints them (RFC 5952)", () => {
  const bytes = (...groups: number[]) => new Uint8Array(groups.flatMap((g) => [g >> 8, g & 0xff]));
  assertEquals(formatIpv6(bytes(0, 0, 0, 0, 0, 0, 0, 1)), "::1");
  assertEquals(formatIpv6(bytes(0, 0, 0, 0, 0, 0, 0, 0)), "::");
  assertEquals(formatIpv6(bytes(0x2001, 0xdb8, 0, 0, 1, 0, 0, 1)), "2001:db8::1:0:0:1");
  assertEquals(formatIpv6(bytes(0x2001, 0xdb8, 0, 1, 1, 1, 1, 1)), "2001:db8:0:1:1:1:1:1");
  assertEquals(formatIpv6(bytes(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1)), "::ffff:127.0.0.1");
  assertEquals(formatIpv6(bytes(0xfe80, 0, 0, 0, 0, 0, 0, 0)), "fe80::");
});

Deno.test("sockopt FFI: without --allow-ffi, loadLibc says which flag to add", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `import { loadLibc } from "${new URL("../src/libc/_libc.ts", import.meta.url)}";
       console.log(JSON.stringify(loadLibc()));`,
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", script],
      signal: AbortSignal.timeout(60_000),
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(code, 0, new TextDecoder().decode(stderr));
    const result = JSON.parse(new TextDecoder().decode(stdout));
    const expected = linux || Deno.build.os === "darwin"
      ? { reason: "FFI is not allowed; run with --allow-ffi (or -A)", permission: true }
      : {
        reason: `socket options through FFI are not supported on ${Deno.build.os}`,
        permission: false,
      };
    assertEquals(result, expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "sockopt FFI: a UDP socket is found by address and type, beside a TCP one on that port",
  ignore: !linux,
  async fn() {
    const c = libc();
    const { default: dgram } = await import("node:dgram");
    // A TCP listener on a free port, then a UDP socket on the same number (retried in the
    // rare case that number is taken for UDP).
    let tcp: Deno.TcpListener | undefined;
    let udp: import("node:dgram").Socket | undefined;
    for (let attempt = 0; attempt < 10 && !udp; attempt++) {
      tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const socket = dgram.createSocket("udp4");
      const bound = await new Promise<boolean>((resolve) => {
        socket.once("error", () => resolve(false));
        socket.bind(tcp!.addr.port, "127.0.0.1", () => resolve(true));
      });
      if (bound) {
        udp = socket;
      } else {
        socket.close();
        tcp.close();
      }
    }
    assert(tcp && udp, "no port free for both TCP and UDP");
    const port = tcp!.addr.port;
    try {
      const local = { hostname: "127.0.0.1", port };
      const udpFd = findSocketFd(c, { transport: "udp", local: { transport: "udp", ...local } });
      const tcpFd = findSocketFd(c, { transport: "tcp", local: tcp!.addr });
      assert(udpFd !== null && tcpFd !== null && udpFd !== tcpFd, `udp ${udpFd}, tcp ${tcpFd}`);
      setOption(c, udpFd!, "receiveBufferSize", 50_000);
      assertEquals(getOption(c, udpFd!, "receiveBufferSize"), 100_000);
      assert(getOption(c, tcpFd!, "receiveBufferSize") !== 100_000);
    } finally {
      tcp!.close();
      await new Promise<void>((resolve) => udp!.close(() => resolve()));
    }
  },
});
