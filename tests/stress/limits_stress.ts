/**
 * Case 4, resource limits: `--max-connections` under a flood, and a server
 * that runs out of file descriptors (`ulimit -n` lowered): it logs the
 * failed accepts, keeps its open connections, and serves the waiting ones
 * once descriptors free up.
 */

import { assert, assertEquals } from "@std/assert";
import { decode, encode, readExactly, writeAll } from "../_helpers.ts";
import { assertLogged, BACKENDS, figure, WatchedServer } from "./_harness.ts";

/** Connects, sends `ping`; resolves with the connection once `ping` is back, or null at EOF. */
async function ping(port: number): Promise<Deno.TcpConn | null> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, encode("ping"));
    const first = new Uint8Array(4);
    const n = await conn.read(first);
    if (n === null) {
      conn.close();
      return null;
    }
    if (n < 4) first.set(await readExactly(conn, 4 - n), n);
    assertEquals(decode(first), "ping");
    return conn;
  } catch (error) {
    conn.close();
    if (error instanceof Deno.errors.ConnectionReset) return null; // closed at accept, a reset
    throw error;
  }
}

/** Closes `conn` the polite way and waits until the server has closed its side too. */
async function hangUp(conn: Deno.TcpConn): Promise<void> {
  await conn.closeWrite();
  while (await conn.read(new Uint8Array(64)) !== null);
  conn.close();
}

for (const backend of BACKENDS) {
  Deno.test(`limits (${backend}): --max-connections 50 under a 200-connection flood`, async () => {
    const LIMIT = 50;
    const FLOOD = 200;
    await using server = await new WatchedServer([
      "--max-connections",
      String(LIMIT),
      "--backend",
      backend,
    ]).ready();
    const results = await Promise.all(Array.from({ length: FLOOD }, () => ping(server.port)));
    const served = results.filter((conn) => conn !== null);
    assertEquals(served.length, LIMIT, "served connections");

    // Room again once they are gone.
    for (const conn of served) await hangUp(conn);
    const again = await ping(server.port);
    if (again === null) throw new Error("refused after the others closed");
    await hangUp(again);

    const { code, log } = await server.stop();
    assertEquals(code, 0);
    assertLogged(log, `accepted: ${LIMIT + 1}, refused: ${FLOOD - LIMIT}`);
    figure(`limits-max-connections-${backend}`, {
      limit: LIMIT,
      flood: FLOOD,
      served: served.length,
      refused: FLOOD - LIMIT,
    });
  });

  Deno.test(`limits (${backend}): out of file descriptors, the server logs it and serves again once they free up`, async () => {
    const FILE_LIMIT = 64;
    const CLIENTS = 60;
    await using server = await new WatchedServer(["--backend", backend], { fileLimit: FILE_LIMIT })
      .ready();
    const room = FILE_LIMIT - server.openFds();
    assert(
      room > 10 && room < CLIENTS,
      `${room} descriptors free: the test needs fewer than ${CLIENTS}`,
    );

    // Every client connects (the kernel completes the handshake); only `room` can be accepted.
    const pending = Array.from({ length: CLIENTS }, () => ping(server.port));
    await server.waitForLog("Accept on");
    const atLimit = server.openFds();
    // The epoll backend gives back the 8 descriptors it holds in reserve for Deno when accept fails.
    assert(
      atLimit >= FILE_LIMIT - 8,
      `${atLimit} descriptors open: the server is not at its limit`,
    );

    // Free descriptors by hanging up each client once it is served: the waiting ones get their turn.
    const results = await Promise.all(pending.map((p) =>
      p.then(async (conn) => {
        if (conn === null) return false;
        await hangUp(conn);
        return true;
      })
    ));
    assertEquals(results.filter((served) => !served).length, 0, "a waiting client was dropped");

    const { code, log } = await server.stop();
    assertEquals(code, 0);
    assertLogged(log, `accepted: ${CLIENTS}, refused: 0`);
    const failedAccepts = log.match(/Accept on .* failed/g)?.length ?? 0;
    figure(`limits-file-descriptors-${backend}`, {
      ulimit_n: FILE_LIMIT,
      clients: CLIENTS,
      free_fds_at_start: room,
      fds_at_limit: atLimit, // the 64 slots, plus one descriptor above the limit inherited at exec
      failed_accepts_logged: failedAccepts,
      clients_served_in_the_end: CLIENTS,
    });
  });
}
