"""One Spark session (Delta Lake on Apache Spark, local mode) for the whole test run.

Started in the background by ./test.sh before `cargo test` and stopped when test.sh
exits. It listens on 127.0.0.1 (an ephemeral port written to --port-file once the session
is up, so a reader of that file can connect at once) and answers line-delimited JSON:

  {"op":"ping"}                              -> {"ok":true,"spark":..,"delta":..}
  {"op":"read","path":P,"version":N|null}    -> {"ok":true,"rows":[canonical rows]}
  {"op":"history","path":P}                  -> {"ok":true,"history":[{version,operation,..}]}
  {"op":"detail","path":P}                   -> {"ok":true,"detail":{minReaderVersion,..}}
  {"op":"sql","statements":[..]}             -> {"ok":true,"rows":[rows of the last, as JSON]}
  {"op":"make_tables","out":DIR}             -> {"ok":true,"manifest":{..}}  (cached by hash)
  {"op":"scan_files","path":P,"filter":F}    -> {"ok":true,"files_read":N,"rows":M}
  {"op":"changes","path":P,"start":N,"end":M|null}
                                             -> {"ok":true,"rows":[canonical change rows]}

Any failure is {"ok":false,"error":"<exception class and message>"}. Requests are served
one at a time (a lock around Spark), from any number of connections: the Rust test
binaries run in parallel and each opens its own connection.

Rows are canonical as in tests/python/interop_json.py (and pipeline::output::row_to_json),
built from Spark's own schema: the session time zone is UTC, so a TimestampType value comes
back as a naive datetime in UTC and is written with a "Z"; TimestampNTZType without one.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import decimal
import glob
import hashlib
import json
import math
import os
import shutil
import signal
import socketserver
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def log(msg: str) -> None:
    print(f"spark-peer: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Canonical values from Spark's types (the rules of tests/python/interop_json.py)


def _float(v: float):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return float(v)


def _decimal(v: decimal.Decimal, scale: int) -> str:
    with decimal.localcontext() as ctx:
        ctx.prec = 100
        q = v.quantize(decimal.Decimal(1).scaleb(-scale)) if scale > 0 else v.quantize(decimal.Decimal(1))
        return format(q, "f")


def _fmt_datetime(v: _dt.datetime) -> str:
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    )


def value(v, t):
    """Canonical JSON value of the Python value `v` that Spark's collect() gives for type `t`."""
    from pyspark.sql import types as T

    if v is None:
        return None
    if isinstance(t, T.BooleanType):
        return bool(v)
    if isinstance(t, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return int(v)
    if isinstance(t, (T.FloatType, T.DoubleType)):
        return _float(float(v))
    if isinstance(t, T.DecimalType):
        return _decimal(v, t.scale)
    if isinstance(t, (T.StringType, T.VarcharType, T.CharType)):
        return str(v)
    if isinstance(t, T.BinaryType):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(t, T.DateType):
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    if isinstance(t, T.TimestampNTZType):
        return _fmt_datetime(v.replace(tzinfo=None))
    if isinstance(t, T.TimestampType):
        # Naive, in the session time zone (UTC); an aware value is converted.
        if v.tzinfo is not None:
            v = v.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return _fmt_datetime(v) + "Z"
    if isinstance(t, T.ArrayType):
        return [value(x, t.elementType) for x in v]
    if isinstance(t, T.MapType):
        out = {}
        for k, item in v.items():
            key = value(k, t.keyType)
            if not isinstance(key, str):
                key = json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            out[key] = value(item, t.valueType)
        return out
    if isinstance(t, T.StructType):
        return {f.name: value(v[i], f.dataType) for i, f in enumerate(t.fields)}
    if isinstance(t, T.NullType):
        return None
    raise TypeError(f"no canonical JSON form for Spark type {t}")


def line(row: dict) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_rows(df) -> list:
    fields = df.schema.fields
    out = [{f.name: value(r[i], f.dataType) for i, f in enumerate(fields)} for r in df.collect()]
    out.sort(key=line)
    return out


def plain(v):
    """Any collected value as plain JSON (for history, detail and sql results)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if hasattr(v, "asDict"):
        return {k: plain(x) for k, x in v.asDict().items()}
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return str(v)


# ---------------------------------------------------------------------------------------
# The session


def start_session(jars: list[str], memory: str):
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.appName("medilake-spark-peer")
        .master("local[2]")
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.ansi.enabled", "true")
        # Small tables on 2 cores: Delta's state reconstruction defaults to 50 partitions,
        # which is most of the time of every read and commit here.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.adaptive.coalescePartitions.initialPartitionNum", "2")
        .config("spark.sql.files.maxPartitionBytes", str(64 * 1024 * 1024))
        # Tests VACUUM with retention 0 and write tables under temp dirs.
        .config("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ActiveProcessorCount=2")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.warehouse.dir", os.path.join(os.environ.get("MEDILAKE_SPARK_WORK", "/tmp"), "spark-warehouse"))
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def quote_path(path: str) -> str:
    if "`" in path:
        raise ValueError(f"path with a backtick: {path}")
    return f"delta.`{path}`"


class Peer:
    def __init__(self, spark):
        self.spark = spark
        self.lock = threading.Lock()

    def handle(self, req: dict) -> dict:
        op = req.get("op")
        with self.lock:
            if op == "ping":
                import pyspark

                return {"spark": self.spark.version, "pyspark": pyspark.__version__}
            if op == "read":
                reader = self.spark.read.format("delta")
                if req.get("version") is not None:
                    reader = reader.option("versionAsOf", int(req["version"]))
                df = reader.load(req["path"])
                return {"rows": canonical_rows(df), "schema": df.schema.jsonValue()}
            if op == "history":
                rows = self.spark.sql(f"DESCRIBE HISTORY {quote_path(req['path'])}").collect()
                keep = ("version", "operation", "operationParameters", "engineInfo", "readVersion", "isBlindAppend")
                return {"history": [{k: plain(r[k]) for k in keep} for r in rows]}
            if op == "detail":
                r = self.spark.sql(f"DESCRIBE DETAIL {quote_path(req['path'])}").collect()[0]
                return {"detail": plain(r)}
            if op == "sql":
                last = []
                for stmt in req["statements"]:
                    df = self.spark.sql(stmt)
                    last = [plain(r) for r in df.collect()]
                return {"rows": last}
            if op == "changes":
                # The change data feed (readChangeFeed), as `table_changes` gives it: the
                # table's columns plus _change_type, _commit_version, _commit_timestamp.
                reader = (
                    self.spark.read.format("delta")
                    .option("readChangeFeed", "true")
                    .option("startingVersion", int(req["start"]))
                )
                if req.get("end") is not None:
                    reader = reader.option("endingVersion", int(req["end"]))
                df = reader.load(req["path"])
                return {"rows": canonical_rows(df), "schema": df.schema.jsonValue()}
            if op == "scan_files":
                return scan_files(self.spark, req["path"], req.get("filter"))
            if op == "make_tables":
                return {"manifest": make_tables(self.spark, req["out"])}
            raise ValueError(f"unknown op {op!r}")


def scan_files(spark, path: str, where) -> dict:
    """How many files Spark's scan of the table opens for `where` (Delta's data skipping on
    the files' statistics decides which), from the scan node's `numFiles` metric, with the
    rows the query returns. Adaptive execution is off for the query so that the executed plan
    is the one that ran."""
    previous = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    try:
        df = spark.read.format("delta").load(path)
        if where:
            df = df.where(where)
        # collect() runs this DataFrame's own plan (count() would plan a new one), whose scan
        # node then holds the metrics.
        rows = len(df.collect())
        plan = df._jdf.queryExecution().executedPlan()
        leaves = plan.collectLeaves()
        files = 0
        scans = 0
        it = leaves.iterator()
        while it.hasNext():
            metrics = it.next().metrics()
            if metrics.contains("numFiles"):
                files += int(metrics.apply("numFiles").value())
                scans += 1
        if scans == 0:
            raise ValueError("no file scan with a numFiles metric in the executed plan")
        return {"files_read": files, "rows": rows}
    finally:
        spark.conf.set("spark.sql.adaptive.enabled", previous)


def generator_hash() -> str:
    h = hashlib.sha256()
    for name in ("make_spark_tables.py", "spark_peer.py"):
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    req = os.path.join(HERE, "..", "python", "requirements-spark.txt")
    with open(req, "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def make_tables(spark, out: str) -> dict:
    """Build (or reuse, when the generator is unchanged) the Spark-written tables under `out`."""
    import make_spark_tables

    stamp = os.path.join(out, ".stamp")
    want = generator_hash()
    manifest_path = os.path.join(out, "manifest.json")
    if os.path.exists(stamp) and open(stamp).read().strip() == want and os.path.exists(manifest_path):
        log(f"reusing Spark-written tables in {out}")
        with open(manifest_path) as f:
            return json.load(f)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    start = time.time()
    manifest = make_spark_tables.build(spark, tmp, canonical_rows)
    manifest["seconds"] = round(time.time() - start, 1)
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    # Paths inside the tables are relative, so the set can move into place whole.
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    with open(stamp, "w") as f:
        f.write(want + "\n")
    log(f"wrote {len(manifest['tables'])} Spark tables into {out} in {manifest['seconds']}s")
    return manifest


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            if not raw.strip():
                continue
            started = time.time()
            try:
                req = json.loads(raw)
                resp = {"ok": True, **self.server.peer.handle(req)}
            except Exception as e:  # noqa: BLE001 - every error goes back to the client
                # The first lines carry Spark's error class and message; not the JVM stack.
                msg = f"{type(e).__name__}: " + "\n".join(str(e).splitlines()[:3])[:2000]
                log(f"request failed: {msg[:500]}")
                if os.environ.get("MEDILAKE_SPARK_TRACE"):
                    traceback.print_exc()
                resp = {"ok": False, "error": msg}
            resp["seconds"] = round(time.time() - started, 3)
            self.wfile.write((json.dumps(resp, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jars", required=True, help="directory holding the Delta jars")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--driver-memory", default="2g")
    args = ap.parse_args()

    jars = sorted(glob.glob(os.path.join(args.jars, "*.jar")))
    if not jars:
        log(f"no jars in {args.jars}")
        return 1
    t0 = time.time()
    spark = start_session(jars, args.driver_memory)
    # Touch Delta once, so a missing or mismatched jar fails here and not in a test.
    spark.sql("SELECT 1").collect()
    import delta  # noqa: F401  (the Python package of the pair)

    log(f"Spark {spark.version} session up in {time.time() - t0:.1f}s with {[os.path.basename(j) for j in jars]}")

    server = Server(("127.0.0.1", 0), Handler)
    server.peer = Peer(spark)
    port = server.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"127.0.0.1:{port}\n")
    os.rename(tmp, args.port_file)
    log(f"listening on 127.0.0.1:{port}")

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        spark.stop()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
