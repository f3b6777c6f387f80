// The Pod Security Standards (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
// "baseline" and "restricted", checked against the pod templates of a rendered chart.
//
// Pod Security Admission is the boundary: it refuses a Pod that violates the namespace's
// level. But for a Deployment, StatefulSet, Job, … it only warns, and the controller's
// pods are then refused one by one: the release "succeeds" and never runs. This check
// refuses such a chart before anything is applied, naming the object and the field.
//
// It errs on the permissive side wherever the standard has version-dependent details
// (volume types, sysctls, SELinux types): a pod it lets through is still judged by
// admission, while a pod it refused wrongly could not be installed at all.

import type { EnforcedLevel } from "../domain/pod-security-levels.ts";

/** PssLevel is an enforced Pod Security level; "privileged" (or none) checks nothing. */
export type PssLevel = EnforcedLevel;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

// Baseline: capabilities that may be added.
const BASELINE_CAPS = new Set([
  "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
  "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
]); // prettier-ignore
// Baseline: the "safe" sysctls, as of Kubernetes 1.29+ (all versions' sets are subsets).
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]); // prettier-ignore
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);
// Restricted allows only configMap, csi, downwardAPI, emptyDir, ephemeral,
// persistentVolumeClaim, projected, secret (and image in newer versions). Refused here:
// the in-tree volume plugins, which reach node or storage credentials directly.
const RESTRICTED_FORBIDDEN_VOLUMES = [
  "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs", "rbd",
  "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
  "azureDisk", "portworxVolume", "photonPersistentDisk", "scaleIO", "storageos",
]; // prettier-ignore

/** podSpecOf returns the pod spec (and its template metadata) an object runs, if it runs pods. */
export function podSpecOf(o: Obj): { spec: Obj; meta: Obj } | undefined {
  const kind = o["kind"];
  const spec = obj(o["spec"]);
  switch (kind) {
    case "Pod":
      return { spec, meta: obj(o["metadata"]) };
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "ReplicationController":
    case "Job": {
      const t = obj(spec["template"]);
      return { spec: obj(t["spec"]), meta: obj(t["metadata"]) };
    }
    case "CronJob": {
      const t = obj(obj(obj(spec["jobTemplate"])["spec"])["template"]);
      return { spec: obj(t["spec"]), meta: obj(t["metadata"]) };
    }
    default:
      return undefined;
  }
}

interface Container {
  what: string;
  c: Obj;
  sc: Obj;
}

function containersOf(spec: Obj): Container[] {
  const out: Container[] = [];
  for (const [field, label] of [
    ["initContainers", "init container"],
    ["containers", "container"],
    ["ephemeralContainers", "ephemeral container"],
  ] as const) {
    for (const c of arr(spec[field])) {
      const co = obj(c);
      out.push({
        what: `${label} ${JSON.stringify(String(co["name"] ?? "?"))}`,
        c: co,
        sc: obj(co["securityContext"]),
      });
    }
  }
  return out;
}

/**
 * podSecurityViolations lists why a pod spec would be refused at `level` (empty: allowed).
 * `meta` is the pod's (template's) metadata, for the AppArmor annotations.
 */
export function podSecurityViolations(spec: Obj, meta: Obj, level: PssLevel): string[] {
  if (level !== "baseline" && level !== "restricted") return [];
  const out: string[] = [];
  const psc = obj(spec["securityContext"]);
  const containers = containersOf(spec);

  // ---- baseline
  for (const f of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[f] === true) out.push(`${f}=true (host namespaces)`);
  if (obj(psc["windowsOptions"])["hostProcess"] === true) out.push("securityContext.windowsOptions.hostProcess=true");
  for (const v of arr(spec["volumes"])) {
    const vo = obj(v);
    if (vo["hostPath"] !== undefined) out.push(`hostPath volume ${JSON.stringify(String(vo["name"] ?? "?"))}`);
  }
  const sysctls = arr(psc["sysctls"]).map((s) => String(obj(s)["name"] ?? ""));
  for (const s of sysctls) if (!SAFE_SYSCTLS.has(s)) out.push(`unsafe sysctl ${JSON.stringify(s)}`);
  const seLinux = (sc: Obj, where: string) => {
    const o = sc["seLinuxOptions"];
    if (!isObj(o)) return;
    if (!SELINUX_TYPES.has(String(o["type"] ?? "")))
      out.push(`${where}securityContext.seLinuxOptions.type ${JSON.stringify(o["type"])}`);
    if (o["user"] || o["role"]) out.push(`${where}securityContext.seLinuxOptions.user/role set`);
  };
  const appArmor = (sc: Obj, where: string) => {
    const t = obj(sc["appArmorProfile"])["type"];
    if (t !== undefined && t !== "RuntimeDefault" && t !== "Localhost")
      out.push(`${where}securityContext.appArmorProfile.type=${String(t)}`);
  };
  const seccompUnconfined = (sc: Obj, where: string) => {
    if (obj(sc["seccompProfile"])["type"] === "Unconfined")
      out.push(`${where}securityContext.seccompProfile.type=Unconfined`);
  };
  seLinux(psc, "");
  appArmor(psc, "");
  seccompUnconfined(psc, "");
  for (const [key, value] of Object.entries(obj(meta["annotations"]))) {
    if (
      key.startsWith("container.apparmor.security.beta.kubernetes.io/") &&
      value !== "runtime/default" &&
      !String(value).startsWith("localhost/")
    ) {
      out.push(`annotation ${key}=${String(value)}`);
    }
  }
  for (const { what, c, sc } of containers) {
    const where = `${what}: `;
    if (sc["privileged"] === true) out.push(`${where}securityContext.privileged=true`);
    if (obj(sc["windowsOptions"])["hostProcess"] === true)
      out.push(`${where}securityContext.windowsOptions.hostProcess=true`);
    for (const cap of arr(obj(sc["capabilities"])["add"])) {
      if (!BASELINE_CAPS.has(String(cap))) out.push(`${where}capability ${String(cap)} added`);
    }
    for (const p of arr(c["ports"])) {
      const hp = obj(p)["hostPort"];
      if (hp !== undefined && hp !== 0) out.push(`${where}hostPort ${String(hp)}`);
    }
    if (sc["procMount"] !== undefined && sc["procMount"] !== "Default")
      out.push(`${where}securityContext.procMount=${String(sc["procMount"])}`);
    seLinux(sc, where);
    appArmor(sc, where);
    seccompUnconfined(sc, where);
  }
  if (level === "baseline") return out;

  // ---- restricted (Windows pods are exempt from the Linux-only controls below)
  if (obj(spec["os"])["name"] === "windows") return out;
  for (const v of arr(spec["volumes"])) {
    const vo = obj(v);
    const type = RESTRICTED_FORBIDDEN_VOLUMES.find((t) => vo[t] !== undefined);
    if (type) out.push(`volume ${JSON.stringify(String(vo["name"] ?? "?"))} of type ${type}`);
  }
  const podNonRoot = psc["runAsNonRoot"];
  if (psc["runAsUser"] === 0) out.push("securityContext.runAsUser=0");
  const podSeccomp = obj(psc["seccompProfile"])["type"];
  const seccompOk = (t: unknown) => t === "RuntimeDefault" || t === "Localhost";
  for (const { what, sc } of containers) {
    const where = `${what}: `;
    if (sc["allowPrivilegeEscalation"] !== false)
      out.push(`${where}securityContext.allowPrivilegeEscalation must be false`);
    const nonRoot = sc["runAsNonRoot"] ?? podNonRoot;
    if (nonRoot !== true) out.push(`${where}securityContext.runAsNonRoot must be true (pod or container)`);
    if (sc["runAsUser"] === 0) out.push(`${where}securityContext.runAsUser=0`);
    const seccomp = obj(sc["seccompProfile"])["type"] ?? podSeccomp;
    if (!seccompOk(seccomp))
      out.push(`${where}securityContext.seccompProfile.type must be RuntimeDefault or Localhost (pod or container)`);
    const caps = obj(sc["capabilities"]);
    if (!arr(caps["drop"]).some((d) => d === "ALL"))
      out.push(`${where}securityContext.capabilities.drop must include ALL`);
    for (const cap of arr(caps["add"]))
      if (cap !== "NET_BIND_SERVICE" && BASELINE_CAPS.has(String(cap)))
        out.push(`${where}capability ${String(cap)} added`);
  }
  return out;
}
