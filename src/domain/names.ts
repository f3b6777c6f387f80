import { PaasError, printable } from "../errors.ts";

// What Kubernetes and Helm accept as names, label keys and label values: the one place these
// rules are written. The front door (validation.ts) adds this service's own policy on top (the
// namespace prefix, no "--"); adapters check the plain rules again before a name reaches a URL,
// a label selector or helm's argv; the catalogue checks host names with them.

/** A DNS-1123 label: namespaces and most object names (and each part of a host name). */
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** The start of a DNS-1123 label: a namespace prefix such as "paas-ws-". */
const DNS1123_LABEL_START = /^[a-z0-9][-a-z0-9]*$/;
/**
 * A DNS-1123 subdomain: labels joined by "." (Kubernetes' object-name pattern). Helm's release
 * names follow it too (helm pkg/chartutil ValidateReleaseName: `validName`, releaseNameMaxLen).
 */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label value ("" included) and the name part of a label key: alphanumeric at both ends, -_. inside. */
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** DNS1123_LABEL_MAX is the length limit of a DNS-1123 label (and of a label value). */
export const DNS1123_LABEL_MAX = 63;
/** DNS1123_SUBDOMAIN_MAX is the length limit of a DNS-1123 subdomain (object names, label key prefixes, host names). */
export const DNS1123_SUBDOMAIN_MAX = 253;
/** RELEASE_NAME_MAX is Helm's releaseNameMaxLen: 63 less 10 that charts append to derive object names. */
export const RELEASE_NAME_MAX = 53;

/** isDnsLabel: lowercase letters, digits and "-", alphanumeric at both ends, at most 63 characters. */
export function isDnsLabel(s: string): boolean {
  return s.length <= DNS1123_LABEL_MAX && DNS1123_LABEL.test(s);
}

/** isDnsLabelPrefix: what a DNS-1123 label may start with (alphanumeric, then a-z 0-9 '-'), e.g. "paas-ws-". */
export function isDnsLabelPrefix(s: string): boolean {
  return s.length <= DNS1123_LABEL_MAX && DNS1123_LABEL_START.test(s);
}

/** isDnsSubdomain: DNS-1123 labels joined by ".", at most 253 characters. */
export function isDnsSubdomain(s: string): boolean {
  return s.length <= DNS1123_SUBDOMAIN_MAX && DNS1123_SUBDOMAIN.test(s);
}

/**
 * isReleaseName is Helm's own rule: a DNS-1123 subdomain of at most 53 characters, so a
 * dotted name such as "my-app.v2" is one. Where a release name ends up in Kubernetes it
 * stays valid: in a Secret name (sh.helm.release.v1.<name>.v<N>, a subdomain) and as a label
 * value (owner=helm,name=<name>; app.kubernetes.io/instance=<name>), both of which allow dots;
 * Lease names are a hash of it (src/kube/leases/).
 */
export function isReleaseName(s: string): boolean {
  return s.length <= RELEASE_NAME_MAX && DNS1123_SUBDOMAIN.test(s);
}

/** isLabelValue: "" or at most 63 characters of A-Z a-z 0-9 - _ ., alphanumeric at both ends. */
export function isLabelValue(s: string): boolean {
  return s.length <= DNS1123_LABEL_MAX && LABEL_VALUE.test(s);
}

/** isLabelKey: an optional DNS-1123 subdomain prefix and "/", then a name shaped like a non-empty label value. */
export function isLabelKey(key: string): boolean {
  const slash = key.indexOf("/");
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (name === "" || !isLabelValue(name)) return false;
  return slash < 0 || isDnsSubdomain(key.slice(0, slash));
}

/** assertNamespaceName refuses (INVALID_ARGUMENT) a namespace name Kubernetes would refuse. */
export function assertNamespaceName(name: string): void {
  if (!isDnsLabel(name)) {
    throw new PaasError(
      "invalid_argument",
      `namespace "${printable(name)}" must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63 characters)`,
    );
  }
}

/**
 * assertReleaseName refuses (INVALID_ARGUMENT) a release name Helm would refuse. A valid one
 * is also a valid label value, so it cannot smuggle extra terms into a label selector.
 */
export function assertReleaseName(name: string): void {
  if (!isReleaseName(name)) {
    throw new PaasError(
      "invalid_argument",
      `release name "${printable(name)}" must be a valid Helm release name (a-z, 0-9, '-' and '.', alphanumeric around each '.', at most ${RELEASE_NAME_MAX} characters)`,
    );
  }
}
