//! A starting policy written from the source's schema: every column that
//! looks like personal or health data gets a masking rule, everything else
//! `keep`, and each guess carries a comment saying why, for review. The
//! result passes [`crate::check`] as written (given the secret).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cutover_db::{Column, LogicalType, Schema, Table};

use crate::check::table_key;

/// A column's guessed rule (as policy text) and why.
struct Guess {
    rule: String,
    reason: &'static str,
}

/// Splits a column name into lower-case words (`DateOfBirth`, `date_of_birth` → date, of, birth).
fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for character in name.chars() {
        if !character.is_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if character.is_uppercase() && previous_lower && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lower = character.is_lowercase() || character.is_ascii_digit();
        current.extend(character.to_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn has(words: &[String], any: &[&str]) -> bool {
    words.iter().any(|word| any.contains(&word.as_str()))
}

fn joined_has(words: &[String], any: &[&str]) -> bool {
    let joined = words.join("_");
    any.iter().any(|pattern| joined.contains(pattern))
}

/// The guess for one column, or `None` for `keep`.
fn guess(column: &Column, is_key: bool, is_reference: bool) -> Option<Guess> {
    let words = words(&column.name);
    let logical = column.logical_type?;
    let text = logical == LogicalType::Text;
    let nullable_or = |masked: &str| -> String {
        if column.nullable {
            "\"null\"".to_owned()
        } else {
            masked.to_owned()
        }
    };
    let datelike = matches!(
        logical,
        LogicalType::Date | LogicalType::Timestamp | LogicalType::TimestampTz
    );
    if logical == LogicalType::Bytes {
        return Some(Guess {
            rule: "\"redact-blob\"".into(),
            reason: "binary content (documents, images)",
        });
    }
    if has(
        &words,
        &[
            "password", "passwd", "secret", "token", "salt", "otp", "totp", "apikey", "pin",
        ],
    ) || joined_has(
        &words,
        &["api_key", "password_hash", "private_key", "recovery_code"],
    ) {
        return Some(Guess {
            rule: if text {
                "{ rule = \"fixed\", value = \"masked\" }".into()
            } else {
                nullable_or("\"keep\"")
            },
            reason: "a credential or secret",
        });
    }
    if datelike
        && (joined_has(&words, &["birth", "dob"]) || has(&words, &["born", "deceased", "death"]))
    {
        return Some(Guess {
            rule: "\"fake:date\"".into(),
            reason: "a birth or death date",
        });
    }
    if text {
        if joined_has(
            &words,
            &[
                "first_name",
                "given_name",
                "forename",
                "firstname",
                "prenom",
                "prénom",
            ],
        ) {
            return Some(Guess {
                rule: "\"fake:first-name\"".into(),
                reason: "a person's name",
            });
        }
        if joined_has(
            &words,
            &[
                "last_name",
                "family_name",
                "surname",
                "lastname",
                "maiden_name",
                "nom_famille",
                "nom_de_famille",
            ],
        ) {
            return Some(Guess {
                rule: "\"fake:last-name\"".into(),
                reason: "a person's name",
            });
        }
        if joined_has(
            &words,
            &["full_name", "patient_name", "display_name", "contact_name"],
        ) || (words == ["name"] && !is_key)
        {
            return Some(Guess {
                rule: "\"fake:full-name\"".into(),
                reason: "possibly a person's name (check: it may name a thing)",
            });
        }
        if joined_has(&words, &["user_name", "username", "login"]) {
            return Some(Guess {
                rule: "\"hash\"".into(),
                reason: "an account name, which may identify a person",
            });
        }
        if has(&words, &["email", "mail", "courriel"]) {
            return Some(Guess {
                rule: "\"fake:email\"".into(),
                reason: "contact details",
            });
        }
        if has(
            &words,
            &[
                "phone",
                "mobile",
                "telephone",
                "téléphone",
                "fax",
                "cell",
                "cellulaire",
            ],
        ) {
            return Some(Guess {
                rule: "\"fake:phone\"".into(),
                reason: "contact details",
            });
        }
        if has(&words, &["address", "street", "addr", "adresse", "rue"]) {
            return Some(Guess {
                rule: "\"fake:address\"".into(),
                reason: "an address",
            });
        }
        if has(
            &words,
            &["city", "town", "ville", "municipalite", "municipalité"],
        ) {
            return Some(Guess {
                rule: "\"fake:city\"".into(),
                reason: "part of an address",
            });
        }
        if has(&words, &["postal", "postcode", "zip", "zipcode"]) {
            return Some(Guess {
                rule: "\"fake:postal-code\"".into(),
                reason: "part of an address",
            });
        }
        if has(
            &words,
            &[
                "note",
                "notes",
                "comment",
                "comments",
                "remark",
                "remarks",
                "narrative",
                "description",
                "memo",
                "observation",
                "findings",
                "anamnesis",
                "diagnosis",
                "complaint",
            ],
        ) || joined_has(&words, &["free_text", "freetext"])
        {
            return Some(Guess {
                rule: nullable_or("{ rule = \"fixed\", value = \"redacted\" }"),
                reason: "free text that may describe a person",
            });
        }
    }
    let identifier = has(
        &words,
        &[
            "ssn",
            "sin",
            "bsn",
            "nhs",
            "mrn",
            "hcn",
            "passport",
            "iban",
            "insurance",
            "licence",
            "license",
        ],
    ) || joined_has(
        &words,
        &[
            "health_card",
            "medical_record",
            "record_number",
            "patient_number",
            "national_id",
            "social_security",
            "citizen_service",
            "patient_key",
            "person_key",
            "client_number",
            "pseudonym",
        ],
    );
    if identifier
        && !is_reference
        && matches!(
            logical,
            LogicalType::Text | LogicalType::Integer | LogicalType::Numeric
        )
    {
        return Some(Guess {
            rule: "\"hash\"".into(),
            reason: "an identifier of a person (keyed hash keeps it unique and joinable)",
        });
    }
    None
}

/// Writes a complete policy for every table of `schema` as TOML text.
/// `source` (redacted) and `written_on` go into the header comment.
pub fn initial_policy(schema: &Schema, source: &str, written_on: &str) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# cutover refresh policy for {source}, written by `cutover refresh --init-policy` on {written_on}."
    );
    let _ = writeln!(
        text,
        "# Every column of every table is classified. Lines marked \"guess\" are cutover's reading of"
    );
    let _ = writeln!(
        text,
        "# the column's name and type: review each one, and set action = \"preserve\" for tables whose"
    );
    let _ = writeln!(
        text,
        "# rows the target keeps (accounts, settings, permissions) and \"skip\" for tables not copied."
    );
    let _ = writeln!(
        text,
        "# Column rules: keep, null, hash, redact-blob, shift-date, fake:<kind> (first-name, last-name,"
    );
    let _ = writeln!(
        text,
        "# full-name, email, phone, address, city, province, postal-code, health-card, date),"
    );
    let _ = writeln!(
        text,
        "# {{ rule = \"fixed\", value = \"...\" }}, {{ rule = \"regex\", pattern = \"...\", replacement = \"...\" }},\n# {{ rule = \"shift-date\", by = \"patient_id\" }}. On a unique key, fakes carry a unique tag."
    );
    text.push('\n');
    let _ = writeln!(
        text,
        "# The masking secret comes from this environment variable, never from this file."
    );
    let _ = writeln!(text, "secret_env = \"CUTOVER_MASK_SECRET\"");
    let (locale, why) = guess_locale(schema);
    let _ = writeln!(
        text,
        "# The locale fakes look like: en-CA, fr-CA, en-US (or nl-NL)."
    );
    let _ = writeln!(text, "locale = \"{}\"  # guess: {why}", locale.name());
    let _ = writeln!(
        text,
        "# Host patterns of production: the target may not match one, nor point at one afterwards."
    );
    let _ = writeln!(text, "forbid_hosts = []");

    // Masked key columns: referencing columns get the same rule so joins still match.
    let mut rules: BTreeMap<(String, String), Guess> = BTreeMap::new();
    for table in &schema.tables {
        let key: Vec<&String> = table
            .primary_key
            .iter()
            .flat_map(|key| &key.columns)
            .collect();
        let references: Vec<&String> = table
            .foreign_keys
            .iter()
            .flat_map(|foreign_key| &foreign_key.columns)
            .collect();
        for column in &table.columns {
            let guessed = guess(
                column,
                key.contains(&&column.name),
                references.contains(&&column.name),
            );
            if let Some(guess) = guessed {
                rules.insert((table_key(table), column.name.clone()), guess);
            }
        }
        // A column of a unique key gets a rule that keeps it unique.
        for column in crate::unique::unique_keys(table).into_iter().flatten() {
            let entry = (table_key(table), column.clone());
            let clashes = rules.get(&entry).is_some_and(|guess| {
                // The guess is policy text: read it as the rule it writes.
                toml::from_str::<BTreeMap<String, crate::policy::Rule>>(&format!(
                    "c = {}",
                    guess.rule
                ))
                .ok()
                .and_then(|mut rules| rules.remove("c"))
                .is_none_or(|rule| crate::unique::clashes(&rule).is_some())
            });
            if clashes {
                let hashable = table
                    .column(&column)
                    .and_then(|column| column.logical_type)
                    .is_some_and(|logical| {
                        matches!(
                            logical,
                            LogicalType::Text
                                | LogicalType::Integer
                                | LogicalType::Uuid
                                | LogicalType::Bytes
                        )
                    });
                if hashable {
                    rules.insert(
                        entry,
                        Guess {
                            rule: "\"hash\"".into(),
                            reason: "personal data in a unique key (keyed hash keeps it unique)",
                        },
                    );
                } else {
                    rules.remove(&entry);
                }
            }
        }
    }
    // Foreign keys follow what they reference (one pass per level is enough for key chains).
    for _ in 0..4 {
        for table in &schema.tables {
            for foreign_key in &table.foreign_keys {
                let Some(referenced) = schema.table(&foreign_key.referenced_table) else {
                    continue;
                };
                for (column, referenced_column) in foreign_key
                    .columns
                    .iter()
                    .zip(&foreign_key.referenced_columns)
                {
                    let rule = rules
                        .get(&(table_key(referenced), referenced_column.clone()))
                        .map(|guess| guess.rule.clone());
                    if let Some(rule) = rule {
                        rules.insert(
                            (table_key(table), column.clone()),
                            Guess {
                                rule,
                                reason: "references a masked column, so it is masked the same way",
                            },
                        );
                    }
                }
            }
        }
    }

    for table in &schema.tables {
        text.push('\n');
        write_table(&mut text, table, &rules);
    }
    text
}

/// The locale the schema's column names suggest, and why.
fn guess_locale(schema: &Schema) -> (crate::fakes::Locale, &'static str) {
    use crate::fakes::Locale;
    let names: Vec<Vec<String>> = schema
        .tables
        .iter()
        .flat_map(|table| table.columns.iter().map(|column| words(&column.name)))
        .collect();
    let any = |markers: &[&str]| {
        names
            .iter()
            .any(|words| has(words, markers) || joined_has(words, markers))
    };
    if any(&[
        "courriel",
        "prenom",
        "prénom",
        "adresse",
        "ville",
        "naissance",
        "ramq",
        "nom_famille",
        "code_postal",
        "téléphone",
    ]) {
        (Locale::FrCa, "column names in French")
    } else if any(&["zip", "zipcode", "ssn", "zip_code", "state"]) {
        (Locale::EnUs, "ZIP codes, states or social security numbers")
    } else if any(&[
        "province",
        "ohip",
        "hcn",
        "phn",
        "health_card",
        "postal_code",
        "sin",
    ]) {
        (Locale::EnCa, "provinces, postal codes or health cards")
    } else {
        (Locale::EnCa, "nothing in the column names said otherwise")
    }
}

fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name.chars().all(|character| {
            character.is_ascii_alphanumeric() || character == '_' || character == '-'
        });
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

fn write_table(text: &mut String, table: &Table, rules: &BTreeMap<(String, String), Guess>) {
    let key = table_key(table);
    let quoted = format!("\"{}\"", key.replace('"', "\\\""));
    let _ = writeln!(text, "[tables.{quoted}]");
    if let Some(scheduler) = crate::targets::timer_table(table) {
        let _ = writeln!(
            text,
            "action = \"skip\"  # guess: {scheduler} timers: copied rows would fire production's jobs in acceptance"
        );
        return;
    }
    let _ = writeln!(text, "action = \"copy\"");
    let _ = writeln!(text, "[tables.{quoted}.columns]");
    let width = table
        .columns
        .iter()
        .map(|column| toml_key(&column.name).len())
        .max()
        .unwrap_or(0);
    for column in &table.columns {
        let name = toml_key(&column.name);
        match rules.get(&(key.clone(), column.name.clone())) {
            Some(guess) => {
                let _ = writeln!(
                    text,
                    "{name:<width$} = {}  # guess: {}",
                    guess.rule, guess.reason
                );
            }
            None => {
                let _ = writeln!(text, "{name:<width$} = \"keep\"");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("DateOfBirth"), ["date", "of", "birth"]);
        assert_eq!(words("date_of_birth"), ["date", "of", "birth"]);
        assert_eq!(words("patientMRN2"), ["patient", "mrn2"]);
        assert_eq!(words("e-mail"), ["e", "mail"]);
    }
}
