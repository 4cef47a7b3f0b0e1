#!/usr/bin/env python3
"""Writes examples/lab-results.db: a small synthetic lab-results store (scenario A),
and beside it lab-results-new.db: the same feed as the new platform received it,
with a few rows missing, extra or changed (a 1 ms timestamp shift, a value that
became NULL, a changed result), for trying `cutover diff`.

Synthetic data only. Deterministic: the same files every run.
Usage: python3 examples/make-lab-results.py [PATH]
"""
import os
import random
import sqlite3
import sys
from datetime import datetime, timedelta, timezone

path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "lab-results.db")
if os.path.exists(path):
    os.remove(path)
rng = random.Random(20261123)
db = sqlite3.connect(path)
db.executescript(
    """
    CREATE TABLE programs (
        program TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE senders (
        sender_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        jurisdiction CHAR(2) NOT NULL
    );
    CREATE TABLE lab_results (
        result_id TEXT NOT NULL UNIQUE,
        sender_id TEXT NOT NULL REFERENCES senders (sender_id),
        message_id TEXT NOT NULL,
        observation_index INTEGER NOT NULL,
        jurisdiction CHAR(2) NOT NULL,
        patient_key TEXT NOT NULL,
        loinc_code VARCHAR(10) NOT NULL,
        value_numeric NUMERIC(12,4),
        value_text TEXT,
        unit VARCHAR(20),
        interpretation VARCHAR(4),
        specimen_collected_at TIMESTAMPTZ,
        reported_at TIMESTAMP NOT NULL,
        program TEXT NOT NULL REFERENCES programs (program),
        condition_code TEXT,
        PRIMARY KEY (sender_id, message_id, observation_index)
    );
    CREATE INDEX lab_results_by_program ON lab_results (program, jurisdiction, reported_at);
    CREATE VIEW results_per_program AS
        SELECT program, jurisdiction, count(*) AS results FROM lab_results GROUP BY program, jurisdiction;
    """
)
programs = [("HIV", "HIV surveillance"), ("TB", "Tuberculosis"), ("STI", "Sexually transmitted infections"),
            ("FLU", "Influenza"), ("COVID", "COVID-19")]
db.executemany("INSERT INTO programs VALUES (?, ?)", programs)
jurisdictions = ["NY", "CA", "TX", "WA", "FL", "IL"]
senders = [(f"LAB{n:03d}", f"Regional laboratory {n}", jurisdictions[n % len(jurisdictions)]) for n in range(1, 13)]
db.executemany("INSERT INTO senders VALUES (?, ?, ?)", senders)
tests = [("25836-8", "copies/mL", "HIV"), ("38379-4", None, "TB"), ("21613-5", None, "STI"),
         ("92142-9", None, "FLU"), ("94500-6", None, "COVID"), ("20447-9", "copies/mL", "HIV")]
start = datetime(2026, 1, 1, tzinfo=timezone.utc)
rows = []
for index in range(2000):
    sender = rng.choice(senders)
    loinc, unit, program = rng.choice(tests)
    message = f"MSG-{index // 3:06d}"
    collected = start + timedelta(minutes=rng.randrange(0, 300 * 24 * 60), microseconds=rng.randrange(0, 10**6))
    reported = (collected + timedelta(hours=rng.randrange(2, 96))).replace(tzinfo=None)
    numeric = round(rng.uniform(20, 100000), 2) if unit else None
    text = None if unit else rng.choice(["Detected", "Not detected", "Inconclusive", ""])
    rows.append((
        f"R{index:07d}", sender[0], message, index % 3, sender[2], f"P{rng.randrange(10**9):09d}",
        loinc, None if numeric is None else f"{numeric:.2f}", text, unit,
        rng.choice(["A", "N", "H", None]),
        collected.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00",
        reported.strftime("%Y-%m-%d %H:%M:%S.") + f"{reported.microsecond // 1000:03d}",
        program, rng.choice(["10220", "11550", "10560", None]),
    ))
db.executemany("INSERT INTO lab_results VALUES (" + ", ".join("?" * 15) + ")", rows)
db.commit()
db.execute("ANALYZE")
db.commit()
db.execute("VACUUM")
db.close()
print(f"wrote {path}: {len(rows)} lab results")

new_path = os.path.join(os.path.dirname(os.path.abspath(path)), "lab-results-new.db")
if os.path.exists(new_path):
    os.remove(new_path)
source = sqlite3.connect(path)
new = sqlite3.connect(new_path)
source.backup(new)
source.close()
changes = [
    # Lost on the way: the new platform never received these.
    "DELETE FROM lab_results WHERE result_id IN ('R0000101', 'R0000733', 'R0001207', 'R0001862')",
    # Received twice under a new message id.
    "INSERT INTO lab_results SELECT result_id || '-dup', sender_id, message_id || '-R', observation_index, jurisdiction,"
    " patient_key, loinc_code, value_numeric, value_text, unit, interpretation, specimen_collected_at, reported_at,"
    " program, condition_code FROM lab_results WHERE result_id IN ('R0000412', 'R0001533')",
    # Timestamps truncated to the millisecond by the new pipeline.
    "UPDATE lab_results SET specimen_collected_at = substr(specimen_collected_at, 1, 23) || '000+00'"
    " WHERE result_id IN ('R0000050', 'R0000950', 'R0001450')",
    # An interpretation dropped, a result re-read.
    "UPDATE lab_results SET interpretation = NULL WHERE result_id IN ('R0000300', 'R0001300') AND interpretation IS NOT NULL",
    "UPDATE lab_results SET value_text = 'Not detected' WHERE result_id = 'R0001777'",
]
for change in changes:
    new.execute(change)
new.commit()
new.execute("VACUUM")
new.close()
print(f"wrote {new_path}: the same feed with a few rows missing, extra or changed")
