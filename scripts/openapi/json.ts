/** Json is any JSON value; the OpenAPI document is built from these. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** JsonObject is a JSON object: a schema, an operation, the document. */
export type JsonObject = { [key: string]: Json };
