import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface TestCertificates {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Another server certificate for 127.0.0.1 from the same CA (a renewal): its files, named after `name`. */
  issueServer(name: string): Promise<{ cert: string; key: string }>;
}

/** A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI in `dir`. */
export async function makeCertificates(dir: string): Promise<TestCertificates> {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const key = (name: string) => openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", `${name}.key`);
  const file = (name: string) => join(dir, name);
  const issue = async (name: string, ext: string) => {
    key(name);
    openssl("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=manifold-${name}`);
    await writeFile(file(`${name}.ext`), ext);
    openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "1", "-extfile", `${name}.ext`);
    return { cert: file(`${name}.crt`), key: file(`${name}.key`) };
  };
  const serverExt = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
  key("ca");
  openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=manifold-test-ca");
  const server = await issue("server", serverExt);
  const client = await issue("client", "extendedKeyUsage=clientAuth\n");
  return {
    ca: file("ca.crt"),
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
    issueServer: (name) => issue(name, serverExt),
  };
}
