/** Endpoint helpers for local runs and tests; deployments get endpoints from the coordinator. */
import { randomBytes } from "crypto";
import * as net from "net";
import * as os from "os";
import * as path from "path";

/** A fresh `ipc://` path in `dir` (short enough for the 107-byte Unix socket limit). */
export function freeIpcEndpoint(dir: string = os.tmpdir()): string {
  return `ipc://${path.join(dir, `dino-comm-${process.pid}-${randomBytes(6).toString("hex")}.sock`)}`;
}

/**
 * `tcp://host:port` with a port the OS reported free just now. Another process may take it
 * before it is bound; that shows up as EADDRINUSE from start().
 */
export function freeTcpEndpoint(host = "127.0.0.1"): Promise<string> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(`tcp://${host}:${port}`));
    });
  });
}
