import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { ErrorKind } from "../../../src/errors.ts";
import { type ClassifyContext, classify, type Outcome } from "../../../src/helm/helm-errors.ts";

const install: ClassifyContext = { verb: "install", namespace: "ws-a", name: "web", chart: "podinfo 6.13.0" };
const upgrade: ClassifyContext = { ...install, verb: "upgrade" };
const status: ClassifyContext = { verb: "status", namespace: "ws-a", name: "web" };
const rollback: ClassifyContext = { verb: "rollback", namespace: "ws-a", name: "web" };
const uninstall: ClassifyContext = { verb: "uninstall", namespace: "ws-a", name: "web" };
const history: ClassifyContext = { verb: "history", namespace: "ws-a", name: "web" };

function failed(stderr: string): Outcome {
  return { exitCode: 1, stderr, timedOut: false, aborted: false };
}

// stderr recorded from helm v3.22.0 and v4.3.1 against the testbed by
// test/fixtures/helm/record.sh: [file, context, kind, message], checked for both versions.
const recorded: Array<[string, ClassifyContext, ErrorKind, string]> = [
  ["status-not-found.txt", status, "not_found", "Release web not found in namespace ws-a"],
  ["metadata-not-found.txt", status, "not_found", "Release web not found in namespace ws-a"],
  ["history-not-found.txt", history, "not_found", "Release web not found in namespace ws-a"],
  ["uninstall-not-found.txt", uninstall, "not_found", "Release web not found in namespace ws-a"],
  ["rollback-not-found.txt", rollback, "not_found", "Release web not found in namespace ws-a"],
  ["rollback-no-revision.txt", rollback, "not_found", "Revision 99 of release web not found in namespace ws-a"],
  ["rollback-first.txt", rollback, "failed_precondition", "Release web has no previous revision to roll back to"],
  ["upgrade-not-found.txt", upgrade, "failed_precondition", "Release web has no deployed revision in namespace ws-a"],
  ["install-twice.txt", install, "already_exists", "Release web already exists in namespace ws-a"],
  ["in-progress.txt", upgrade, "conflict", "Another operation on release web is in progress"],
  ["chart-not-found.txt", install, "not_found", "Chart podinfo 6.13.0 not found"],
  ["version-not-found.txt", install, "not_found", "Chart podinfo 6.13.0 not found"],
  ["oci-chart-not-found.txt", install, "not_found", "Chart podinfo 6.13.0 not found"],
  ["oci-version-not-found.txt", install, "not_found", "Chart podinfo 6.13.0 not found"],
  [
    "repo-unreachable.txt",
    install,
    "failed_precondition",
    "Chart podinfo 6.13.0 cannot be fetched: its repository is unreachable or invalid",
  ],
  ["namespace-missing.txt", install, "failed_precondition", "Namespace ws-a does not exist"],
  ["schema.txt", install, "invalid_argument", "Values do not match the schema of chart podinfo 6.13.0"],
  ["reserved-label.txt", install, "invalid_argument", "Release labels use a name reserved by helm"],
  ["wait-timeout.txt", install, "timeout", "helm install of release web timed out"],
  ["upgrade-cancelled.txt", upgrade, "unavailable", "helm upgrade of release web was cancelled"],
  ["forbidden.txt", status, "permission_denied", "Permission denied for helm status of release web in namespace ws-a"],
  [
    "forbidden-install.txt",
    install,
    "permission_denied",
    "Permission denied for helm install of release web in namespace ws-a",
  ],
];

const stderrOf = (major: 3 | 4, file: string) =>
  readFileSync(resolve(import.meta.dirname, `../../fixtures/helm/v${major}/stderr/${file}`), "utf8");

// More real stderr, captured from the same binaries outside the testbed (no cluster, a
// local chart repository), and Kubernetes API errors that the testbed cannot produce.
const cases: Array<[string, ClassifyContext, string, ErrorKind, string]> = [
  [
    "v4 same name twice",
    install,
    "Error: INSTALLATION FAILED: cannot reuse a name that is still in use\n",
    "already_exists",
    "Release web already exists in namespace ws-a",
  ],
  [
    "v3+v4 unknown configured repo",
    install,
    "Error: INSTALLATION FAILED: repo norepo not found\n",
    "not_found",
    "Chart podinfo 6.13.0 not found",
  ],
  [
    "v3+v4 repo unreachable",
    install,
    'Error: INSTALLATION FAILED: looks like "http://127.0.0.1:1/" is not a valid chart repository or cannot be reached: Get "http://127.0.0.1:1/index.yaml": dial tcp 127.0.0.1:1: connect: connection refused\n',
    "failed_precondition",
    "Chart podinfo 6.13.0 cannot be fetched: its repository is unreachable or invalid",
  ],
  [
    "v3+v4 OCI registry unreachable",
    install,
    'Error: INSTALLATION FAILED: Get "https://127.0.0.1:1/v2/charts/x/tags/list": dial tcp 127.0.0.1:1: connect: connection refused\n',
    "failed_precondition",
    "Chart podinfo 6.13.0 cannot be fetched: its repository is unreachable or invalid",
  ],
  [
    "v4 schema violation",
    install,
    "Error: INSTALLATION FAILED: values don't meet the specifications of the schema(s) in the following chart(s):\nmychart:\n- at '/replicaCount': got string, want integer\n",
    "invalid_argument",
    "Values do not match the schema of chart podinfo 6.13.0",
  ],
  [
    "v4 required value",
    install,
    "Error: INSTALLATION FAILED: execution error at (mychart/templates/NOTES.txt:36:28): A valid .Values.needed entry required!\n",
    "invalid_argument",
    "The chart cannot be rendered with the given values",
  ],
  [
    "v3+v4 reserved label",
    install,
    "Error: INSTALLATION FAILED: user supplied labels contains system reserved label name. System labels: [name owner status version createdAt modifiedAt]\n",
    "invalid_argument",
    "Release labels use a name reserved by helm",
  ],
  [
    "v4 invalid release name",
    install,
    'level=ERROR msg="release name check failed" error="release name \\"Web_Bad\\": invalid release name, must match regex"\nError: INSTALLATION FAILED: release name check failed: release name "Web_Bad": invalid release name, must match regex ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$ and the length must not be longer than 53\n',
    "invalid_argument",
    "Release name web is invalid",
  ],
  [
    "v3+v4 object name refused by the API server",
    install,
    'Error: INSTALLATION FAILED: 1 error occurred:\n\t* Service "web-podinfo" is invalid: metadata.name: Invalid value: "web-podinfo": must not contain dots\n',
    "invalid_argument",
    "The install of release web creates a Service whose name Kubernetes refuses",
  ],
  [
    "v3+v4 object named after a dotted release name",
    { ...install, name: "web.v2" },
    'I1204 18:26:19.611267   19714 warnings.go:107] "Warning: would violate PodSecurity \\"restricted:latest\\": …"\nError: INSTALLATION FAILED: 1 error occurred:\n\t* Service "web.v2-podinfo" is invalid: metadata.name: Invalid value: "web.v2-podinfo": must not contain dots\n',
    "invalid_argument",
    'The install of release web.v2 creates a Service whose name Kubernetes refuses; charts derive names from the release name, and a Service name may not contain "." (set the chart\'s fullnameOverride)',
  ],
  [
    "v3 cluster unreachable",
    status,
    'Error: Kubernetes cluster unreachable: Get "http://localhost:8080/version": dial tcp 127.0.0.1:8080: connect: connection refused\n',
    "unavailable",
    "The Kubernetes API is unreachable",
  ],
  [
    "v4 cluster unreachable",
    install,
    'level=ERROR msg="cluster reachability check failed: kubernetes cluster unreachable: Get \\"http://localhost:8080/version\\": dial tcp 127.0.0.1:8080: connect: connection refused"\nError: INSTALLATION FAILED: cluster reachability check failed: kubernetes cluster unreachable: Get "http://localhost:8080/version": dial tcp 127.0.0.1:8080: connect: connection refused\n',
    "unavailable",
    "The Kubernetes API is unreachable",
  ],
  [
    "v3 wait timeout",
    install,
    "Error: INSTALLATION FAILED: timed out waiting for the condition\n",
    "timeout",
    "helm install of release web timed out",
  ],
  [
    "v4 wait timeout",
    upgrade,
    "Error: UPGRADE FAILED: resource Deployment/ws-a/web not ready. status: InProgress, message: Available: 0/1\ncontext deadline exceeded\n",
    "timeout",
    "helm upgrade of release web timed out",
  ],
  [
    "RBAC forbidden",
    status,
    'Error: query: failed to query with labels: secrets is forbidden: User "system:serviceaccount:paas:op" cannot list resource "secrets" in API group "" in the namespace "ws-a"\n',
    "permission_denied",
    "Permission denied for helm status of release web in namespace ws-a",
  ],
  [
    "quota exceeded (a forbidden error)",
    install,
    'Error: INSTALLATION FAILED: 1 error occurred:\n\t* persistentvolumeclaims "data" is forbidden: exceeded quota: ws-quota, requested: requests.storage=10Gi, used: requests.storage=0, limited: requests.storage=1Gi\n',
    "resource_exhausted",
    "Resource quota of namespace ws-a exceeded",
  ],
  [
    "namespace missing",
    install,
    'Error: INSTALLATION FAILED: create: failed to create: namespaces "ws-a" not found\n',
    "failed_precondition",
    "Namespace ws-a does not exist",
  ],
  [
    "namespace terminating",
    install,
    'Error: INSTALLATION FAILED: 1 error occurred:\n\t* services "web" is forbidden: unable to create new content in namespace ws-a because it is being terminated\n',
    "failed_precondition",
    "Namespace ws-a is being deleted",
  ],
  [
    "anything else",
    upgrade,
    "Error: UPGRADE FAILED: something nobody anticipated: password=hunter2\n",
    "internal",
    "helm upgrade failed",
  ],
];

describe.each([3, 4] as const)("classify recorded helm v%i stderr", (major) => {
  it.each(recorded)("%s", (file, ctx, kind, message) => {
    const stderr = stderrOf(major, file);
    expect(stderr).not.toBe("");
    const err = classify(failed(stderr), ctx);
    expect(err.kind).toBe(kind);
    expect(err.message).toBe(message);
  });

  it("v4 needs --plain-http for a loopback registry, v3 does not", () => {
    const stderr = stderrOf(major, "oci-no-plain-http.txt");
    if (major === 4) expect(classify(failed(stderr), install).kind).toBe("failed_precondition");
    else expect(stderr).toMatch(/^Pulled: /);
  });
});

// The API server's refusals of a chart's objects (record.sh refusals): the kind by their
// meaning, the message naming the object and the fields, never a value.
const refusals: Array<[3 | 4, string, ClassifyContext, ErrorKind, string]> = [
  [
    4,
    "invalid-object.txt",
    install,
    "invalid_argument",
    'The install of release web creates an invalid Deployment "r1-podinfo": spec.template.annotations: invalid value',
  ],
  [
    3,
    "invalid-object.txt",
    install,
    "invalid_argument",
    'The install of release web creates an invalid Deployment "r1-podinfo": spec.template.annotations: invalid value',
  ],
  [
    4,
    "wrong-type.txt",
    install,
    "invalid_argument",
    'The install of release web creates an invalid Deployment "r2-podinfo": spec.replicas: wrong type',
  ],
  [
    3,
    "wrong-type.txt",
    install,
    "invalid_argument",
    "The install of release web creates an invalid Deployment: spec.replicas: wrong type",
  ],
  [
    3,
    "already-exists.txt",
    install,
    "already_exists",
    'The install of release web creates configmaps "r3-cm", which already exists in namespace ws-a',
  ],
  [
    4,
    "apply-conflict.txt",
    upgrade,
    "failed_precondition",
    'The upgrade of release web changes fields of ConfigMap "r4-cm" that another writer ("someone-else") manages: data.a',
  ],
  [4, "quota-exceeded.txt", install, "resource_exhausted", "Resource quota of namespace ws-a exceeded"],
  [3, "quota-exceeded.txt", install, "resource_exhausted", "Resource quota of namespace ws-a exceeded"],
];

describe("classify the API server's refusals of a chart's objects (recorded)", () => {
  it.each(refusals)("helm v%i %s", (major, file, ctx, kind, message) => {
    const stderr = stderrOf(major, file);
    const err = classify(failed(stderr), ctx);
    expect(err.kind).toBe(kind);
    expect(err.message).toBe(message);
    // The refused value (an annotation key here) stays out of the message, and out of the log.
    expect(err.message).not.toContain("bad key!");
    expect(String((err.cause as Error).message)).not.toContain("bad key!");
  });

  it("drops values, keeps several fields, and does not let a value pose as a field", () => {
    const stderr =
      'Error: INSTALLATION FAILED: 1 error occurred:\n\t* Secret.v1 "db" is invalid: [data[pass word]: Invalid value: "s3cr3t x.y: Forbidden", type: Unsupported value: "s3cr3t-type": supported values: "Opaque", metadata.labels: Required value]\n';
    const err = classify(failed(stderr), install);
    expect(err.kind).toBe("invalid_argument");
    expect(err.message).toBe(
      'The install of release web creates an invalid Secret "db": data[…]: invalid value; type: unsupported value; metadata.labels: required value',
    );
    expect(err.message).not.toContain("s3cr3t");
    expect(String((err.cause as Error).message)).not.toContain("s3cr3t");
  });

  it("an object changed under helm is a conflict (ABORTED): the caller may retry", () => {
    const stderr =
      'Error: UPGRADE FAILED: cannot patch "web" with kind Deployment: Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again\n';
    expect(classify(failed(stderr), upgrade)).toMatchObject({
      kind: "conflict",
      message: 'The upgrade of release web raced with another change of deployments.apps "web": retry',
    });
  });

  it("an immutable field stays FAILED_PRECONDITION, a forbidden object PERMISSION_DENIED", () => {
    const immutable =
      'Error: UPGRADE FAILED: cannot patch "web" with kind Deployment: Deployment.apps "web" is invalid: spec.selector: Invalid value: {"matchLabels":{"a":"b"}}: field is immutable\n';
    expect(classify(failed(immutable), upgrade).kind).toBe("failed_precondition");
    expect(classify(failed(stderrOf(4, "forbidden-install.txt")), install).kind).toBe("permission_denied");
  });
});

describe("classify", () => {
  it.each(cases)("%s", (_label, ctx, stderr, kind, message) => {
    const err = classify(failed(stderr), ctx);
    expect(err.kind).toBe(kind);
    expect(err.message).toBe(message);
  });

  it("never puts stderr into the message, but keeps it (sanitized) in the cause", () => {
    const err = classify(failed("Error: UPGRADE FAILED: boom token=abc123 https://user:pw@repo.example/x\n"), upgrade);
    expect(err.message).toBe("helm upgrade failed");
    const cause = String((err.cause as Error).message);
    expect(cause).toContain("exit code 1");
    expect(cause).toContain("boom");
    expect(cause).not.toContain("abc123");
    expect(cause).not.toContain("user:pw");
  });

  it("reports cancellation, deadlines, runner timeouts and spawn failures", () => {
    const base = { exitCode: 1, stderr: "Error: INSTALLATION FAILED: context canceled\n", timedOut: false };
    expect(
      classify({ ...base, aborted: true, abortReason: new DOMException("x", "AbortError") }, install),
    ).toMatchObject({
      kind: "unavailable",
      message: "helm install of release web was cancelled",
    });
    expect(
      classify({ ...base, aborted: true, abortReason: new DOMException("x", "TimeoutError") }, install),
    ).toMatchObject({
      kind: "timeout",
      message: "helm install of release web exceeded its deadline",
    });
    expect(
      classify({ exitCode: null, signal: "SIGTERM", stderr: "", timedOut: true, aborted: false }, history).kind,
    ).toBe("timeout");
    expect(
      classify(
        { exitCode: null, stderr: "", timedOut: false, aborted: false, failure: "could not start: ENOENT" },
        status,
      ),
    ).toMatchObject({
      kind: "internal",
      message: "helm status could not be run",
    });
  });
});
