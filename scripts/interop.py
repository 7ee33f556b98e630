"""Reads a lake's tables with the engines users bring and compares every row
with what the lake's own reader returned.

Usage: interop.py EXPECTED_DIR TABLE_DIR NAME [TABLE_DIR NAME ...]

EXPECTED_DIR holds NAME.parquet for each table: its rows as the lake's own
reader (DataFusion over deltalake) returned them. Each engine reads
TABLE_DIR, a Delta table, and its rows are cast to the expected schema and
compared as sorted rows: keys and values, not counts. Prints one JSON
document ({"engine": {"NAME": "ok" | "why not"}}) and exits 1 when any
engine disagrees on any table, except `deltalake_pyarrow`, whose verdicts
the caller judges (it refuses deletion vectors by design).

Engines: DuckDB with its delta extension (loaded from the duckdb-ext-delta
wheel's file, nothing downloaded), deltalake through QueryBuilder (its
DataFusion path, which applies deletion vectors), Polars read_delta, and
Spark SQL through Sail (a Spark Connect server on DataFusion); and
deltalake's `to_pyarrow_table()`, which does not apply deletion vectors and
refuses tables that have them: it must read the compatibility mode.
"""

import json
import os
import pathlib
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def duckdb_reader():
    import duckdb
    import duckdb_ext

    extension = next(
        pathlib.Path(duckdb_ext.__path__[0]).glob(
            f"extensions/v{duckdb.__version__}/*/delta.duckdb_extension"
        )
    )
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{extension}'")
    con.execute("SET TimeZone = 'UTC'")

    def read(path):
        return con.execute("SELECT * FROM delta_scan(?)", [str(path)]).arrow().read_all()

    return read


def deltalake_reader():
    from deltalake import DeltaTable, QueryBuilder

    def read(path):
        result = QueryBuilder().register("t", DeltaTable(str(path))).execute("SELECT * FROM t")
        return pa.table(result.read_all())

    return read


def deltalake_pyarrow_reader():
    from deltalake import DeltaTable

    def read(path):
        return DeltaTable(str(path)).to_pyarrow_table()

    return read


def polars_reader():
    import polars as pl

    def read(path):
        return pl.read_delta(str(path)).to_arrow()

    return read


def sail_reader():
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    host, port = server.listening_address
    spark = (
        SparkSession.builder.remote(f"sc://{host}:{port}")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )

    def read(path, server=server):  # the server stops when it is collected
        return spark.read.format("delta").load(str(path)).toArrow()

    return read


ENGINES = {
    "duckdb": duckdb_reader,
    "deltalake": deltalake_reader,
    "polars": polars_reader,
    "sail": sail_reader,
    "deltalake_pyarrow": deltalake_pyarrow_reader,
}

# Engines whose verdicts do not decide the exit code.
JUDGED_BY_CALLER = {"deltalake_pyarrow"}


def rows(table):
    """The rows as sorted, comparable text (every type JSON can spell)."""
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())


def plain(table):
    """The table with dictionary columns decoded and string and binary views
    as plain strings and binaries: encodings, not values, which readers
    choose differently (DataFusion dictionary-encodes partition columns)."""
    columns, fields = [], []
    for field, column in zip(table.schema, table.columns):
        kind = field.type
        if pa.types.is_dictionary(kind):
            column = pa.chunked_array(
                [chunk.dictionary_decode() for chunk in column.chunks], type=kind.value_type
            )
            kind = kind.value_type
        if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
            kind = pa.binary()
        elif pa.types.is_struct(kind):
            kind = pa.struct(
                [
                    pa.field(f.name, pa.string(), f.nullable)
                    if pa.types.is_string_view(f.type) or pa.types.is_large_string(f.type)
                    else f
                    for f in kind
                ]
            )
        column = column.cast(kind)
        columns.append(column)
        fields.append(pa.field(field.name, kind, field.nullable))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def compare(expected, actual):
    missing = [c for c in expected.column_names if c not in actual.column_names]
    if missing:
        return f"columns missing: {missing} (has {actual.column_names})"
    expected = plain(expected)
    actual = plain(actual.select(expected.column_names))
    try:
        actual = actual.cast(expected.schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as e:
        return f"types differ: {actual.schema} vs {expected.schema}: {e}"
    ours, theirs = rows(expected), rows(actual)
    if ours == theirs:
        return "ok"
    only_ours = sorted(set(ours) - set(theirs))[:2]
    only_theirs = sorted(set(theirs) - set(ours))[:2]
    return (
        f"{len(theirs)} rows, expected {len(ours)}; "
        f"e.g. missing {only_ours}, unexpected {only_theirs}"
    )


def main(argv):
    expected_dir = pathlib.Path(argv[1])
    tables = list(zip(argv[2::2], argv[3::2]))
    result, failed = {}, False
    for engine, make in ENGINES.items():
        result[engine] = {}
        try:
            read = make()
        except Exception as e:  # an engine that cannot start fails every table
            for _, name in tables:
                result[engine][name] = f"engine did not start: {type(e).__name__}: {e}"
            failed |= engine not in JUDGED_BY_CALLER
            continue
        for path, name in tables:
            expected = pq.read_table(expected_dir / f"{name}.parquet")
            try:
                verdict = compare(expected, read(path))
            except Exception as e:
                verdict = f"read failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            result[engine][name] = verdict
            failed |= verdict != "ok" and engine not in JUDGED_BY_CALLER
    print(json.dumps(result, indent=1, sort_keys=True), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    code = main(sys.argv)
    # Exit at once: the Spark Connect client's and Sail's threads can keep
    # an orderly interpreter shutdown waiting for ever.
    sys.stderr.flush()
    os._exit(code)
