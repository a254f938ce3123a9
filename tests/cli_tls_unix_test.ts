/**
 * The programs over TLS and Unix sockets, as a user starts them, against
 * real peers: `openssl s_client`, Python's `ssl` module, `socat`, and our
 * own client and bench.
 */

import { assert, assertEquals, assertMatch, assertStringIncludes } from "@std/assert";
import { decode, encode } from "./_helpers.ts";
import { BENCH, CLIENT, installed, pipeThrough, run, ServerProcess } from "./_programs.ts";
import { HAVE_OPENSSL, makeCertificates, type TestCertificates } from "./_tls.ts";
import { exists, tempSocketPath } from "./_unix.ts";

const certs: TestCertificates | null = HAVE_OPENSSL ? makeCertificates() : null;
const noTls = certs === null;
const linux = Deno.build.os === "linux";

function tlsServer(extra: string[] = []): ServerProcess {
  return new ServerProcess([
    "--tls-cert",
    certs!.certFile,
    "--tls-key",
    certs!.keyFile,
    ...extra,
  ]);
}

/** No warning or error line in a server's log. */
function assertQuiet(log: string): void {
  assert(!/\[(ERR|WRN)\]/.test(log), `a warning or error was logged:\n${log}`);
}

for (const api of ["protocol", "stream"]) {
  Deno.test({
    name:
      `server program, TLS, ${api} API: openssl s_client verifies the certificate and gets the echo`,
    ignore: noTls,
    async fn() {
      await using server = await tlsServer([
        "--api",
        api,
        "--mode",
        "until",
        "--alpn",
        "h2,http/1.1",
      ]).ready();
      assertStringIncludes(server.firstLine, "tcp, TLS (ALPN h2,http/1.1)");
      assertStringIncludes(server.firstLine, "deno backend");
      const { code, stdout, stderr } = await pipeThrough("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${server.port}`,
        "-servername",
        "localhost",
        "-CAfile",
        certs!.caFile,
        "-verify_return_error",
        "-alpn",
        "h2",
        "-quiet",
      ], encode("hello over TLS\nquit\n"));
      assertEquals(code, 0, stderr);
      assertEquals(decode(stdout), "hello over TLS\nquit\n");
      assertEquals(await server.stop("SIGINT"), 0);
    },
  });
}

/**
 * Runs `body` (Python, with `s` the TLS socket to the server on `port`,
 * trusting the test CA and offering `alpn`) and returns what it printed.
 */
async function pythonTlsClient(port: number, alpn: string[], body: string[]): Promise<string> {
  const script = [
    "import socket, ssl, sys",
    "ctx = ssl.create_default_context(cafile=sys.argv[1])",
    ...(alpn.length > 0 ? [`ctx.set_alpn_protocols(${JSON.stringify(alpn)})`] : []),
    "with socket.create_connection(('127.0.0.1', int(sys.argv[2]))) as raw:",
    "    with ctx.wrap_socket(raw, server_hostname='localhost') as s:",
    ...body.map((line) => `        ${line}`),
  ].join("\n");
  const { code, stdout, stderr } = await new Deno.Command("python3", {
    args: ["-c", script, certs!.caFile, String(port)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(code, 0, decode(stderr));
  return decode(stdout);
}

Deno.test({
  name: "server program, TLS: Python's ssl module with the CA, ALPN settled",
  ignore: noTls || !installed("python3"),
  async fn() {
    await using server = await tlsServer(["--alpn", "h2,http/1.1", "--api", "stream"]).ready();
    const stdout = await pythonTlsClient(server.port, ["http/1.1"], [
      "s.sendall(b'ping from python')",
      "got = b''",
      "while len(got) < 16: got += s.recv(100)",
      "print(got.decode(), s.selected_alpn_protocol(), s.version())",
    ]);
    assertMatch(stdout, /^ping from python http\/1\.1 TLSv1\.[23]\n$/);
    assertEquals(await server.stop(), 0);
  },
});

for (const api of ["protocol", "stream"]) {
  Deno.test({
    name: `server program, TLS (${api} API): a client that half-closes without close_notify ` +
      "still gets its answer",
    ignore: noTls || !installed("python3"),
    async fn() {
      await using server = await tlsServer(["--mode", "until", "--api", api]).ready();
      // Most TLS clients end their input with a bare FIN: here, the TCP socket's own shutdown,
      // under the TLS layer. until mode then sends back what it kept.
      const stdout = await pythonTlsClient(server.port, [], [
        "s.sendall(b'kept without a terminator')",
        "socket.socket.shutdown(s, socket.SHUT_WR)",
        "got = b''",
        "while True:",
        "    try: chunk = s.recv(100)",
        "    except ssl.SSLError: break",
        "    if not chunk: break",
        "    got += chunk",
        "print(got.decode())",
      ]);
      assertEquals(stdout, "kept without a terminator\n");
      assertEquals(await server.stop(), 0);
    },
  });
}

Deno.test({
  name: "server program, TLS: a plain TCP client is counted as a failed handshake, quietly",
  ignore: noTls,
  async fn() {
    await using server = await tlsServer().ready();
    const plain = await Deno.connect({ port: server.port });
    await plain.write(encode("hello in the clear\n"));
    const buffer = new Uint8Array(64);
    while ((await plain.read(buffer).catch(() => null)) !== null);
    plain.close();
    // And a client that rejects the certificate (no CA given).
    const untrusting = await run(CLIENT, ["--port", `${server.port}`, "--tls", "--message", "x"]);
    assertEquals(untrusting.code, 1);
    assertStringIncludes(untrusting.stderr, "--ca FILE");
    assertEquals(await server.stop("SIGINT"), 0);
    const log = await server.stderr;
    assertQuiet(log);
    assertMatch(log, /tlsFailed: 2/);
  },
});

Deno.test({
  name: "client and bench programs over TLS: --ca, --server-name; --insecure refused",
  ignore: noTls,
  async fn() {
    await using server = await tlsServer().ready();
    const port = `${server.port}`;
    const ok = await run(CLIENT, [
      "--port",
      port,
      "--ca",
      certs!.caFile,
      "--server-name",
      "localhost",
      "--message",
      "hello",
      "--check",
    ]);
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(ok.stdout, "hello\n");
    const wrongName = await run(CLIENT, [
      "--port",
      port,
      "--ca",
      certs!.caFile,
      "--server-name",
      "example.com",
      "--message",
      "x",
    ]);
    assertEquals(wrongName.code, 1);
    assertStringIncludes(wrongName.stderr, "example.com");
    const insecure = await run(CLIENT, ["--port", port, "--tls", "--insecure", "--message", "x"]);
    assertEquals(insecure.code, 2);
    assertStringIncludes(insecure.stderr, "--unsafely-ignore-certificate-errors");
    const bench = await run(BENCH, [
      "--port",
      port,
      "--tls",
      "--ca",
      certs!.caFile,
      "--connections",
      "2",
      "--workers",
      "2", // the TLS options reach each worker
      "--size",
      "5000",
      "--duration",
      "1",
      "--json",
    ]);
    assertEquals(bench.code, 0, bench.stderr);
    const report = JSON.parse(bench.stdout);
    assert(report.requests > 0 && report.wrongAnswers === 0 && report.errors === 0);
    assertEquals(report.workers, 2);
    assertEquals(await server.stop(), 0);
    // Clients that close without TLS's close_notify are routine, not warnings.
    assertQuiet(await server.stderr);
  },
});

Deno.test({
  name: "server program, TLS: a missing key file exits 2 with one line naming it, before listening",
  ignore: noTls,
  async fn() {
    const { code, stdout, stderr } = await run(SERVER_PATH, [
      "--port",
      "0",
      "--tls-cert",
      certs!.certFile,
      "--tls-key",
      `${certs!.dir}/missing.pem`,
    ]);
    assertEquals(code, 2);
    assertEquals(stdout, "");
    assertEquals(stderr.trim().split("\n").length, 1);
    assertStringIncludes(stderr, `${certs!.dir}/missing.pem`);
  },
});

Deno.test({
  name: "server program, unix: socat, our client and bench; SIGINT removes the socket file",
  ignore: !installed("socat"),
  async fn() {
    const path = tempSocketPath();
    await using server = await new ServerProcess(["--unix", path, "--api", "stream"]).ready();
    assertStringIncludes(server.firstLine, `listening on unix:${path} (unix, stream API`);
    const socat = await pipeThrough(
      "socat",
      ["-t", "2", "-", `UNIX-CONNECT:${path}`],
      encode("via socat\n"),
    );
    assertEquals(socat.code, 0, socat.stderr);
    assertEquals(decode(socat.stdout), "via socat\n");
    const client = await run(CLIENT, ["--unix", path, "--message", "via client", "--check"]);
    assertEquals(client.code, 0, client.stderr);
    const bench = await run(BENCH, [
      "--unix",
      path,
      "--connections",
      "2",
      "--workers",
      "2", // the socket's path reaches each worker
      "--duration",
      "1",
      "--json",
    ]);
    assertEquals(bench.code, 0, bench.stderr);
    const report = JSON.parse(bench.stdout);
    assert(report.requests > 0 && report.errors === 0, bench.stdout);
    assertEquals(report.workers, 2);
    assertEquals(await server.stop("SIGINT"), 0);
    assert(!exists(path), "the socket file is removed");
    assertQuiet(await server.stderr);
  },
});

Deno.test({
  name:
    "server program, unix: a stale socket is replaced; a live one refused; a file kept (exit 2)",
  ignore: !linux,
  async fn() {
    const path = tempSocketPath();
    // A server killed outright leaves its socket file behind.
    const crashed = await new ServerProcess(["--unix", path]).ready();
    crashed.child.kill("SIGKILL");
    await crashed[Symbol.asyncDispose]();
    assert(Deno.lstatSync(path).isSocket, "the crash left the file");
    await using server = await new ServerProcess(["--unix", path]).ready();
    const live = await run(SERVER_PATH, ["--unix", path]);
    assertEquals(live.code, 1);
    assertStringIncludes(live.stderr, "already in use");
    assertStringIncludes(live.stderr, path);
    const client = await run(CLIENT, ["--unix", path, "--message", "still served", "--check"]);
    assertEquals(client.code, 0, client.stderr);
    assertEquals(await server.stop(), 0);
    assert(!exists(path));
    Deno.writeTextFileSync(path, "not a socket");
    const file = await run(SERVER_PATH, ["--unix", path]);
    assertEquals(file.code, 2);
    assertEquals(file.stderr.trim().split("\n").length, 1);
    assertStringIncludes(file.stderr, path);
    assertEquals(Deno.readTextFileSync(path), "not a socket");
  },
});

const SERVER_PATH = new URL("../src/cli/server.ts", import.meta.url).pathname;
