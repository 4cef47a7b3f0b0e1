"""Writes a Delta table for cutover's lake tests with PyPI's deltalake:
one version per Parquet file given, each overwriting the last (or, for a
file given as append:FILE, appended with its new columns merged into the
table's schema), partitioned by the columns named in --partition-by.

    delta-fixture.py TABLE_DIR [--partition-by COL,...] V0.parquet [append:V1.parquet ...]
"""
import argparse

import pyarrow.parquet as pq
from deltalake import write_deltalake

parser = argparse.ArgumentParser()
parser.add_argument("table")
parser.add_argument("--partition-by", default="")
parser.add_argument("versions", nargs="+")
args = parser.parse_args()
partition_by = [name for name in args.partition_by.split(",") if name] or None
for version in args.versions:
    if version.startswith("append:"):
        write_deltalake(
            args.table,
            pq.read_table(version[len("append:"):]),
            mode="append",
            schema_mode="merge",
            partition_by=partition_by,
        )
    else:
        write_deltalake(
            args.table, pq.read_table(version), mode="overwrite", partition_by=partition_by
        )
