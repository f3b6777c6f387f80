import type { ServiceImpl } from "@connectrpc/connect";
import { PaasError } from "../errors.ts";
import { create } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { HealthMonitor } from "../health/health-monitor.ts";

/** Services the health service reports on; "" is the server as a whole. */
export const HEALTH_SERVICES = ["", "paas.v1.ReleaseService", "paas.v1.NamespaceService"];

/** createHealthService implements grpc.health.v1.Health from the monitor's last snapshot. */
export function createHealthService(monitor: HealthMonitor, streamsSignal: AbortSignal): ServiceImpl<typeof Health> {
  const status = (service: string): Status => {
    if (!HEALTH_SERVICES.includes(service)) return Status.SERVICE_UNKNOWN;
    return monitor.current().serving ? Status.SERVING : Status.NOT_SERVING;
  };
  const response = (s: Status): HealthCheckResponse => create(HealthCheckResponseSchema, { status: s });
  return {
    check(req) {
      const s = status(req.service);
      if (s === Status.SERVICE_UNKNOWN) throw new PaasError("not_found", `unknown service ${req.service}`);
      return response(s);
    },
    list() {
      return { statuses: Object.fromEntries(HEALTH_SERVICES.map((name) => [name, response(status(name))])) };
    },
    async *watch(req, ctx) {
      // Send the current status, then again whenever it changes, until the client leaves.
      let last: Status | undefined;
      let wake: (() => void) | undefined;
      const unsubscribe = monitor.subscribe(() => wake?.());
      // On shutdown the last message sent is NOT_SERVING, then the stream ends.
      const signal = AbortSignal.any([ctx.signal, streamsSignal]);
      const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      try {
        while (true) {
          const s = status(req.service);
          if (s !== last) {
            last = s;
            yield response(s);
            // Look again: the status may have changed while the consumer held the message.
            continue;
          }
          if (signal.aborted) break;
          await Promise.race([new Promise<void>((resolve) => (wake = resolve)), aborted]);
        }
      } finally {
        unsubscribe();
      }
    },
  };
}
