-- Scenario D: a protected medical application's schema (synthetic).
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    health_card_number TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    date_of_birth DATE,
    email TEXT,
    phone TEXT,
    street_address TEXT,
    city TEXT,
    postal_code TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE assessments (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    assessed_on DATE NOT NULL,
    outcome TEXT NOT NULL,
    notes TEXT
);
CREATE TABLE documents (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    file_name TEXT NOT NULL,
    content BLOB
);
CREATE TABLE examination_reports (
    id INTEGER PRIMARY KEY,
    assessment_id INTEGER NOT NULL REFERENCES assessments (id),
    document_id INTEGER,
    conclusion TEXT NOT NULL,
    report_date DATE NOT NULL
);
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    user_name TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL
);
CREATE TABLE second_factor_enrolments (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    method TEXT NOT NULL,
    totp_secret TEXT,
    PRIMARY KEY (account_id, method)
);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE permissions (account_id INTEGER NOT NULL REFERENCES accounts (id), permission TEXT NOT NULL, PRIMARY KEY (account_id, permission));
CREATE TABLE portal_trial_config (id INTEGER PRIMARY KEY, endpoint_url TEXT NOT NULL, enabled BOOLEAN NOT NULL);
CREATE VIEW assessments_per_patient AS SELECT patient_id, count(*) AS assessments FROM assessments GROUP BY patient_id;
