/** Helm release labels naming who made a revision (`helm history -o json` shows them). */
export const CALLER_LABEL = "paas-caller";
export const OPERATION_LABEL = "paas-operation";

/** labelValue turns an API key id into a label value (63 chars, alphanumeric at both ends). */
export function labelValue(id: string): string {
  return id
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
}
