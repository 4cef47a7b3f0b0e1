-- Scenario D's production for bench/refresh: :rows patients, one assessment and one
-- examination report each (a third after the policy's cutoff), a document (8 KB, stored
-- uncompressed) per ten patients, and production's own accounts and settings.
\set ON_ERROR_STOP on
ALTER TABLE documents ALTER COLUMN content SET STORAGE EXTERNAL;
INSERT INTO patients
SELECT i, 'HC-' || lpad(i::text, 10, '0'), 'Given' || (i % 5000), 'Family' || (i % 20000),
       DATE '1940-01-01' + (i % 25000), 'patient' || i || '@mail.test', '+31 6 ' || lpad((i % 100000000)::text, 8, '0'),
       'Street ' || (i % 900) || ' ' || (i % 300), 'City' || (i % 400), lpad((1000 + i % 9000)::text, 4, '0') || ' AB',
       TIMESTAMP '2020-01-01' + (i % 100000) * interval '1 minute'
FROM generate_series(1, :rows) i;
INSERT INTO assessments
SELECT i, i, DATE '2024-06-01' + (i % 900), CASE i % 3 WHEN 0 THEN 'fit' WHEN 1 THEN 'unfit' ELSE 'deferred' END,
       'Notes on the assessment of patient ' || i
FROM generate_series(1, :rows) i;
INSERT INTO documents
SELECT i, i * 10, 'scan-' || i || '.pdf', decode(repeat(md5(i::text), 512), 'hex')
FROM generate_series(1, :rows / 10) i;
INSERT INTO examination_reports
SELECT i, i, CASE WHEN i % 10 = 0 THEN i / 10 END, 'Conclusion ' || i, DATE '2024-06-02' + (i % 900)
FROM generate_series(1, :rows) i;
INSERT INTO accounts SELECT i, 'prod.user' || i, 'Production User ' || i, md5(i::text) FROM generate_series(1, 100) i;
INSERT INTO settings VALUES ('environment', 'production'), ('mail_host', 'smtp.prod.internal');
INSERT INTO portal_trial_config VALUES (1, 'https://portal.prod.internal/api', true);
ANALYZE;
