import { describe, expect, it } from "vitest";
import { OperationQueue } from "../../../src/operations/operation-queue.ts";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("OperationQueue", () => {
  it("runs operations on one key one at a time, in arrival order, even when one fails", async () => {
    const q = new OperationQueue(4);
    const order: string[] = [];
    let running = 0;
    let max = 0;
    const op =
      (name: string, fail = false) =>
      async () => {
        running++;
        max = Math.max(max, running);
        order.push(`start ${name}`);
        await tick(5);
        order.push(`end ${name}`);
        running--;
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([q.run("a", op("1")), q.run("a", op("2", true)), q.run("a", op("3"))]);
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(order).toEqual(["start 1", "end 1", "start 2", "end 2", "start 3", "end 3"]);
    expect(max).toBe(1);
    expect(q.pendingKeys).toBe(0);
  });

  it("runs different keys in parallel up to the limit", async () => {
    const q = new OperationQueue(2);
    let running = 0;
    let max = 0;
    const op = async () => {
      running++;
      max = Math.max(max, running);
      await tick(10);
      running--;
    };
    await Promise.all(["a", "b", "c", "d", "e"].map((k) => q.run(k, op)));
    expect(max).toBe(2);
    expect(q.active).toBe(0);
  });

  it("idle resolves once everything queued has finished", async () => {
    const q = new OperationQueue(1);
    const done: number[] = [];
    void q.run("a", async () => {
      await tick(10);
      done.push(1);
    });
    void q.run("b", async () => {
      done.push(2);
    });
    await q.idle();
    expect(done).toEqual([1, 2]);
  });

  it("gives up at the deadline with a conflict naming the running operation, and keeps the order for the rest", async () => {
    const q = new OperationQueue(4);
    const order: string[] = [];
    const first = q.run(
      "rel",
      async () => {
        await tick(80);
        order.push("first");
      },
      { label: "replica-a/op1" },
    );
    const impatient = q.run(
      "rel",
      async () => {
        order.push("impatient");
      },
      { deadline: Date.now() + 20 },
    );
    const patient = q.run(
      "rel",
      async () => {
        order.push("patient");
      },
      { deadline: Date.now() + 5000 },
    );
    const err = await impatient.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ kind: "conflict" });
    expect((err as Error).message).toContain("operation replica-a/op1");
    await Promise.all([first, patient]);
    expect(order).toEqual(["first", "patient"]);
    expect(q.pendingKeys).toBe(0);
  });

  it("answers UNAVAILABLE when every slot stays busy past the deadline, and frees its place", async () => {
    const q = new OperationQueue(1);
    const busy = q.run("a", () => tick(60));
    const err = await q
      .run("b", async () => "ran", { deadline: Date.now() + 10 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ kind: "unavailable" });
    await busy;
    // The slot is not leaked: the next operation runs at once.
    expect(await q.run("c", async () => "ran", { deadline: Date.now() + 50 })).toBe("ran");
    expect(q.active).toBe(0);
  });
});
