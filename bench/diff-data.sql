-- Scenario A at :rows rows: lab results keyed by (sender_id, message_id, observation_index).
-- Run against the source database with psql -v rows=N; the target is a copy with
-- ~0.4% of rows spread uniformly over the key space missing, extra or changed.
DROP TABLE IF EXISTS lab_results;
CREATE TABLE lab_results (
    sender_id text NOT NULL,
    message_id text NOT NULL,
    observation_index integer NOT NULL,
    result_id text NOT NULL,
    jurisdiction char(2) NOT NULL,
    patient_key text NOT NULL,
    loinc_code varchar(10) NOT NULL,
    value_numeric numeric(12,4),
    value_text text,
    unit varchar(20),
    interpretation varchar(4),
    specimen_collected_at timestamptz,
    reported_at timestamp NOT NULL,
    program text NOT NULL,
    condition_code text,
    PRIMARY KEY (sender_id, message_id, observation_index)
);
INSERT INTO lab_results
SELECT 'LAB' || lpad((g % 97)::text, 3, '0'),
       'MSG-' || lpad((g / 3)::text, 10, '0'),
       g % 3,
       'R' || lpad(g::text, 11, '0'),
       (ARRAY['CA','NY','TX','WA','FL','IL','ON','QC'])[1 + g % 8],
       'P' || lpad(((g::bigint * 7919) % 100000003)::text, 9, '0'),
       (ARRAY['94500-6','20447-9','38379-4','5195-3','13955-0'])[1 + g % 5],
       CASE WHEN g % 5 = 0 THEN NULL ELSE ((g::bigint * 31) % 1000000) / 100.0 END,
       CASE WHEN g % 5 = 0 THEN (ARRAY['Detected','Not detected','Inconclusive'])[1 + g % 3] END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'copies/mL' END,
       (ARRAY['N','A','H','L'])[1 + g % 4],
       timestamptz '2026-01-01 00:00:00+00' + (g::bigint * 12345) * interval '1 microsecond' * 1000,
       timestamp '2026-01-02 00:00:00' + (g::bigint * 12345) * interval '1 microsecond' * 1000,
       (ARRAY['HIV','TB','COVID','STI','HEP'])[1 + g % 5],
       CASE WHEN g % 7 = 0 THEN NULL ELSE (10000 + g % 997)::text END
FROM generate_series(1, :rows) AS g;
VACUUM ANALYZE lab_results;
