-- Applied to the target copy: 0.1% missing, 0.1% extra, 0.2% changed, spread
-- uniformly (every 1000th result id), including 1 ms timestamp shifts and NULL
-- changes. Ground truth: rows/1000 missing, rows/1000 extra, 2*rows/1000 changed.
DELETE FROM lab_results WHERE substr(result_id, 2)::bigint % 1000 = 1;
UPDATE lab_results SET specimen_collected_at = specimen_collected_at + interval '1 millisecond'
 WHERE substr(result_id, 2)::bigint % 1000 = 2;
UPDATE lab_results SET value_text = CASE WHEN value_text IS NULL THEN 'Detected' ELSE NULL END
 WHERE substr(result_id, 2)::bigint % 1000 = 3;
INSERT INTO lab_results
SELECT sender_id, message_id || '-R', observation_index, result_id || '-R', jurisdiction, patient_key, loinc_code,
       value_numeric, value_text, unit, interpretation, specimen_collected_at, reported_at, program, condition_code
FROM lab_results WHERE substr(result_id, 2)::bigint % 1000 = 5;
VACUUM ANALYZE lab_results;
