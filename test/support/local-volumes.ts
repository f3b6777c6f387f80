import * as k8s from "@kubernetes/client-node";

// Real bound claims on the testbed: kwok has no volume provisioner for a StorageClass of our own,
// so the tests create static PersistentVolumes (hostPath, never mounted by kwok) of a
// `kubernetes.io/no-provisioner` class, and the real PV controller binds claims to them.

/** LocalVolumes is a StorageClass with static PersistentVolumes of 1Gi each. */
export class LocalVolumes {
  readonly storageClass: string;
  readonly volumes: string[];
  private readonly core: k8s.CoreV1Api;
  private readonly storage: k8s.StorageV1Api;

  constructor(kc: k8s.KubeConfig, tag: string, count: number) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.storage = kc.makeApiClient(k8s.StorageV1Api);
    this.storageClass = `paas-e2e-local-${tag}`;
    this.volumes = Array.from({ length: count }, (_, i) => `paas-e2e-pv-${tag}-${i}`);
  }

  async create(): Promise<void> {
    await this.storage.createStorageClass({
      body: {
        metadata: { name: this.storageClass },
        provisioner: "kubernetes.io/no-provisioner",
        volumeBindingMode: "Immediate",
        reclaimPolicy: "Retain",
      },
    });
    for (const pv of this.volumes) {
      await this.core.createPersistentVolume({
        body: {
          metadata: { name: pv },
          spec: {
            capacity: { storage: "1Gi" },
            accessModes: ["ReadWriteOnce"],
            storageClassName: this.storageClass,
            persistentVolumeReclaimPolicy: "Retain",
            hostPath: { path: `/tmp/${pv}` },
          },
        },
      });
    }
  }

  async destroy(): Promise<void> {
    for (const pv of this.volumes) await this.core.deletePersistentVolume({ name: pv }).catch(() => undefined);
    await this.storage.deleteStorageClass({ name: this.storageClass }).catch(() => undefined);
  }

  /** statefulSet is a small StatefulSet with one claim template "data" of this class. */
  statefulSet(name: string, replicas: number): k8s.V1StatefulSet {
    return {
      metadata: { name },
      spec: {
        replicas,
        serviceName: name,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            containers: [
              {
                name: "db",
                image: "registry.k8s.io/pause:3.10",
                resources: { requests: { cpu: "10m", memory: "16Mi" }, limits: { cpu: "50m", memory: "32Mi" } },
                volumeMounts: [{ name: "data", mountPath: "/data" }],
              },
            ],
          },
        },
        volumeClaimTemplates: [
          {
            metadata: { name: "data" },
            spec: {
              accessModes: ["ReadWriteOnce"],
              storageClassName: this.storageClass,
              resources: { requests: { storage: "1Gi" } },
            },
          },
        ],
      },
    };
  }
}
