import type { DescEnum, DescEnumValue, DescField, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { getComments } from "@bufbuild/protoplugin";

/** describe is the leading comment of a proto element as Markdown, or undefined when it has none. */
export function describe(
  desc: DescMessage | DescField | DescEnum | DescEnumValue | DescService | DescMethod,
): string | undefined {
  const leading = getComments(desc).leading;
  if (leading === undefined) return undefined;
  // protoc keeps the space after "//" on every line; drop it so Markdown sees no indentation.
  const text = leading
    .split("\n")
    .map((line) => line.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
  return text === "" ? undefined : text;
}

/** summarize is the first sentence of a description, for an operation's one-line summary. */
export function summarize(description: string | undefined): string | undefined {
  if (description === undefined) return undefined;
  const flat = description.replace(/\s+/g, " ");
  const end = flat.search(/\.(\s|$)/);
  return end === -1 ? flat : flat.slice(0, end + 1);
}
