/**
 * The Kubernetes API server refuses an object of the chart, because of the values: the caller
 * gets INVALID_ARGUMENT naming the object and the field, never the value, and nothing of the
 * release stays (the refused first revision is uninstalled by the service).
 */
import { Code } from "@connectrpc/connect";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPaasClient, type PaasClient } from "../../clients/paas-client.ts";
import { failure } from "../support/failure.ts";
import { startServer, testbedEnv, uniqueNamespace, type ServerProcess } from "../support/testbed.ts";

const tb = testbedEnv();
const kc = new k8s.KubeConfig();
kc.loadFromFile(tb.KUBECONFIG);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);

describe.each([
  { label: "Helm v4", major: 4, binary: tb.HELM_BINARY },
  { label: "Helm v3", major: 3, binary: tb.HELM_V3_BINARY },
])("objects the API server refuses, with $label", ({ major, binary }) => {
  let server: ServerProcess;
  let paas: PaasClient;
  const ns = uniqueNamespace(`refused${major}`);

  beforeAll(async () => {
    server = await startServer({ HELM_BINARY: binary });
    paas = createPaasClient({ baseUrl: server.baseUrl, apiKey: server.apiKey, protocol: "grpc" });
    await paas.namespaces.createNamespace({ name: ns, podSecurity: "baseline" });
  });

  afterAll(async () => {
    await core.deleteNamespace({ name: ns }).catch(() => undefined);
    expect(await server.stop()).toBe(0);
  });

  it("an annotation key the API server refuses: INVALID_ARGUMENT naming the Deployment and the field, no value", async () => {
    const key = "bad key!";
    const secret = "s3cr3t-annotation-value";
    const err = await failure(
      paas.releases.installRelease({
        namespace: ns,
        name: "web",
        chart: "testbed/podinfo",
        version: "6.13.0",
        values: { podAnnotations: { [key]: secret } },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(
      'The install of release web creates an invalid Deployment "web-podinfo": spec.template.annotations: invalid value',
    );
    for (const text of [err.rawMessage, JSON.stringify(server.logs)]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(secret);
    }
    // helm's own words reached the log (sanitized), not the caller.
    expect(
      server.logs.some(
        (l) => typeof l.stderr === "string" && l.stderr.includes('Deployment.apps "web-podinfo" is invalid'),
      ),
    ).toBe(true);
    // Nothing stays: no helm record, no Deployment.
    const records = await core.listNamespacedSecret({ namespace: ns, labelSelector: "owner=helm,name=web" });
    expect(records.items).toEqual([]);
    expect((await apps.listNamespacedDeployment({ namespace: ns })).items).toEqual([]);
  });
});
