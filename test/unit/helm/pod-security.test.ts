import { describe, expect, it } from "vitest";
import { podSecurityViolations, podSpecOf } from "../../../src/helm/pod-security.ts";

// The Pod Security Standards as the render guard checks them. The verdicts on the real
// charts (podinfo, postgresql, redis, nginx, odoo, node-exporter) were compared with the
// API server's own Pod Security Admission (server-side dry run); the e2e isolation suite
// installs them for real.

type Obj = Record<string, unknown>;

const restrictedContainer = (over: Obj = {}): Obj => ({
  name: "c",
  image: "x",
  securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] }, ...over },
});
const restrictedPod = (over: Obj = {}, containers: Obj[] = [restrictedContainer()]): Obj => ({
  securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
  containers,
  ...over,
});

describe("podSpecOf", () => {
  it("finds the pod spec of every workload kind", () => {
    const spec = { containers: [] };
    const t = { template: { metadata: { annotations: { a: "b" } }, spec } };
    expect(podSpecOf({ kind: "Pod", metadata: { name: "p" }, spec })).toEqual({ spec, meta: { name: "p" } });
    for (const kind of ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"]) {
      expect(podSpecOf({ kind, spec: t })).toEqual({ spec, meta: { annotations: { a: "b" } } });
    }
    expect(podSpecOf({ kind: "CronJob", spec: { jobTemplate: { spec: t } } })?.spec).toBe(spec);
    expect(podSpecOf({ kind: "ConfigMap" })).toBeUndefined();
  });
});

describe("podSecurityViolations", () => {
  it("accepts a restricted-compliant pod at every level", () => {
    for (const level of ["restricted", "baseline", "privileged", ""] as const)
      expect(podSecurityViolations(restrictedPod(), {}, level)).toEqual([]);
  });

  it("baseline: host namespaces, privileged, capabilities, hostPath, hostPort, procMount, seccomp, AppArmor, SELinux, sysctls", () => {
    const spec: Obj = {
      hostNetwork: true,
      hostPID: true,
      hostIPC: true,
      volumes: [
        { name: "root", hostPath: { path: "/" } },
        { name: "ok", emptyDir: {} },
      ],
      securityContext: {
        sysctls: [
          { name: "kernel.msgmax", value: "1" },
          { name: "net.ipv4.tcp_syncookies", value: "1" },
        ],
        seccompProfile: { type: "Unconfined" },
      },
      initContainers: [{ name: "i", image: "x", securityContext: { privileged: true } }],
      containers: [
        {
          name: "c",
          image: "x",
          ports: [{ containerPort: 80, hostPort: 80 }, { containerPort: 81 }],
          securityContext: {
            capabilities: { add: ["NET_ADMIN", "CHOWN"] },
            procMount: "Unmasked",
            seLinuxOptions: { type: "spc_t" },
            appArmorProfile: { type: "Unconfined" },
          },
        },
      ],
    };
    const v = podSecurityViolations(
      spec,
      { annotations: { "container.apparmor.security.beta.kubernetes.io/c": "unconfined" } },
      "baseline",
    );
    expect(v).toEqual([
      "hostNetwork=true (host namespaces)",
      "hostPID=true (host namespaces)",
      "hostIPC=true (host namespaces)",
      'hostPath volume "root"',
      'unsafe sysctl "kernel.msgmax"',
      "securityContext.seccompProfile.type=Unconfined",
      "annotation container.apparmor.security.beta.kubernetes.io/c=unconfined",
      'init container "i": securityContext.privileged=true',
      'container "c": capability NET_ADMIN added',
      'container "c": hostPort 80',
      'container "c": securityContext.procMount=Unmasked',
      'container "c": securityContext.seLinuxOptions.type "spc_t"',
      'container "c": securityContext.appArmorProfile.type=Unconfined',
    ]);
  });

  it("baseline allows what restricted refuses (root, no seccomp, default capabilities)", () => {
    const spec = {
      containers: [
        { name: "c", image: "x", securityContext: { runAsUser: 0, capabilities: { add: ["CHOWN", "SETUID"] } } },
      ],
    };
    expect(podSecurityViolations(spec, {}, "baseline")).toEqual([]);
    expect(podSecurityViolations(spec, {}, "restricted")).toEqual([
      'container "c": securityContext.allowPrivilegeEscalation must be false',
      'container "c": securityContext.runAsNonRoot must be true (pod or container)',
      'container "c": securityContext.runAsUser=0',
      'container "c": securityContext.seccompProfile.type must be RuntimeDefault or Localhost (pod or container)',
      'container "c": securityContext.capabilities.drop must include ALL',
      'container "c": capability CHOWN added',
      'container "c": capability SETUID added',
    ]);
  });

  it("restricted: container settings override the pod's, both ways", () => {
    // Pod says non-root, a container says otherwise.
    expect(
      podSecurityViolations(restrictedPod({}, [restrictedContainer({ runAsNonRoot: false })]), {}, "restricted"),
    ).toEqual(['container "c": securityContext.runAsNonRoot must be true (pod or container)']);
    // Nothing at pod level, everything on the container.
    const perContainer = {
      containers: [
        restrictedContainer({ runAsNonRoot: true, seccompProfile: { type: "Localhost", localhostProfile: "p.json" } }),
      ],
    };
    expect(podSecurityViolations(perContainer, {}, "restricted")).toEqual([]);
    // NET_BIND_SERVICE is the one capability restricted allows to add.
    expect(
      podSecurityViolations(
        restrictedPod({}, [restrictedContainer({ capabilities: { drop: ["ALL"], add: ["NET_BIND_SERVICE"] } })]),
        {},
        "restricted",
      ),
    ).toEqual([]);
  });

  it("restricted: volume types beyond the allowed ones, root user", () => {
    const spec = restrictedPod({
      volumes: [
        { name: "n", nfs: { server: "s", path: "/" } },
        { name: "p", persistentVolumeClaim: { claimName: "c" } },
      ],
    });
    (spec["securityContext"] as Obj)["runAsUser"] = 0;
    expect(podSecurityViolations(spec, {}, "restricted")).toEqual([
      'volume "n" of type nfs',
      "securityContext.runAsUser=0",
    ]);
  });

  it("restricted: Windows pods are exempt from the Linux-only controls", () => {
    expect(
      podSecurityViolations({ os: { name: "windows" }, containers: [{ name: "c", image: "x" }] }, {}, "restricted"),
    ).toEqual([]);
  });

  it("survives garbage (the chart decides the shapes)", () => {
    expect(
      podSecurityViolations(
        { containers: "nope", volumes: [null, 3], securityContext: [] } as unknown as Obj,
        {},
        "restricted",
      ),
    ).toEqual([]);
  });
});
