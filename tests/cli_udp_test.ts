/**
 * The server program over UDP, as a user runs it (the README's command plus
 * `--udp`), against other people's clients: OpenBSD netcat, socat and
 * Python's asyncio. `.ci/run` installs them; on a machine without one, its
 * test is skipped and says which command is missing.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decode, encode } from "./_helpers.ts";
import { ask, peer } from "./_udp.ts";
import {
  CLIENT,
  installed,
  pipeThrough,
  run,
  SERVER,
  ServerProcess,
  unprivilegedPortStart,
} from "./_programs.ts";
import { openDatagramSocket } from "../src/udp/socket.ts";

const missing = (command: string) =>
  !installed(command) && (console.warn(`${command} missing: skipped`), true);

/**
 * Python's asyncio UDP client: sends each size, checks each echo, prints "ok N".
 * (asyncio before 3.13 does not send empty datagrams, so sizes start at 1.)
 */
const PYTHON_UDP_CLIENT = `
import asyncio, sys

class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.answers = asyncio.Queue()
    def datagram_received(self, data, addr):
        self.answers.put_nowait(data)

async def main(host, port, sizes, prefix):
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=(host, port))
    for size in sizes:
        data = bytes((i * 31 + size) % 256 for i in range(size))
        transport.sendto(data)
        answer = await asyncio.wait_for(client.answers.get(), 5)
        if answer != prefix + data:
            sys.exit(f"echo of {size} bytes differs: got {len(answer)} bytes")
    transport.close()
    print("ok", len(sizes))

sizes = [int(s) for s in sys.argv[3].split(",")]
asyncio.run(main(sys.argv[1], int(sys.argv[2]), sizes, sys.argv[4].encode() if len(sys.argv) > 4 else b""))
`;

/** Sends one datagram from source port 19, then one from anywhere; prints the answer. */
const PYTHON_FROM_PORT_19 = `
import socket, sys
port = int(sys.argv[1])
chargen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
chargen.bind(("127.0.0.1", 19))
chargen.sendto(b"from chargen", ("127.0.0.1", port))
client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
client.settimeout(5)
client.sendto(b"from a client", ("127.0.0.1", port))
print(client.recv(100).decode())
# The server answers in order: an answer to port 19 would be there by now.
chargen.setblocking(False)
try:
    print("port 19 got", chargen.recv(100))
except BlockingIOError:
    print("port 19 got nothing")
`;

Deno.test({
  name: "udp server program: nc -u gets its datagram back byte-exact",
  ignore: missing("nc"),
  async fn() {
    await using server = await new ServerProcess(["--udp"]).ready();
    assertMatch(
      server.firstLine,
      /^@x\/echo server listening on 127\.0\.0\.1:\d+ \(udp, echo mode, epoll; rcvbuf \d+, sndbuf \d+, no reuseaddr; reflection guard\)$/,
    );
    // nc waits one idle second after its input ends for more answers, then exits.
    const { code, stdout, stderr } = await pipeThrough(
      "nc",
      ["-u", "-w1", "127.0.0.1", String(server.port)],
      encode("hello over udp\n"),
    );
    assertEquals(code, 0, stderr);
    assertEquals(decode(stdout), "hello over udp\n");
    assertEquals(await server.stop(), 0);
  },
});

Deno.test({
  name: "udp server program: socat gets every byte value back, with --prefix in front",
  ignore: missing("socat"),
  async fn() {
    await using server = await new ServerProcess(["--transport", "udp", "--prefix", "GOT:"])
      .ready();
    assertStringIncludes(server.firstLine, "(udp, prefix mode,");
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const { code, stdout, stderr } = await pipeThrough(
      "socat",
      ["-t0.5", "-", `UDP:127.0.0.1:${server.port}`],
      all,
    );
    assertEquals(code, 0, stderr);
    assertEquals(decode(stdout.subarray(0, 4)), "GOT:");
    assertEquals(stdout.subarray(4), all);
  },
});

Deno.test({
  name: "udp server program: Python asyncio's datagram endpoint gets each echo, up to 65,507 bytes",
  ignore: missing("python3"),
  async fn() {
    await using server = await new ServerProcess(["--udp", "--log-level", "warning"]).ready();
    const { code, stdout, stderr } = await pipeThrough(
      "python3",
      ["-c", PYTHON_UDP_CLIENT, "127.0.0.1", String(server.port), "1,100,1472,9000,65507"],
      new Uint8Array(),
    );
    assertEquals(code, 0, stderr);
    assertEquals(decode(stdout).trim(), "ok 5");
  },
});

Deno.test({
  name:
    "udp server program: over IPv6 up to its 65,527-byte maximum, on Deno.listenDatagram under --unstable-net",
  ignore: missing("python3"),
  async fn() {
    await using server = await new ServerProcess(
      ["--udp", "--host", "::1", "--prefix", ">", "--backend", "deno"],
      ["-A", "--unstable-net"],
    ).ready();
    assertStringIncludes(server.firstLine, "(udp, prefix mode, Deno.listenDatagram;");
    const { code, stdout, stderr } = await pipeThrough(
      "python3",
      ["-c", PYTHON_UDP_CLIENT, "::1", String(server.port), "5,65526", ">"],
      new Uint8Array(),
    );
    assertEquals(code, 0, stderr);
    assertEquals(decode(stdout).trim(), "ok 2");
  },
});

const privileged = Deno.uid() === 0 || unprivilegedPortStart() <= 19;

Deno.test({
  name: "udp server program: a datagram from source port 19 gets no answer; the drop is counted",
  ignore: missing("python3") || !privileged,
  async fn() {
    await using server = await new ServerProcess(["--udp", "--log-level", "debug"]).ready();
    const { code, stdout, stderr } = await pipeThrough(
      "python3",
      ["-c", PYTHON_FROM_PORT_19, String(server.port)],
      new Uint8Array(),
    );
    assertEquals(code, 0, stderr);
    assertEquals(decode(stdout), "from a client\nport 19 got nothing\n");
    assertEquals(await server.stop(), 0);
    const log = await server.stderr;
    assertStringIncludes(log, "runs on the epoll (recvmmsg/sendmmsg) backend");
    assertStringIncludes(
      log,
      "Dropped a datagram from 127.0.0.1:19: its source port is a service that answers anything",
    );
    assertStringIncludes(log, "received: 2, sent: 1, sendErrors: 0, dropped: 1");
    assertStringIncludes(log, "forbiddenPort: 1");
  },
});

Deno.test("udp server program: socket options and the rate limit are read back in the first line", async () => {
  await using server = await new ServerProcess([
    "--udp",
    "--recv-buffer",
    "65536",
    "--send-buffer",
    "32768",
    "--reuse-address",
    "--rate-limit",
    "50",
  ]).ready();
  const factor = Deno.build.os === "linux" ? 2 : 1;
  assertStringIncludes(
    server.firstLine,
    `rcvbuf ${65536 * factor}, sndbuf ${32768 * factor}, reuseaddr; ` +
      "reflection guard, rate limit 50/s per source)",
  );
});

Deno.test("udp server program: flags that mean nothing for UDP exit 2 and say so", async () => {
  const cases: [string[], string][] = [
    [
      ["--udp", "--transport", "tcp"],
      "Cannot use --udp with --transport tcp: they conflict; drop one of them",
    ],
    [["--transport", "sctp"], 'Cannot use --transport "sctp": it must be one of tcp, udp'],
    [["--udp", "--mode", "until"], "Cannot use --mode until with UDP: it is for TCP only"],
    [["--udp", "--until", "bye"], "Cannot use --mode until with UDP: it is for TCP only"],
    [["--udp", "--mode", "once"], "Cannot use --mode once with UDP: it is for TCP only"],
    [["--udp", "--api", "stream"], "Cannot use --api with UDP: it is for TCP only"],
    [
      ["--udp", "--backlog", "5"],
      "Cannot use --backlog with UDP: it is for TCP only; drop it or use --transport tcp",
    ],
    [
      ["--udp", "--no-nodelay", "--keepalive"],
      "Cannot use --no-nodelay, --keepalive with UDP: they are for TCP only",
    ],
    [["--udp", "--quickack"], "Cannot use --quickack with UDP: it is for TCP only"],
    [
      ["--udp", "--max-connections", "5"],
      "Cannot use --max-connections with UDP: it is for TCP only",
    ],
    [["--udp", "--idle-timeout", "5"], "Cannot use --idle-timeout with UDP: it is for TCP only"],
    [
      ["--rate-limit", "5"],
      "Cannot use --rate-limit with TCP: it is for UDP only; drop it or add --udp",
    ],
    [
      ["--udp", "--rate-limit", "0"],
      'Cannot use --rate-limit "0": it must be a whole number from 1',
    ],
    [
      ["--udp", "--backend", "bsd"],
      'Cannot use --backend "bsd": it must be one of epoll, deno, node',
    ],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await run(SERVER, args);
    assertEquals(code, 2, `${args.join(" ")}: ${stderr}`);
    assertStringIncludes(stderr, message, args.join(" "));
    assertEquals(stdout, "");
    assert(!stderr.includes("    at "), `a stack trace for ${args.join(" ")}`);
  }
});

Deno.test("udp server program: --backend picks the datagram backend, and the first line names it", async () => {
  for (const [backend, name] of [["epoll", "epoll"], ["node", "node:dgram"]]) {
    await using server = await new ServerProcess(["--udp", "--backend", backend]).ready();
    assertStringIncludes(server.firstLine, `(udp, echo mode, ${name};`);
    const client = await peer();
    try {
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: server.port };
      assertEquals(decode(await ask(client, to, encode(backend))), backend);
    } finally {
      client.close();
    }
  }
  // Deno's own datagram sockets need --unstable-net: without it, one line says so.
  const { code, stderr } = await run(SERVER, ["--udp", "--backend", "deno"]);
  assertEquals(code, 2, stderr);
  assertStringIncludes(stderr, "--unstable-net");
});

Deno.test("udp server program: a taken port exits 1 naming it", async () => {
  // A number free for TCP too (at this moment): any TCP socket of this host may hold a number
  // the kernel hands out for UDP, which would fail the TCP part for a reason not ours.
  const number = (() => {
    using probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return probe.addr.port;
  })();
  await using first = await new ServerProcess(["--udp", "--port", String(number)]).ready();
  const { code, stderr } = await run(SERVER, ["--udp", "--port", String(first.port)]);
  assertEquals(code, 1);
  assertStringIncludes(
    stderr,
    `Cannot bind udp 127.0.0.1:${first.port}: the address is already in use;`,
  );
  // TCP on the same number is another port, free to use.
  await using tcp = await new ServerProcess(["--port", String(first.port)]).ready();
  assertEquals(tcp.port, first.port);
});

/** A UDP echo server in Python, to show the client works against any: prints its port. */
const PYTHON_UDP_SERVER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while True:
    data, addr = s.recvfrom(65535)
    s.sendto(data, addr)
`;

Deno.test({
  name: "client program over UDP: --message and interactive lines, against Python's UDP echo too",
  ignore: missing("python3"),
  async fn() {
    await using ours = await new ServerProcess(["--udp"]).ready();
    const python = new Deno.Command("python3", {
      args: ["-c", PYTHON_UDP_SERVER],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    try {
      const reader = python.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const pythonPort = Number((await reader.read()).value!.trim());
      await reader.cancel();
      for (const port of [ours.port, pythonPort]) {
        const once = await run(CLIENT, ["--udp", "--port", String(port), "--message", "hello"]);
        assertEquals(once, { code: 0, stdout: "hello\n", stderr: "" }, `port ${port}`);
        const lines = await run(
          CLIENT,
          ["--transport", "udp", "--port", String(port)],
          "one\ntwo\nq\nnever\n",
        );
        assertEquals(lines, { code: 0, stdout: "one\ntwo\n", stderr: "" }, `port ${port}`);
      }
    } finally {
      python.kill();
      await python.status;
    }
  },
});

Deno.test("client program over UDP: with --check exits 1 when the echo differs; exits 1 when none comes; bad flags exit 2", async () => {
  await using server = await new ServerProcess(["--udp", "--prefix", "GOT:"]).ready();
  const differs = await run(CLIENT, [
    "--udp",
    "--port",
    String(server.port),
    "--message",
    "abc",
    "--check",
  ]);
  assertEquals(differs.code, 1);
  assertEquals(differs.stdout, "GOT:abc\n");
  assertStringIncludes(differs.stderr, "Cannot verify the echo: it differs");
  // A socket that never answers (nothing listening at all is refused at once, see
  // cli_client_modes_test.ts): no answer within the timeout, after 2 datagrams.
  const socket = await openDatagramSocket();
  const port = socket.addr.port;
  const silent = await run(CLIENT, [
    "--udp",
    "--port",
    String(port),
    "--message",
    "x",
    "--timeout",
    "1",
    "--retries",
    "1",
  ]);
  socket.close();
  await socket.closed;
  assertEquals(silent.code, 1);
  assertStringIncludes(
    silent.stderr,
    `no echo within 1 s (2 datagrams sent; is a UDP echo server on 127.0.0.1:${port}?)`,
  );
  for (
    const [args, message] of [
      [
        ["--retries", "3"],
        "Cannot use --retries with TCP: it is for UDP only; drop it or add --udp",
      ],
      [["--udp", "--transport", "tcp"], "Cannot use --udp with --transport tcp: they conflict"],
      [["--transport", "quic"], 'Cannot use --transport "quic": it must be one of tcp, udp'],
    ] as [string[], string][]
  ) {
    const result = await run(CLIENT, ["--port", "9", ...args]);
    assertEquals(result.code, 2, args.join(" "));
    assertStringIncludes(result.stderr, message);
  }
});
