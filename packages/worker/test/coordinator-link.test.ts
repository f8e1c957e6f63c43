import pino from "pino";
import { Dealer, Router } from "zeromq";
import { encodeControl } from "../src/control-channel";
import { CoordinatorLink } from "../src/coordinator-link";
import { ControlTimeoutError, CoordinatorLostError, RunAbortedError } from "../src/errors";

const logger = pino({ level: "silent" });

async function pair(): Promise<{ router: Router; dealer: Dealer; link: CoordinatorLink; identity: Buffer }> {
  const router = new Router({ linger: 0 });
  await router.bind("tcp://127.0.0.1:*");
  const dealer = new Dealer({ linger: 0 });
  dealer.connect(router.lastEndpoint ?? "");
  const link = new CoordinatorLink(dealer, router.lastEndpoint ?? "", logger);
  await link.send({ register: { podIndex: 0 } });
  const [identity] = await router.receive();
  return { router, dealer, link, identity };
}

describe("CoordinatorLink", () => {
  it("hands over messages in order, skips heartbeats, and times out a wait", async () => {
    const { router, link, identity } = await pair();
    await router.send([identity, ...encodeControl({ heartbeat: { rank: 0 } })]);
    await router.send([identity, ...encodeControl({ plan: { step: 3 } })]);
    await router.send([identity, ...encodeControl({ shutdown: {} })]);
    expect((await link.next("plan", 2000)).envelope.plan?.step).toBe(3);
    expect((await link.next("shutdown", 2000)).envelope.body).toBe("shutdown");
    await expect(link.next("nothing", 50)).rejects.toThrow(ControlTimeoutError);
    link.close();
    router.close();
  });

  it("fails pending waits and tells its listeners when the coordinator aborts", async () => {
    const { router, link, identity } = await pair();
    const told: Error[] = [];
    link.onFailure((err) => told.push(err));
    const waiting = link.next("plan", 5000);
    await router.send([identity, ...encodeControl({ abort: { reason: "worker 3 died" } })]);
    await expect(waiting).rejects.toThrow(RunAbortedError);
    expect(told.map((e) => e.message)).toEqual(["run aborted by the coordinator: worker 3 died"]);
    await expect(link.next("plan", 5000)).rejects.toThrow(/worker 3 died/);
    link.close();
    router.close();
  });

  it("declares the coordinator lost after the heartbeat timeout of silence, not before while it beats", async () => {
    const { router, link, identity } = await pair();
    link.startHeartbeats(400, () => ({ heartbeat: { rank: 0 } }));
    const beats = setInterval(() => void router.send([identity, ...encodeControl({ heartbeat: { rank: 0 } })]).catch(() => undefined), 100);
    await new Promise((r) => setTimeout(r, 1000));
    expect(link.error).toBeUndefined();
    clearInterval(beats);
    const started = Date.now();
    await expect(link.next("plan", 5000)).rejects.toThrow(CoordinatorLostError);
    expect(Date.now() - started).toBeLessThan(1500);
    link.close();
    router.close();
  });
});
