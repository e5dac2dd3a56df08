// Loads the built package (bindings/wasm/build.sh) in Node and checks that
// views stay live: hydrate, push, flush, listeners, relationships, errors.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const { Engine } = require("../pkg/rindle_wasm.js");

const engine = new Engine();
engine.addTable(
  {
    name: "issue",
    columns: [
      { name: "id", type: "integer", nullable: false },
      { name: "title", type: "text" },
      { name: "open", type: "boolean" },
    ],
    primaryKey: ["id"],
  },
  [
    { id: 1, title: "crash on start", open: true },
    [2, "typo", false],
  ],
);
engine.addTable(
  {
    name: "comment",
    columns: [
      { name: "id", type: "integer", nullable: false },
      { name: "issueId", type: "integer" },
      { name: "body", type: "text" },
    ],
    primaryKey: ["id"],
  },
  [{ id: 10, issueId: 1, body: "me too" }],
);

const open = engine.view({
  table: "issue",
  where: { type: "simple", op: "=", left: { type: "column", name: "open" }, right: { type: "literal", value: true } },
  orderBy: [["id", "asc"]],
  related: [
    {
      correlation: { parentField: ["id"], childField: ["issueId"] },
      subquery: { table: "comment", alias: "comments", orderBy: [["id", "asc"]] },
    },
  ],
});
assert.deepEqual(engine.data(open), [
  { id: 1, title: "crash on start", open: true, comments: [{ id: 10, issueId: 1, body: "me too" }] },
]);

const seen = [];
engine.subscribe(open, (data) => seen.push(data));

engine.push("issue", { op: "edit", row: { id: 2, title: "typo", open: true } });
engine.push("comment", { op: "add", row: { id: 11, issueId: 2, body: "fixed?" } });
assert.equal(seen.length, 0, "listeners wait for flush");
assert.equal(engine.flush(), 1);
assert.equal(seen.length, 1);
assert.deepEqual(seen[0].map((i) => [i.id, i.comments.length]), [[1, 1], [2, 1]]);

engine.push("issue", { op: "remove", row: { id: 1 } });
engine.flush();
assert.deepEqual(engine.data(open).map((i) => i.id), [2]);
assert.equal(seen.length, 2);
assert.equal(engine.flush(), 0, "nothing changed, nobody called");
assert.equal(seen.length, 2);

// Bad input: JS Errors with a kind, and nothing changes.
const kind = (f) => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof Error);
    return e.kind;
  }
  assert.fail("no error");
};
assert.equal(kind(() => engine.view("{\"table\":")), "json");
assert.equal(kind(() => engine.view({ table: "nope" })), "query");
assert.equal(kind(() => engine.view({ table: "issue", orderBy: [["nope", "asc"]] })), "query");
assert.equal(kind(() => engine.push("issue", { op: "add", row: { id: 2, title: "dup", open: true } })), "row");
assert.equal(kind(() => engine.push("issue", { op: "add", row: { id: 3, nope: 1 } })), "row");
assert.equal(kind(() => engine.push("issue", { op: "add", row: { id: "three" } })), "row");
assert.equal(kind(() => engine.push("issue", { op: "remove", row: { id: 99 } })), "row");
assert.equal(kind(() => engine.push("nope", { op: "add", row: {} })), "schema");
assert.equal(kind(() => engine.data(999)), "view");
// values JSON cannot carry, and JSON text too deep to walk
assert.equal(kind(() => engine.push("issue", { op: "add", row: { id: NaN } })), "json");
assert.equal(kind(() => engine.push("issue", { op: "add", row: { id: 5, title: () => 1 } })), "json");
assert.equal(kind(() => engine.push("issue", { op: "add", row: { id: 5n } })), "json");
let deep = { table: "issue" };
for (let i = 0; i < 500; i++) deep = { nested: deep };
assert.equal(kind(() => engine.view(deep)), "json");
assert.equal(kind(() => engine.addTable({ name: "x", columns: [{ name: "id", type: "integer", nullable: false }], primaryKey: ["id"] }, { not: "rows" })), "json");
// a key set to undefined is left out, as JSON.stringify does
engine.push("issue", { op: "edit", row: { id: 2, title: "renamed", open: true, extra: undefined } });
engine.flush();
assert.deepEqual(engine.data(open).map((i) => i.title), ["renamed"]);
assert.equal(seen.length, 3);
engine.flush();
assert.deepEqual(engine.data(open).map((i) => i.id), [2]);
assert.equal(seen.length, 3);

assert.equal(engine.removeView(open), true);
assert.equal(kind(() => engine.data(open)), "view");

// Results are plain JS values, exactly as JSON.parse would make them: a
// column named like an Object.prototype property is an own property, floats
// and nulls come through, a singular level is an object or null, and a
// relationship aggregate is its value.
engine.addTable(
  {
    name: "odd",
    columns: [
      { name: "id", type: "integer", nullable: false },
      { name: "__proto__", type: "text" },
      { name: "x", type: "real" },
    ],
    primaryKey: ["id"],
  },
  [
    // (a computed key: a literal `__proto__:` would set the prototype)
    { id: 1, ["__proto__"]: "p", x: 0.1 },
    [2, null, -2.5e-300],
  ],
);
const odd = engine.view({ table: "odd", orderBy: [["id", "asc"]] });
const rows = engine.data(odd);
assert.deepEqual(JSON.stringify(rows), '[{"id":1,"__proto__":"p","x":0.1},{"id":2,"__proto__":null,"x":-2.5e-300}]');
assert.ok(Object.hasOwn(rows[0], "__proto__"));
assert.equal(Object.getPrototypeOf(rows[0]), Object.prototype);
const first = engine.view({ table: "odd", orderBy: [["id", "desc"]], one: true });
assert.equal(JSON.stringify(engine.data(first)), '{"id":2,"__proto__":null,"x":-2.5e-300}');
const none = engine.view({
  table: "odd",
  where: { type: "simple", op: "=", left: { type: "column", name: "id" }, right: { type: "literal", value: 7 } },
  one: true,
});
assert.equal(engine.data(none), null);
const counted = engine.view({
  table: "issue",
  orderBy: [["id", "asc"]],
  related: [
    {
      correlation: { parentField: ["id"], childField: ["issueId"] },
      subquery: { table: "comment", alias: "n", aggregate: "count" },
    },
  ],
});
const counts = () => engine.data(counted).map((i) => [i.id, i.n]);
const before = counts();
engine.push("comment", { op: "add", row: { id: 99, issueId: before[0][0], body: "+1" } });
assert.deepEqual(counts(), [[before[0][0], before[0][1] + 1]]);
console.log("wasm: live views over in-memory tables behave in Node");
