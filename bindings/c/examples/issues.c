/* A live query over each backend, from C: register a table, subscribe,
 * write, read, and see bad input refused. Exits non-zero on any surprise.
 *
 *   cc examples/issues.c -Iinclude ../../target/debug/librindle_ffi.a \
 *      -lpthread -ldl -lm -o issues && ./issues /tmp
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rindle.h"

static int failures = 0;

#define CHECK(cond, what)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAILED: %s (last error: %s)\n", what,                   \
              rindle_last_error());                                            \
      failures++;                                                              \
    }                                                                          \
  } while (0)

struct seen {
  int updates;
  char last[4096];
};

static void on_update(void *user_data, const char *json, size_t len) {
  struct seen *s = user_data;
  s->updates++;
  snprintf(s->last, sizeof s->last, "%.*s", (int)len, json);
  printf("  update %d: %s\n", s->updates, json);
}

static const char *OPEN_ISSUES =
    "{\"table\":\"issue\",\"where\":{\"type\":\"simple\",\"op\":\"=\","
    "\"left\":{\"type\":\"column\",\"name\":\"open\"},"
    "\"right\":{\"type\":\"literal\",\"value\":true}},"
    "\"orderBy\":[[\"id\",\"asc\"]]}";

/* The same story on any backend once its table is registered. */
static void live(RindleDb *db, const char *name) {
  printf("%s:\n", name);
  RindleQuery *q = NULL;
  CHECK(rindle_query(db, OPEN_ISSUES, &q) == RINDLE_OK, "query");
  struct seen s = {0};
  CHECK(rindle_subscribe(q, on_update, &s) == RINDLE_OK, "subscribe");
  CHECK(s.updates == 1 && strstr(s.last, "\"hydrated\""), "hydrated at once");

  uint64_t tx = 0;
  CHECK(rindle_write(db,
                     "[{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "{\"id\":1,\"title\":\"crash on start\",\"open\":true}},"
                     "{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "[2,\"typo\",false]}]",
                     &tx) == RINDLE_OK,
        "insert two rows");
  CHECK(s.updates == 2 && strstr(s.last, "crash on start"), "one row added");
  CHECK(!strstr(s.last, "typo"), "the closed issue stays out");

  CHECK(rindle_write(db,
                     "[{\"op\":\"update\",\"table\":\"issue\",\"row\":"
                     "{\"id\":2,\"title\":\"typo\",\"open\":true}},"
                     "{\"op\":\"delete\",\"table\":\"issue\",\"row\":{\"id\":1}}]",
                     &tx) == RINDLE_OK,
        "update and delete");
  CHECK(s.updates == 3 && strstr(s.last, "\"remove\"") && strstr(s.last, "\"add\""),
        "one update with both changes");

  char *data = NULL;
  CHECK(rindle_read(q, &data) == RINDLE_OK, "read");
  CHECK(data && strcmp(data, "[{\"id\":2,\"title\":\"typo\",\"open\":true}]") == 0,
        "the view equals the data");
  printf("  read: %s\n", data ? data : "(null)");
  rindle_string_free(data);

  /* Bad input: a typed status, a message, and nothing changes. */
  CHECK(rindle_write(db, "[{\"op\":", &tx) == RINDLE_ERR_JSON, "malformed JSON");
  CHECK(rindle_write(db,
                     "[{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "{\"id\":3,\"title\":\"x\",\"open\":true}},"
                     "{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "{\"id\":2,\"title\":\"dup\",\"open\":true}}]",
                     &tx) == RINDLE_ERR_CONSTRAINT,
        "duplicate key refuses the whole batch");
  CHECK(rindle_write(db,
                     "[{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "{\"id\":4,\"nope\":1}}]",
                     &tx) == RINDLE_ERR_ROW,
        "unknown column");
  CHECK(strstr(rindle_last_error(), "nope") != NULL, "the message names it");
  CHECK(rindle_write(db,
                     "[{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "{\"id\":\"four\",\"title\":\"x\",\"open\":true}}]",
                     &tx) == RINDLE_ERR_ROW,
        "wrong type");
  RindleQuery *bad = NULL;
  CHECK(rindle_query(db, "{\"table\":\"issue\",\"orderBy\":[[\"nope\",\"asc\"]]}",
                     &bad) == RINDLE_ERR_QUERY,
        "unknown column in a query");
  CHECK(bad == NULL, "no handle on failure");
  CHECK(rindle_query(db, "{\"table\":\"nope\"}", &bad) == RINDLE_ERR_QUERY,
        "unknown table in a query");
  CHECK(rindle_write(NULL, "[]", &tx) == RINDLE_ERR_ARGUMENT, "null handle");
  CHECK(s.updates == 3, "refused writes deliver nothing");
  CHECK(rindle_read(q, &data) == RINDLE_OK &&
            strcmp(data, "[{\"id\":2,\"title\":\"typo\",\"open\":true}]") == 0,
        "and change nothing");
  rindle_string_free(data);

  rindle_query_free(q);
  CHECK(rindle_write(db,
                     "[{\"op\":\"insert\",\"table\":\"issue\",\"row\":"
                     "{\"id\":5,\"title\":\"after\",\"open\":true}}]",
                     &tx) == RINDLE_OK,
        "writes go on after the query is freed");
  CHECK(s.updates == 3, "a freed query delivers nothing");
}

static const char *ISSUE_SCHEMA =
    "{\"name\":\"issue\",\"columns\":["
    "{\"name\":\"id\",\"type\":\"integer\",\"nullable\":false},"
    "{\"name\":\"title\",\"type\":\"text\"},"
    "{\"name\":\"open\",\"type\":\"boolean\"}],\"primaryKey\":[\"id\"]}";

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  char path[4096];
  RindleDb *db = NULL;

  CHECK(rindle_open_memory(&db) == RINDLE_OK, "open memory");
  CHECK(rindle_register_table(db, "{\"name\":") == RINDLE_ERR_JSON, "bad table JSON");
  CHECK(rindle_register_table(db, ISSUE_SCHEMA) == RINDLE_OK, "register");
  CHECK(rindle_execute_sql(db, "DELETE FROM issue", NULL, NULL) ==
            RINDLE_ERR_UNSUPPORTED,
        "no SQL on memory");
  live(db, "memory");
  rindle_close(db);

  snprintf(path, sizeof path, "%s/issues.redb", dir);
  db = NULL;
  CHECK(rindle_open_redb(path, &db) == RINDLE_OK, "open redb");
  CHECK(rindle_register_table(db, ISSUE_SCHEMA) == RINDLE_OK, "register");
  live(db, "redb");
  rindle_close(db);

  snprintf(path, sizeof path, "%s/issues.db", dir);
  db = NULL;
  CHECK(rindle_open_sqlite(path, &db) == RINDLE_OK, "open sqlite");
  CHECK(rindle_register_table(
            db, "{\"name\":\"issue\",\"createSql\":\"CREATE TABLE issue ("
                "id INTEGER PRIMARY KEY, title TEXT, open BOOLEAN)\"}") == RINDLE_OK,
        "create and register");
  live(db, "sqlite");
  /* SQL writes reach subscribers as well. */
  RindleQuery *q = NULL;
  struct seen s = {0};
  CHECK(rindle_query(db, OPEN_ISSUES, &q) == RINDLE_OK, "query");
  CHECK(rindle_subscribe(q, on_update, &s) == RINDLE_OK, "subscribe");
  uint64_t tx = 0;
  CHECK(rindle_execute_sql(db, "UPDATE issue SET open = ?1 WHERE id = ?2", "[false, 2]",
                           &tx) == RINDLE_OK,
        "SQL update");
  CHECK(s.updates == 2 && strstr(s.last, "\"remove\""), "SQL change delivered");
  CHECK(rindle_execute_sql(db, "UPDATE nope SET x = 1", NULL, &tx) == RINDLE_ERR_SQL,
        "bad SQL");
  rindle_query_free(q);
  rindle_close(db);

  if (failures) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("all checks passed\n");
  return 0;
}
