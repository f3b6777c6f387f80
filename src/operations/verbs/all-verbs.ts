import type { AnyVerb } from "../verb.ts";
import { createNamespace } from "./create-namespace.ts";
import { deleteNamespace } from "./delete-namespace.ts";
import { installRelease } from "./install-release.ts";
import { recoverRelease } from "./recover-release.ts";
import { rollbackRelease } from "./rollback-release.ts";
import { uninstallRelease } from "./uninstall-release.ts";
import { upgradeRelease } from "./upgrade-release.ts";
import type { VerbDeps } from "./verb-deps.ts";
import { deletePod } from "./delete-pod.ts";
import { deletePersistentVolumeClaim } from "./delete-pvc.ts";
import { rebuildStatefulSetMember } from "./rebuild-statefulset-member.ts";
import { restartWorkload } from "./restart-workload.ts";
import { scaleWorkload } from "./scale-workload.ts";
import type { WorkloadVerbDeps } from "./workload-common.ts";

/** Verbs are every mutation the service runs, one file each. */
export interface Verbs {
  install: ReturnType<typeof installRelease>;
  upgrade: ReturnType<typeof upgradeRelease>;
  rollback: ReturnType<typeof rollbackRelease>;
  uninstall: ReturnType<typeof uninstallRelease>;
  recover: ReturnType<typeof recoverRelease>;
  createNamespace: ReturnType<typeof createNamespace>;
  deleteNamespace: ReturnType<typeof deleteNamespace>;
}

/** createVerbs builds every verb on the shared dependencies. */
export function createVerbs(deps: VerbDeps): Verbs {
  return {
    install: installRelease(deps),
    upgrade: upgradeRelease(deps),
    rollback: rollbackRelease(deps),
    uninstall: uninstallRelease(deps),
    recover: recoverRelease(deps),
    createNamespace: createNamespace(deps),
    deleteNamespace: deleteNamespace(deps),
  };
}

/** allVerbs lists them for the engine's registry. */
export function allVerbs(v: Verbs | WorkloadVerbs): AnyVerb[] {
  return Object.values(v);
}

/** WorkloadVerbs are the day-2 actions on a tenant's workloads (WorkloadService). */
export interface WorkloadVerbs {
  scaleWorkload: ReturnType<typeof scaleWorkload>;
  restartWorkload: ReturnType<typeof restartWorkload>;
  deletePod: ReturnType<typeof deletePod>;
  deletePersistentVolumeClaim: ReturnType<typeof deletePersistentVolumeClaim>;
  rebuildStatefulSetMember: ReturnType<typeof rebuildStatefulSetMember>;
}

/** createWorkloadVerbs builds the workload verbs on their dependencies. */
export function createWorkloadVerbs(deps: WorkloadVerbDeps): WorkloadVerbs {
  return {
    scaleWorkload: scaleWorkload(deps),
    restartWorkload: restartWorkload(deps),
    deletePod: deletePod(deps),
    deletePersistentVolumeClaim: deletePersistentVolumeClaim(deps),
    rebuildStatefulSetMember: rebuildStatefulSetMember(deps),
  };
}
