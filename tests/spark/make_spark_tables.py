"""Tables written by Delta on Apache Spark, one per feature, each with several versions.

Run inside the Spark peer (tests/spark/spark_peer.py, op "make_tables"), which caches the
result under target/ keyed by the hash of this file, spark_peer.py and
tests/python/requirements-spark.txt. For every table and every version, Spark's own read
(`versionAsOf`) is stored as the expected answer in <name>.expected.json; nothing is
written by hand. tests/tests/spark_writes_we_read.rs compares our reads with it.

Adding a table is adding one entry to TABLES: a name, the table features it exercises
(as Delta names them, so a refusal can be checked to name one of them), and a list of
steps. A step is an SQL string with `{t}` for the table (delta.`<path>`), or a Python
function `(spark, path) -> None`.
"""

from __future__ import annotations

import json
import os

# Every column type, NULLs everywhere, NaN and infinities, non-ASCII, binary, nested.
ALL_TYPES_COLS = (
    "id INT, i8 TINYINT, i16 SMALLINT, i32 INT, i64 BIGINT, f32 FLOAT, f64 DOUBLE, "
    "dec5_2 DECIMAL(5,2), dec18_6 DECIMAL(18,6), dec38_10 DECIMAL(38,10), s STRING, bin BINARY, "
    "flag BOOLEAN, d DATE, ts TIMESTAMP, ts_ntz TIMESTAMP_NTZ, "
    "arr ARRAY<INT>, st STRUCT<a: INT, b: STRING, inner: STRUCT<x: DOUBLE>>, m MAP<STRING, INT>, "
    "arr_st ARRAY<STRUCT<k: STRING, v: BIGINT>>"
)

ALL_TYPES_ROWS_1 = """
(1, -128Y, -32768S, -2147483648, -9223372036854775808L, float('NaN'), double('Infinity'),
 -999.99BD, 123456789012.123456BD, 9999999999999999999999999999.9999999999BD, 'plain', X'00FF10',
 true, DATE'0001-01-01', TIMESTAMP'1970-01-01 00:00:00Z', TIMESTAMP_NTZ'9999-12-31 23:59:59.999999',
 array(1, NULL, 3), named_struct('a', 1, 'b', 'ü', 'inner', named_struct('x', double('-Infinity'))),
 map('a', 1, 'b', NULL), array(named_struct('k', 'x', 'v', 1L))),
(2, 127Y, 32767S, 2147483647, 9223372036854775807L, float('Infinity'), double('NaN'),
 999.99BD, -0.000001BD, -9999999999999999999999999999.9999999999BD, 'Zürich ünïcødé 漢字 🩺', X'',
 false, DATE'9999-12-31', TIMESTAMP'2024-02-29 12:34:56.123456Z', TIMESTAMP_NTZ'0001-01-01 00:00:00',
 array(), named_struct('a', NULL, 'b', NULL, 'inner', NULL), map(), array()),
(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL),
(4, 0Y, 0S, 0, 0L, float('-Infinity'), -0.0D, 0.00BD, 0.000000BD, 0.0000000001BD, '', X'C328',
 NULL, DATE'1969-12-31', TIMESTAMP'1969-12-31 23:59:59.999999Z', TIMESTAMP_NTZ'2000-02-29 01:02:03.000004',
 array(NULL), named_struct('a', -5, 'b', '', 'inner', named_struct('x', double('NaN'))),
 map('ü', -5), array(named_struct('k', NULL, 'v', NULL), NULL))
"""

ALL_TYPES_ROWS_2 = """
(5, 7Y, 300S, 42, 1234567890123L, 1.1F, 0.1D, 1.50BD, 1.5BD, 1.5BD, 'emoji 🩺🧬 mixed', X'0A09',
 true, DATE'2024-06-30', TIMESTAMP'2262-04-11 23:47:16.854775Z', TIMESTAMP_NTZ'1900-01-01 00:00:00',
 array(2147483647, -2147483648), named_struct('a', 7, 'b', 'x', 'inner', named_struct('x', 1e-300D)),
 map('x', 1, 'y', 2), array(named_struct('k', 'ü', 'v', -1L)))
"""

PART_COLS = "id INT, s STRING, i INT, d DATE, ts TIMESTAMP, v DOUBLE"


def _part_rows(first: int) -> str:
    specials = ["'a b'", "'100%'", "'x=y'", "'a/b'", "'Zürich'", "NULL", "'späce ü/?&:+#'", "''"]
    ints = ["1", "-7", "NULL"]
    dates = ["DATE'2024-01-01'", "NULL", "DATE'1999-12-31'"]
    tss = ["TIMESTAMP'2024-01-01 10:00:00Z'", "TIMESTAMP'2024-01-01 10:00:00.123456Z'", "NULL"]
    rows = []
    for k in range(12):
        n = first + k
        rows.append(
            f"({n}, {specials[n % len(specials)]}, {ints[n % 3]}, {dates[(n // 3) % 3]}, "
            f"{tss[(n // 2) % 3]}, {n * 1.25})"
        )
    return ",".join(rows)


def _ids(first: int, n: int, groups: int = 3) -> str:
    return ",".join(f"({i}, 'g{i % groups}', {i * 0.5}, 'row {i} ü')" for i in range(first, first + n))


SIMPLE_COLS = "id BIGINT, grp STRING, amount DOUBLE, label STRING"


def _merge_schema_append(spark, path):
    df = spark.sql("SELECT CAST(100 AS BIGINT) AS id, 'g9' AS grp, 1.0D AS amount, 'new' AS label, "
                   "named_struct('p', 1, 'q', 'z') AS extra, DATE'2024-01-02' AS added_day")
    df.write.format("delta").mode("append").option("mergeSchema", "true").save(path)


def _replace_where(spark, path):
    df = spark.sql("SELECT CAST(id + 1000 AS BIGINT) AS id, 'g1' AS grp, 9.5D AS amount, 'replaced' AS label "
                   "FROM range(3)")
    df.write.format("delta").mode("overwrite").option("replaceWhere", "grp = 'g1'").save(path)


def _dynamic_overwrite(spark, path):
    df = spark.sql("SELECT CAST(id + 2000 AS BIGINT) AS id, 'g2' AS grp, 1.5D AS amount, 'dyn' AS label "
                   "FROM range(2)")
    df.write.format("delta").mode("overwrite").option("partitionOverwriteMode", "dynamic").save(path)


def _multipart_checkpoints(spark, path):
    # Classic checkpoints in parts of at most 3 actions each (Delta's own setting).
    spark.conf.set("spark.databricks.delta.checkpoint.partSize", "3")


def _single_part_checkpoints(spark, path):
    spark.conf.unset("spark.databricks.delta.checkpoint.partSize")


def _age_first_commits(spark, path):
    # Log cleanup deletes commit files (by modification time) older than the table's
    # logRetentionDuration, truncated to the day, once a later checkpoint covers them: make
    # the commits before the first checkpoint three days old.
    old = __import__("time").time() - 3 * 86400
    log = os.path.join(path, "_delta_log")
    for name in os.listdir(log):
        if name.endswith((".json", ".crc")) and name[:20].isdigit() and int(name[:20]) < 4:
            os.utime(os.path.join(log, name), (old, old))


TABLES = [
    {
        "name": "all_types",
        "features": ["timestampNtz"],
        "steps": [
            f"CREATE TABLE {{t}} ({ALL_TYPES_COLS}) USING delta",
            f"INSERT INTO {{t}} VALUES {ALL_TYPES_ROWS_1}",
            f"INSERT INTO {{t}} VALUES {ALL_TYPES_ROWS_2}",
            "UPDATE {t} SET s = concat(s, ' ✓'), f64 = f64 * 2 WHERE id IN (1, 5)",
            "DELETE FROM {t} WHERE id = 3",
        ],
    },
    {
        "name": "partitioned_special",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({PART_COLS}) USING delta PARTITIONED BY (s, i, d, ts)",
            f"INSERT INTO {{t}} VALUES {_part_rows(0)}",
            f"INSERT INTO {{t}} VALUES {_part_rows(12)}",
            "DELETE FROM {t} WHERE s = '100%' OR s IS NULL AND id > 12",
            "UPDATE {t} SET v = -1 WHERE i IS NULL",
        ],
    },
    {
        "name": "deletion_vectors",
        "features": ["deletionVectors"],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 200)} AS v({'id, grp, amount, label'})",
            "DELETE FROM {t} WHERE id % 7 = 0",
            "UPDATE {t} SET label = 'updated' WHERE id % 5 = 0",
            f"MERGE INTO {{t}} AS t USING (SELECT * FROM VALUES {_ids(190, 20)} AS v(id, grp, amount, label)) AS s "
            "ON t.id = s.id WHEN MATCHED THEN UPDATE SET label = 'merged' WHEN NOT MATCHED THEN INSERT *",
            "DELETE FROM {t} WHERE grp = 'g1' AND id < 50",
            "REORG TABLE {t} APPLY (PURGE)",
        ],
    },
    {
        "name": "merge_copy_on_write",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta PARTITIONED BY (grp)",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 40)} AS v(id, grp, amount, label)",
            f"MERGE INTO {{t}} AS t USING (SELECT * FROM VALUES {_ids(30, 20)} AS v(id, grp, amount, label)) AS s "
            "ON t.id = s.id WHEN MATCHED AND s.id % 3 = 0 THEN DELETE "
            "WHEN MATCHED THEN UPDATE SET label = concat(s.label, ' merged'), amount = t.amount + s.amount "
            "WHEN NOT MATCHED AND s.id % 2 = 0 THEN INSERT *",
            f"MERGE INTO {{t}} AS t USING (SELECT * FROM VALUES {_ids(0, 10)} AS v(id, grp, amount, label)) AS s "
            "ON t.id = s.id WHEN MATCHED THEN UPDATE SET * "
            "WHEN NOT MATCHED BY SOURCE AND t.id < 20 THEN DELETE "
            "WHEN NOT MATCHED BY SOURCE AND t.id >= 40 THEN UPDATE SET label = 'orphan'",
        ],
    },
    {
        "name": "column_mapping_name",
        "features": ["columnMapping"],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta PARTITIONED BY (grp) TBLPROPERTIES "
            "('delta.columnMapping.mode' = 'name', 'delta.minReaderVersion' = '2', 'delta.minWriterVersion' = '5')",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 12)} AS v(id, grp, amount, label)",
            "ALTER TABLE {t} RENAME COLUMN label TO `note with space`",
            "ALTER TABLE {t} DROP COLUMN amount",
            "ALTER TABLE {t} RENAME COLUMN grp TO `group`",
            "INSERT INTO {t} (id, `group`, `note with space`) VALUES (100, 'g0', 'after renames')",
        ],
    },
    {
        "name": "column_mapping_id",
        "features": ["columnMapping"],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}, nested STRUCT<a: INT, b: STRING>) USING delta TBLPROPERTIES "
            "('delta.columnMapping.mode' = 'id', 'delta.minReaderVersion' = '2', 'delta.minWriterVersion' = '5')",
            "INSERT INTO {t} VALUES (1, 'g1', 1.5, 'one', named_struct('a', 1, 'b', 'x')), (2, 'g2', 2.5, 'two', NULL)",
            "ALTER TABLE {t} RENAME COLUMN nested.b TO renamed_b",
            "ALTER TABLE {t} DROP COLUMN amount",
            "ALTER TABLE {t} ADD COLUMNS (amount DOUBLE)",
            "INSERT INTO {t} VALUES (3, 'g3', 'three', named_struct('a', 3, 'renamed_b', 'z'), 3.5)",
        ],
    },
    {
        "name": "checkpoints_classic",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta PARTITIONED BY (grp) "
            "TBLPROPERTIES ('delta.checkpointInterval' = '3')",
        ]
        + [f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(k * 5, 5)} AS v(id, grp, amount, label)" for k in range(5)]
        + ["DELETE FROM {t} WHERE id % 4 = 1"],
    },
    {
        # A multi-part classic checkpoint at v4 (3 actions per part), then log cleanup: the
        # commits before it are aged, and the checkpoint at v8 deletes them, so versions 0-3
        # are gone for Spark and must be refused by us too.
        "name": "checkpoints_multipart_log_cleanup",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta PARTITIONED BY (grp) "
            "TBLPROPERTIES ('delta.checkpointInterval' = '4', "
            "'delta.logRetentionDuration' = 'interval 1 days', "
            "'delta.deletedFileRetentionDuration' = 'interval 1 days')",
            _multipart_checkpoints,
        ]
        + [f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(k * 4, 4)} AS v(id, grp, amount, label)" for k in range(4)]
        + [_age_first_commits]
        + [f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(100 + k * 4, 4)} AS v(id, grp, amount, label)" for k in range(3)]
        + ["DELETE FROM {t} WHERE id % 5 = 0", _single_part_checkpoints],
    },
    {
        "name": "checkpoints_v2",
        "features": ["v2Checkpoint"],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta TBLPROPERTIES "
            "('delta.checkpointPolicy' = 'v2', 'delta.checkpointInterval' = '2')",
        ]
        + [f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(k * 4, 4)} AS v(id, grp, amount, label)" for k in range(4)]
        + ["UPDATE {t} SET amount = -amount WHERE id < 6"],
    },
    {
        "name": "check_constraints",
        "features": ["checkConstraints"],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 10)} AS v(id, grp, amount, label)",
            "ALTER TABLE {t} ADD CONSTRAINT amount_non_negative CHECK (amount >= 0)",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(10, 5)} AS v(id, grp, amount, label)",
        ],
    },
    {
        "name": "optimize_zorder",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta",
        ]
        + [f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(k * 10, 10, 5)} AS v(id, grp, amount, label)" for k in range(4)]
        + [
            "OPTIMIZE {t} ZORDER BY (id, amount)",
            "DELETE FROM {t} WHERE id BETWEEN 5 AND 12",
            "VACUUM {t} RETAIN 0 HOURS",
        ],
    },
    {
        "name": "schema_evolution",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta PARTITIONED BY (grp)",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 9)} AS v(id, grp, amount, label)",
            _merge_schema_append,
            "ALTER TABLE {t} ADD COLUMNS (late INT)",
            "INSERT INTO {t} VALUES (200, 'g0', 0.0, 'late', NULL, NULL, 7)",
        ],
    },
    {
        "name": "replace_where_dynamic",
        "features": [],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta PARTITIONED BY (grp)",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 12)} AS v(id, grp, amount, label)",
            _replace_where,
            _dynamic_overwrite,
            "RESTORE TABLE {t} TO VERSION AS OF 2",
        ],
    },
    {
        "name": "table_features_misc",
        "features": ["inCommitTimestamp", "generatedColumns", "identityColumns", "rowTracking"],
        "steps": [
            "CREATE TABLE {t} (id BIGINT GENERATED ALWAYS AS IDENTITY, x INT, "
            "x2 INT GENERATED ALWAYS AS (x * 2)) USING delta TBLPROPERTIES "
            "('delta.enableInCommitTimestamps' = 'true', 'delta.enableRowTracking' = 'true')",
            "INSERT INTO {t} (x) VALUES (1), (2), (3)",
            "UPDATE {t} SET x = 10 WHERE x = 2",
            "INSERT INTO {t} (x) VALUES (NULL)",
        ],
    },
    {
        "name": "type_widening",
        "features": ["typeWidening"],
        "steps": [
            "CREATE TABLE {t} (id INT, small SMALLINT) USING delta TBLPROPERTIES ('delta.enableTypeWidening' = 'true')",
            "INSERT INTO {t} VALUES (1, 100S), (2, NULL)",
            "ALTER TABLE {t} ALTER COLUMN small TYPE INT",
            "INSERT INTO {t} VALUES (3, 2000000000)",
        ],
    },
    {
        "name": "liquid_clustering",
        "features": ["clustering"],
        "steps": [
            f"CREATE TABLE {{t}} ({SIMPLE_COLS}) USING delta CLUSTER BY (grp, id)",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(0, 20)} AS v(id, grp, amount, label)",
            f"INSERT INTO {{t}} SELECT * FROM VALUES {_ids(20, 20)} AS v(id, grp, amount, label)",
            "OPTIMIZE {t}",
        ],
    },
]


def build(spark, out: str, canonical_rows) -> dict:
    manifest = {"spark": spark.version, "tables": {}}
    for spec in TABLES:
        name = spec["name"]
        path = os.path.join(out, name)
        t = f"delta.`{path}`"
        for step in spec["steps"]:
            if callable(step):
                step(spark, path)
            else:
                spark.sql(step.replace("{t}", t))
        history = spark.sql(f"DESCRIBE HISTORY {t}").collect()
        latest = max(r["version"] for r in history)
        detail = spark.sql(f"DESCRIBE DETAIL {t}").collect()[0]
        versions = {}
        unreadable = {}
        for v in range(latest + 1):
            try:
                df = spark.read.format("delta").option("versionAsOf", v).load(path)
                versions[str(v)] = canonical_rows(df)
            except Exception as e:  # noqa: BLE001 - e.g. versions whose files VACUUM removed
                lines = [l for l in str(e).splitlines() if "Exception" in l or "[" in l]
                unreadable[str(v)] = (lines[0] if lines else str(e).splitlines()[0])[:300]
        with open(os.path.join(out, f"{name}.expected.json"), "w") as f:
            json.dump({"versions": versions}, f, ensure_ascii=False, allow_nan=False)
        manifest["tables"][name] = {
            "latest_version": latest,
            "unreadable_by_spark": unreadable,
            "features": spec["features"],
            "operations": [r["operation"] for r in sorted(history, key=lambda r: r["version"])],
            "minReaderVersion": detail["minReaderVersion"],
            "minWriterVersion": detail["minWriterVersion"],
            "tableFeatures": sorted(detail["tableFeatures"] or []),
        }
    return manifest
