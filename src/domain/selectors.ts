import { PaasError } from "../errors.ts";
import { isLabelKey, isLabelValue } from "./names.ts";

// Kubernetes label selectors: kubectl's text syntax read into a LabelSelector, and a
// LabelSelector applied to a label set the way the API server does.

/** LabelSelectorRequirement is one matchExpressions term (the shape of client-node's V1LabelSelectorRequirement). */
export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

/** LabelSelector is matchLabels and matchExpressions, all of which must hold (client-node's V1LabelSelector). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/**
 * parseLabelSelector reads a label selector in kubectl's syntax (`k=v`, `k==v`, `k!=v`,
 * `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, comma-separated, all must hold) into a
 * LabelSelector; "" (or only spaces) means none. Keys and values must be valid label keys
 * and values. Errors are INVALID_ARGUMENT: `<what> "<text>": <why>`.
 */
export function parseLabelSelector(raw: string, what = "label selector"): LabelSelector | undefined {
  const text = raw.trim();
  if (text === "") return undefined;
  const bad = (why: string) => new PaasError("invalid_argument", `${what} "${text}": ${why}`);
  const matchLabels: Record<string, string> = {};
  const matchExpressions: LabelSelectorRequirement[] = [];
  for (const term of splitTerms(text, bad)) {
    let m: RegExpExecArray | null;
    let key: string;
    if ((m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(term))) {
      key = m[1]!;
      const value = m[3]!;
      if (!isLabelValue(value)) throw bad(`"${value}" is not a label value`);
      if (m[2] === "!=") matchExpressions.push({ key, operator: "NotIn", values: [value] });
      else if (key in matchLabels && matchLabels[key] !== value) throw bad(`${key} cannot equal two values`);
      else matchLabels[key] = value;
    } else if ((m = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(term))) {
      key = m[1]!;
      const values = m[3]!.split(",").map((v) => v.trim());
      if (values.some((v) => v === "" || !isLabelValue(v))) throw bad(`the values of ${key} must be label values`);
      matchExpressions.push({ key, operator: m[2] === "in" ? "In" : "NotIn", values });
    } else if ((m = /^(!?)\s*([^\s!=(),]+)$/.exec(term))) {
      key = m[2]!;
      matchExpressions.push({ key, operator: m[1] ? "DoesNotExist" : "Exists" });
    } else {
      throw bad(`cannot read "${term}"`);
    }
    if (!isLabelKey(key)) throw bad(`"${key}" is not a label key`);
  }
  return {
    ...(Object.keys(matchLabels).length > 0 ? { matchLabels } : {}),
    ...(matchExpressions.length > 0 ? { matchExpressions } : {}),
  };
}

/** selectorKeys lists the label keys a selector looks at. */
export function selectorKeys(selector: LabelSelector): string[] {
  return [...Object.keys(selector.matchLabels ?? {}), ...(selector.matchExpressions ?? []).map((e) => e.key)];
}

/**
 * selectsByValue tells whether a selector says what its objects ARE: a `k=v` or `k in (…)`
 * term. One of only negations and existence tests admits every object without the labels.
 */
export function selectsByValue(selector: LabelSelector): boolean {
  return (
    Object.keys(selector.matchLabels ?? {}).length > 0 ||
    (selector.matchExpressions ?? []).some((e) => e.operator === "In")
  );
}

/** selectorMatches applies a label selector (matchLabels and matchExpressions) to a label set. */
export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case "In":
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case "NotIn":
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
      default:
        return false; // an operator we do not know matches nothing, as in Kubernetes
    }
  }
  return true;
}

// Terms are separated by commas outside parentheses.
function splitTerms(text: string, bad: (why: string) => PaasError): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    if (depth < 0 || depth > 1) throw bad("unbalanced parentheses");
    if ((c === "," && depth === 0) || i === text.length) {
      const term = text.slice(start, i).trim();
      if (term === "") throw bad("empty term");
      terms.push(term);
      start = i + 1;
    }
  }
  if (depth !== 0) throw bad("unbalanced parentheses");
  return terms;
}
