/**
 * TLS and Unix domain sockets in the library, on both APIs: echoes through
 * Deno's TLS with a CA made for the run, what `getExtraInfo("tls")` says on
 * both ends, failed and late handshakes counted (never served), the
 * client's refusal of an untrusted server; Unix sockets' addresses, the
 * socket file's removal, a stale socket replaced, a live one and a file of
 * another kind refused.
 */

import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
  assertThrows,
} from "@std/assert";
import { connectTcp, connectTcpStreams, serveEcho, serveTcp, type Transport } from "../mod.ts";
import type { TlsInfo } from "../src/tcp/mod.ts";
import { decode, encode, waitFor } from "./_helpers.ts";
import { HAVE_OPENSSL, makeCertificates, type TestCertificates } from "./_tls.ts";
import { exists, tempSocketPath } from "./_unix.ts";
import { installed } from "./_programs.ts";

const certs: TestCertificates | null = HAVE_OPENSSL ? makeCertificates() : null;
const APIS = ["protocol", "stream"] as const;
const linux = Deno.build.os === "linux";

for (const api of APIS) {
  Deno.test({
    name: `tls, ${api} API: echo through Deno's TLS, ALPN settled, the handshake told on both ends`,
    ignore: certs === null,
    async fn() {
      const { cert, key, ca } = certs!;
      await using server = serveEcho({
        port: 0,
        api,
        tls: { cert, key, alpnProtocols: ["h2", "http/1.1"] },
      });
      assertEquals(server.backend, "deno");
      const { reader, writer } = await connectTcpStreams({
        port: server.addr.port,
        tls: { caCerts: [ca], serverName: "localhost", alpnProtocols: ["http/1.1"] },
      });
      assertEquals(writer.getExtraInfo("tls"), {
        serverName: "localhost",
        alpnProtocol: "http/1.1",
        version: null,
      });
      const big = new Uint8Array(1 << 20).map((_, i) => i * 7);
      writer.write(encode("hello\n"));
      assertEquals(decode((await reader.readLine())!), "hello\n");
      writer.write(big);
      assertEquals(await reader.readExactly(big.length), big);
      await writer.close();
      await waitFor(() => server.connections === 0, "the connection to end");
      assertEquals(server.counters.tlsFailed, 0);
      assertEquals(server.counters.accepted, 1);
    },
  });

  Deno.test({
    name: `unix, ${api} API: echo on a Unix socket, its addresses, the file removed at shutdown`,
    async fn() {
      const path = tempSocketPath();
      const server = serveEcho({ path, api });
      assertEquals(server.addr, { transport: "unix", path });
      assert(Deno.lstatSync(path).isSocket);
      const { reader, writer } = await connectTcpStreams({ path });
      assertEquals(writer.getExtraInfo("peername"), { transport: "unix", path });
      assertEquals(writer.getExtraInfo("tls"), null);
      writer.write(encode("over unix\n"));
      assertEquals(decode((await reader.readLine())!), "over unix\n");
      await writer.close();
      await server.shutdown();
      assert(!exists(path), "the socket file is removed");
    },
  });
}

Deno.test({
  name:
    "tls: the server's transport tells the ALPN protocol in connectionMade (no SNI, no version)",
  ignore: certs === null,
  async fn() {
    const { cert, key, ca } = certs!;
    let seen: TlsInfo | null | undefined;
    await using server = serveTcp({ port: 0, tls: { cert, key, alpnProtocols: ["h2"] } }, () => {
      let transport: Transport;
      return {
        connectionMade(t) {
          transport = t;
          seen = t.getExtraInfo("tls");
        },
        dataReceived: (data) => transport.write(data),
      };
    });
    const { reader, writer } = await connectTcpStreams({
      hostname: "localhost",
      port: server.addr.port,
      tls: { caCerts: [ca], alpnProtocols: ["h2"] },
    });
    writer.write(encode("x"));
    assertEquals(decode((await reader.read())!), "x");
    assertEquals(seen, { serverName: null, alpnProtocol: "h2", version: null });
    await writer.close();
  },
});

Deno.test({
  name:
    "tls: a plain TCP client and an untrusting client are counted as failed handshakes, never served",
  ignore: certs === null,
  async fn() {
    const { cert, key } = certs!;
    let made = 0;
    await using server = serveTcp({ port: 0, tls: { cert, key } }, () => ({
      connectionMade: () => void made++,
    }));
    const plain = await Deno.connect({ port: server.addr.port });
    await plain.write(encode("GET / HTTP/1.0\r\n\r\n"));
    const buffer = new Uint8Array(64);
    // The server answers with an alert, then closes.
    while ((await plain.read(buffer).catch(() => null)) !== null);
    plain.close();
    await waitFor(() => server.counters.tlsFailed === 1, "the plain client's failure");
    const error = await assertRejects(
      () => connectTcp({ port: server.addr.port, tls: {} }, () => ({})),
      Deno.errors.InvalidData,
    );
    assertStringIncludes(error.message, "UnknownIssuer");
    assertStringIncludes(error.message, "--ca FILE");
    await waitFor(() => server.counters.tlsFailed === 2, "the untrusting client's failure");
    assertEquals(made, 0);
    assertEquals(server.counters.accepted, 0);
  },
});

Deno.test({
  name: "tls: a client that never sends its hello is closed at the handshake timeout",
  ignore: certs === null,
  async fn() {
    const { cert, key } = certs!;
    await using server = serveTcp(
      { port: 0, tls: { cert, key, handshakeTimeout: 300 } },
      () => ({}),
    );
    const silent = await Deno.connect({ port: server.addr.port });
    const started = performance.now();
    assertEquals(await silent.read(new Uint8Array(16)), null, "the server closes it");
    assert(performance.now() - started >= 250, "not before the timeout");
    silent.close();
    await waitFor(() => server.counters.tlsFailed === 1, "the count");
  },
});

Deno.test({
  name: "tls: silent clients cannot take more handshakes than the connection limit",
  ignore: certs === null,
  async fn() {
    const { cert, key } = certs!;
    await using server = serveTcp(
      { port: 0, maxConnections: 2, tls: { cert, key, handshakeTimeout: 10_000 } },
      () => ({}),
    );
    const silent = [];
    for (let i = 0; i < 2; i++) silent.push(await Deno.connect({ port: server.addr.port }));
    // The third is closed at once, long before the handshake timeout.
    const third = await Deno.connect({ port: server.addr.port });
    const started = performance.now();
    assertEquals(await third.read(new Uint8Array(16)).catch(() => null), null);
    assert(performance.now() - started < 5_000, "closed at once, not at the timeout");
    third.close();
    await waitFor(() => server.counters.tlsFailed === 1, "the refusal to be counted");
    for (const conn of silent) conn.close();
  },
});

Deno.test({
  name: "tls: the client checks the name: a certificate for localhost does not do for another name",
  ignore: certs === null,
  async fn() {
    const { cert, key, ca } = certs!;
    await using server = serveTcp({ port: 0, tls: { cert, key } }, () => ({}));
    const error = await assertRejects(
      () =>
        connectTcp({
          port: server.addr.port,
          tls: { caCerts: [ca], serverName: "example.com" },
        }, () => ({})),
      Deno.errors.InvalidData,
    );
    assertStringIncludes(error.message, "example.com");
    // By IP address: the certificate holds 127.0.0.1.
    const { transport } = await connectTcp(
      { port: server.addr.port, tls: { caCerts: [ca] } },
      () => ({}),
    );
    transport.close();
  },
});

Deno.test("tls and unix: refused on the epoll backend, and with options that cannot apply", () => {
  const tls = { cert: "-----BEGIN CERTIFICATE-----", key: "-----BEGIN PRIVATE KEY-----" };
  assertThrows(
    () => serveTcp({ port: 0, backend: "epoll", tls }, () => ({})),
    Deno.errors.NotSupported,
  );
  assertThrows(
    () => serveTcp({ path: tempSocketPath(), backend: "epoll" }, () => ({})),
    Deno.errors.NotSupported,
  );
  assertThrows(() => serveTcp({ port: 0, tls, proxyProtocol: true }, () => ({})), TypeError);
  assertThrows(() => serveTcp({ path: tempSocketPath(), tls }, () => ({})), TypeError);
  assertThrows(
    () => serveTcp({ port: 0, tls: { cert: "cert.pem", key: "key.pem" } }, () => ({})),
    TypeError,
  );
});

Deno.test("unix: a file that is not a socket is refused and left as it was", () => {
  const path = tempSocketPath();
  Deno.writeTextFileSync(path, "precious");
  const error = assertThrows(() => serveEcho({ path }), Deno.errors.AlreadyExists);
  assertStringIncludes(error.message, path);
  assertEquals(Deno.readTextFileSync(path), "precious");
});

Deno.test({
  name: "unix: a live socket is refused (address in use), and the server on it goes on",
  ignore: !linux,
  async fn() {
    const path = tempSocketPath();
    await using first = serveEcho({ path });
    const error = assertThrows(() => serveEcho({ path }), Deno.errors.AddrInUse);
    assertStringIncludes(error.message, path);
    const { reader, writer } = await connectTcpStreams({ path });
    writer.write(encode("still here\n"));
    assertEquals(decode((await reader.readLine())!), "still here\n");
    await writer.close();
    await first.shutdown();
  },
});

Deno.test({
  name: "unix: a stale socket (bound, nothing listening, as a crash leaves it) is replaced",
  ignore: !linux || !installed("python3"),
  async fn() {
    const path = tempSocketPath();
    // A socket file nobody listens on: connecting to it is refused.
    const { success } = await new Deno.Command("python3", {
      args: ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path],
    }).output();
    assert(success && Deno.lstatSync(path).isSocket);
    await assertRejects(
      () => Deno.connect({ transport: "unix", path }),
      Deno.errors.ConnectionRefused,
    );
    await using server = serveEcho({ path });
    const { reader, writer } = await connectTcpStreams({ path });
    writer.write(encode("fresh\n"));
    assertEquals(decode((await reader.readLine())!), "fresh\n");
    await writer.close();
    await server.shutdown();
    assert(!exists(path));
  },
});

Deno.test("unix: the client says what is wrong with the path", async () => {
  const path = tempSocketPath();
  const missing = await assertRejects(() => connectTcp({ path }, () => ({})), Deno.errors.NotFound);
  assertStringIncludes(missing.message, path);
  await assertRejects(() => connectTcp({ path, tls: {} }, () => ({})), TypeError);
});

Deno.test({
  name: "unix: a live socket bound by another process under another spelling is not taken as stale",
  ignore: !linux || !installed("python3"),
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "echo-unix-" });
    // Another server binds the relative name "s.sock" from its own directory: the kernel's
    // table shows "s.sock", not the absolute path this server is given.
    const other = new Deno.Command("python3", {
      args: [
        "-c",
        "import socket,os,sys; os.chdir(sys.argv[1]); s=socket.socket(socket.AF_UNIX); " +
        "s.bind('s.sock'); s.listen(); print('ready', flush=True); sys.stdin.read()",
        dir,
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const lines = other.stdout.pipeThrough(new TextDecoderStream()).getReader();
    try {
      assertEquals((await lines.read()).value?.trim(), "ready");
      assertThrows(
        () => serveEcho({ path: `${dir}/s.sock` }),
        Deno.errors.AddrInUse,
        "a server listens there",
      );
      assert(Deno.lstatSync(`${dir}/s.sock`).isSocket, "the other server's socket is still there");
    } finally {
      await other.stdin.close();
      await other.status;
      await lines.cancel();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
