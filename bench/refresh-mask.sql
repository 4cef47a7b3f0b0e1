-- The by-hand refresh's masking script, run on a restored copy of production: what
-- scenario D's policy does, written as in-place UPDATEs and DELETEs (md5 stands in for
-- keyed hashing and fakes), then acceptance's own rows put back.
\set ON_ERROR_STOP on
BEGIN;
-- Without it every deleted assessment scans the reports for references (its foreign key has no index).
CREATE INDEX ON examination_reports (assessment_id);
DELETE FROM examination_reports r USING assessments a WHERE a.id = r.assessment_id AND a.assessed_on >= '2026-01-01';
DELETE FROM assessments WHERE assessed_on >= '2026-01-01';
UPDATE assessments SET notes = NULL, assessed_on = assessed_on + ((hashtext(patient_id::text) % 180) || ' days')::interval;
UPDATE examination_reports SET conclusion = 'redacted';
UPDATE patients SET health_card_number = md5(health_card_number), first_name = 'Given' || (hashtext(first_name) & 1023),
  last_name = 'Family' || (hashtext(last_name) & 4095), date_of_birth = date_of_birth + (hashtext(id::text) % 180),
  email = md5(email) || '@example.test', phone = '+31 6 ' || (hashtext(phone) & 67108863), street_address = md5(street_address),
  city = 'City' || (hashtext(city) & 255), postal_code = '9999 ZZ';
TRUNCATE documents CASCADE;
TRUNCATE accounts, second_factor_enrolments, settings, permissions, portal_trial_config CASCADE;
INSERT INTO accounts VALUES (7, 'tester', 'Acceptance Tester', 'acc-hash');
INSERT INTO settings VALUES ('environment', 'acceptance');
INSERT INTO portal_trial_config VALUES (1, 'https://portal.acc.internal/api', true);
COMMIT;
VACUUM ANALYZE;
