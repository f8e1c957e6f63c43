import { unlinkSync } from "node:fs";
import { networkInterfaces } from "node:os";
import { freeIpcEndpoint, freeTcpEndpoint } from "@dino-coord/comm";

/** Where one member binds its collective sockets: its ring member and its broadcast member. */
export interface CollectiveEndpoints {
  ring: string;
  broadcast: string;
}

/**
 * The address peers reach this host at: loopback when the peer (the coordinator, for a
 * worker) is itself on loopback, else this host's first external IPv4 address.
 */
export function advertisedAddress(peerHost: string): string {
  if (/^(127\.|localhost$|::1$)/.test(peerHost)) return "127.0.0.1";
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) if (address.family === "IPv4" && !address.internal) return address.address;
  }
  return "127.0.0.1";
}

/**
 * Fresh endpoints for this process: Unix sockets when every peer is on this host (a local
 * run), else TCP on `address` (ports the OS reported free just now). The socket files of
 * ipc endpoints are removed when the process exits (ZeroMQ leaves them behind).
 */
export async function freeCollectiveEndpoints(transport: "ipc" | "tcp", address = "127.0.0.1"): Promise<CollectiveEndpoints> {
  if (transport === "ipc") {
    const endpoints = { ring: freeIpcEndpoint(), broadcast: freeIpcEndpoint() };
    process.once("exit", () => {
      for (const endpoint of Object.values(endpoints)) {
        try {
          unlinkSync(endpoint.slice("ipc://".length));
        } catch {
          // never bound, or already gone
        }
      }
    });
    return endpoints;
  }
  const ring = await freeTcpEndpoint(address);
  let broadcast = await freeTcpEndpoint(address);
  while (broadcast === ring) broadcast = await freeTcpEndpoint(address);
  return { ring, broadcast };
}

/** Host part of tcp://HOST:PORT (empty for ipc://). */
export function hostOf(endpoint: string): string {
  return /^tcp:\/\/(.+):\d+$/.exec(endpoint)?.[1] ?? "";
}
