/**
 * Throwaway certificates for the TLS tests, made with `openssl` in a
 * temporary directory: a CA, and a server certificate it signs for
 * `localhost` and 127.0.0.1 (EC P-256, quick to make). Made per run rather
 * than committed: nothing expires in the repository, and no private key
 * lives there.
 */

import { installed } from "./_programs.ts";
import { moduleTempDir } from "./_temp_dirs.ts";

/** The files and their PEM text. */
export interface TestCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: string;
  cert: string;
  key: string;
  /** A self-signed certificate no client trusts, and its key (the wrong CA). */
  otherCaFile: string;
}

/** Whether the tests can make certificates (`openssl` on the PATH). */
export const HAVE_OPENSSL: boolean = installed("openssl");

function openssl(args: string[], cwd: string): void {
  const { success, stderr } = new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  })
    .outputSync();
  if (!success) throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(stderr)}`);
}

/**
 * Makes a CA and a server certificate for localhost/127.0.0.1 in a new
 * temporary directory, removed when the test module ends (a test may remove
 * it sooner).
 */
export function makeCertificates(): TestCertificates {
  const dir = moduleTempDir("echo-tls-");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=echo test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign",
    ],
    dir,
  );
  openssl(
    ["req", ...ec, "-keyout", "key.pem", "-out", "server.csr", "-subj", "/CN=localhost"],
    dir,
  );
  Deno.writeTextFileSync(
    `${dir}/ext.cnf`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "cert.pem",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    ],
    dir,
  );
  openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "other.key",
      "-out",
      "other.pem",
      "-days",
      "2",
      "-subj",
      "/CN=other CA",
    ],
    dir,
  );
  const read = (name: string) => Deno.readTextFileSync(`${dir}/${name}`);
  return {
    dir,
    caFile: `${dir}/ca.pem`,
    certFile: `${dir}/cert.pem`,
    keyFile: `${dir}/key.pem`,
    ca: read("ca.pem"),
    cert: read("cert.pem"),
    key: read("key.pem"),
    otherCaFile: `${dir}/other.pem`,
  };
}
